// Package ansible implements cloud-init's ansible module: once per
// instance, ansible is installed (from the distribution's packages or
// with pip), galaxy actions run, playbooks are pulled from a repository
// and run on this host with ansible-pull, and a controller's repositories
// are cloned and its playbooks run with ansible-playbook. Every command
// runs as run_user when one is given.
package ansible

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"sync"

	"go.uber.org/zap"
	"gopkg.in/yaml.v3"

	"github.com/ec2init/ec2init/agent/config"
	"github.com/ec2init/ec2init/agent/state"
	"github.com/ec2init/ec2init/agent/sys"
	"github.com/ec2init/ec2init/modules"
	"github.com/ec2init/ec2init/modules/internal/bootstrap"
	"github.com/ec2init/ec2init/modules/internal/pkgmgr"
)

// Ansible bootstraps ansible once per instance.
type Ansible struct{}

func (Ansible) Name() string                 { return "ansible" }
func (Ansible) Stage() modules.Stage         { return modules.StageFinal }
func (Ansible) Frequency() modules.Frequency { return state.PerInstance }

// BeforeScripts: cloud-init runs ansible before the user's scripts.
func (Ansible) BeforeScripts() bool { return true }

// pullFlags are ansible.pull's keys in cloud-init's schema that become
// ansible-pull options (--key-with-dashes[=value]).
var pullFlags = []config.Field{
	{Name: "url", Type: config.String(), Required: true, Doc: "The playbooks' repository (--url)."},
	{Name: "playbook_names", Type: config.ListOf(config.String()), Doc: "The playbooks to run, relative to the repository."},
	{Name: "playbook_name", Type: config.String(), Doc: "Deprecated (as in cloud-init 25.2): one playbook; give playbook_names instead."},
	{Name: "checkout", Type: config.String(), Doc: "Branch, tag or commit to check out."},
	{Name: "accept_host_key", Type: config.Bool(), Default: "false", Doc: "Add the repository's host key if missing."},
	{Name: "clean", Type: config.Bool(), Default: "false", Doc: "Discard modified files in the working repository."},
	{Name: "full", Type: config.Bool(), Default: "false", Doc: "Full clone instead of a shallow one."},
	{Name: "diff", Type: config.Bool(), Default: "false", Doc: "Show file differences (ansible 2.7 and later)."},
	{Name: "verify_commit", Type: config.Bool(), Default: "false", Doc: "Verify the GPG signature of the checked-out commit."},
	{Name: "ssh_common_args", Type: config.String()},
	{Name: "scp_extra_args", Type: config.String()},
	{Name: "sftp_extra_args", Type: config.String()},
	{Name: "private_key", Type: config.String(), Doc: "A file: the key to authenticate the connection."},
	{Name: "module_path", Type: config.String()},
	{Name: "module_name", Type: config.String(), Doc: "The repository module (git, subversion, hg, bzr)."},
	{Name: "timeout", Type: config.String(), Doc: "The connection timeout, seconds."},
	{Name: "connection", Type: config.String()},
	{Name: "vault_id", Type: config.String()},
	{Name: "vault_password_file", Type: config.String()},
	{Name: "inventory", Type: config.String()},
	{Name: "sleep", Type: config.String(), Doc: "Sleep up to this many seconds before starting."},
	{Name: "tags", Type: config.String()},
	{Name: "skip_tags", Type: config.String()},
}

