// Package cacerts implements cloud-init's ca_certs module (also spelled
// ca-certs): trusted CA certificates added to the system store, and the
// distribution's defaults removed on request, with update-ca-certificates
// on Debian and Ubuntu and update-ca-trust on Amazon Linux and Red
// Hat-likes, in the files and ways cloud-init's runtime uses.
package cacerts

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strings"

	"go.uber.org/zap"
	"gopkg.in/yaml.v3"

	"github.com/ec2init/ec2init/agent/config"
	"github.com/ec2init/ec2init/agent/state"
	"github.com/ec2init/ec2init/agent/sys"
	"github.com/ec2init/ec2init/modules"
	"github.com/ec2init/ec2init/modules/internal/distro"
)

// Paths of the two stores (host paths under the root), cloud-init's.
const (
	// Debian and Ubuntu.
	DebianLocalDir = "/usr/local/share/ca-certificates"
	DebianConf     = "/etc/ca-certificates.conf"
	DebianCertsDir = "/usr/share/ca-certificates"
	DebianEtcCerts = "/etc/ssl/certs"
	// Amazon Linux and Red Hat-likes: cloud-init writes its anchors under
	// the distribution's source tree, and remove_defaults empties both
	// trees.
	RHELLocalDir = "/usr/share/pki/ca-trust-source"
	RHELTrustDir = "/etc/pki/ca-trust"

	headerComment = "# Modified by cloud-init to deselect certs due to user-data"
)

// CACerts adds trusted CA certificates once per instance.
type CACerts struct{}

var certsType = config.Object(
	config.Field{Name: "trusted", Type: config.ListOf(config.String()),
		Doc: "PEM CA certificates to trust, one or more per item; a malformed item fails the module before anything is written."},
	config.Field{Name: "remove_defaults", Type: config.Bool(), Default: "false",
		Doc: "Distrust the distribution's CA certificates: deselected in " + DebianConf + " on Debian/Ubuntu; on Amazon Linux and RHEL, " + RHELTrustDir + " and " + RHELLocalDir + " are emptied, as cloud-init does."},
	config.Field{Name: "remove-defaults", Type: config.Bool(), Doc: "Deprecated spelling of remove_defaults."},
)

func (CACerts) Name() string                 { return "ca_certs" }
func (CACerts) Stage() modules.Stage         { return modules.StageNetwork }
func (CACerts) Frequency() modules.Frequency { return state.PerInstance }
func (CACerts) Schema() modules.Schema {
	return modules.Schema{
		Doc: "Add trusted CA certificates to the system store (update-ca-certificates, update-ca-trust).",
		Keys: []config.Field{
			{Name: "ca_certs", Type: certsType, Doc: "Trusted CA certificates."},
			{Name: "ca-certs", Type: certsType, Doc: "Deprecated spelling of ca_certs (ignored when ca_certs is set)."},
		},
	}
}

type certsConfig struct {
	Trusted            []string `yaml:"trusted"`
	RemoveDefaults     *bool    `yaml:"remove_defaults"`
	RemoveDefaultsDash *bool    `yaml:"remove-defaults"`
}

// layout is where a distribution keeps its store.
type layout struct {
	local, file string // a cert is local/file with %d its index
	debian      bool
}

