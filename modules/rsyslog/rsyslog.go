// Package rsyslog implements cloud-init's rsyslog module: configuration
// snippets and remote log destinations written to /etc/rsyslog.d, then
// rsyslog reloaded. Both cloud-init's mapping form (rsyslog: {configs,
// remotes, ...}) and its legacy one (rsyslog: [...], rsyslog_filename,
// rsyslog_dir) are read.
package rsyslog

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path"
	"regexp"
	"strconv"
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

// cloud-init's defaults.
const (
	DefaultDir      = "/etc/rsyslog.d"
	DefaultFilename = "20-cloud-config.conf"
	service         = "rsyslog"
)

const reloadTimeout = 90 * time.Second

// Rsyslog writes rsyslog's configuration once per instance.
type Rsyslog struct{}

func (Rsyslog) Name() string                 { return "rsyslog" }
func (Rsyslog) Stage() modules.Stage         { return modules.StageNetwork }
func (Rsyslog) Frequency() modules.Frequency { return state.PerInstance }
func (Rsyslog) Schema() modules.Schema {
	entry := config.OneOf(config.String(), config.Object(
		config.Field{Name: "filename", Type: config.String(), Doc: "The file under config_dir (default config_filename)."},
		config.Field{Name: "content", Type: config.String(), Required: true, Doc: "rsyslog configuration."},
	))
	configs := config.ListOf(entry)
	return modules.Schema{
		Doc: "Write rsyslog configuration and remote log destinations, then reload rsyslog.",
		Keys: []config.Field{
			{Name: "rsyslog", Type: config.OneOf(config.Object(
				config.Field{Name: "configs", Type: configs, Doc: "Snippets, in order: a string goes to config_filename; a file named twice gets both, appended."},
				config.Field{Name: "remotes", Type: config.MapOf(config.OneOf(config.String(), config.Null())),
					Doc: "name: [selector] [@|@@]host[:port]: logs sent over UDP (@, the default) or TCP (@@); IPv6 addresses in brackets."},
				config.Field{Name: "config_dir", Type: config.String(), Default: DefaultDir, Doc: "Where relative filenames go."},
				config.Field{Name: "config_filename", Type: config.String(), Default: DefaultFilename, Doc: "The file of entries without a filename, and of the remotes."},
				config.Field{Name: "service_reload_command", Type: config.OneOf(config.String(), config.ListOf(config.String())), Default: "auto",
					Doc: "auto (systemctl try-reload-or-restart rsyslog), a command (argv), or a shell line."},
				config.Field{Name: "install_rsyslog", Type: config.Bool(), Default: "false", Doc: "true installs packages when check_exe is missing."},
				config.Field{Name: "check_exe", Type: config.String(), Default: "rsyslogd", Doc: "The program whose presence says rsyslog is installed."},
				config.Field{Name: "packages", Type: config.ListOf(config.String()), Default: "[rsyslog]", Doc: "What install_rsyslog installs."},
			), configs), Doc: "The mapping form, or (deprecated, as in cloud-init) a list of configs."},
			{Name: "rsyslog_filename", Type: config.String(), Doc: "Deprecated: config_filename for the list form."},
			{Name: "rsyslog_dir", Type: config.String(), Doc: "Deprecated: config_dir for the list form."},
		},
	}
}

// settings is the mapping form, the list form converted into it.
type settings struct {
	Configs        []yaml.Node `yaml:"configs"`
	Remotes        yaml.Node   `yaml:"remotes"`
	ConfigDir      *string     `yaml:"config_dir"`
	ConfigFilename *string     `yaml:"config_filename"`
	Reload         yaml.Node   `yaml:"service_reload_command"`
	InstallRsyslog bool        `yaml:"install_rsyslog"`
	CheckExe       *string     `yaml:"check_exe"`
	Packages       []string    `yaml:"packages"`
}