func (Ansible) Schema() modules.Schema {
	pull := config.Object(pullFlags...)
	runAnsible := config.Object(
		config.Field{Name: "playbook_dir", Type: config.String(), Required: true, Doc: "The working directory of ansible-playbook."},
		config.Field{Name: "playbook_name", Type: config.String(), Required: true, Doc: "The playbook, relative to playbook_dir."},
	)
	runAnsible.Extra = true // every other key is an ansible-playbook option
	return modules.Schema{
		Doc: "Install ansible, then pull and run playbooks (ansible-pull) or set up a controller.",
		Keys: []config.Field{{Name: "ansible", Type: config.Object(
			config.Field{Name: "install_method", Type: config.Enum("distro", "pip"), Required: true,
				Doc: "distro (the package manager) or pip. Required, as cloud-init's runtime requires it."},
			config.Field{Name: "package_name", Type: config.String(), Required: true,
				Doc: "The package to install (ansible, ansible-core). Required, as cloud-init's runtime requires it."},
			config.Field{Name: "run_user", Type: config.String(), Doc: "Run every command (and a pip install, with --user) as this user."},
			config.Field{Name: "ansible_config", Type: config.String(), Doc: "ANSIBLE_CONFIG for every command."},
			config.Field{Name: "galaxy", Type: config.Object(
				config.Field{Name: "actions", Type: config.ListOf(config.ListOf(config.String())), Required: true,
					Doc: "Commands (argv lists), e.g. [ansible-galaxy, install, -r, requirements.yml]."},
			), Doc: "ansible-galaxy commands, run before the playbooks."},
			config.Field{Name: "pull", Type: config.OneOf(config.ListOf(pull), pull),
				Doc: "Playbooks pulled and run with ansible-pull: a list of {url, playbook_names, options}; every other key becomes --key-with-dashes[=value] (true: the bare flag; false: left out). A single mapping is deprecated, as in cloud-init."},
			config.Field{Name: "setup_controller", Type: config.Object(
				config.Field{Name: "repositories", Type: config.ListOf(config.Object(
					config.Field{Name: "path", Type: config.String(), Required: true},
					config.Field{Name: "source", Type: config.String(), Required: true},
				)), Doc: "Repositories to git clone (source) into path."},
				config.Field{Name: "run_ansible", Type: config.ListOf(runAnsible),
					Doc: "ansible-playbook runs: playbook_dir, playbook_name, and options as in pull."},
			), Doc: "Make this host a controller: clone repositories, then run playbooks."},
		)}},
	}
}

// Check reports what the types cannot say: a pull entry names its
// playbooks with playbook_name or playbook_names, not both; a controller
// has repositories or run_ansible.
func (Ansible) Check(source, key string, v *yaml.Node) []config.Diagnostic {
	var out []config.Diagnostic
	add := func(n *yaml.Node, path, msg string) {
		out = append(out, config.Diagnostic{Source: source, Line: n.Line, Column: n.Column, Path: path,
			Severity: config.SeverityError, Message: msg})
	}
	if v.Kind != yaml.MappingNode {
		return nil
	}
	if p := bootstrap.Get(v, "pull"); p != nil {
		entries, paths := []*yaml.Node{p}, []string{key + ".pull"}
		if p.Kind == yaml.SequenceNode {
			entries, paths = p.Content, nil
			for i := range p.Content {
				paths = append(paths, fmt.Sprintf("%s.pull[%d]", key, i))
			}
		}
		for i, e := range entries {
			if e.Kind != yaml.MappingNode {
				continue
			}
			one, many := bootstrap.Get(e, "playbook_name"), bootstrap.Get(e, "playbook_names")
			switch {
			case one == nil && many == nil:
				add(e, paths[i], `missing required key "playbook_names"`)
			case one != nil && many != nil:
				add(one, paths[i]+".playbook_name", "playbook_name and playbook_names are mutually exclusive; give playbook_names")
			}
		}
	}
	if c := bootstrap.Get(v, "setup_controller"); c != nil && c.Kind == yaml.MappingNode && bootstrap.Get(c, "repositories") == nil && bootstrap.Get(c, "run_ansible") == nil {
		add(c, key+".setup_controller", "give repositories or run_ansible")
	}
	return out
}

type settings struct {
	InstallMethod string `yaml:"install_method"`
	PackageName   string `yaml:"package_name"`
	RunUser       string `yaml:"run_user"`
	AnsibleConfig string `yaml:"ansible_config"`
	Galaxy        *struct {
		Actions [][]string `yaml:"actions"`
	} `yaml:"galaxy"`
	Pull            yaml.Node `yaml:"pull"`
	SetupController *struct {
		Repositories []struct {
			Path   string `yaml:"path"`
			Source string `yaml:"source"`
		} `yaml:"repositories"`
		RunAnsible []yaml.Node `yaml:"run_ansible"`
	} `yaml:"setup_controller"`
}

// pullRun is one ansible-pull entry: its options, in the order written,
// and its playbooks.
type pullRun struct {
	flags     []string
	playbooks []string
	diff      bool
}

