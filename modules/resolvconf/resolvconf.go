// Package resolvconf implements cloud-init's resolv_conf module: with
// manage_resolv_conf true, /etc/resolv.conf is written from resolv_conf
// as cloud-init's resolv.conf template renders it. cloud-init runs it only
// on the distributions it verified (not Debian, Ubuntu nor Amazon Linux,
// whose resolv.conf belongs to systemd-resolved or NetworkManager), unless
// unverified_modules names it; ec2init follows that.
package resolvconf

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"

	"go.uber.org/zap"
	"gopkg.in/yaml.v3"

	"github.com/ec2init/ec2init/agent/config"
	"github.com/ec2init/ec2init/agent/state"
	"github.com/ec2init/ec2init/modules"
	"github.com/ec2init/ec2init/modules/internal/distro"
)

// File is the file written.
const File = "/etc/resolv.conf"

// verified are the os-release IDs cloud-init's module lists whose
// resolv.conf it writes (photon, mariner and azurelinux it lists too,
// but there it writes systemd-resolved's resolved.conf: not supported).
var verified = []string{"alpine", "fedora", "rhel", "opensuse", "opensuse-leap", "opensuse-microos",
	"opensuse-tumbleweed", "sles", "sle_hpc", "sle-micro", "openeuler"}

const header = `# Your system has been configured with 'manage-resolv-conf' set to true.
# As a result, cloud-init has written this file with configuration data
# that it has been provided. Cloud-init, by default, will write this file
# a single time (PER_ONCE).
#
`

// ResolvConf writes /etc/resolv.conf once per instance.
type ResolvConf struct{}

func (ResolvConf) Name() string                 { return "resolv_conf" }
func (ResolvConf) Stage() modules.Stage         { return modules.StageNetwork }
func (ResolvConf) Frequency() modules.Frequency { return state.PerInstance }
func (ResolvConf) Schema() modules.Schema {
	strs := config.ListOf(config.String())
	return modules.Schema{
		Doc: "Write /etc/resolv.conf (only where cloud-init does: Fedora, RHEL, SUSE, Alpine, openEuler; else with unverified_modules).",
		Keys: []config.Field{
			{Name: "manage_resolv_conf", Type: config.Bool(), Default: "false", Doc: "true writes /etc/resolv.conf from resolv_conf."},
			{Name: "resolv_conf", Type: config.Object(
				config.Field{Name: "nameservers", Type: strs, Doc: "nameserver lines, in order."},
				config.Field{Name: "searchdomains", Type: strs, Doc: "The search line."},
				config.Field{Name: "domain", Type: config.String(), Doc: "The domain line."},
				config.Field{Name: "sortlist", Type: strs, Doc: "The sortlist line (address/netmask pairs)."},
				config.Field{Name: "options", Type: config.MapOf(config.Any()),
					Doc: "The options line: true is a flag (rotate), false drops it, any other value is name:value (timeout: 1)."},
			), Doc: "What /etc/resolv.conf says."},
			{Name: "unverified_modules", Type: config.ListOf(config.String()),
				Doc: "cloud-init's list of modules to run where they are not verified: resolv_conf in it writes the file on any distribution."},
		},
	}
}

type settings struct {
	Nameservers   []string  `yaml:"nameservers"`
	SearchDomains []string  `yaml:"searchdomains"`
	Domain        *string   `yaml:"domain"`
	Sortlist      []string  `yaml:"sortlist"`
	Options       yaml.Node `yaml:"options"`
}

