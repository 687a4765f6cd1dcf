// Package bootstraptest holds the configuration-management modules'
// test fixtures: a logger that records its entries, fake tools that
// record their command lines, and the check that a secret reached no log,
// output or error.
package bootstraptest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/ec2init/ec2init/agent/sys"
	"github.com/ec2init/ec2init/internal/testkit"
	"github.com/ec2init/ec2init/modules"
)

// Observe gives e a logger that keeps every entry, and returns them.
func Observe(e *modules.Env) *observer.ObservedLogs {
	core, logs := observer.New(zap.DebugLevel)
	e.Log = zap.New(core)
	return logs
}

// Fakes is a directory of fake tools, first on an Env runner's PATH, that
// record their command lines in one log. They stand in for tools that
// would change the host (apt-get, systemctl) or that Debian lacks.
type Fakes struct {
	// Bin is the tools' directory: a test may add its own there.
	Bin string
	log string
}

// NewFakes makes one fake tool per entry of scripts and sets e's runner
// PATH to them, then sys.DefaultPath. Each fake records "name args" as a
// line of the log, then runs its script: shell without a #! line ("" to
// record only), which may add lines of its own to "$log".
func NewFakes(t testing.TB, e *modules.Env, scripts map[string]string) Fakes {
	t.Helper()
	log := filepath.Join(t.TempDir(), "argv")
	rec := "#!/bin/sh\nlog='" + log + "'\necho \"$(basename $0) $*\" >> \"$log\"\n"
	tools := map[string]string{}
	for name, script := range scripts {
		tools[name] = rec + script
	}
	f := Fakes{Bin: testkit.FakeBin(t, tools), log: log}
	e.Runner.Env = map[string]string{"PATH": f.Bin + ":" + sys.DefaultPath}
	return f
}

// Argv is the command lines recorded so far, one a line, in order.
func (f Fakes) Argv(t testing.TB) string {
	t.Helper()
	b, err := os.ReadFile(f.log)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return string(b)
}

// NoLeak fails t when secret shows in console, in err, or in a log
// entry's message or fields, as written or with its white space dropped
// (a key reflowed into a field).
func NoLeak(t testing.TB, secret string, logs *observer.ObservedLogs, console string, err error) {
	t.Helper()
	all := console
	if err != nil {
		all += err.Error()
	}
	for _, l := range logs.All() {
		all += l.Message
		for k, v := range l.ContextMap() {
			all += k + "=" + text(v)
		}
	}
	if strings.Contains(all, secret) || strings.Contains(squeeze(all), squeeze(secret)) {
		t.Errorf("%q leaked: %s", secret, all)
	}
}

func text(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case error:
		return x.Error()
	}
	return ""
}

func squeeze(s string) string { return strings.Join(strings.Fields(s), "") }
