package pkgmgr

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"path"
	"time"

	"go.uber.org/zap"

	"github.com/ec2init/ec2init/agent/sys"
	"github.com/ec2init/ec2init/internal/backoff"
	"github.com/ec2init/ec2init/modules"
)

// Lock contention defaults: another apt, dpkg, dnf or rpm
// (unattended-upgrades, a user's script, the SSM agent) commonly holds the
// lock during a first boot.
const (
	defaultLockAttempts = 8
	defaultLockBase     = 2 * time.Second
	defaultLockMax      = 60 * time.Second
)

// LockRetry bounds the retries of a command that failed because another
// process held the package manager's lock. Zero fields take the defaults
// (8 attempts, backoff from 2s up to 60s with full jitter).
type LockRetry struct {
	Attempts  int
	Base, Max time.Duration
}

func (l LockRetry) withDefaults() LockRetry {
	if l.Attempts <= 0 {
		l.Attempts = defaultLockAttempts
	}
	if l.Base <= 0 {
		l.Base = defaultLockBase
	}
	if l.Max <= 0 {
		l.Max = defaultLockMax
	}
	return l
}

// Cmd is one package-manager command.
type Cmd struct {
	// Name is the runner's name for the command (logs, the output header).
	Name string
	// What names the command in messages, without the options every call
	// gets ("apt-get install curl").
	What string
	Argv []string
	Env  map[string]string
}

// Run runs c, its output to the console (the output log), retrying with
// backoff while another process holds the package manager's lock. A
// non-zero exit is an error naming c.What.
func (l LockRetry) Run(ctx context.Context, env *modules.Env, c Cmd) (sys.Result, error) {
	retry := l.withDefaults()
	for attempt := 1; ; attempt++ {
		var tail tailBuffer
		res, err := env.Runner.Run(ctx, sys.Cmd{
			Name:   c.Name,
			Argv:   c.Argv,
			Env:    c.Env,
			Output: io.MultiWriter(&tail, env.ConsoleWriter()), // the tail first: a failing console must not blind the lock check
			Header: true,
		})
		if err != nil {
			return res, fmt.Errorf("%s: %w", c.What, err)
		}
		if res.ExitCode == 0 {
			return res, nil
		}
		status := ExitStatus(res)
		if !Locked(c.Argv[0], res.ExitCode, tail.Bytes()) {
			return res, fmt.Errorf("%s: %s", c.What, status)
		}
		if attempt >= retry.Attempts {
			return res, fmt.Errorf("%s: %s: the package manager's lock was held by another process through %d attempts", c.What, status, attempt)
		}
		wait := backoff.Delay(retry.Base, retry.Max, attempt, rand.Float64())
		env.Logger().Info("package manager lock held by another process; retrying",
			zap.String("command", c.What), zap.Int("attempt", attempt), zap.Duration("wait", wait))
		select {
		case <-ctx.Done():
			return res, fmt.Errorf("%s: waiting for the package manager's lock: %w", c.What, ctx.Err())
		case <-time.After(wait):
		}
	}
}

// lockMarkers are what the tools print when another process holds the
// lock, lower-cased.
var lockMarkers = [][]byte{
	// apt-get, dpkg, unattended-upgrade
	[]byte("could not get lock"), []byte("unable to acquire the dpkg frontend lock"),
	[]byte("dpkg frontend lock"), []byte("dpkg status database is locked"),
	[]byte("unable to lock directory"), []byte("unable to lock the administration directory"),
	// dnf, yum, rpm
	[]byte("waiting for process"), []byte("rpmdb lock"), []byte("transaction lock"),
	[]byte("can't create transaction lock"), []byte("holding the yum lock"),
	[]byte("another app is currently holding"),
}

// Locked reports whether a run of tool (argv[0]) that exited with exit
// failed on the lock, from what it printed (checked case-insensitively).
// apt-get fails on a held lock with exit status 100 alone.
func Locked(tool string, exit int, output []byte) bool {
	if exit == 0 || path.Base(tool) == "apt-get" && exit != 100 {
		return false
	}
	low := bytes.ToLower(output)
	for _, mk := range lockMarkers {
		if bytes.Contains(low, mk) {
			return true
		}
	}
	return false
}

// ExitStatus says how a command that did not succeed ended.
func ExitStatus(res sys.Result) string {
	if res.Signal != "" {
		return "killed by signal " + res.Signal
	}
	if res.TimedOut {
		return "timed out"
	}
	return fmt.Sprintf("exit status %d", res.ExitCode)
}

// tailBuffer keeps the last tailMax bytes written: enough to recognise a
// lock message without holding an upgrade's whole output.
type tailBuffer struct{ b []byte }

const tailMax = 64 << 10

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.b = append(t.b, p...)
	if len(t.b) > tailMax {
		t.b = append(t.b[:0], t.b[len(t.b)-tailMax:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) Bytes() []byte { return t.b }