func (CACerts) Run(ctx context.Context, env *modules.Env, cfg *config.CloudConfig) error {
	log := env.Logger()
	key := "ca_certs"
	v, ok := cfg.Get(key)
	if dv, has := cfg.Get("ca-certs"); has {
		if ok {
			log.Warn("both ca_certs and ca-certs are set; ca-certs is ignored, as cloud-init does")
		} else {
			v, ok, key = dv, true, "ca-certs"
		}
	}
	if !ok || v.Node.Tag == "!!null" {
		return nil
	}
	if v.Node.Kind != yaml.MappingNode {
		return fmt.Errorf("%s:%d: %s: expected a mapping", v.Source, v.KeyLine, key)
	}
	var cc certsConfig
	if err := v.Node.Decode(&cc); err != nil {
		return fmt.Errorf("%s:%d: %s: %s", v.Source, v.KeyLine, key, strings.TrimPrefix(err.Error(), "yaml: "))
	}
	// Every item is checked before anything is written.
	if err := checkTrusted(v, key); err != nil {
		return err
	}
	d, err := distro.Detect(env.Root)
	if err != nil {
		return err
	}
	var lay layout
	switch {
	case d.IsDebianLike():
		lay = layout{local: DebianLocalDir, file: "cloud-init-ca-cert-%d.crt", debian: true}
	case d.IsRedHatLike():
		lay = layout{local: RHELLocalDir, file: "anchors/cloud-init-ca-cert-%d.crt"}
	default:
		return fmt.Errorf("%s: ca certificates are not supported on %s", key, d)
	}
	remove := cc.RemoveDefaults != nil && *cc.RemoveDefaults
	if cc.RemoveDefaults == nil && cc.RemoveDefaultsDash != nil {
		remove = *cc.RemoveDefaultsDash
	}
	if remove {
		if err := removeDefaults(ctx, env, d, lay); err != nil {
			return fmt.Errorf("%s.remove_defaults: %w", key, err)
		}
	}
	for i, pemText := range cc.Trusted {
		p := lay.local + "/" + fmt.Sprintf(lay.file, i+1)
		if err := env.Root.MkdirAll(path.Dir(p), 0o755); err != nil {
			return err
		}
		if err := env.Root.WriteFile(p, []byte(pemText), 0o644, nil); err != nil {
			return fmt.Errorf("%s.trusted[%d]: %w", key, i, err)
		}
	}
	if err := update(ctx, env, lay); err != nil {
		return err
	}
	log.Info("CA certificates updated", zap.Int("trusted", len(cc.Trusted)), zap.Bool("remove_defaults", remove))
	return nil
}

// checkTrusted refuses an item that is not one or more PEM certificates,
// naming the item and its line.
func checkTrusted(v config.Value, key string) error {
	var list *yaml.Node
	for i := 0; i+1 < len(v.Node.Content); i += 2 {
		if v.Node.Content[i].Value == "trusted" {
			list = v.Node.Content[i+1]
		}
	}
	if list == nil || list.Tag == "!!null" {
		return nil
	}
	if list.Kind != yaml.SequenceNode {
		return fmt.Errorf("%s:%d: %s.trusted: expected a list of PEM certificates", v.Source, list.Line, key)
	}
	var bad []string
	for i, n := range list.Content {
		if err := checkPEM(n.Value); err != nil || n.Kind != yaml.ScalarNode {
			if err == nil {
				err = errors.New("expected a PEM certificate string")
			}
			bad = append(bad, fmt.Sprintf("%s:%d: %s.trusted[%d]: %v", v.Source, n.Line, key, i, err))
		}
	}
	if len(bad) > 0 {
		return errors.New(strings.Join(bad, "; "))
	}
	return nil
}

// checkPEM accepts text that is only PEM CERTIFICATE blocks, each an X.509
// certificate.
func checkPEM(s string) error {
	rest := []byte(s)
	n := 0
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		n++
		if b.Type != "CERTIFICATE" {
			return fmt.Errorf("block %d is %q, not a CERTIFICATE", n, b.Type)
		}
		if _, err := x509.ParseCertificate(b.Bytes); err != nil {
			return fmt.Errorf("block %d is not an X.509 certificate: %v", n, err)
		}
	}
	switch {
	case n == 0:
		return errors.New("no PEM certificate (-----BEGIN CERTIFICATE-----) or a broken one")
	case len(bytes.TrimSpace(rest)) > 0:
		return fmt.Errorf("text after certificate %d is not a PEM certificate", n)
	}
	return nil
}

