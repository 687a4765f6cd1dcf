// Package saltminion implements cloud-init's salt_minion module: once per
// instance, the salt minion is installed, its configuration (minion),
// grains and key pair are written, and its service is enabled and
// restarted; a masterless minion (file_client: local) has its service
// disabled and stopped and applies its states once with salt-call.
package saltminion

import (
	"context"
	"fmt"
	"path"

	"go.uber.org/zap"
	"gopkg.in/yaml.v3"

	"github.com/ec2init/ec2init/agent/config"
	"github.com/ec2init/ec2init/agent/state"
	"github.com/ec2init/ec2init/agent/sys"
	"github.com/ec2init/ec2init/modules"
	"github.com/ec2init/ec2init/modules/internal/bootstrap"
	"github.com/ec2init/ec2init/modules/internal/pkgmgr"
)

// cloud-init's defaults (outside FreeBSD).
const (
	DefaultPackage   = "salt-minion"
	DefaultService   = "salt-minion"
	DefaultConfigDir = "/etc/salt"
)

// SaltMinion sets up the salt minion once per instance.
type SaltMinion struct {
	// pm installs the package; the zero Manager is the agent's (tests give
	// it options that accept a temporary root).
	pm pkgmgr.Manager
}

func (SaltMinion) Name() string                 { return "salt_minion" }
func (SaltMinion) Stage() modules.Stage         { return modules.StageFinal }
func (SaltMinion) Frequency() modules.Frequency { return state.PerInstance }

// BeforeScripts: cloud-init sets up the minion before the user's scripts.
func (SaltMinion) BeforeScripts() bool { return true }

func (SaltMinion) Schema() modules.Schema {
	return modules.Schema{
		Doc: "Install and configure the salt minion (configuration, grains, keys) and start it, or apply states once when masterless.",
		Keys: []config.Field{{Name: "salt_minion", Type: config.Object(
			config.Field{Name: "pkg_name", Type: config.String(), Default: DefaultPackage, Doc: "The package to install."},
			config.Field{Name: "service_name", Type: config.String(), Default: DefaultService, Doc: "The service to enable and restart."},
			config.Field{Name: "config_dir", Type: config.String(), Default: DefaultConfigDir, Doc: "Where minion and grains are written."},
			config.Field{Name: "conf", Type: config.MapOf(config.Any()),
				Doc: "The minion's configuration, written as YAML to config_dir/minion; file_client: local makes a masterless minion (service disabled, salt-call --local state.apply run)."},
			config.Field{Name: "grains", Type: config.MapOf(config.Any()), Doc: "Grains, written as YAML to config_dir/grains."},
			config.Field{Name: "public_key", Type: config.String(), Doc: "The minion's public key (minion.pub), with private_key."},
			config.Field{Name: "private_key", Type: config.String(), Doc: "The minion's private key (minion.pem, 0600), with public_key."},
			config.Field{Name: "pki_dir", Type: config.String(), Default: "config_dir/pki/minion if it exists, else config_dir/pki", Doc: "Where the keys go (0700)."},
		)}},
	}
}

type settings struct {
	PkgName     *string   `yaml:"pkg_name"`
	ServiceName *string   `yaml:"service_name"`
	ConfigDir   *string   `yaml:"config_dir"`
	Conf        yaml.Node `yaml:"conf"`
	Grains      yaml.Node `yaml:"grains"`
	PublicKey   *string   `yaml:"public_key"`
	PrivateKey  *string   `yaml:"private_key"`
	PKIDir      *string   `yaml:"pki_dir"`
}

func or(p *string, def string) string {
	if p == nil || *p == "" {
		return def
	}
	return *p
}