func (Ansible) Run(ctx context.Context, env *modules.Env, cfg *config.CloudConfig) error {
	var s settings
	if ok, err := cfg.Decode("ansible", &s); err != nil || !ok {
		return err
	}
	pulls, err := validate(&s)
	if err != nil {
		return err
	}
	a := &runner{env: env, user: s.RunUser, pip: s.InstallMethod == "pip", extra: map[string]string{}}
	if s.AnsibleConfig != "" {
		// cloud-init documents ANSIBLE_CONFIG (its runtime sets a
		// lower-case variable ansible never reads).
		a.extra["ANSIBLE_CONFIG"] = s.AnsibleConfig
	}
	if err := a.install(ctx, s.PackageName); err != nil {
		return err
	}
	if !a.installed(ctx) {
		return fmt.Errorf("ansible is not installed (install_method %s, package_name %s)", s.InstallMethod, s.PackageName)
	}
	if s.Galaxy != nil {
		if len(s.Galaxy.Actions) == 0 {
			env.Logger().Warn("ansible: galaxy has no actions")
		}
		for i, action := range s.Galaxy.Actions {
			if len(action) == 0 {
				return fmt.Errorf("galaxy.actions[%d]: empty command", i)
			}
			if err := a.run(ctx, "ansible galaxy", action, ""); err != nil {
				return fmt.Errorf("galaxy.actions[%d]: %w", i, err)
			}
		}
	}
	if len(pulls) > 0 {
		v, err := a.version(ctx)
		if err != nil {
			return err
		}
		for i, p := range pulls {
			if err := a.pull(ctx, v, p); err != nil {
				return fmt.Errorf("pull[%d]: %w", i, err)
			}
		}
	}
	if c := s.SetupController; c != nil {
		for i, r := range c.Repositories {
			if err := a.run(ctx, "git clone", []string{"git", "clone", r.Source, r.Path}, ""); err != nil {
				return fmt.Errorf("setup_controller.repositories[%d]: %w", i, err)
			}
		}
		for i := range c.RunAnsible {
			dir, name, flags, err := playbookRun(&c.RunAnsible[i])
			if err != nil {
				return fmt.Errorf("setup_controller.run_ansible[%d]: %w", i, err)
			}
			if err := a.run(ctx, "ansible-playbook", append([]string{"ansible-playbook", name}, flags...), dir); err != nil {
				return fmt.Errorf("setup_controller.run_ansible[%d]: %w", i, err)
			}
		}
	}
	env.Logger().Info("ansible done", zap.Int("pulls", len(pulls)))
	return nil
}

// validate checks what cloud-init's runtime checks before doing
// anything, and reads the pull entries.
func validate(s *settings) ([]pullRun, error) {
	switch {
	case s.InstallMethod == "":
		return nil, fmt.Errorf("missing required key install_method")
	case s.PackageName == "":
		return nil, fmt.Errorf("missing required key package_name")
	case s.InstallMethod != "distro" && s.InstallMethod != "pip":
		return nil, fmt.Errorf("install_method: %q is neither distro nor pip", s.InstallMethod)
	}
	if c := s.SetupController; c != nil && len(c.Repositories) == 0 && len(c.RunAnsible) == 0 {
		return nil, fmt.Errorf("setup_controller: give repositories or run_ansible")
	}
	var entries []*yaml.Node
	switch p := &s.Pull; {
	case !bootstrap.Present(p):
	case p.Kind == yaml.MappingNode:
		entries = []*yaml.Node{p}
	case p.Kind == yaml.SequenceNode:
		entries = p.Content
	default:
		return nil, fmt.Errorf("pull: line %d: want a list of mappings", p.Line)
	}
	var runs []pullRun
	for i, e := range entries {
		r, err := pullEntry(e)
		if err != nil {
			return nil, fmt.Errorf("pull[%d]: %w", i, err)
		}
		runs = append(runs, r)
	}
	return runs, nil
}

