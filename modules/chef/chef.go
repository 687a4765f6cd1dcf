// Package chef implements cloud-init's chef module: at every boot, chef's
// directories, its validation key, client.rb and the first-boot JSON
// (run_list and initial attributes) are written; chef is installed when
// missing (distribution packages, gems, or the omnibus installer fetched
// through the agent's one fetcher) and chef-client is run when asked.
package chef

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
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
	"github.com/ec2init/ec2init/modules/internal/bootstrap"
	"github.com/ec2init/ec2init/modules/internal/pkgmgr"
)

// cloud-init's defaults.
const (
	DefaultConfigPath    = "/etc/chef/client.rb"
	DefaultValidationKey = "/etc/chef/validation.pem"
	DefaultFirstbootPath = "/etc/chef/firstboot.json"
	DefaultOmnibusURL    = "https://www.chef.io/chef/install.sh"
	defaultOmnibusTries  = 5
	defaultRubyVersion   = "1.8"
	clientPath           = "/usr/bin/chef-client"
)

// defaultDirs are made when directories is not given; /etc/chef always.
var defaultDirs = []string{"/etc/chef", "/var/log/chef", "/var/lib/chef", "/var/chef/cache", "/var/chef/backup", "/var/run/chef"}

// defaultExecArgs run chef-client as a daemon every 30 minutes.
var defaultExecArgs = []string{"-d", "-i", "1800", "-s", "20"}

// Chef configures chef at every boot, as cloud-init does.
type Chef struct {
	// client is chef-client's path ("" for /usr/bin/chef-client): tests
	// point it at a fake.
	client string
}

func (Chef) Name() string                 { return "chef" }
func (Chef) Stage() modules.Stage         { return modules.StageFinal }
func (Chef) Frequency() modules.Frequency { return state.Always }

// BeforeScripts: cloud-init runs chef before the user's scripts.
func (Chef) BeforeScripts() bool { return true }

// tplKey is one client.rb setting: its cloud-config key, the Ruby name it
// is written as, its default, and how it is written.
type tplKey struct {
	key, ruby, def string
	kind           int
}

const (
	quoted    = iota // "value"
	symbol           // :value, a Ruby symbol
	pathValue        // "value", its directory made
	flag             // a boolean: a line when true
)

// clientKeys are client.rb's settings in cloud-init's template's order.
var clientKeys = []tplKey{
	{"chef_license", "chef_license", "", quoted},
	{"log_level", "log_level", ":info", symbol},
	{"ssl_verify_mode", "ssl_verify_mode", ":verify_none", symbol},
	{"log_location", "log_location", "/var/log/chef/client.log", pathValue},
	{"validation_name", "validation_client_name", "", quoted},
	{"validation_key", "validation_key", DefaultValidationKey, pathValue}, // written when validation_cert is set
	{"client_key", "client_key", "/etc/chef/client.pem", pathValue},
	{"server_url", "chef_server_url", "", quoted},
	{"environment", "environment", "_default", quoted},
	{"node_name", "node_name", "", quoted}, // default: the instance id
	{"json_attribs", "json_attribs", DefaultFirstbootPath, pathValue},
	{"file_cache_path", "file_cache_path", "/var/chef/cache", pathValue},
	{"file_backup_path", "file_backup_path", "/var/chef/backup", quoted},
	{"pid_file", "pid_file", "/var/run/chef/client.pid", pathValue},
	{"show_time", "Chef::Log::Formatter.show_time", "true", flag},
	{"encrypted_data_bag_secret", "encrypted_data_bag_secret", "", pathValue},
}