func (m SaltMinion) Run(ctx context.Context, env *modules.Env, cfg *config.CloudConfig) error {
	var s settings
	if ok, err := cfg.Decode("salt_minion", &s); err != nil || !ok {
		return err
	}
	pkg, svc, dir := or(s.PkgName, DefaultPackage), or(s.ServiceName, DefaultService), or(s.ConfigDir, DefaultConfigDir)
	// Render first: bad input stops the module before it installs.
	var minion, grains []byte
	local := false
	var err error
	if bootstrap.Present(&s.Conf) {
		if minion, err = dump(&s.Conf); err != nil {
			return fmt.Errorf("conf: %w", err)
		}
		if fc := bootstrap.Get(&s.Conf, "file_client"); fc != nil && fc.Kind == yaml.ScalarNode && fc.Value == "local" {
			local = true
		}
	}
	if bootstrap.Present(&s.Grains) {
		if grains, err = dump(&s.Grains); err != nil {
			return fmt.Errorf("grains: %w", err)
		}
	}
	if err := bootstrap.Install(ctx, env, m.pm, "pkg_name", pkgmgr.Package{Name: pkg}); err != nil {
		return err
	}
	if err := bootstrap.EnsureDir(env, dir, 0o755); err != nil {
		return fmt.Errorf("config_dir: %w", err)
	}
	if minion != nil {
		if err := env.Root.WriteFile(path.Join(dir, "minion"), minion, 0o644, nil); err != nil {
			return fmt.Errorf("conf: %w", err)
		}
	}
	if grains != nil {
		if err := env.Root.WriteFile(path.Join(dir, "grains"), grains, 0o644, nil); err != nil {
			return fmt.Errorf("grains: %w", err)
		}
	}
	if err := writeKeys(env, &s, dir); err != nil {
		return err
	}
	log := env.Logger()
	verbs := [2]string{"enable", "restart"}
	if local {
		// Masterless: no daemon; the states are applied once below.
		verbs = [2]string{"disable", "stop"}
	}
	for _, verb := range verbs {
		if err := bootstrap.Service(ctx, env, verb, svc); err != nil {
			return fmt.Errorf("service_name: %w", err)
		}
	}
	log.Info("salt minion configured", zap.String("config_dir", dir), zap.String("service", svc), zap.Bool("masterless", local))
	if local {
		return bootstrap.Run(ctx, env, sys.Cmd{Name: "salt-call", Argv: []string{"salt-call", "--local", "state.apply"}})
	}
	return nil
}

// writeKeys writes the minion's key pair when both halves are given, as
// cloud-init does: the directory private to root, both files 0600.
func writeKeys(env *modules.Env, s *settings, dir string) error {
	switch {
	case s.PublicKey == nil && s.PrivateKey == nil:
		return nil
	case s.PublicKey == nil || s.PrivateKey == nil:
		env.Logger().Warn("salt_minion: public_key and private_key go together; no keys written")
		return nil
	}
	pki := path.Join(dir, "pki/minion")
	if fi, err := env.Root.Stat(pki); err != nil || !fi.IsDir() {
		pki = path.Join(dir, "pki")
	}
	if s.PKIDir != nil && *s.PKIDir != "" {
		pki = *s.PKIDir
	}
	if err := bootstrap.EnsureDir(env, pki, 0o700); err != nil {
		return fmt.Errorf("pki_dir: %w", err)
	}
	if err := env.Root.WriteFile(path.Join(pki, "minion.pub"), []byte(*s.PublicKey), 0o600, nil); err != nil {
		return fmt.Errorf("public_key: %w", err)
	}
	if err := env.Root.WriteFile(path.Join(pki, "minion.pem"), []byte(*s.PrivateKey), 0o600, nil); err != nil {
		return fmt.Errorf("private_key: %w", err)
	}
	return nil
}

// dump writes a mapping as cloud-init's YAML dump does: a document with
// explicit start and end, block style, indented by four.
func dump(n *yaml.Node) ([]byte, error) {
	b, err := bootstrap.YAML(n, 4)
	if err != nil {
		return nil, err
	}
	return append(append([]byte("---\n"), b...), "...\n"...), nil
}
