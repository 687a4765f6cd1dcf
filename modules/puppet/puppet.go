// Package puppet implements cloud-init's puppet module: once per
// instance, puppet is installed (distribution packages, or puppetlabs'
// all-in-one installer fetched through the agent's one fetcher), its
// puppet.conf sections, CA certificate and CSR attributes are written,
// and the agent service is enabled, run once and started as asked.
package puppet

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"slices"
	"strings"

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
	DefaultAIOInstallURL = "https://raw.githubusercontent.com/puppetlabs/install-puppet/main/install.sh"
	aioBin               = "/opt/puppetlabs/bin/puppet"
	aioTries             = 6 // cloud-init's five retries after the first attempt
)

// packageNames are tried in order when package_name is not given, and are
// the services' names.
var packageNames = []string{"puppet-agent", "puppet"}

// Puppet sets puppet up once per instance.
type Puppet struct {
	// pm installs packages; the zero Manager is the agent's (tests give it
	// options that accept a temporary root).
	pm pkgmgr.Manager
	// bin overrides puppet's command (tests).
	bin string
}

func (Puppet) Name() string                 { return "puppet" }
func (Puppet) Stage() modules.Stage         { return modules.StageFinal }
func (Puppet) Frequency() modules.Frequency { return state.PerInstance }

// BeforeScripts: cloud-init runs puppet before the user's scripts.
func (Puppet) BeforeScripts() bool { return true }

func (Puppet) Schema() modules.Schema {
	section := func(name string) config.Field {
		return config.Field{Name: name, Type: config.MapOf(config.OneOf(config.String(), config.Bool(), config.Int())),
			Doc: "puppet.conf's [" + name + "] settings."}
	}
	return modules.Schema{
		Doc: "Install puppet, write puppet.conf, the CA certificate and CSR attributes, and enable, run or start the agent.",
		Keys: []config.Field{{Name: "puppet", Type: config.Object(
			config.Field{Name: "install", Type: config.Bool(), Default: "true", Doc: "Install puppet; false needs it there already."},
			config.Field{Name: "version", Type: config.String(), Doc: "The version to install (package version, or the installer's -v)."},
			config.Field{Name: "install_type", Type: config.Enum("packages", "aio"), Default: "packages", Doc: "Distribution packages, or puppetlabs' all-in-one agent (its paths under /opt/puppetlabs)."},
			config.Field{Name: "collection", Type: config.String(), Doc: "aio: the release stream (puppet, puppet7, puppet8, ...)."},
			config.Field{Name: "aio_install_url", Type: config.String(), Default: DefaultAIOInstallURL, Doc: "aio: the installer script, fetched over https unless aio_install_sha256 is given."},
			config.Field{Name: "aio_install_sha256", Type: config.String(), Doc: "ec2init extension: the installer's sha256 (hex); a mismatch fails and nothing runs."},
			config.Field{Name: "cleanup", Type: config.Bool(), Default: "true", Doc: "aio: remove the puppetlabs repository after installing."},
			config.Field{Name: "package_name", Type: config.String(), Default: "puppet-agent, else puppet (aio: puppet-agent)", Doc: "The package to install."},
			config.Field{Name: "conf_file", Type: config.String(), Default: "puppet config print config", Doc: "puppet.conf's path."},
			config.Field{Name: "ssl_dir", Type: config.String(), Default: "puppet config print ssldir", Doc: "Where ca_cert goes (certs/ca.pem)."},
			config.Field{Name: "csr_attributes_path", Type: config.String(), Default: "puppet config print csr_attributes", Doc: "Where csr_attributes goes."},
			config.Field{Name: "conf", Type: config.Object(section("main"), section("server"), section("agent"), section("user"),
				config.Field{Name: "ca_cert", Type: config.String(), Doc: "The puppet server's CA certificate (PEM), written to ssl_dir/certs/ca.pem."}),
				Doc: "puppet.conf settings by section, merged into the file; certname's %i is the instance id, %f the fqdn."},
			config.Field{Name: "csr_attributes", Type: config.Object(
				config.Field{Name: "custom_attributes", Type: config.MapOf(config.Any())},
				config.Field{Name: "extension_requests", Type: config.MapOf(config.Any())},
			), Doc: "csr_attributes.yaml (0600: it may hold a challenge password)."},
			config.Field{Name: "exec", Type: config.Bool(), Default: "false", Doc: "Run puppet agent once."},
			config.Field{Name: "exec_args", Type: config.OneOf(config.ListOf(config.String()), config.String()), Default: "[--test]", Doc: "puppet agent's arguments (a string is split on spaces)."},
			config.Field{Name: "start_service", Type: config.Bool(), Default: "true", Doc: "Enable and start the agent's service."},
		)}},
	}
}

