package agent

// cloud-init's system configuration (/etc/cloud/cloud.cfg and
// cloud.cfg.d/*.cfg) as the boot reads it: the lowest layer of the
// cloud-config, under ec2init's own image config (ImageConfigDir) and the
// user data. Keys that configure cloud-init itself are not cloud-config a
// module reads: the agent takes what it honours of them (datasource.Ec2,
// system_info.default_user: config.LoadSystem) and lets the rest be,
// without a warning for each.

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"

	"gopkg.in/yaml.v3"

	"github.com/ec2init/ec2init/agent/config"
	"github.com/ec2init/ec2init/agent/sys"
	"github.com/ec2init/ec2init/modules"
)

// cloudInitInternal are top-level keys of cloud-init's system
// configuration that configure cloud-init itself (its paths, logging,
// datasource search, vendor data, network rendering) rather than a
// module. ec2init has its own for each, or no use for it on EC2: they are
// accepted without a warning and reach no module. The value says why,
// for `ec2init migrate`.
var cloudInitInternal = map[string]string{
	"system_info":         "distribution settings; ec2init takes default_user",
	"datasource":          "datasource settings; ec2init takes datasource.Ec2",
	"datasource_list":     "ec2init's only source is EC2's instance metadata",
	"datasource_pkg_list": "ec2init's only source is EC2's instance metadata",
	"def_log_file":        "ec2init logs to /var/log/ec2init.log",
	"log_cfgs":            "ec2init logs to /var/log/ec2init.log",
	"_log":                "ec2init logs to /var/log/ec2init.log",
	"log_level":           "ec2init's log level is its --log-level",
	"syslog_fix_perms":    "ec2init's logs are root's, 0600",
	// cloud-init's own output setting (05_logging.cfg's tee into
	// /var/log/cloud-init-output.log): the package links that name to
	// ec2init's output log instead, so honouring it would write each line
	// twice. An output key in ec2init's config or the user data applies.
	"output":                     "ec2init writes script output to /var/log/ec2init-output.log (linked as /var/log/cloud-init-output.log)",
	"vendor_data":                "EC2 has no vendor data",
	"vendor_data2":               "EC2 has no vendor data",
	"network":                    "ec2init leaves the network configuration to the image",
	"disable_network_activation": "ec2init leaves the network configuration to the image",
	"conf_d":                     "read: it names the directory of cloud.cfg.d files",
	"reporting":                  "cloud-init's event reporting; ec2init records its own status",
}

// otherDatasourceKeys are top-level keys only another datasource reads.
var otherDatasourceKeys = map[string]bool{"disable_vmware_customization": true}

// SystemConfig is cloud-init's system configuration as the boot reads it.
type SystemConfig struct {
	// Config is the merge of the files' keys modules read, by cloud-init's
	// rules for its system configuration (config.MergeSystem).
	Config *config.CloudConfig
	// Checked is each file with what validation found in it.
	Checked []CheckedDoc
	// Settings are the values the agent takes for itself (IMDS, default
	// user), with what it could not take.
	Settings config.CloudInitSystem
	// Internal are the cloud-init-internal keys set (cloudInitInternal),
	// sorted.
	Internal []string
	// OtherDatasources are keys only other datasources read
	// ("datasource.NoCloud"), sorted: ignored.
	OtherDatasources []string
	// ForeignModules are module list entries that are no ec2init module
	// ("cloud_final_modules: puppet"): cloud-init's default lists name
	// modules for other distributions and tools, which do nothing without
	// their key; such a key, when set, is warned about as unsupported.
	ForeignModules []string
	// NotHonoured are keys under system_info.default_user and
	// datasource.Ec2 the agent does not take, as "file:line: key: why".
	NotHonoured []string
}

// Ignored is the one line the boot logs about what it leaves to cloud-init
// alone ("" when nothing): other datasources' keys and foreign modules.
func (s *SystemConfig) Ignored() string {
	var parts []string
	if len(s.OtherDatasources) > 0 {
		parts = append(parts, "other datasources' settings ("+strings.Join(s.OtherDatasources, ", ")+")")
	}
	if len(s.ForeignModules) > 0 {
		parts = append(parts, "modules ec2init does not have ("+strings.Join(s.ForeignModules, ", ")+")")
	}
	return strings.Join(parts, "; ")
}