func (Chef) Schema() modules.Schema {
	str := func(name, def, doc string) config.Field {
		return config.Field{Name: name, Type: config.String(), Default: def, Doc: doc}
	}
	return modules.Schema{
		Doc: "Write chef's client.rb, validation key and first-boot JSON, install chef, and run chef-client.",
		Keys: []config.Field{{Name: "chef", Type: config.Object(
			config.Field{Name: "server_url", Type: config.String(), Required: true, Doc: "The chef server (chef_server_url). Required, as cloud-init's runtime requires it."},
			config.Field{Name: "validation_name", Type: config.String(), Required: true, Doc: "The validator's client name. Required, as cloud-init's runtime requires it."},
			config.Field{Name: "validation_cert", Type: config.String(), Doc: "The validation key's PEM, written to validation_key (0600); system keeps the file there."},
			str("validation_key", DefaultValidationKey, "Where the validation key is."),
			str("node_name", "", "The node's name (default: the instance id)."),
			str("environment", "_default", "The chef environment."),
			config.Field{Name: "run_list", Type: config.ListOf(config.String()), Doc: "The first boot's run list (firstboot.json)."},
			config.Field{Name: "initial_attributes", Type: config.MapOf(config.Any()), Doc: "Attributes for the first boot (firstboot.json)."},
			str("firstboot_path", DefaultFirstbootPath, "Where the first-boot JSON goes; empty: none written."),
			str("config_path", DefaultConfigPath, "Where client.rb goes."),
			config.Field{Name: "install_type", Type: config.Enum("packages", "gems", "omnibus"), Default: "packages", Doc: "How chef is installed when chef-client is missing."},
			config.Field{Name: "force_install", Type: config.Bool(), Default: "false", Doc: "Install even when chef-client is there."},
			config.Field{Name: "exec", Type: config.Bool(), Default: "false (true for gems)", Doc: "Run chef-client after configuring."},
			config.Field{Name: "exec_arguments", Type: config.OneOf(config.ListOf(config.String()), config.String()), Default: "[-d, -i, '1800', -s, '20']", Doc: "chef-client's arguments (cloud-init's runtime key)."},
			config.Field{Name: "delete_validation_post_exec", Type: config.Bool(), Default: "false", Doc: "Remove the validation key after chef-client ran (cloud-init's runtime key)."},
			str("omnibus_url", DefaultOmnibusURL, "The omnibus installer (install_type omnibus), fetched over https unless omnibus_sha256 is given."),
			config.Field{Name: "omnibus_url_retries", Type: config.Int(), Default: "5", Doc: "Retries fetching omnibus_url."},
			str("omnibus_version", "", "The version the omnibus installer installs (-v)."),
			str("omnibus_sha256", "", "ec2init extension: the omnibus installer's sha256 (hex); a mismatch fails and nothing runs."),
			str("version", "", "The chef gem's version (install_type gems)."),
			str("ruby_version", defaultRubyVersion, "The ruby packages' version (install_type gems)."),
			config.Field{Name: "directories", Type: config.ListOf(config.String()), Doc: "Directories to make (default: chef's under /etc, /var/log, /var/lib, /var/chef, /var/run)."},
			config.Field{Name: "chef_license", Type: config.Enum("accept", "accept-silent", "accept-no-persist"), Doc: "Accept chef's license."},
			str("log_level", ":info", "A Ruby symbol."),
			str("ssl_verify_mode", ":verify_none", "A Ruby symbol: :verify_none or :verify_peer."),
			str("log_location", "/var/log/chef/client.log", ""),
			str("client_key", "/etc/chef/client.pem", ""),
			str("json_attribs", DefaultFirstbootPath, ""),
			str("file_cache_path", "/var/chef/cache", ""),
			str("file_backup_path", "/var/chef/backup", ""),
			str("pid_file", "/var/run/chef/client.pid", ""),
			config.Field{Name: "show_time", Type: config.Bool(), Default: "true", Doc: "Time in chef's log lines."},
			config.Field{Name: "encrypted_data_bag_secret", Type: config.OneOf(config.String(), config.Null()), Doc: "The data bag secret's path."},
		)}},
	}
}

// settings are the keys the run reads besides client.rb's.
type settings struct {
	ValidationCert    *string   `yaml:"validation_cert"`
	ValidationKey     *string   `yaml:"validation_key"`
	RunList           yaml.Node `yaml:"run_list"`
	InitialAttributes yaml.Node `yaml:"initial_attributes"`
	FirstbootPath     *string   `yaml:"firstboot_path"`
	ConfigPath        *string   `yaml:"config_path"`
	InstallType       *string   `yaml:"install_type"`
	ForceInstall      bool      `yaml:"force_install"`
	Exec              *bool     `yaml:"exec"`
	ExecArguments     yaml.Node `yaml:"exec_arguments"`
	DeleteValidation  bool      `yaml:"delete_validation_post_exec"`
	OmnibusURL        *string   `yaml:"omnibus_url"`
	OmnibusRetries    *int      `yaml:"omnibus_url_retries"`
	OmnibusVersion    *string   `yaml:"omnibus_version"`
	OmnibusSHA256     string    `yaml:"omnibus_sha256"`
	Version           string    `yaml:"version"`
	RubyVersion       string    `yaml:"ruby_version"`
	Directories       []string  `yaml:"directories"`
}