func (ResolvConf) Run(ctx context.Context, env *modules.Env, cfg *config.CloudConfig) error {
	log := env.Logger()
	var manage bool
	if ok, err := cfg.Decode("manage_resolv_conf", &manage); err != nil {
		return err
	} else if !ok || !manage {
		log.Debug("resolv_conf: manage_resolv_conf is not true; /etc/resolv.conf left alone")
		return nil
	}
	var raw yaml.Node
	if ok, err := cfg.Decode("resolv_conf", &raw); err != nil {
		return err
	} else if !ok {
		log.Warn("resolv_conf: manage_resolv_conf is true but there is no resolv_conf; nothing written")
		return nil
	}
	d, err := distro.Detect(env.Root)
	if err != nil {
		return err
	}
	if !slices.Contains(verified, strings.ToLower(d.ID)) && !forced(cfg) {
		log.Warn("resolv_conf: not run on " + d.String() + ", as cloud-init does not (its resolv.conf is the resolver service's); add resolv_conf to unverified_modules to force it")
		return nil
	}
	var s settings
	if err := raw.Decode(&s); err != nil {
		return fmt.Errorf("resolv_conf: %w", err)
	}
	has := func(key string) bool {
		for i := 0; i+1 < len(raw.Content); i += 2 {
			if raw.Content[i].Value == key && raw.Content[i+1].Tag != "!!null" {
				return true
			}
		}
		return false
	}
	content, err := render(s, has)
	if err != nil {
		return err
	}
	if err := env.Root.WriteFile(File, content, 0o644, nil); err != nil {
		return err
	}
	log.Info("resolv.conf written", zap.Int("nameservers", len(s.Nameservers)))
	return nil
}

// forced is cloud-init's unverified_modules: modules to run on a
// distribution they are not verified on.
func forced(cfg *config.CloudConfig) bool {
	var names []string
	if ok, err := cfg.Decode("unverified_modules", &names); err != nil || !ok {
		return false
	}
	return slices.Contains(names, "resolv_conf")
}

// render writes what cloud-init's template renders, byte for byte, except
// that the file always ends in a newline (the template leaves the options
// and sortlist lines without one).
func render(s settings, has func(string) bool) ([]byte, error) {
	var b strings.Builder
	b.WriteString(header)
	if has("nameservers") {
		for _, n := range s.Nameservers {
			fmt.Fprintf(&b, "nameserver %s\n", n)
		}
		b.WriteString("\n")
	}
	if has("searchdomains") {
		b.WriteString("search ")
		for _, d := range s.SearchDomains {
			b.WriteString(d + " ")
		}
		b.WriteString("\n")
	}
	if s.Domain != nil {
		fmt.Fprintf(&b, "domain %s\n", *s.Domain)
	}
	if has("sortlist") {
		b.WriteString("\nsortlist ")
		for _, x := range s.Sortlist {
			b.WriteString(x + " ")
		}
	}
	flags, opts, err := options(&s.Options)
	if err != nil {
		return nil, err
	}
	if len(flags)+len(opts) > 0 {
		b.WriteString("\noptions")
		for _, f := range flags {
			b.WriteString(" " + f)
		}
		for _, o := range opts {
			b.WriteString(" " + o)
		}
	}
	out := b.String()
	if !strings.HasSuffix(out, "\n") {
		out += "\n"
	}
	return []byte(out), nil
}

// options splits the options mapping: true values are flags, in the
// order given; false ones are dropped; the rest are name:value, sorted.
func options(n *yaml.Node) (flags, opts []string, err error) {
	if n.Kind == 0 || n.Tag == "!!null" {
		return nil, nil, nil
	}
	if n.Kind != yaml.MappingNode {
		return nil, nil, fmt.Errorf("resolv_conf.options: line %d: expected a mapping", n.Line)
	}
	var kv [][2]string
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i].Value, n.Content[i+1]
		if v.Kind != yaml.ScalarNode {
			return nil, nil, fmt.Errorf("resolv_conf.options.%s: line %d: expected a plain value", k, v.Line)
		}
		if v.Tag == "!!bool" {
			if on, _ := config.ParseBool(v.Value); on {
				flags = append(flags, k)
			}
			continue
		}
		kv = append(kv, [2]string{k, v.Value})
	}
	sort.SliceStable(kv, func(i, j int) bool { return kv[i][0] < kv[j][0] })
	for _, o := range kv {
		opts = append(opts, o[0]+":"+o[1])
	}
	return flags, opts, nil
}
