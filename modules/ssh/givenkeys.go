package ssh

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os/exec"
	"regexp"
	"strings"
	"sync"

	"go.uber.org/zap"
	"gopkg.in/yaml.v3"

	"github.com/ec2init/ec2init/agent/config"
	"github.com/ec2init/ec2init/agent/sys"
	"github.com/ec2init/ec2init/modules/internal/accounts"
)

// givenKeyTypes are the host key types ssh_keys may carry, as cloud-init
// accepts them (no dsa, no security-key types).
var givenKeyTypes = []string{"rsa", "ecdsa", "ed25519"}

// sshKeysType is ssh_keys: {rsa,ecdsa,ed25519}_{private,public,certificate}.
// It and skType are built on first use, not at start: every ec2init
// process links this package, few validate or run it (issue #15).
var sshKeysType = sync.OnceValue(func() *config.Type {
	var fs []config.Field
	for _, t := range givenKeyTypes {
		fs = append(fs,
			config.Field{Name: t + "_private", Type: config.String(), Doc: "Private host key (0600, never logged)."},
			config.Field{Name: t + "_public", Type: config.String(), Doc: "Public host key (0644)."},
			config.Field{Name: t + "_certificate", Type: config.String(), Doc: "Host certificate (0644); adds HostCertificate to sshd's settings."})
	}
	return config.Object(fs...)
})

// givenKey is one ssh_keys entry ec2init installs.
type givenKey struct {
	name string // rsa_private, ...
	data string
	file string // /etc/ssh/ssh_host_rsa_key, ...
	mode fs.FileMode
}

func (k givenKey) keyType() string { t, _, _ := strings.Cut(k.name, "_"); return t }
func (k givenKey) part() string    { _, p, _ := strings.Cut(k.name, "_"); return p }

var skType = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`^(ecdsa-sk|ed25519-sk)_(private|public|certificate)$`)
})

// decodeGivenKeys reads ssh_keys in its order. Entries cloud-init does not
// know are skipped with an error naming them (cloud-init warns); values
// are never quoted.
func decodeGivenKeys(n *yaml.Node, at string) ([]givenKey, error) {
	if n.Kind != yaml.MappingNode {
		if n.Tag == "!!null" {
			return nil, nil
		}
		return nil, fmt.Errorf("%s: ssh_keys: expected a mapping", at)
	}
	var out []givenKey
	var errs []error
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i].Value, n.Content[i+1]
		g := givenKey{name: k}
		switch t, part := g.keyType(), g.part(); {
		case skType().MatchString(k):
			errs = append(errs, fmt.Errorf("%s: ssh_keys: %s: security-key host keys are not supported; skipped", at, k))
			continue
		case !contains(givenKeyTypes, t) || !contains([]string{"private", "public", "certificate"}, part):
			errs = append(errs, fmt.Errorf("%s: ssh_keys: %q is not a host key entry; skipped", at, shortName(k)))
			continue
		case part == "private":
			g.file, g.mode = "/etc/ssh/ssh_host_"+t+"_key", 0o600
		case part == "public":
			g.file, g.mode = "/etc/ssh/ssh_host_"+t+"_key.pub", 0o644
		default:
			g.file, g.mode = "/etc/ssh/ssh_host_"+t+"_key-cert.pub", 0o644
		}
		if v.Kind != yaml.ScalarNode || v.Tag == "!!null" {
			errs = append(errs, fmt.Errorf("%s: ssh_keys.%s: expected a string; skipped", at, k))
			continue
		}
		g.data = v.Value
		out = append(out, g)
	}
	return out, errors.Join(errs...)
}

func shortName(s string) string {
	if len(s) > config.MaxShown {
		return s[:config.MaxShown] + "..."
	}
	return s
}

// certOptions are the HostCertificate lines for given's certificates.
func certOptions(given []givenKey) []sshdOption {
	var out []sshdOption
	for _, g := range given {
		if g.part() == "certificate" {
			out = append(out, sshdOption{Keyword: "HostCertificate", Value: g.file, Multi: true})
		}
	}
	return out
}

// installGivenKeys writes ssh_keys' files, as cloud-init does: each with
// its mode (private keys 0600), a missing public key derived from its
// private one with ssh-keygen -y, and each certificate named in sshd's
// settings. Nothing of a key's content is logged or put in an error. It
// reports whether every entry was installed.
func (r *run) installGivenKeys(ctx context.Context, s settings) bool {
	ok := true
	have := map[string]bool{}
	for _, g := range s.given {
		if err := r.env.Root.WriteFile(g.file, []byte(g.data), g.mode, nil); err != nil {
			r.fail("ssh_keys.%s: %v", g.name, err)
			ok = false
			continue
		}
		have[g.name] = true
		r.log.Info("host key installed from ssh_keys", zap.String("entry", g.name), zap.String("file", g.file))
	}
	for _, t := range givenKeyTypes {
		if !have[t+"_private"] || have[t+"_public"] || hasEntry(s.given, t+"_public") {
			continue
		}
		if err := r.derivePublic(ctx, t); err != nil {
			r.fail("ssh_keys.%s_private: public key: %v", t, err)
			ok = false
			continue
		}
		r.log.Info("public host key derived from ssh_keys' private one", zap.String("type", t))
	}
	r.certOptions = certOptions(s.given)
	return ok
}

func hasPrivate(given []givenKey) bool {
	for _, g := range given {
		if g.part() == "private" {
			return true
		}
	}
	return false
}

func hasEntry(given []givenKey, name string) bool {
	for _, g := range given {
		if g.name == name {
			return true
		}
	}
	return false
}

// derivePublic writes the public key of type t from its private key file,
// as cloud-init does: ssh-keygen -y's line and "root@localhost".
func (r *run) derivePublic(ctx context.Context, t string) error {
	priv := "/etc/ssh/ssh_host_" + t + "_key"
	p, err := r.cmdPath(priv)
	if err != nil {
		return err
	}
	var out bytes.Buffer
	res, err := r.env.Runner.Run(ctx, sys.Cmd{Name: "ssh: ssh-keygen -y " + t,
		Argv: []string{"ssh-keygen", "-y", "-f", p}, Output: &out})
	switch {
	case errors.Is(err, exec.ErrNotFound):
		return errors.New("ssh-keygen is not installed")
	case err != nil:
		return err
	case res.ExitCode != 0:
		// ssh-keygen says why the key cannot be read; it never prints it.
		return fmt.Errorf("ssh-keygen -y exited %d: %s", res.ExitCode, firstLine(out.String()))
	}
	// The output is the public key, perhaps after a warning line.
	var line string
	for _, l := range strings.Split(out.String(), "\n") {
		if _, ok := accounts.KeyID(l); ok {
			line = strings.TrimSpace(l)
			break
		}
	}
	if line == "" {
		return errors.New("ssh-keygen -y printed no public key")
	}
	return r.env.Root.WriteFile(priv+".pub", []byte(line+" root@localhost\n"), 0o644, nil)
}