func load(cfg *config.CloudConfig) (settings, bool, error) {
	var s settings
	var raw yaml.Node
	if ok, err := cfg.Decode("rsyslog", &raw); err != nil || !ok {
		return s, ok, err
	}
	if raw.Kind == yaml.SequenceNode {
		if err := raw.Decode(&s.Configs); err != nil {
			return s, true, fmt.Errorf("rsyslog: %w", err)
		}
		for key, dst := range map[string]**string{"rsyslog_filename": &s.ConfigFilename, "rsyslog_dir": &s.ConfigDir} {
			var v string
			if ok, err := cfg.Decode(key, &v); err != nil {
				return s, true, err
			} else if ok {
				*dst = &v
			}
		}
	} else if raw.Tag != "!!null" {
		if err := raw.Decode(&s); err != nil {
			return s, true, fmt.Errorf("rsyslog: %w", err)
		}
	}
	def := func(p *string, d string) string {
		if p == nil {
			return d
		}
		return *p
	}
	s.ConfigDir = ptr(def(s.ConfigDir, DefaultDir))
	s.ConfigFilename = ptr(def(s.ConfigFilename, DefaultFilename))
	s.CheckExe = ptr(def(s.CheckExe, "rsyslogd"))
	if s.Packages == nil {
		s.Packages = []string{"rsyslog"}
	}
	return s, true, nil
}

func ptr(s string) *string { return &s }

func (Rsyslog) Run(ctx context.Context, env *modules.Env, cfg *config.CloudConfig) error {
	s, ok, err := load(cfg)
	if err != nil || !ok {
		return err
	}
	log := env.Logger()
	remotes, warnings := renderRemotes(&s.Remotes)
	for _, w := range warnings {
		log.Warn("rsyslog: remote skipped", zap.Error(w))
	}
	var entries []entry
	for i := range s.Configs {
		e, err := entryOf(&s.Configs[i], *s.ConfigFilename)
		if err != nil {
			log.Warn("rsyslog: config entry skipped", zap.Int("entry", i+1), zap.Error(err))
			continue
		}
		entries = append(entries, e)
	}
	if remotes != "" {
		entries = append(entries, entry{filename: *s.ConfigFilename, content: remotes})
	}
	if s.InstallRsyslog {
		if err := install(ctx, env, *s.CheckExe, s.Packages); err != nil {
			return err
		}
	}
	if len(entries) == 0 {
		log.Debug("rsyslog: no configs; nothing to do")
		return nil
	}
	files, order := assemble(entries, *s.ConfigDir)
	var failures []error
	for _, p := range order {
		if err := env.Root.WriteFile(p, files[p], 0o644, nil); err != nil {
			failures = append(failures, err)
		}
	}
	if len(failures) == len(order) {
		return modules.JoinItemErrors(failures)
	}
	log.Info("rsyslog configured", zap.Strings("files", order))
	reload(ctx, env, &s.Reload)
	return modules.JoinItemErrors(failures)
}

type entry struct{ filename, content string }

func entryOf(n *yaml.Node, defaultName string) (entry, error) {
	e := entry{filename: defaultName}
	switch n.Kind {
	case yaml.ScalarNode:
		e.content = n.Value
	case yaml.MappingNode:
		var m struct {
			Filename *string `yaml:"filename"`
			Content  *string `yaml:"content"`
		}
		if err := n.Decode(&m); err != nil {
			return e, err
		}
		if m.Content == nil {
			return e, fmt.Errorf("line %d: no content", n.Line)
		}
		e.content = *m.Content
		if m.Filename != nil {
			e.filename = *m.Filename
		}
	default:
		return e, fmt.Errorf("line %d: a config is a string or {filename, content}", n.Line)
	}
	e.filename = strings.TrimSpace(e.filename)
	if e.filename == "" {
		return e, fmt.Errorf("line %d: empty filename", n.Line)
	}
	return e, nil
}

// assemble gives each file its entries in order (cloud-init truncates a
// file the first time it names it and appends after), each ending in a
// newline. A relative filename is under dir, an absolute one as given.
func assemble(entries []entry, dir string) (map[string][]byte, []string) {
	files := map[string][]byte{}
	var order []string
	for _, e := range entries {
		p := e.filename
		if !path.IsAbs(p) {
			p = path.Join(dir, p)
		}
		if _, seen := files[p]; !seen {
			order = append(order, p)
		}
		c := e.content
		if !strings.HasSuffix(c, "\n") {
			c += "\n"
		}
		files[p] = append(files[p], c...)
	}
	return files, order
}

// renderRemotes renders the remotes mapping as cloud-init does, between
// begin and end comments; a remote it cannot parse is skipped with a
// warning, as there.
func renderRemotes(n *yaml.Node) (string, []error) {
	if n.Kind != yaml.MappingNode || len(n.Content) == 0 {
		return "", nil
	}
	lines := []string{"# begin remotes"}
	var warnings []error
	for i := 0; i+1 < len(n.Content); i += 2 {
		name, v := n.Content[i].Value, n.Content[i+1]
		if v.Kind != yaml.ScalarNode || v.Tag == "!!null" || v.Value == "" {
			continue
		}
		r, err := parseRemote(v.Value, name)
		if err != nil {
			warnings = append(warnings, fmt.Errorf("%s: %q: %w", name, v.Value, err))
			continue
		}
		lines = append(lines, r.String())
	}
	lines = append(lines, "# end remotes")
	return strings.Join(lines, "\n") + "\n", warnings
}