// LoadSystemConfig reads cloud-init's system configuration under root and
// validates it against reg's schemas, as the boot's lenient policy does: a
// key with errors is left out. A file that cannot be read is an error;
// what was read before it is still returned.
func LoadSystemConfig(root *sys.Root, reg *modules.Registry) (*SystemConfig, error) {
	srcs, readErr := config.ReadCloudInitFiles(root.Prefix())
	return loadSystemConfig(srcs, readErr, reg)
}

// loadSystemConfig is LoadSystemConfig of the files already read (srcs,
// and the error that stopped the reading, if any).
func loadSystemConfig(srcs []config.CloudInitSource, readErr error, reg *modules.Registry) (*SystemConfig, error) {
	out := &SystemConfig{Config: config.MergeSystem()}
	internal, other, foreign := map[string]bool{}, map[string]bool{}, map[string]bool{}
	var all, docs []config.Doc
	for _, src := range srcs {
		body := src.Body
		c, doc, ok := checkSystemDoc(ConfigSource{Name: src.Name, Body: body})
		if strings.HasPrefix(strings.TrimSpace(firstLine(body)), "## template:") {
			c.Diagnostics = append([]config.Diagnostic{{Source: src.Name, Line: 1, Column: 1, Severity: config.SeverityWarning,
				Message: "a jinja template: ec2init reads cloud-init's system configuration without rendering it"}}, c.Diagnostics...)
		}
		if !ok {
			out.Checked = append(out.Checked, c)
			continue
		}
		all = append(all, doc)
		var keep []*yaml.Node
		for i := 0; i+1 < len(doc.Root.Content); i += 2 {
			k, v := doc.Root.Content[i], doc.Root.Content[i+1]
			switch {
			case cloudInitInternal[k.Value] != "":
				internal[k.Value] = true
				if k.Value == "datasource" {
					for _, ds := range mappingKeys(v) {
						if ds != "Ec2" {
							other["datasource."+ds] = true
						}
					}
				}
			case otherDatasourceKeys[k.Value]:
				other[k.Value] = true
			default:
				keep = append(keep, k, v)
			}
		}
		modDoc := config.Doc{Source: doc.Source, Root: &yaml.Node{Kind: yaml.MappingNode, Line: doc.Root.Line, Column: doc.Root.Column, Content: keep}}
		diags := reg.ValidateDoc(modDoc)
		diags, names := withoutForeignModules(modDoc, diags, reg)
		for _, n := range names {
			foreign[n] = true
		}
		c.Diagnostics = append(c.Diagnostics, diags...)
		bad := map[string]bool{}
		for _, d := range c.Diagnostics {
			if d.Severity == config.SeverityError {
				bad[topKey(d.Path)] = true
			}
		}
		out.Checked = append(out.Checked, c)
		docs = append(docs, withoutKeys(modDoc, bad))
	}
	out.Config = config.MergeSystem(docs...)
	out.Settings = config.CloudInitSettings(config.MergeSystem(all...))
	out.NotHonoured = notHonoured(config.MergeSystem(all...))
	out.Internal, out.OtherDatasources, out.ForeignModules = sortedKeys(internal), sortedKeys(other), sortedKeys(foreign)
	if readErr != nil {
		return out, readErr
	}
	return out, nil
}

// checkSystemDoc parses one file (validation is LoadSystemConfig's); an
// empty file is an empty mapping.
func checkSystemDoc(src ConfigSource) (CheckedDoc, config.Doc, bool) {
	c := CheckedDoc{Source: src.Name, Body: src.Body}
	doc, err := config.ParseDoc(src.Name, src.Body)
	if err != nil {
		c.Err = err
		var pe *config.ParseError
		if errors.As(err, &pe) {
			c.Diagnostics = []config.Diagnostic{pe.Diagnostic()}
		}
		return c, config.Doc{}, false
	}
	if doc.Root == nil {
		doc.Root = &yaml.Node{Kind: yaml.MappingNode}
	}
	return c, doc, true
}

// withoutForeignModules drops the warnings about module list entries that
// are no module of reg, and returns those entries' names.
func withoutForeignModules(d config.Doc, diags []config.Diagnostic, reg *modules.Registry) ([]config.Diagnostic, []string) {
	known := map[string]bool{}
	for _, m := range reg.Steps() {
		known[m.Name()] = true
	}
	drop := map[string]bool{}
	var names []string
	c := config.Merge(d)
	for _, key := range config.ModuleListKeys {
		entries, _, _ := c.ModuleList(key)
		for i, e := range entries {
			if !known[e.Name] {
				drop[fmt.Sprintf("%s[%d]", key, i)] = true
				names = append(names, e.Name)
			}
		}
	}
	var out []config.Diagnostic
	for _, dg := range diags {
		if dg.Severity == config.SeverityWarning && drop[dg.Path] {
			continue
		}
		out = append(out, dg)
	}
	return out, names
}