func or(p *string, def string) string {
	if p == nil {
		return def
	}
	return *p
}

func (c Chef) Run(ctx context.Context, env *modules.Env, cfg *config.CloudConfig) error {
	var raw yaml.Node
	if ok, err := cfg.Decode("chef", &raw); err != nil || !ok {
		return err
	}
	var s settings
	if err := raw.Decode(&s); err != nil {
		return fmt.Errorf("line %d: %w", raw.Line, err)
	}
	if raw.Kind != yaml.MappingNode {
		return fmt.Errorf("line %d: chef is a mapping", raw.Line)
	}
	// client.rb's settings first: a missing server_url or validation_name
	// stops the module before it changes anything.
	iid := ""
	if env.Instance != nil {
		iid = env.Instance.InstanceID
	}
	params, err := clientParams(&raw, iid)
	if err != nil {
		return err
	}
	log := env.Logger()
	dirs := s.Directories
	if len(dirs) == 0 {
		dirs = defaultDirs
	}
	for _, d := range append(dirs, "/etc/chef") {
		if err := bootstrap.EnsureDir(env, d, 0o755); err != nil {
			return fmt.Errorf("directories: %w", err)
		}
	}
	migrate(env)

	vkey := or(s.ValidationKey, DefaultValidationKey)
	if s.ValidationCert != nil && *s.ValidationCert != "" {
		if *s.ValidationCert != "system" {
			// The key authenticates any client to the server: root's alone.
			if err := bootstrap.WriteSecret(env, vkey, []byte(*s.ValidationCert)); err != nil {
				return fmt.Errorf("validation_key: %w", err)
			}
		} else if ok, _ := env.Root.Exists(vkey); !ok {
			log.Warn("chef: validation_cert is system but the validation key is missing", zap.String("validation_key", vkey))
		}
	}

	for _, k := range clientKeys {
		if v := params[k.key]; k.kind == pathValue && v != "" {
			if err := bootstrap.EnsureDir(env, path.Dir(v), 0o755); err != nil {
				return fmt.Errorf("%s: %w", k.key, err)
			}
		}
	}
	cfgPath := or(s.ConfigPath, DefaultConfigPath)
	if err := env.Root.WriteFile(cfgPath, clientRB(params, s.ValidationCert != nil && *s.ValidationCert != "", env.Version), 0o644, nil); err != nil {
		return fmt.Errorf("config_path: %w", err)
	}

	if fb := or(s.FirstbootPath, DefaultFirstbootPath); fb == "" {
		log.Info("chef: firstboot_path empty; no first-boot JSON written")
	} else {
		b, err := firstboot(&s.RunList, &s.InitialAttributes)
		if err != nil {
			return err
		}
		if err := env.Root.WriteFile(fb, b, 0o644, nil); err != nil {
			return fmt.Errorf("firstboot_path: %w", err)
		}
	}
	log.Info("chef configured", zap.String("config", cfgPath), zap.String("node_name", params["node_name"]))

	client := c.client
	if client == "" {
		client = clientPath
	}
	run := s.Exec != nil && *s.Exec
	if !bootstrap.Installed(env, client) || s.ForceInstall {
		if run, err = install(ctx, env, &s); err != nil {
			return err
		}
	}
	if !run {
		return nil
	}
	// exec_arguments: one string is one argument, as in cloud-init.
	args, err := bootstrap.Args(&s.ExecArguments, "exec_arguments", defaultExecArgs, func(a string) []string { return []string{a} })
	if err != nil {
		return err
	}
	if err := bootstrap.Run(ctx, env, sys.Cmd{Name: "chef-client", Argv: append([]string{client}, args...)}); err != nil {
		return err
	}
	if s.DeleteValidation {
		if err := env.Root.Remove(vkey); err != nil {
			return fmt.Errorf("delete_validation_post_exec: %w", err)
		}
	}
	return nil
}

// migrate moves what chef's old cache and backup directories hold into
// the new ones, as cloud-init does; a name already there stays.
func migrate(env *modules.Env) {
	for old, dst := range map[string]string{"/var/cache/chef": "/var/chef/cache", "/var/backups/chef": "/var/chef/backup"} {
		entries, err := env.Root.ReadDir(old)
		if err != nil {
			continue
		}
		for _, e := range entries {
			if ok, _ := env.Root.Exists(dst + "/" + e.Name()); ok {
				continue
			}
			from, err1 := env.Root.Path(old + "/" + e.Name())
			to, err2 := env.Root.Path(dst + "/" + e.Name())
			if err1 != nil || err2 != nil {
				continue
			}
			if err := os.Rename(from, to); err != nil {
				env.Logger().Warn("chef: migrating an old directory's entry failed", zap.String("from", old+"/"+e.Name()), zap.Error(err))
			}
		}
	}
}