// removeDefaults distrusts the distribution's certificates as cloud-init
// does on each family.
func removeDefaults(ctx context.Context, env *modules.Env, d distro.Distro, lay layout) error {
	if !lay.debian {
		if !d.Is("amzn", "rhel") {
			// cloud-init removes nothing on these (its list names rhel,
			// amazon and photon only).
			env.Logger().Warn("remove_defaults does nothing on this distribution, as in cloud-init", zap.String("distro", d.String()))
			return nil
		}
		for _, dir := range []string{RHELTrustDir, RHELLocalDir} {
			if err := emptyDir(env.Root, dir); err != nil {
				return err
			}
		}
		return nil
	}
	b, err := env.Root.ReadFile(DebianConf)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if len(b) > 0 {
		var out []string
		added := false
		for _, l := range strings.Split(strings.TrimRight(string(b), "\n"), "\n") {
			switch {
			case l == headerComment:
				added = true
				out = append(out, l)
			case l == "" || l[0] == '#' || l[0] == '!':
				out = append(out, l)
			default:
				if !added {
					out = append(out, headerComment)
					added = true
				}
				out = append(out, "!"+l)
			}
		}
		if err := env.Root.WriteFile(DebianConf, []byte(strings.Join(out, "\n")+"\n"), 0o644, nil); err != nil {
			return err
		}
	}
	// New distribution certificates stay untrusted on upgrades.
	if env.Root.IsHost() || (env.Runner != nil && env.Runner.Chroot) {
		var o bytes.Buffer
		res, err := env.Runner.Run(ctx, sys.Cmd{Argv: []string{"debconf-set-selections", "-"}, Output: &o,
			Stdin: strings.NewReader("ca-certificates ca-certificates/trust_new_crts select no\n")})
		if err != nil {
			return err
		}
		if res.ExitCode != 0 {
			return fmt.Errorf("debconf-set-selections exited %d: %s", res.ExitCode, strings.TrimSpace(o.String()))
		}
	} else {
		env.Logger().Warn("debconf-set-selections skipped: it writes the running system's debconf database, and the root is not / (use --chroot)")
	}
	return nil
}

// emptyDir removes what dir holds, keeping dir.
func emptyDir(root *sys.Root, dir string) error {
	ents, err := root.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, e := range ents {
		p := dir + "/" + e.Name()
		if e.IsDir() {
			if err := emptyDir(root, p); err != nil {
				return err
			}
		}
		if err := root.Remove(p); err != nil {
			return err
		}
	}
	return nil
}

// update runs the distribution's tool. Under a root other than "/" without
// chroot, update-ca-certificates is pointed at the root's files (it takes
// each directory as an option); update-ca-trust has no such options and
// needs --chroot.
func update(ctx context.Context, env *modules.Env, lay layout) error {
	argv := []string{"update-ca-trust"}
	if lay.debian {
		argv = []string{"update-ca-certificates"}
	}
	chrooted := env.Runner != nil && env.Runner.Chroot
	if !env.Root.IsHost() && !chrooted {
		if !lay.debian {
			return fmt.Errorf("update-ca-trust cannot update root %s without --chroot", env.Root.Prefix())
		}
		for _, o := range []struct{ flag, p string }{
			{"--certsconf", DebianConf}, {"--certsdir", DebianCertsDir}, {"--localcertsdir", DebianLocalDir},
			{"--etccertsdir", DebianEtcCerts}, {"--hooksdir", "/etc/ca-certificates/update.d"},
		} {
			full, err := env.Root.Path(o.p)
			if err != nil {
				return err
			}
			argv = append(argv, o.flag, full)
		}
		if err := env.Root.MkdirAll(DebianEtcCerts, 0o755); err != nil {
			return err
		}
		if err := env.Root.MkdirAll("/etc/ca-certificates/update.d", 0o755); err != nil {
			return err
		}
	}
	runner := env.Runner
	if runner == nil {
		runner = &sys.Runner{Root: env.Root}
	}
	var out bytes.Buffer
	res, err := runner.Run(ctx, sys.Cmd{Argv: argv, Output: &out})
	if err != nil {
		return err
	}
	if res.ExitCode != 0 {
		return fmt.Errorf("%s exited %d: %s", argv[0], res.ExitCode, strings.TrimSpace(out.String()))
	}
	return nil
}
