package agent_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/ec2init/ec2init/agent"
	"github.com/ec2init/ec2init/agent/state"
	"github.com/ec2init/ec2init/modules"
)

// TestSessionRunsStagesAsTheyCome: one session, asked for each stage in
// turn as the systemd units ask `ec2init boot --serve`, boots exactly as
// four stage processes do (each piece of user data once, status done),
// prepares the boot once, and a later Boot of another boot id sees a
// known instance.
func TestSessionRunsStagesAsTheyCome(t *testing.T) {
	f := newFixture(t, multipart(
		[3]string{"text/x-shellscript", "instance.sh", counter("instance")},
		[3]string{"text/x-shellscript-per-boot", "boot.sh", counter("boot")},
		[3]string{"text/cloud-boothook", "hook.sh", counter("boothook")},
	))
	s, err := agent.OpenSession(context.Background(), f.options(boot1))
	if err != nil {
		t.Fatal(err)
	}
	var st state.Status
	for _, stage := range modules.Stages() {
		if st, err = s.Run(context.Background(), []modules.Stage{stage}); err != nil {
			t.Fatalf("stage %s: %v", stage, err)
		}
		if stage != modules.StageFinal && st.State != state.StateRunning {
			t.Errorf("after %s: state %s, want running", stage, st.State)
		}
	}
	s.Close()
	if st.State != state.StateDone || len(st.Stages) != 4 {
		t.Fatalf("session boot: %s, %d stages, %v %v", st.State, len(st.Stages), st.Errors, st.Degraded)
	}
	f.wantRuns("first boot", map[string]int{"instance": 1, "boot": 1, "boothook": 1})
	// Prepared once: the instance id asked once, one token.
	if stats := f.sim.Stats(); stats.ByPath["meta-data/instance-id"] != 1 || stats.TokenPuts != 1 {
		t.Errorf("one session asked instance-id %d times with %d tokens, want 1 and 1 (%v)",
			stats.ByPath["meta-data/instance-id"], stats.TokenPuts, stats.ByPath)
	}
	if st := f.boot(boot2); st.State != state.StateDone {
		t.Fatalf("reboot: %s %v", st.State, st.Errors)
	}
	f.wantRuns("reboot", map[string]int{"instance": 1, "boot": 2, "boothook": 2})
}

// TestSessionDefersLocalThenRetries: the local stage alone, with IMDS not
// answering yet, is deferred; the network stage's Run prepares again and
// runs the boothooks the local stage could not.
func TestSessionDefersLocalThenRetries(t *testing.T) {
	f := newFixture(t, multipart([3]string{"text/cloud-boothook", "hook.sh", counter("boothook")}))
	opts := f.options(boot1)
	opts.LocalDeadline = 300 * time.Millisecond
	s, err := agent.OpenSession(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	f.sim.Hang(true)
	st, err := s.Run(context.Background(), []modules.Stage{modules.StageLocal})
	f.sim.Hang(false)
	if err != nil || len(st.Stages) != 1 || !st.Stages[0].Deferred {
		t.Fatalf("local with IMDS hanging: %v, stages %+v", err, st.Stages)
	}
	f.wantRuns("deferred local", map[string]int{"boothook": 0})
	st, err = s.Run(context.Background(), []modules.Stage{modules.StageNetwork})
	if err != nil || errors.Is(err, agent.ErrNoMetadataSource) {
		t.Fatalf("network: %v", err)
	}
	f.wantRuns("network after a deferred local", map[string]int{"boothook": 1})
	if st.State != state.StateRunning {
		t.Errorf("after network: %s %v", st.State, st.Errors)
	}
}