// notHonoured lists the keys under system_info.default_user and
// datasource.Ec2 that ec2init does not take.
func notHonoured(c *config.CloudConfig) []string {
	var out []string
	check := func(top string, path []string, honoured []string, why string) {
		v, ok := c.Get(top)
		if !ok {
			return
		}
		n := v.Node
		for _, p := range path {
			n = mappingValue(n, p)
		}
		if n == nil || n.Kind != yaml.MappingNode {
			return
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			if k := n.Content[i]; !slices.Contains(honoured, k.Value) {
				out = append(out, fmt.Sprintf("%s:%d: %s.%s.%s: %s", v.Source, k.Line, top, strings.Join(path, "."), k.Value, why))
			}
		}
	}
	check("system_info", []string{"default_user"}, config.DefaultUserHonoured, "not supported by ec2init's default user; ignored")
	check("datasource", []string{"Ec2"}, config.Ec2DatasourceHonoured, "not supported by ec2init; ignored")
	return out
}

func mappingValue(n *yaml.Node, key string) *yaml.Node {
	if n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			v := n.Content[i+1]
			if v.Kind == yaml.AliasNode {
				v = v.Alias
			}
			return v
		}
	}
	return nil
}

func mappingKeys(n *yaml.Node) []string {
	if n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	var out []string
	for i := 0; i+1 < len(n.Content); i += 2 {
		out = append(out, n.Content[i].Value)
	}
	return out
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func firstLine(b []byte) string {
	s := string(b)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// applySystemConfig reads cloud-init's system configuration and puts it
// under the boot's cloud-config, reporting its problems as the image's
// and user data's are, plus one info line for what is left to cloud-init.
func (b *booter) applySystemConfig(upper *config.CloudConfig) *config.CloudConfig {
	ci, ciErr := b.sysCfg.cloudInit(b.root)
	sc, err := loadSystemConfig(ci, ciErr, b.registry)
	if err != nil {
		b.fail("cloud-init system config: " + err.Error())
	}
	for _, c := range sc.Checked {
		errs, warnings := c.Problems()
		for _, msg := range errs {
			b.fail(msg)
		}
		for _, msg := range warnings {
			b.degrade(msg)
		}
	}
	for _, msg := range append(sc.Settings.Findings, sc.NotHonoured...) {
		b.degrade("cloud-init system config: " + msg)
	}
	if line := sc.Ignored(); line != "" {
		b.log.Info("cloud-init system config: ignored: " + line)
	}
	return upper.Over(sc.Config)
}

// systemConfigCache holds what a boot process reads of the image's
// configuration: cloud-init's files (/etc/cloud), ec2init's image
// config (ImageConfigDir) and their merge. Neither changes while the boot
// runs, and each was read and parsed several times per stage.
type systemConfigCache struct {
	ciOnce    sync.Once
	ci        []config.CloudInitSource
	ciErr     error
	imageOnce sync.Once
	image     []ConfigSource
	imageErr  error
	mapOnce   sync.Once
	merged    map[string]any
	mapErr    error
}

func (c *systemConfigCache) cloudInit(root *sys.Root) ([]config.CloudInitSource, error) {
	c.ciOnce.Do(func() { c.ci, c.ciErr = config.ReadCloudInitFiles(root.Prefix()) })
	return c.ci, c.ciErr
}

func (c *systemConfigCache) imageConfig(root *sys.Root) ([]ConfigSource, error) {
	c.imageOnce.Do(func() { c.image, c.imageErr = ReadImageConfig(root) })
	return c.image, c.imageErr
}

// systemConfigMap is SystemConfigMap, merged once; each caller gets its
// own copy to merge into (jsonable builds new maps and lists).
func (c *systemConfigCache) systemConfigMap(root *sys.Root) (map[string]any, error) {
	c.mapOnce.Do(func() {
		ci, ciErr := c.cloudInit(root)
		image, imageErr := c.imageConfig(root)
		c.merged, c.mapErr = mergeSystemConfig(ci, image), errors.Join(ciErr, imageErr)
	})
	return jsonable(c.merged).(map[string]any), c.mapErr
}