type settings struct {
	Install          *bool     `yaml:"install"`
	Version          *string   `yaml:"version"`
	InstallType      string    `yaml:"install_type"`
	Collection       *string   `yaml:"collection"`
	AIOInstallURL    string    `yaml:"aio_install_url"`
	AIOInstallSHA256 string    `yaml:"aio_install_sha256"`
	Cleanup          *bool     `yaml:"cleanup"`
	PackageName      string    `yaml:"package_name"`
	ConfFile         string    `yaml:"conf_file"`
	SSLDir           string    `yaml:"ssl_dir"`
	CSRAttrPath      string    `yaml:"csr_attributes_path"`
	Conf             yaml.Node `yaml:"conf"`
	CSRAttributes    yaml.Node `yaml:"csr_attributes"`
	Exec             bool      `yaml:"exec"`
	ExecArgs         yaml.Node `yaml:"exec_args"`
	StartService     *bool     `yaml:"start_service"`
}

func isTrue(p *bool) bool { return p == nil || *p }

func (p Puppet) Run(ctx context.Context, env *modules.Env, cfg *config.CloudConfig) error {
	var s settings
	if ok, err := cfg.Decode("puppet", &s); err != nil || !ok {
		return err
	}
	log := env.Logger()
	aio := s.InstallType == "aio"
	if s.InstallType != "" && s.InstallType != "packages" && !aio {
		return fmt.Errorf("install_type: %q is neither packages nor aio", s.InstallType)
	}
	bin, user, pkg := "puppet", "puppet", s.PackageName
	if aio {
		bin, user = aioBin, "root"
		if pkg == "" {
			pkg = "puppet-agent"
		}
	}
	if p.bin != "" {
		bin = p.bin
	}
	// exec_args: a string is split on spaces, as cloud-init does.
	execArgs, err := bootstrap.Args(&s.ExecArgs, "exec_args", []string{"--test"}, strings.Fields)
	if err != nil {
		return err
	}
	version := ""
	if s.Version != nil {
		version = *s.Version
	}
	switch {
	case !isTrue(s.Install) && version != "":
		log.Warn("puppet: install is false but a version is given; not installing")
	case !isTrue(s.Install):
	case aio:
		if err := installAIO(ctx, env, &s); err != nil {
			return err
		}
	default:
		if err := p.installPackages(ctx, env, pkg, version); err != nil {
			return err
		}
	}

	paths := map[string]*string{"config": &s.ConfFile, "ssldir": &s.SSLDir, "csr_attributes": &s.CSRAttrPath}
	for _, setting := range []string{"config", "ssldir", "csr_attributes"} {
		if *paths[setting] != "" {
			continue
		}
		out, err := bootstrap.Output(ctx, env, sys.Cmd{Name: "puppet config print " + setting, Argv: []string{bin, "config", "print", setting}})
		if err != nil {
			return fmt.Errorf("puppet's %s setting: %w", setting, err)
		}
		*paths[setting] = strings.TrimRight(out, "\r\n")
	}

	if bootstrap.Present(&s.Conf) {
		if err := writeConf(env, &s, user); err != nil {
			return err
		}
	}
	if bootstrap.Present(&s.CSRAttributes) {
		b, err := bootstrap.YAML(&s.CSRAttributes, 2)
		if err != nil {
			return fmt.Errorf("csr_attributes: %w", err)
		}
		if err := bootstrap.WriteSecret(env, s.CSRAttrPath, b); err != nil {
			return fmt.Errorf("csr_attributes_path: %w", err)
		}
	}
	start := isTrue(s.StartService)
	if start {
		service(ctx, env, "enable")
	}
	if s.Exec {
		if err := runAgent(ctx, env, append([]string{bin, "agent"}, execArgs...)); err != nil {
			return fmt.Errorf("exec: %w", err)
		}
	}
	if start {
		service(ctx, env, "start")
	}
	log.Info("puppet configured", zap.String("conf_file", s.ConfFile))
	return nil
}

// installPackages installs package_name, or the first of puppet-agent
// and puppet that installs, as cloud-init does.
func (p Puppet) installPackages(ctx context.Context, env *modules.Env, name, version string) error {
	if name != "" {
		return bootstrap.Install(ctx, env, p.pm, "package_name", pkgmgr.Package{Name: name, Version: version})
	}
	var errs []error
	for _, n := range packageNames {
		err := bootstrap.Install(ctx, env, p.pm, "package_name", pkgmgr.Package{Name: n, Version: version})
		if err == nil {
			return nil
		}
		errs = append(errs, err)
	}
	return fmt.Errorf("no installable puppet package in %s: %w", strings.Join(packageNames, ", "), errors.Join(errs...))
}

// installAIO fetches puppetlabs' installer through the one fetcher and
// runs it with the version, collection and cleanup asked.
func installAIO(ctx context.Context, env *modules.Env, s *settings) error {
	u := s.AIOInstallURL
	if u == "" {
		u = DefaultAIOInstallURL
	}
	body, err := bootstrap.Fetch(ctx, env, bootstrap.Script{URL: u, URLKey: "aio_install_url",
		SHA256: s.AIOInstallSHA256, SHA256Key: "aio_install_sha256", Attempts: aioTries})
	if err != nil {
		return err
	}
	var args []string
	if s.Version != nil {
		args = append(args, "-v", *s.Version)
	}
	if s.Collection != nil {
		args = append(args, "-c", *s.Collection)
	}
	if isTrue(s.Cleanup) {
		args = append(args, "--cleanup")
	}
	if err := bootstrap.RunScript(ctx, env, "puppet-install", body, args); err != nil {
		return fmt.Errorf("aio_install_url: %w", err)
	}
	return nil
}

