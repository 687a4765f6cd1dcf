// Package spacewalk implements cloud-init's spacewalk module: the
// instance registered with a Spacewalk (or Red Hat Satellite 5) server
// by rhnreg_ks, unless rhn-profile-sync says it is registered already.
// rhn-setup, which has both tools, is installed first when missing.
package spacewalk

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
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

// CACert is the server's CA certificate as rhn-setup installs it, which
// cloud-init always passes.
const CACert = "/usr/share/rhn/RHN-ORG-TRUSTED-SSL-CERT"

// Package holds rhnreg_ks and rhn-profile-sync.
const Package = "rhn-setup"

const cmdTimeout = 10 * time.Minute

// Spacewalk registers the instance once per instance.
type Spacewalk struct{}

func (Spacewalk) Name() string                 { return "spacewalk" }
func (Spacewalk) Stage() modules.Stage         { return modules.StageConfig }
func (Spacewalk) Frequency() modules.Frequency { return state.PerInstance }
func (Spacewalk) Schema() modules.Schema {
	return modules.Schema{
		Doc: "Register with a Spacewalk server (rhnreg_ks), unless already registered.",
		Keys: []config.Field{{Name: "spacewalk", Type: config.Object(
			config.Field{Name: "server", Type: config.String(), Doc: "The server's host name: https://SERVER/XMLRPC is registered with."},
			config.Field{Name: "proxy", Type: config.String(), Doc: "The proxy to reach it through (--proxy)."},
			config.Field{Name: "activation_key", Type: config.String(), Doc: "The activation key (never logged)."},
		), Doc: "The Spacewalk server."}},
	}
}

type settings struct {
	Server        string `yaml:"server"`
	Proxy         string `yaml:"proxy"`
	ActivationKey string `yaml:"activation_key"`
}

func (Spacewalk) Run(ctx context.Context, env *modules.Env, cfg *config.CloudConfig) error {
	var s settings
	if ok, err := cfg.Decode("spacewalk", &s); err != nil || !ok {
		return err
	}
	log := env.Logger()
	if s.Server == "" {
		log.Warn("spacewalk: no server; not registered")
		return nil
	}
	if !onPath(env.Root, "rhnreg_ks") {
		if err := (pkgmgr.Manager{}).Apply(ctx, env, pkgmgr.Request{Packages: []pkgmgr.Package{{Name: Package}}}); err != nil {
			return fmt.Errorf("install %s: %w", Package, err)
		}
	}
	registered, err := isRegistered(ctx, env.Runner)
	if err != nil {
		return err
	}
	if registered {
		log.Info("spacewalk: already registered")
		return nil
	}
	profile, err := profileName(env)
	if err != nil {
		return err
	}
	argv := []string{"rhnreg_ks", "--serverUrl", "https://" + s.Server + "/XMLRPC", "--profilename", profile}
	if s.Proxy != "" {
		argv = append(argv, "--proxy", s.Proxy)
	}
	argv = append(argv, "--sslCACert", CACert)
	if s.ActivationKey != "" {
		argv = append(argv, "--activationkey", s.ActivationKey)
	}
	out, res, err := command.Output(ctx, env.Runner, sys.Cmd{Name: "rhnreg_ks", Argv: argv, Timeout: cmdTimeout})
	if err != nil {
		return err
	}
	if res.ExitCode != 0 {
		if s.ActivationKey != "" {
			out = strings.ReplaceAll(out, s.ActivationKey, "<redacted>")
		}
		return fmt.Errorf("rhnreg_ks: %w", command.ExitError(res.ExitCode, out))
	}
	log.Info("spacewalk: registered", zap.String("server", s.Server), zap.String("profile", profile))
	return nil
}

// isRegistered asks rhn-profile-sync, as cloud-init does: it exits 0
// when registered, 1 when not; anything else is a failure.
func isRegistered(ctx context.Context, r *sys.Runner) (bool, error) {
	out, res, err := command.Output(ctx, r, sys.Cmd{Name: "rhn-profile-sync", Argv: []string{"rhn-profile-sync", "--verbose"}, Timeout: cmdTimeout})
	switch {
	case err != nil:
		return false, err
	case res.ExitCode == 0:
		return true, nil
	case res.ExitCode == 1:
		return false, nil
	}
	return false, fmt.Errorf("rhn-profile-sync: %w", command.ExitError(res.ExitCode, out))
}

// profileName is the instance's fully qualified name, as cloud-init's EC2
// source gives it: IMDS's local-hostname (an address becomes
// ip-a-b-c-d), else the image's /etc/hostname.
func profileName(env *modules.Env) (string, error) {
	var name string
	if env.Instance != nil {
		for _, n := range []string{env.Instance.LocalHostname, env.Instance.Hostname} {
			if f := strings.Fields(n); len(f) > 0 {
				name = f[0]
				break
			}
		}
	}
	if ip := net.ParseIP(name); ip != nil && ip.To4() != nil {
		name = "ip-" + strings.ReplaceAll(name, ".", "-")
	}
	if name == "" {
		if b, err := env.Root.ReadFile("/etc/hostname"); err == nil {
			name = strings.TrimSpace(string(b))
		}
	}
	if name == "" {
		return "", errors.New("no host name for the profile: IMDS gave no local-hostname and /etc/hostname is empty")
	}
	return name, nil
}

func onPath(root *sys.Root, exe string) bool {
	for _, d := range strings.Split(sys.DefaultPath, ":") {
		if fi, err := root.Stat(d + "/" + exe); err == nil && fi.Mode().IsRegular() {
			return true
		}
	}
	return false
}

// Check is for the schema: without server the module does nothing, and
// a server given as a URL would be registered as https://https://...
func (Spacewalk) Check(source, key string, v *yaml.Node) []config.Diagnostic {
	if v.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(v.Content); i += 2 {
		if k, val := v.Content[i], v.Content[i+1]; k.Value == "server" && val.Kind == yaml.ScalarNode {
			if strings.Contains(val.Value, "://") || strings.Contains(val.Value, "/") {
				return []config.Diagnostic{{Source: source, Line: val.Line, Column: val.Column, Path: key + ".server",
					Severity: config.SeverityError, Message: "a host name, not a URL: https://SERVER/XMLRPC is made of it"}}
			}
			return nil
		}
	}
	return []config.Diagnostic{{Source: source, Line: v.Line, Column: v.Column, Path: key,
		Severity: config.SeverityWarning, Message: "no server: nothing is registered"}}
}