func pullEntry(e *yaml.Node) (pullRun, error) {
	var r pullRun
	if e.Kind != yaml.MappingNode {
		return r, fmt.Errorf("line %d: want a mapping", e.Line)
	}
	var one, url string
	var many []string
	rest := &yaml.Node{Kind: yaml.MappingNode}
	for i := 0; i+1 < len(e.Content); i += 2 {
		k, v := e.Content[i], e.Content[i+1]
		var err error
		switch k.Value {
		case "playbook_name":
			err = v.Decode(&one)
		case "playbook_names":
			err = v.Decode(&many)
		default:
			if k.Value == "url" {
				url = v.Value
			}
			if k.Value == "diff" {
				r.diff, _ = config.ParseBool(v.Value)
			}
			rest.Content = append(rest.Content, k, v)
		}
		if err != nil {
			return r, fmt.Errorf("%s: line %d: %w", k.Value, v.Line, err)
		}
	}
	switch {
	case url == "":
		return r, fmt.Errorf("line %d: missing required key url", e.Line)
	case one == "" && len(many) == 0:
		return r, fmt.Errorf("line %d: missing required key playbook_names", e.Line)
	case one != "" && len(many) > 0:
		return r, fmt.Errorf("line %d: playbook_name and playbook_names are mutually exclusive; give playbook_names", e.Line)
	case one != "":
		many = []string{one}
	}
	flags, err := optionFlags(rest)
	if err != nil {
		return r, err
	}
	r.flags, r.playbooks = flags, many
	return r, nil
}

// optionFlags turns a mapping into options as cloud-init does: each key
// with '_' as '-', true a bare --key, false and null left out, any other
// value --key=value, in the order written.
func optionFlags(m *yaml.Node) ([]string, error) {
	var flags []string
	for i := 0; i+1 < len(m.Content); i += 2 {
		k, v := m.Content[i], m.Content[i+1]
		if v.Kind == yaml.AliasNode {
			v = v.Alias
		}
		name := "--" + strings.ReplaceAll(k.Value, "_", "-")
		if v.Kind != yaml.ScalarNode {
			return nil, fmt.Errorf("%s: line %d: an option's value is a plain value", k.Value, v.Line)
		}
		if v.Tag == "!!null" {
			continue
		}
		if v.Tag == "!!bool" || v.Style == 0 && isBoolWord(v.Value) {
			if b, err := config.ParseBool(v.Value); err == nil {
				if b {
					flags = append(flags, name)
				}
				continue
			}
		}
		flags = append(flags, name+"="+v.Value)
	}
	return flags, nil
}

func isBoolWord(s string) bool {
	switch strings.ToLower(s) {
	case "true", "false", "yes", "no", "on", "off":
		return true
	}
	return false
}

// playbookRun reads a run_ansible entry: its directory, playbook and the
// other keys as options.
func playbookRun(n *yaml.Node) (dir, name string, flags []string, err error) {
	if n.Kind != yaml.MappingNode {
		return "", "", nil, fmt.Errorf("line %d: want a mapping", n.Line)
	}
	rest := &yaml.Node{Kind: yaml.MappingNode}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		switch k.Value {
		case "playbook_dir":
			dir = v.Value
		case "playbook_name":
			name = v.Value
		default:
			rest.Content = append(rest.Content, k, v)
		}
	}
	if dir == "" || name == "" {
		return "", "", nil, fmt.Errorf("line %d: playbook_dir and playbook_name are required", n.Line)
	}
	flags, err = optionFlags(rest)
	return dir, name, flags, err
}

// runner runs ansible's commands as cloud-init does: as run_user when
// given (runuser -u, which sets the user's HOME), with ANSIBLE_CONFIG, and
// for a pip install as a user, the user's pip bin directory on PATH.
type runner struct {
	env   *modules.Env
	user  string
	pip   bool
	extra map[string]string
}

func (a *runner) cmd(name string, argv []string, dir string) sys.Cmd {
	if a.user != "" {
		argv = append([]string{"runuser", "-u", a.user, "--"}, argv...)
	}
	return sys.Cmd{Name: name, Argv: argv, Env: a.extra, Dir: dir}
}

func (a *runner) run(ctx context.Context, name string, argv []string, dir string) error {
	return bootstrap.Run(ctx, a.env, a.cmd(name, argv, dir))
}

func (a *runner) output(ctx context.Context, name string, argv []string) (string, error) {
	return bootstrap.Output(ctx, a.env, a.cmd(name, argv, ""))
}

