package packages

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/ec2init/ec2init/agent/fetch"
	"github.com/ec2init/ec2init/agent/sys"
	"github.com/ec2init/ec2init/modules"
)

// DefaultKeyserver is cloud-init's keyserver for a keyid without one.
const DefaultKeyserver = "keyserver.ubuntu.com"

// gpgTimeout bounds one gpg run: it only transforms a small key.
const gpgTimeout = time.Minute

// keyidRE is a key id or fingerprint once spaces and 0x are gone: short
// (8), long (16) or a v4/v5 fingerprint (40, 64).
var keyidRE = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`^(?:[0-9A-F]{8}|[0-9A-F]{16}|[0-9A-F]{40}|[0-9A-F]{64})$`)
})

// normKeyid is keyid as cloud-init's users write it ("B59D 5F15 ...",
// "0x03683F77") in upper-case hex without spaces.
func normKeyid(keyid string) (string, error) {
	k := strings.ToUpper(strings.Join(strings.Fields(keyid), ""))
	k = strings.TrimPrefix(k, "0X")
	if !keyidRE().MatchString(k) {
		return "", fmt.Errorf("keyid %q is not a key id or fingerprint (8, 16, 40 or 64 hex digits)", keyid)
	}
	return k, nil
}

// keyserverURL is the HTTPS lookup URL of keyid on keyserver, given as
// cloud-init (gpg --keyserver) accepts it: a host, host:port, or an
// hkp://, hkps://, http:// or https:// URL. The key is always fetched over
// HTTPS: the HKP ports (80, 11371) become HTTPS's own; any other port is
// kept. The key's id is checked after the fetch, whatever the transport.
func keyserverURL(keyserver, keyid string) (string, error) {
	ks := strings.TrimSpace(keyserver)
	if ks == "" {
		ks = DefaultKeyserver
	}
	if !strings.Contains(ks, "://") {
		ks = "hkp://" + ks
	}
	u, err := url.Parse(ks)
	if err != nil || u.Host == "" {
		return "", fmt.Errorf("keyserver %q is not a host or URL", keyserver)
	}
	switch u.Scheme {
	case "hkp", "hkps", "http", "https":
	default:
		return "", fmt.Errorf("keyserver %q: scheme %q is not hkp, hkps, http or https", keyserver, u.Scheme)
	}
	host := u.Host
	if h, port, err := net.SplitHostPort(u.Host); err == nil {
		switch port {
		case "80", "443", "11371":
			host = h
			if strings.Contains(h, ":") {
				host = "[" + h + "]"
			}
		}
	}
	q := url.Values{"op": {"get"}, "options": {"mr"}, "search": {"0x" + keyid}}
	return (&url.URL{Scheme: "https", Host: host, Path: "/pks/lookup", RawQuery: q.Encode()}).String(), nil
}

// fetchKey brings the armored public key keyid from keyserver through the
// agent's fetcher. A keyserver that cannot be reached is an error: the
// caller then adds no source.
func fetchKey(ctx context.Context, env *modules.Env, keyid, keyserver string) (string, error) {
	u, err := keyserverURL(keyserver, keyid)
	if err != nil {
		return "", err
	}
	f := env.Fetcher
	if f == nil {
		f = fetch.New(fetch.Options{MaxBytes: 1 << 20})
	}
	body, err := f.Get(ctx, u)
	if err != nil {
		return "", fmt.Errorf("key %s: %w", keyid, err)
	}
	key := string(body)
	if err := checkKey(key); err != nil {
		return "", fmt.Errorf("key %s from the keyserver: %w", keyid, err)
	}
	return key, nil
}

// gpg runs the image's gpg (as cloud-init does) on keys in a scratch home
// under the root's /tmp, so nothing reads or writes root's keyrings.
type gpg struct {
	env *modules.Env
	// dir is the scratch directory on the host; argDir is the same
	// directory as gpg sees it (inside the root when chrooted).
	dir, argDir string
}