// clientParams are client.rb's values: the defaults, the user's (null
// unsets one), the instance id as node_name's default.
func clientParams(raw *yaml.Node, iid string) (map[string]string, error) {
	p := map[string]string{}
	for _, k := range clientKeys {
		p[k.key] = k.def
	}
	p["node_name"] = iid
	for i := 0; i+1 < len(raw.Content); i += 2 {
		k, v := raw.Content[i].Value, raw.Content[i+1]
		if _, ok := p[k]; !ok {
			continue
		}
		if v.Kind != yaml.ScalarNode {
			return nil, fmt.Errorf("%s: line %d: want a plain value", k, v.Line)
		}
		if v.Tag == "!!null" {
			p[k] = ""
			if k == "show_time" {
				p[k] = "false"
			}
			continue
		}
		p[k] = v.Value
	}
	for _, k := range []string{"server_url", "validation_name"} {
		if p[k] == "" {
			return nil, fmt.Errorf("missing required key %s", k)
		}
	}
	if p["environment"] == "" {
		p["environment"] = "_default"
	}
	for _, k := range clientKeys {
		switch v := p[k.key]; {
		case k.kind == symbol && v != "" && !rubySymbol().MatchString(v):
			return nil, fmt.Errorf("%s: %q is not a Ruby symbol (e.g. %s)", k.key, v, k.def)
		case k.kind == flag:
			if _, err := config.ParseBool(v); err != nil {
				return nil, fmt.Errorf("%s: %q is not a boolean", k.key, v)
			}
		}
	}
	return p, nil
}

var rubySymbol = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^:[A-Za-z_][A-Za-z0-9_]*$`) })

// clientRB renders client.rb with the lines of cloud-init's template: a
// setting's line when it has a value, validation_key's when a
// validation_cert was given.
func clientRB(p map[string]string, haveCert bool, version string) []byte {
	var b bytes.Buffer
	if version == "" {
		version = "(unknown version)"
	}
	fmt.Fprintf(&b, "# Created by ec2init v. %s on %s\n", version, time.Now().Format(time.RFC1123Z))
	for _, k := range clientKeys {
		v := p[k.key]
		if v == "" || k.key == "validation_key" && !haveCert {
			continue
		}
		switch k.kind {
		case symbol:
			fmt.Fprintf(&b, "%-22s %s\n", k.ruby, v)
		case flag:
			if on, _ := config.ParseBool(v); on {
				b.WriteString(k.ruby + " = true\n")
			}
		default:
			fmt.Fprintf(&b, "%-22s %s\n", k.ruby, rubyString(v))
		}
	}
	return b.Bytes()
}

// rubyString quotes s as a Ruby double-quoted string that interpolates
// nothing.
func rubyString(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, `#`, `\#`, "\n", `\n`)
	return `"` + r.Replace(s) + `"`
}

