package state

import (
	"os/exec"
	"strings"
	"testing"
)

// killedPID starts a real process, SIGKILLs it and reaps it: its pid names no
// process any more (until the kernel hands it out again).
func killedPID(t *testing.T) int {
	t.Helper()
	cmd := exec.Command("sleep", "30")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	cmd.Wait() // reaped: a zombie would still answer kill(pid, 0)
	return pid
}

func TestLive(t *testing.T) {
	s := openStore(t, t.TempDir(), "b1", nil)
	self, start := s.Owner()
	if start == 0 {
		t.Fatal("no start time for the test process")
	}
	dead := killedPID(t)
	tests := []struct {
		name string
		st   Status
		died bool
	}{
		{name: "owner SIGKILLed", st: Status{State: StateRunning, BootID: "b1", PID: dead}, died: true},
		{name: "pid reused by another process", st: Status{State: StateRunning, BootID: "b1", PID: self, PIDStart: start + 1}, died: true},
		{name: "owner alive", st: Status{State: StateRunning, BootID: "b1", PID: self, PIDStart: start}},
		{name: "owner alive, start unknown", st: Status{State: StateRunning, BootID: "b1", PID: self}},
		{name: "no owner, between stages", st: Status{State: StateRunning, BootID: "b1"}},
		{name: "an earlier boot's", st: Status{State: StateRunning, BootID: "b0", PID: dead}},
		{name: "finished", st: Status{State: StateDone, BootID: "b1", PID: dead}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.st.Errors = []string{"earlier"}
			got := s.Live(tt.st)
			if !tt.died {
				if got.State != tt.st.State || len(got.Errors) != 1 {
					t.Errorf("Live = %s %q, want it unchanged", got.State, got.Errors)
				}
				return
			}
			if got.State != StateError || len(got.Errors) != 2 || !strings.HasPrefix(got.Errors[0], AgentDied) || got.Errors[1] != "earlier" {
				t.Errorf("Live = %s %q, want error %q first", got.State, got.Errors, AgentDied)
			}
		})
	}
}

// TestReadLiveStatus: status.json written by a process later SIGKILLed
// reads as an error; WriteStatus records the writer's own start time.
func TestReadLiveStatus(t *testing.T) {
	s := openStore(t, t.TempDir(), "b1", nil)
	self, start := s.Owner()
	if err := s.WriteStatus(Status{State: StateRunning, BootID: "b1", PID: self}); err != nil {
		t.Fatal(err)
	}
	st, err := s.ReadLiveStatus()
	if err != nil || st.State != StateRunning || st.PIDStart != start {
		t.Fatalf("own running status = %s, pid_start %d, %v; want running, %d", st.State, st.PIDStart, err, start)
	}
	if err := s.WriteStatus(Status{State: StateRunning, BootID: "b1", PID: killedPID(t)}); err != nil {
		t.Fatal(err)
	}
	st, err = s.ReadLiveStatus()
	if err != nil || st.State != StateError || len(st.Errors) == 0 || !strings.HasPrefix(st.Errors[0], AgentDied) {
		t.Errorf("dead agent's status = %s %q, %v", st.State, st.Errors, err)
	}
}