// newGPG makes the scratch directory; close removes it.
func newGPG(env *modules.Env) (*gpg, error) {
	if err := env.Root.MkdirAll("/tmp", 0o1777); err != nil {
		return nil, err
	}
	tmp, err := env.Root.Path("/tmp")
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp(tmp, "ec2init-gpg-")
	if err != nil {
		return nil, err
	}
	argDir := dir
	if env.Runner != nil && env.Runner.Chroot && !env.Root.IsHost() {
		argDir = path.Join("/tmp", filepath.Base(dir))
	}
	return &gpg{env: env, dir: dir, argDir: argDir}, nil
}

func (g *gpg) close() { _ = os.RemoveAll(g.dir) }

// run runs gpg with args and returns what it printed.
func (g *gpg) run(ctx context.Context, stdin []byte, args ...string) (string, error) {
	runner := g.env.Runner
	if runner == nil {
		runner = &sys.Runner{Root: g.env.Root}
	}
	var out bytes.Buffer
	argv := append([]string{"gpg", "--batch", "--no-tty", "--quiet", "--homedir", g.argDir}, args...)
	res, err := runner.Run(ctx, sys.Cmd{Name: "gpg", Argv: argv, Stdin: bytes.NewReader(stdin), Output: &out, Timeout: gpgTimeout})
	if err != nil {
		if errors.Is(err, os.ErrNotExist) || strings.Contains(err.Error(), "not found") {
			return "", fmt.Errorf("gpg is not installed (Debian package gnupg): %w", err)
		}
		return "", err
	}
	if res.ExitCode != 0 {
		return "", fmt.Errorf("gpg %s exited %d: %s", args[len(args)-1], res.ExitCode, firstLine(out.String()))
	}
	return out.String(), nil
}

// dearmor is `gpg --dearmor` of an armored key: the binary keyring apt
// reads from a .gpg file.
func (g *gpg) dearmor(ctx context.Context, armored string) ([]byte, error) {
	out := "dearmored.gpg"
	_ = os.Remove(filepath.Join(g.dir, out))
	if _, err := g.run(ctx, []byte(armored), "--yes", "--output", path.Join(g.argDir, out), "--dearmor"); err != nil {
		return nil, err
	}
	b, err := os.ReadFile(filepath.Join(g.dir, out))
	if err != nil {
		return nil, fmt.Errorf("gpg --dearmor: %w", err)
	}
	if len(b) == 0 {
		return nil, errors.New("gpg --dearmor: no key in the armor")
	}
	return b, nil
}

// fingerprints lists the fingerprints of the keys (primary and sub) in an
// armored block, as gpg reads them.
func (g *gpg) fingerprints(ctx context.Context, armored string) ([]string, error) {
	in := "show.asc"
	if err := os.WriteFile(filepath.Join(g.dir, in), []byte(armored), 0o600); err != nil {
		return nil, err
	}
	out, err := g.run(ctx, nil, "--with-colons", "--show-keys", path.Join(g.argDir, in))
	if err != nil {
		return nil, err
	}
	var fprs []string
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		f := strings.Split(sc.Text(), ":")
		if len(f) > 9 && f[0] == "fpr" {
			fprs = append(fprs, strings.ToUpper(f[9]))
		}
	}
	return fprs, nil
}

// checkKeyid refuses a key whose fingerprints do not end with keyid: a
// keyserver answers with the key asked for or the source gets no key.
func (g *gpg) checkKeyid(ctx context.Context, armored, keyid string) error {
	fprs, err := g.fingerprints(ctx, armored)
	if err != nil {
		return err
	}
	for _, f := range fprs {
		if strings.HasSuffix(f, keyid) {
			return nil
		}
	}
	return fmt.Errorf("the keyserver's key for %s has another id (fingerprints %s)", keyid, strings.Join(fprs, ", "))
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	if len(s) > 200 {
		s = s[:200]
	}
	return s
}