// remote is one forwarding line.
type remote struct {
	name, match, proto, addr string
	port                     int
}

var (
	commentSep = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`[ ]*[#]+[ ]*`) })
	hostPort   = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^(@{0,2})(?:\[([^\]]*)\]|([^:]*))(?::([0-9]+))?$`) })
)

// parseRemote reads "[selector] [@|@@]host[:port] [# comment]".
func parseRemote(line, name string) (remote, error) {
	data, comment := line, ""
	if parts := commentSep().Split(line, -1); len(parts) == 2 {
		data, comment = parts[0], strings.TrimSpace(parts[1])
	}
	r := remote{name: name, match: "*.*", proto: "udp"}
	toks := strings.Fields(data)
	hp := data
	switch len(toks) {
	case 1:
	case 2:
		r.match, hp = toks[0], toks[1]
	default:
		return r, fmt.Errorf("not [selector] host: %q", data)
	}
	m := hostPort().FindStringSubmatch(hp)
	if m == nil {
		return r, fmt.Errorf("invalid host specification %q", hp)
	}
	if m[1] == "@@" {
		r.proto = "tcp"
	}
	r.addr = m[3]
	if m[2] != "" {
		r.addr = m[2]
	}
	if r.addr == "" {
		return r, errors.New("address is required")
	}
	if m[4] != "" {
		p, err := strconv.Atoi(m[4])
		if err != nil || p > 65535 {
			return r, fmt.Errorf("port %q is not a port number", m[4])
		}
		r.port = p
	}
	if r.name == "" {
		r.name = comment
	}
	return r, nil
}

func (r remote) String() string {
	var b strings.Builder
	b.WriteString(r.match + " ")
	if r.proto == "tcp" {
		b.WriteString("@@")
	} else {
		b.WriteString("@")
	}
	if strings.Contains(r.addr, ":") {
		b.WriteString("[" + r.addr + "]")
	} else {
		b.WriteString(r.addr)
	}
	if r.port != 0 {
		b.WriteString(":" + strconv.Itoa(r.port))
	}
	if r.name != "" {
		b.WriteString(" # " + r.name)
	}
	return b.String()
}

// install installs packages when check_exe is on none of the root's PATH
// directories, as cloud-init's install_rsyslog.
func install(ctx context.Context, env *modules.Env, checkExe string, packages []string) error {
	for _, d := range strings.Split(sys.DefaultPath, ":") {
		if fi, err := env.Root.Stat(d + "/" + checkExe); err == nil && fi.Mode().IsRegular() {
			return nil
		}
	}
	var pkgs []pkgmgr.Package
	for _, p := range packages {
		pkgs = append(pkgs, pkgmgr.Package{Name: p})
	}
	if err := (pkgmgr.Manager{}).Apply(ctx, env, pkgmgr.Request{Packages: pkgs}); err != nil {
		return fmt.Errorf("install_rsyslog: %w", err)
	}
	return nil
}

// reload restarts rsyslog on the running system only; a failure is a
// warning, as in cloud-init (the files are written either way).
func reload(ctx context.Context, env *modules.Env, n *yaml.Node) {
	log := env.Logger()
	if !env.Root.IsHost() {
		log.Info("rsyslog: not reloaded under a --root prefix; it reads the new files when it starts")
		return
	}
	argv := []string{"systemctl", "try-reload-or-restart", service}
	if n.Kind != 0 && n.Tag != "!!null" && !(n.Kind == yaml.ScalarNode && n.Value == "auto") {
		var err error
		if argv, err = command.Argv(n); err != nil {
			log.Warn("rsyslog: service_reload_command unusable; not reloaded", zap.Error(err))
			return
		}
	}
	var out bytes.Buffer
	res, err := env.Runner.Run(ctx, sys.Cmd{Name: "rsyslog reload", Argv: argv, Output: &out, Timeout: reloadTimeout})
	switch {
	case err != nil:
		log.Warn("rsyslog: reload failed", zap.Error(err))
	case res.ExitCode != 0:
		log.Warn("rsyslog: reload failed", zap.Int("exit", res.ExitCode), zap.String("output", strings.TrimSpace(out.String())))
	}
}
