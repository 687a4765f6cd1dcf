// Package bootstrap holds what the configuration-management modules
// (ansible, chef, puppet, salt_minion) share: running their tools with the
// output in the output log, finding a tool where the runner looks,
// fetching and running an installer script, enabling or starting their
// services with systemctl, and reading their settings and writing their
// files (directories as cloud-init's ensure_dir, secrets 0600, YAML as
// its yaml.dump).
package bootstrap

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/ec2init/ec2init/agent/fetch"
	"github.com/ec2init/ec2init/agent/redact"
	"github.com/ec2init/ec2init/agent/sys"
	"github.com/ec2init/ec2init/modules"
	"github.com/ec2init/ec2init/modules/internal/pkgmgr"
)

// Run runs c with its output in the output log, framed by a header, and
// makes a run that does not succeed an error naming c.Name.
func Run(ctx context.Context, env *modules.Env, c sys.Cmd) error {
	c.Output = env.ConsoleWriter()
	c.Header = true
	return check(env.Runner.Run(ctx, c))(c.Name)
}

// Output runs c and returns what it printed (stdout and stderr, at most
// outputMax bytes); a run that does not succeed is an error naming c.Name
// with the first line of its output.
func Output(ctx context.Context, env *modules.Env, c sys.Cmd) (string, error) {
	var b capped
	c.Output = &b
	err := check(env.Runner.Run(ctx, c))(c.Name)
	if err != nil {
		if line, _, _ := strings.Cut(strings.TrimSpace(string(b.b)), "\n"); line != "" {
			err = fmt.Errorf("%w: %s", err, line)
		}
	}
	return string(b.b), err
}

func check(res sys.Result, err error) func(string) error {
	return func(name string) error {
		if err != nil {
			return err // the runner's error names the command
		}
		if res.ExitCode != 0 || res.Signal != "" || res.TimedOut {
			return fmt.Errorf("%s: %s", name, pkgmgr.ExitStatus(res))
		}
		return nil
	}
}

const outputMax = 64 << 10

// capped keeps the first outputMax bytes written.
type capped struct{ b []byte }

func (c *capped) Write(p []byte) (int, error) {
	if room := outputMax - len(c.b); room > 0 {
		c.b = append(c.b, p[:min(room, len(p))]...)
	}
	return len(p), nil
}

// Installed reports whether name is an executable file where env's runner
// looks for it: under the root when commands run chrooted, on the running
// system otherwise (commands under --root without --chroot run there).
func Installed(env *modules.Env, name string) bool {
	dirs := []string{""}
	if !strings.Contains(name, "/") {
		pathList := env.Runner.Env["PATH"]
		if pathList == "" {
			pathList = sys.DefaultPath
		}
		dirs = filepath.SplitList(pathList)
	}
	chrooted := env.Runner.Chroot && !env.Root.IsHost()
	for _, d := range dirs {
		p := filepath.Join(d, name)
		if !filepath.IsAbs(p) {
			continue
		}
		var fi os.FileInfo
		var err error
		if chrooted {
			fi, err = env.Root.Stat(p)
		} else {
			fi, err = os.Stat(p)
		}
		if err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0 {
			return true
		}
	}
	return false
}

// Install installs packages with the image's package manager through m
// (the zero Manager is the agent's; one lock-retry policy); key names the
// setting they serve in errors.
func Install(ctx context.Context, env *modules.Env, m pkgmgr.Manager, key string, pkgs ...pkgmgr.Package) error {
	if err := m.Apply(ctx, env, pkgmgr.Request{Packages: pkgs}); err != nil {
		return fmt.Errorf("%s: %w", key, err)
	}
	return nil
}

// Script is an installer script to fetch (chef's omnibus install.sh,
// puppet's install.sh).
type Script struct {
	// URL and URLKey, the setting that gave it (for messages).
	URL, URLKey string
	// SHA256 (hex), when given, is what the script must hash to; then any
	// scheme the agent's fetcher allows will do. Without it only https is
	// accepted: the script runs as root. SHA256Key names its setting.
	SHA256, SHA256Key string
	// Attempts (> 0) replaces the fetcher's own count.
	Attempts int
}