// install installs package_name unless ansible is there already.
func (a *runner) install(ctx context.Context, pkg string) error {
	if !a.pip {
		if a.installed(ctx) {
			return nil
		}
		return bootstrap.Install(ctx, a.env, pkgmgr.Manager{}, "package_name", pkgmgr.Package{Name: pkg})
	}
	if a.user != "" {
		// The user's pip installs its scripts under site.USER_BASE/bin.
		base, err := a.output(ctx, "python3 site", []string{"python3", "-c", "import site; print(site.getuserbase())"})
		if err != nil {
			return fmt.Errorf("run_user %s: %w", a.user, err)
		}
		path := a.env.Runner.Env["PATH"]
		if path == "" {
			path = sys.DefaultPath
		}
		a.extra["PATH"] = path + ":" + strings.TrimSpace(base) + "/bin/"
	}
	// pip itself, from the distribution, when python has none.
	if _, err := bootstrap.Output(ctx, a.env, sys.Cmd{Name: "python3 pip", Argv: []string{"python3", "-c", "import pip"}}); err != nil {
		if err := bootstrap.Install(ctx, a.env, pkgmgr.Manager{}, "install_method: pip", pkgmgr.Package{Name: "python3-pip"}); err != nil {
			return err
		}
	}
	if a.installed(ctx) {
		return nil
	}
	pip := []string{"python3", "-m", "pip", "install"}
	managed, err := bootstrap.Output(ctx, a.env, sys.Cmd{Name: "python3 sysconfig", Argv: []string{"python3", "-c",
		"import os, sysconfig; print(os.path.exists(os.path.join(sysconfig.get_path('stdlib'), 'EXTERNALLY-MANAGED')))"}})
	if err != nil {
		return err
	}
	if strings.TrimSpace(managed) == "True" {
		pip = append(pip, "--break-system-packages")
	}
	if a.user != "" {
		pip = append(pip, "--user")
	}
	if err := a.run(ctx, "pip upgrade pip", append(pip, "--upgrade", "pip"), ""); err != nil {
		a.env.Logger().Warn("ansible: upgrading pip failed; installing with the pip there is", zap.Error(err))
	}
	if err := a.run(ctx, "pip install "+pkg, append(pip, pkg), ""); err != nil {
		return fmt.Errorf("package_name: %w", err)
	}
	return nil
}

// installed is cloud-init's test: the ansible command for a distro
// install, pip's list naming ansible for a pip one.
func (a *runner) installed(ctx context.Context) bool {
	if !a.pip {
		return bootstrap.Installed(a.env, "ansible")
	}
	argv := []string{"python3", "-m", "pip", "list"}
	if a.user != "" {
		argv = append(argv, "--user")
	}
	out, err := a.output(ctx, "pip list", argv)
	return err == nil && strings.Contains(out, "ansible")
}

// version is ansible-pull's version, from the first line of --version;
// nil when it has no number.
func (a *runner) version(ctx context.Context) ([]int, error) {
	out, err := a.output(ctx, "ansible-pull --version", []string{"ansible-pull", "--version"})
	if err != nil {
		return nil, err
	}
	first, _, _ := strings.Cut(out, "\n")
	m := versionRE().FindString(first)
	var v []int
	for _, f := range strings.Split(m, ".") {
		n, err := strconv.Atoi(f)
		if err != nil {
			break
		}
		v = append(v, n)
	}
	if len(v) == 0 {
		a.env.Logger().Warn("ansible: cannot parse ansible-pull's version", zap.String("line", first))
		return nil, nil
	}
	return v, nil
}

var versionRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`[\d.]+`) })

// atLeast reports whether v >= want (missing parts are 0).
func atLeast(v []int, want ...int) bool {
	for i, w := range want {
		var x int
		if i < len(v) {
			x = v[i]
		}
		if x != w {
			return x > w
		}
	}
	return true
}

func (a *runner) pull(ctx context.Context, v []int, p pullRun) error {
	if v != nil && !atLeast(v, 2, 7) && p.diff {
		return fmt.Errorf("diff: ansible %s has no --diff (2.7 and later)", versionString(v))
	}
	// Several playbooks in one run from 2.12 (ansible/ansible#73172);
	// one run each before, and when the version is unknown.
	if v != nil && atLeast(v, 2, 12) {
		return a.run(ctx, "ansible-pull", append(append([]string{"ansible-pull"}, p.flags...), p.playbooks...), "")
	}
	for _, pb := range p.playbooks {
		if err := a.run(ctx, "ansible-pull "+pb, append(append([]string{"ansible-pull"}, p.flags...), pb), ""); err != nil {
			return err
		}
	}
	return nil
}

func versionString(v []int) string {
	s := make([]string, len(v))
	for i, n := range v {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, ".")
}