// runAgent runs puppet agent, its output in the output log. With
// detailed exit codes (--test sets them) 2 means changes were applied: a
// success.
func runAgent(ctx context.Context, env *modules.Env, argv []string) error {
	res, err := env.Runner.Run(ctx, sys.Cmd{Name: "puppet agent", Argv: argv, Output: env.ConsoleWriter(), Header: true})
	if err != nil {
		return err
	}
	detailed := slices.Contains(argv, "--test") || slices.Contains(argv, "-t") || slices.Contains(argv, "--detailed-exitcodes")
	if res.ExitCode == 0 || detailed && res.ExitCode == 2 && res.Signal == "" && !res.TimedOut {
		return nil
	}
	return fmt.Errorf("puppet agent: %s", pkgmgr.ExitStatus(res))
}

// service acts on the first of puppet's services that takes the verb; a
// failure is a warning, as in cloud-init.
func service(ctx context.Context, env *modules.Env, verb string) {
	var errs []error
	for _, n := range packageNames {
		err := bootstrap.Service(ctx, env, verb, n+".service")
		if err == nil {
			return
		}
		errs = append(errs, err)
	}
	env.Logger().Warn("puppet: could not "+verb+" any of its services", zap.Strings("services", packageNames), zap.Error(errors.Join(errs...)))
}

// writeConf merges conf's sections into puppet.conf (the previous file
// kept as puppet.conf.old) and writes ca_cert to the SSL directory.
func writeConf(env *modules.Env, s *settings, user string) error {
	if s.Conf.Kind != yaml.MappingNode {
		return fmt.Errorf("conf: line %d: want a mapping", s.Conf.Line)
	}
	old, err := env.Root.ReadFile(s.ConfFile)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("conf_file: %w", err)
	}
	ini, err := parseINI(old)
	if err != nil {
		return fmt.Errorf("conf_file %s: %w", s.ConfFile, err)
	}
	for i := 0; i+1 < len(s.Conf.Content); i += 2 {
		name, v := s.Conf.Content[i].Value, s.Conf.Content[i+1]
		if name == "ca_cert" {
			if err := writeCA(env, s.SSLDir, user, v.Value); err != nil {
				return fmt.Errorf("conf.ca_cert: %w", err)
			}
			continue
		}
		if v.Kind != yaml.MappingNode {
			if bootstrap.Present(v) {
				return fmt.Errorf("conf.%s: line %d: want a mapping", name, v.Line)
			}
			continue
		}
		for j := 0; j+1 < len(v.Content); j += 2 {
			k, val := v.Content[j].Value, v.Content[j+1]
			if val.Kind != yaml.ScalarNode {
				return fmt.Errorf("conf.%s.%s: line %d: want a plain value", name, k, val.Line)
			}
			value := val.Value
			if k == "certname" {
				value = strings.ToLower(strings.NewReplacer("%f", fqdn(env), "%i", instanceID(env)).Replace(value))
			}
			ini.set(name, k, value)
		}
	}
	if old != nil {
		if err := env.Root.WriteFile(s.ConfFile+".old", old, 0o644, nil); err != nil {
			return fmt.Errorf("conf_file: %w", err)
		}
	}
	if err := env.Root.MkdirAll(path.Dir(s.ConfFile), 0o755); err != nil {
		return fmt.Errorf("conf_file: %w", err)
	}
	if err := env.Root.WriteFile(s.ConfFile, ini.bytes(), 0o644, nil); err != nil {
		return fmt.Errorf("conf_file: %w", err)
	}
	return nil
}

// writeCA writes the CA certificate as ssl_dir/certs/ca.pem, the
// directories owned by puppet's user as cloud-init makes them.
func writeCA(env *modules.Env, sslDir, user, pem string) error {
	owner, err := env.Root.LookupOwner(user + ":root")
	if err != nil {
		return err
	}
	certs := path.Join(sslDir, "certs")
	if err := mkdirOwned(env, sslDir, 0o771, owner); err != nil {
		return err
	}
	if err := mkdirOwned(env, certs, 0o755, owner); err != nil {
		return err
	}
	return env.Root.WriteFile(path.Join(certs, "ca.pem"), []byte(pem), 0o644, &owner)
}

func mkdirOwned(env *modules.Env, d string, perm os.FileMode, owner sys.Owner) error {
	if err := bootstrap.EnsureDir(env, d, perm); err != nil {
		return err
	}
	return env.Root.Chown(d, owner)
}

func instanceID(env *modules.Env) string {
	if env.Instance == nil {
		return ""
	}
	return env.Instance.InstanceID
}

// fqdn is the instance's name as IMDS gives it (cloud-init asks the
// resolver for the host's), else the host's.
func fqdn(env *modules.Env) string {
	if env.Instance != nil {
		if f := strings.Fields(env.Instance.LocalHostname); len(f) > 0 {
			return f[0]
		}
	}
	h, _ := os.Hostname()
	return h
}
