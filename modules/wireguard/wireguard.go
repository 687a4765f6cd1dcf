// Package wireguard implements cloud-init's wireguard module: each
// interface's configuration is written (0600: it holds the private key),
// its wg-quick@NAME unit enabled and restarted, then the readiness probes
// run. wireguard-tools is installed first when `wg` is missing, and the
// kernel module loaded, as cloud-init does.
package wireguard

import (
	"context"
	"fmt"
	"path"
	"regexp"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"
	"gopkg.in/yaml.v3"

	"github.com/ec2init/ec2init/agent/config"
	"github.com/ec2init/ec2init/agent/state"
	"github.com/ec2init/ec2init/agent/sys"
	"github.com/ec2init/ec2init/modules"
	"github.com/ec2init/ec2init/modules/internal/command"
	"github.com/ec2init/ec2init/modules/internal/pkgmgr"
)

// ConfigMode is the mode of a written configuration: it holds the
// interface's private key.
const ConfigMode = 0o600

const (
	serviceTimeout = 2 * time.Minute
	probeTimeout   = 5 * time.Minute
)

// ifaceName is what wg-quick accepts as an interface name (it refuses
// others), which is also what its unit's instance name must be.
var ifaceName = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[a-zA-Z0-9_=+.-]{1,15}$`) })

// Wireguard configures the interfaces once per instance.
type Wireguard struct{}

func (Wireguard) Name() string                 { return "wireguard" }
func (Wireguard) Stage() modules.Stage         { return modules.StageConfig }
func (Wireguard) Frequency() modules.Frequency { return state.PerInstance }
func (Wireguard) Schema() modules.Schema {
	return modules.Schema{
		Doc: "Write WireGuard interface configurations (0600), bring each up with its wg-quick@NAME unit, then run readiness probes.",
		Keys: []config.Field{{Name: "wireguard", Type: config.OneOf(config.Object(
			config.Field{Name: "interfaces", Type: config.ListOf(config.Object(
				config.Field{Name: "name", Type: config.String(), Required: true, Doc: "The interface (wg0): its unit is wg-quick@NAME."},
				config.Field{Name: "config_path", Type: config.String(), Required: true,
					Doc: "Where the configuration goes; wg-quick@NAME reads /etc/wireguard/NAME.conf."},
				config.Field{Name: "content", Type: config.String(), Required: true, Doc: "The wg-quick configuration (keys, peers, ...)."},
			)), Required: true, Doc: "The interfaces, in order."},
			config.Field{Name: "readinessprobe", Type: config.ListOf(config.String()),
				Doc: "Shell commands run once every interface is up; each must exit 0."},
		), config.Null()), Doc: "WireGuard interfaces and readiness probes."}},
	}
}

type iface struct {
	Name       string `yaml:"name"`
	ConfigPath string `yaml:"config_path"`
	Content    string `yaml:"content"`
}

type settings struct {
	Interfaces     []yaml.Node `yaml:"interfaces"`
	ReadinessProbe []string    `yaml:"readinessprobe"`
}

func (Wireguard) Run(ctx context.Context, env *modules.Env, cfg *config.CloudConfig) error {
	var s settings
	if ok, err := cfg.Decode("wireguard", &s); err != nil || !ok {
		return err
	}
	log := env.Logger()
	if len(s.Interfaces) == 0 {
		log.Info("wireguard: no interfaces; nothing to do")
		return nil
	}
	// Every interface is checked before anything changes: a bad one is
	// its own failed item and is skipped, the others still apply.
	var failures []error
	var good []iface
	for i := range s.Interfaces {
		it, err := decodeIface(&s.Interfaces[i])
		if err != nil {
			failures = append(failures, fmt.Errorf("wireguard.interfaces[%d]: %w", i, err))
			continue
		}
		good = append(good, it)
	}
	if len(good) == 0 {
		return modules.JoinItemErrors(failures)
	}
	if err := ensureTools(ctx, env); err != nil {
		return modules.JoinItemErrors(append(failures, err))
	}
	loadKernelModule(ctx, env)
	up := 0
	for _, it := range good {
		if err := configure(ctx, env, it); err != nil {
			failures = append(failures, fmt.Errorf("interface %s: %w", it.Name, err))
			continue
		}
		up++
	}
	// As in cloud-init, probes run only once every interface is up: a
	// probe of a missing interface only repeats its failure.
	switch {
	case len(s.ReadinessProbe) == 0:
	case len(failures) > 0:
		log.Warn("wireguard: readiness probes not run: an interface failed")
	default:
		failures = append(failures, probe(ctx, env, s.ReadinessProbe)...)
	}
	if len(failures) == 0 {
		log.Info("wireguard configured", zap.Int("interfaces", up))
	}
	return modules.JoinItemErrors(failures)
}

// decodeIface reads one interface; the schema says the same with its
// line, this is for a config that reached Run unchecked.
func decodeIface(n *yaml.Node) (iface, error) {
	var it iface
	if n.Kind != yaml.MappingNode {
		return it, fmt.Errorf("line %d: an interface is a mapping of name, config_path and content", n.Line)
	}
	if err := n.Decode(&it); err != nil {
		return it, fmt.Errorf("line %d: %w", n.Line, err)
	}
	have := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		have[n.Content[i].Value] = n.Content[i+1].Tag != "!!null"
	}
	var missing []string
	for _, k := range []string{"name", "config_path", "content"} {
		if !have[k] {
			missing = append(missing, k)
		}
	}
	if len(missing) > 0 {
		return it, fmt.Errorf("line %d: missing %s", n.Line, strings.Join(missing, ", "))
	}
	if msg := nameProblem(it.Name); msg != "" {
		return it, fmt.Errorf("line %d: name: %s", n.Line, msg)
	}
	if !path.IsAbs(it.ConfigPath) {
		return it, fmt.Errorf("line %d: config_path %q: not an absolute path", n.Line, it.ConfigPath)
	}
	return it, nil
}

func nameProblem(name string) string {
	if !ifaceName().MatchString(name) {
		return "not an interface name wg-quick accepts (1 to 15 of a-z A-Z 0-9 _ = + . -)"
	}
	return ""
}

// ensureTools installs wireguard-tools when the image has no wg, as
// cloud-init does (it needs no DKMS package: EC2's kernels are past 5.6,
// where WireGuard is in the kernel).
func ensureTools(ctx context.Context, env *modules.Env) error {
	if onPath(env.Root, "wg") {
		return nil
	}
	env.Logger().Info("wireguard: wg not installed; installing wireguard-tools")
	req := pkgmgr.Request{Update: true, Packages: []pkgmgr.Package{{Name: "wireguard-tools"}}}
	if err := (pkgmgr.Manager{}).Apply(ctx, env, req); err != nil {
		return fmt.Errorf("install wireguard-tools: %w", err)
	}
	return nil
}

// onPath reports whether exe is a regular file in a directory of the
// root's default PATH.
func onPath(root *sys.Root, exe string) bool {
	for _, d := range strings.Split(sys.DefaultPath, ":") {
		if fi, err := root.Stat(d + "/" + exe); err == nil && fi.Mode().IsRegular() {
			return true
		}
	}
	return false
}

// loadKernelModule loads wireguard into the running kernel when it is not
// there (built in or loaded: /sys/module/wireguard exists). A failure is
// a warning, where cloud-init stops: wg-quick falls back to a userspace
// implementation (wireguard-go) when one is installed, and says so if not.
func loadKernelModule(ctx context.Context, env *modules.Env) {
	if !env.Root.IsHost() {
		return
	}
	if ok, err := env.Root.Exists("/sys/module/wireguard"); err == nil && ok {
		return
	}
	out, res, err := command.Output(ctx, env.Runner, sys.Cmd{Name: "modprobe wireguard", Argv: []string{"modprobe", "wireguard"}, Timeout: serviceTimeout})
	if err == nil && res.ExitCode != 0 {
		err = command.ExitError(res.ExitCode, out)
	}
	if err != nil {
		env.Logger().Warn("wireguard: kernel module not loaded; wg-quick needs a userspace implementation", zap.Error(err))
	}
}

// configure writes one interface's configuration, atomically, and on the
// running system brings it up.
func configure(ctx context.Context, env *modules.Env, it iface) error {
	log := env.Logger()
	if want := "/etc/wireguard/" + it.Name + ".conf"; path.Clean(it.ConfigPath) != want {
		log.Warn("wireguard: wg-quick@"+it.Name+" reads "+want+", not config_path", zap.String("config_path", it.ConfigPath))
	}
	if err := env.Root.WriteFile(it.ConfigPath, []byte(it.Content), ConfigMode, nil); err != nil {
		return err
	}
	log.Info("wireguard: configuration written", zap.String("interface", it.Name), zap.String("file", it.ConfigPath))
	if !env.Root.IsHost() {
		log.Info("wireguard: wg-quick@" + it.Name + " not enabled under a --root prefix")
		return nil
	}
	return bringUp(ctx, env.Runner, it.Name)
}

// bringUp enables wg-quick@NAME for later boots and restarts it, so a
// configuration that was already up is read again, as cloud-init does.
func bringUp(ctx context.Context, r *sys.Runner, name string) error {
	unit := "wg-quick@" + name
	for _, verb := range []string{"enable", "restart"} {
		out, res, err := command.Output(ctx, r, sys.Cmd{Name: "systemctl " + verb, Argv: []string{"systemctl", verb, unit}, Timeout: serviceTimeout})
		if err == nil && res.ExitCode != 0 {
			err = command.ExitError(res.ExitCode, out)
		}
		if err != nil {
			return fmt.Errorf("systemctl %s %s: %w", verb, unit, err)
		}
	}
	return nil
}

// probe runs each readiness probe with the shell (the user wrote shell),
// every one of them, and returns their failures.
func probe(ctx context.Context, env *modules.Env, probes []string) []error {
	var failures []error
	for i, p := range probes {
		out, res, err := command.Output(ctx, env.Runner, sys.Cmd{Name: fmt.Sprintf("wireguard readinessprobe %d", i+1),
			Argv: []string{"/bin/sh", "-c", p}, Timeout: probeTimeout})
		switch {
		case err != nil:
			failures = append(failures, fmt.Errorf("readinessprobe[%d]: %w", i, err))
		case res.TimedOut:
			failures = append(failures, fmt.Errorf("readinessprobe[%d]: timed out after %s", i, probeTimeout))
		case res.ExitCode != 0:
			failures = append(failures, fmt.Errorf("readinessprobe[%d]: %w", i, command.ExitError(res.ExitCode, out)))
		}
	}
	return failures
}

// Check is for the schema: what cloud-init checks only when it runs
// (at least one interface; names wg-quick takes) and what would fail
// later (a relative config_path), located; a probe listed twice, which
// cloud-init's schema refuses.
func (Wireguard) Check(source, key string, v *yaml.Node) []config.Diagnostic {
	if v.Kind != yaml.MappingNode {
		return nil
	}
	var out []config.Diagnostic
	add := func(n *yaml.Node, p string, sev config.Severity, msg string) {
		out = append(out, config.Diagnostic{Source: source, Line: n.Line, Column: n.Column, Path: p, Severity: sev, Message: msg})
	}
	for i := 0; i+1 < len(v.Content); i += 2 {
		k, val := v.Content[i], v.Content[i+1]
		switch k.Value {
		case "interfaces":
			if val.Kind != yaml.SequenceNode {
				continue
			}
			if len(val.Content) == 0 {
				add(val, key+".interfaces", config.SeverityError, "needs at least one interface")
			}
			names := map[string]bool{}
			for j, it := range val.Content {
				if it.Kind != yaml.MappingNode {
					continue
				}
				p := fmt.Sprintf("%s.interfaces[%d]", key, j)
				for m := 0; m+1 < len(it.Content); m += 2 {
					f, fv := it.Content[m], it.Content[m+1]
					if fv.Kind != yaml.ScalarNode || fv.Tag == "!!null" {
						continue
					}
					switch f.Value {
					case "name":
						if msg := nameProblem(fv.Value); msg != "" {
							add(fv, p+".name", config.SeverityError, msg)
						} else if names[fv.Value] {
							add(fv, p+".name", config.SeverityError, "interface named twice")
						}
						names[fv.Value] = true
					case "config_path":
						if !path.IsAbs(fv.Value) {
							add(fv, p+".config_path", config.SeverityError, "must be an absolute path")
						}
					}
				}
			}
		case "readinessprobe":
			if val.Kind != yaml.SequenceNode {
				continue
			}
			seen := map[string]bool{}
			for j, pr := range val.Content {
				if pr.Kind == yaml.ScalarNode && seen[pr.Value] {
					add(pr, fmt.Sprintf("%s.readinessprobe[%d]", key, j), config.SeverityError, "probe listed twice")
				}
				seen[pr.Value] = true
			}
		}
	}
	return out
}
