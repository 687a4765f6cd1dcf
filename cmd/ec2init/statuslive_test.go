package main

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ec2init/ec2init/agent"
	"github.com/ec2init/ec2init/agent/state"
)

const liveBootID = "00000000-0000-4000-8000-00000000000a" // testBoot's

// writeRunning records a running boot owned by pid (with start) in both the
// durable status.json and the /run copies `status` reads first.
func writeRunning(t *testing.T, root string, pid int, start uint64) {
	t.Helper()
	store, err := state.Open(state.Options{Root: root, BootID: liveBootID})
	if err != nil {
		t.Fatal(err)
	}
	st := state.Status{Version: state.StatusVersion, State: state.StateRunning, BootID: liveBootID,
		InstanceID: "i-1", Stage: "final", StartedAt: time.Now(), PID: pid, PIDStart: start,
		Stages: []state.StageResult{}, Errors: []string{}, Degraded: []string{}, Interrupted: []string{}}
	if err := store.WriteStatus(st); err != nil {
		t.Fatal(err)
	}
	data, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{agent.RunStatusFile, agent.RunStatusFullFile} {
		if err := os.WriteFile(filepath.Join(root, f), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// TestStatusAgentKilled: the agent's process is SIGKILLed mid-boot; status
// says error "agent died" (exit 1) instead of running, and --wait without
// --timeout returns.
func TestStatusAgentKilled(t *testing.T) {
	root := t.TempDir()
	agentProc := exec.Command("sleep", "30") // stands for the agent, mid-script
	if err := agentProc.Start(); err != nil {
		t.Fatal(err)
	}
	writeRunning(t, root, agentProc.Process.Pid, 0)
	if r := runCLI(t, binary, "status", "--root", root, testBoot); r.code != exitRunning {
		t.Fatalf("agent alive: %+v", r)
	}
	if err := agentProc.Process.Signal(unix.SIGKILL); err != nil {
		t.Fatal(err)
	}
	agentProc.Wait() // reaped, as systemd does

	r := runCLI(t, binary, "status", "--root", root, testBoot)
	if r.code != exitErr || !strings.Contains(r.stdout, "status: error") || !strings.Contains(r.stdout, state.AgentDied) {
		t.Errorf("agent killed: %+v", r)
	}
	// No --timeout: on the old code this never returned; bound it here.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, binary, "status", "--wait", "--root", root, testBoot).Output()
	if ctx.Err() != nil {
		t.Fatal("status --wait did not return for a dead agent")
	}
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != exitErr || !strings.Contains(string(out), state.AgentDied) {
		t.Errorf("status --wait: %v\n%s", err, out)
	}
}

// TestStatusPIDReused: the recorded pid runs, but is another process (its
// start time differs): the agent is dead all the same.
func TestStatusPIDReused(t *testing.T) {
	root := t.TempDir()
	other := exec.Command("sleep", "30")
	if err := other.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { other.Process.Kill(); other.Wait() }()
	writeRunning(t, root, other.Process.Pid, 1) // started at tick 1: not this sleep
	if r := runCLI(t, binary, "status", "--root", root, testBoot); r.code != exitErr || !strings.Contains(r.stdout, state.AgentDied) {
		t.Errorf("pid reused: %+v", r)
	}
}

// TestStatusNamesLockHolder: while a boot runs and holds the boot lock,
// status names its pid.
func TestStatusNamesLockHolder(t *testing.T) {
	root := t.TempDir()
	store, err := state.Open(state.Options{Root: root, BootID: liveBootID})
	if err != nil {
		t.Fatal(err)
	}
	pid, start := store.Owner()
	writeRunning(t, root, pid, start)
	f, err := os.OpenFile(filepath.Join(root, agent.BootLockFile), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(strconv.Itoa(pid) + "\n"); err != nil {
		t.Fatal(err)
	}
	r := runCLI(t, binary, "status", "--root", root, testBoot)
	if r.code != exitRunning || !strings.Contains(r.stdout, "boot lock held by pid "+strconv.Itoa(pid)) {
		t.Errorf("lock held: %+v", r)
	}
	unix.Flock(int(f.Fd()), unix.LOCK_UN)
	if r := runCLI(t, binary, "status", "--root", root, testBoot); strings.Contains(r.stdout, "boot lock held") {
		t.Errorf("lock released: %+v", r)
	}
}

// TestStatusBetweenStages: a stage that ended normally leaves the boot
// running with no owner process, for the next stage's process: status must
// still say running, not that the agent died.
func TestStatusBetweenStages(t *testing.T) {
	root, ep := bootFixture(t, "#!/bin/sh\necho hi\n")
	if r := runCLI(t, binary, "boot", "--stage", "local", "--root", root, ep, testBoot, "--log-level=error"); r.code != 0 {
		t.Fatalf("boot --stage local: %+v", r)
	}
	if r := runCLI(t, binary, "status", "--root", root, testBoot); r.code != exitRunning || strings.Contains(r.stdout, state.AgentDied) {
		t.Errorf("between stages: %+v", r)
	}
}