// ErrChecksum is wrapped by the error of a script that does not hash to
// its SHA256.
var ErrChecksum = errors.New("sha256 mismatch")

// Fetch downloads s through the agent's one fetcher and checks it.
func Fetch(ctx context.Context, env *modules.Env, s Script) ([]byte, error) {
	want := strings.ToLower(strings.TrimSpace(s.SHA256))
	if want != "" {
		if b, err := hex.DecodeString(want); err != nil || len(b) != sha256.Size {
			return nil, fmt.Errorf("%s: not a sha256 in hex (64 hex digits)", s.SHA256Key)
		}
	}
	u, err := url.Parse(s.URL)
	if err != nil || u.Scheme == "" {
		return nil, fmt.Errorf("%s: not a URL", s.URLKey)
	}
	if want == "" && u.Scheme != "https" {
		return nil, fmt.Errorf("%s: %s is not https: without %s the installer is fetched over https only", s.URLKey, redact.URL(s.URL), s.SHA256Key)
	}
	f := env.Fetcher
	if f == nil {
		f = fetch.New(fetch.Options{})
	}
	body, err := f.GetAttempts(ctx, s.URL, s.Attempts)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", s.URLKey, err)
	}
	if want != "" {
		sum := sha256.Sum256(body)
		if got := hex.EncodeToString(sum[:]); got != want {
			return nil, fmt.Errorf("%s: %s: %w: got %s, want %s (%s); not run", s.URLKey, redact.URL(s.URL), ErrChecksum, got, want, s.SHA256Key)
		}
	}
	return body, nil
}

// ScriptDir is where a fetched installer is written to run: the
// distribution's place for executables that are not kept (cloud-init uses
// /var/tmp/cloud-init the same way), private to root.
const ScriptDir = "/var/tmp/ec2init"

// RunScript writes body as ScriptDir/name (0700), runs it with args, its
// output in the output log, and removes it.
func RunScript(ctx context.Context, env *modules.Env, name string, body []byte, args []string) error {
	if err := env.Root.MkdirAll(ScriptDir, 0o700); err != nil {
		return err
	}
	p := ScriptDir + "/" + name
	if err := env.Root.WriteFile(p, body, 0o700, nil); err != nil {
		return err
	}
	defer func() {
		if err := env.Root.Remove(p); err != nil {
			env.Logger().Warn("installer script not removed", zap.String("file", p), zap.Error(err))
		}
	}()
	res, err := env.Runner.RunScript(ctx, p, sys.Cmd{Name: name, Argv: args, Output: env.ConsoleWriter(), Header: true})
	return check(res, err)(name)
}

// Service runs systemctl verb unit. enable and disable act on the image
// under a root prefix (systemctl --root, offline) and on the running
// system otherwise; start, restart and stop act on the running system
// only, and are skipped, logged, under a root prefix or chroot (an image
// has no running services).
func Service(ctx context.Context, env *modules.Env, verb, unit string) error {
	argv := []string{"systemctl", verb, unit}
	chrooted := env.Runner.Chroot && !env.Root.IsHost()
	switch verb {
	case "enable", "disable":
		if !env.Root.IsHost() && !chrooted {
			argv = []string{"systemctl", "--root=" + env.Root.Prefix(), verb, unit}
		}
	default:
		if !env.Root.IsHost() {
			env.Logger().Info("not the running system: service not "+verb+"ed", zap.String("unit", unit))
			return nil
		}
	}
	_, err := Output(ctx, env, sys.Cmd{Name: "systemctl " + verb + " " + unit, Argv: argv, Timeout: serviceTimeout})
	return err
}

// serviceTimeout bounds one systemctl call: a start waits for the unit.
const serviceTimeout = 3 * time.Minute
