package agent_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/ec2init/ec2init/agent"
	"github.com/ec2init/ec2init/agent/config"
	"github.com/ec2init/ec2init/modules"
)

// panicModule panics in Run, as a module with a nil-map bug would.
type panicModule struct{ fakeModule }

func (m panicModule) Run(context.Context, *modules.Env, *config.CloudConfig) error {
	panic("assignment to entry in nil map")
}

// TestModulePanicIsItsFailure: a panicking module is recorded as failed
// with the panic named and its stack in the log; the modules after it, in
// its stage and in later stages, still run, as they do after a module
// that returns an error.
func TestModulePanicIsItsFailure(t *testing.T) {
	f := newFixture(t, "")
	o := f.options(boot1)
	o.Registry = registry(t,
		panicModule{fakeModule{name: "fake_panics", stage: modules.StageNetwork}},
		fakeModule{name: "fake_fails", stage: modules.StageNetwork, err: errors.New("disk full")},
		fakeModule{name: "fake_after", stage: modules.StageNetwork},
		fakeModule{name: "fake_final", stage: modules.StageFinal},
	)
	st, err := agent.Boot(context.Background(), o)
	if err != nil {
		t.Fatalf("boot: %v", err)
	}
	for _, tc := range []struct{ name, outcome, errText string }{
		{"fake_panics", "failed", "panicked: assignment to entry in nil map"},
		{"fake_fails", "failed", "disk full"},
		{"fake_after", "ok", ""},
		{"fake_final", "ok", ""},
	} {
		res, ok := moduleResult(st, tc.name)
		if !ok {
			t.Errorf("%s: no record in the status", tc.name)
			continue
		}
		if res.Outcome != tc.outcome || res.Error != tc.errText {
			t.Errorf("%s: outcome %q error %q, want %q %q", tc.name, res.Outcome, res.Error, tc.outcome, tc.errText)
		}
	}
	if f.runs("fake_after") != 1 || f.runs("fake_final") != 1 {
		t.Errorf("modules after the panic ran %d and %d times, want 1 each", f.runs("fake_after"), f.runs("fake_final"))
	}
	logs := f.log.String()
	if !strings.Contains(logs, "module panicked") || !strings.Contains(logs, "panicModule.Run") {
		t.Errorf("log lacks the panic and its stack:\n%s", logs)
	}
	if !strings.Contains(strings.Join(st.Degraded, "\n"), "fake_panics: panicked") {
		t.Errorf("degraded = %q, want the panic named once with the module", st.Degraded)
	}
}