// firstboot is the first-boot JSON: run_list, then the initial
// attributes at the top level, in the order written.
func firstboot(runList, attrs *yaml.Node) ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	n := 0
	add := func(k string, v *yaml.Node) error {
		j, err := toJSON(v)
		if err != nil {
			return fmt.Errorf("%s: %w", k, err)
		}
		if n > 0 {
			b.WriteString(", ")
		}
		kj, _ := json.Marshal(k)
		b.Write(kj)
		b.WriteString(": ")
		b.Write(j)
		n++
		return nil
	}
	if runList.Kind != 0 {
		if err := add("run_list", runList); err != nil {
			return nil, err
		}
	}
	if attrs.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(attrs.Content); i += 2 {
			if err := add(attrs.Content[i].Value, attrs.Content[i+1]); err != nil {
				return nil, fmt.Errorf("initial_attributes.%w", err)
			}
		}
	} else if bootstrap.Present(attrs) {
		return nil, fmt.Errorf("initial_attributes: line %d: want a mapping", attrs.Line)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// toJSON converts a YAML value to JSON, mappings in the order written.
func toJSON(n *yaml.Node) ([]byte, error) {
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	switch n.Kind {
	case yaml.MappingNode:
		var b bytes.Buffer
		b.WriteByte('{')
		for i := 0; i+1 < len(n.Content); i += 2 {
			if i > 0 {
				b.WriteString(", ")
			}
			k, _ := json.Marshal(n.Content[i].Value)
			v, err := toJSON(n.Content[i+1])
			if err != nil {
				return nil, err
			}
			b.Write(k)
			b.WriteString(": ")
			b.Write(v)
		}
		b.WriteByte('}')
		return b.Bytes(), nil
	case yaml.SequenceNode:
		var b bytes.Buffer
		b.WriteByte('[')
		for i, c := range n.Content {
			if i > 0 {
				b.WriteString(", ")
			}
			v, err := toJSON(c)
			if err != nil {
				return nil, err
			}
			b.Write(v)
		}
		b.WriteByte(']')
		return b.Bytes(), nil
	case yaml.ScalarNode:
		var v any
		if err := n.Decode(&v); err != nil {
			return nil, fmt.Errorf("line %d: %w", n.Line, err)
		}
		if t, ok := v.(time.Time); ok {
			v = t.Format(time.RFC3339) // a YAML timestamp; JSON has none
		}
		return json.Marshal(v)
	}
	return nil, fmt.Errorf("line %d: not a JSON value", n.Line)
}

// install installs chef as install_type says and reports whether
// chef-client should then run.
func install(ctx context.Context, env *modules.Env, s *settings) (bool, error) {
	run := s.Exec != nil && *s.Exec
	switch t := or(s.InstallType, "packages"); t {
	case "packages":
		return run, bootstrap.Install(ctx, env, pkgmgr.Manager{}, "install_type: packages", pkgmgr.Package{Name: "chef"})
	case "gems":
		if err := installGems(ctx, env, s); err != nil {
			return false, err
		}
		// As cloud-init: a gem install runs chef-client unless told not to.
		return s.Exec == nil || *s.Exec, nil
	case "omnibus":
		tries := defaultOmnibusTries
		if s.OmnibusRetries != nil {
			tries = max(*s.OmnibusRetries, 0)
		}
		body, err := bootstrap.Fetch(ctx, env, bootstrap.Script{
			URL: or(s.OmnibusURL, DefaultOmnibusURL), URLKey: "omnibus_url",
			SHA256: s.OmnibusSHA256, SHA256Key: "omnibus_sha256",
			Attempts: tries + 1, // retries after the first attempt, as cloud-init counts them
		})
		if err != nil {
			return false, err
		}
		var args []string
		if s.OmnibusVersion != nil {
			args = []string{"-v", *s.OmnibusVersion}
		}
		if err := bootstrap.RunScript(ctx, env, "chef-omnibus-install", body, args); err != nil {
			return false, fmt.Errorf("omnibus_url: %w", err)
		}
		return run, nil
	default:
		env.Logger().Warn("chef: unknown install_type; chef not installed", zap.String("install_type", t))
		return false, nil
	}
}

// installGems installs ruby from packages and chef from rubygems, as
// cloud-init does (--no-document for the --no-ri --no-rdoc rubygems 3
// removed).
func installGems(ctx context.Context, env *modules.Env, s *settings) error {
	rv := s.RubyVersion
	if rv == "" {
		rv = defaultRubyVersion
	}
	pkgs := []pkgmgr.Package{{Name: "ruby" + rv}, {Name: "ruby" + rv + "-dev"}}
	if rv == "1.8" {
		pkgs = append(pkgs, pkgmgr.Package{Name: "libopenssl-ruby1.8"}, pkgmgr.Package{Name: "rubygems1.8"})
	}
	if err := bootstrap.Install(ctx, env, pkgmgr.Manager{}, "install_type: gems", pkgs...); err != nil {
		return err
	}
	for _, tool := range []string{"gem", "ruby"} {
		link := "/usr/bin/" + tool
		if ok, _ := env.Root.Exists(link); ok {
			continue
		}
		full, err := env.Root.Path(link)
		if err != nil {
			return err
		}
		if err := os.Symlink("/usr/bin/"+tool+rv, full); err != nil {
			return fmt.Errorf("ruby_version: %w", err)
		}
	}
	argv := []string{"/usr/bin/gem", "install", "chef"}
	if s.Version != "" {
		argv = append(argv, "-v", s.Version)
	}
	argv = append(argv, "--no-document", "--bindir", "/usr/bin", "-q")
	if err := bootstrap.Run(ctx, env, sys.Cmd{Name: "gem install chef", Argv: argv}); err != nil {
		return fmt.Errorf("install_type: gems: %w", err)
	}
	return nil
}
