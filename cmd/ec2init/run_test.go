package main

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ec2init/ec2init/agent/imds/imdssim"
	"github.com/ec2init/ec2init/internal/testkit"
)

// testEnv is the commands' env over a fresh root and an IMDS simulator
// serving userData, as the flags would set it.
func testEnv(t *testing.T, userData string) (*env, *imdssim.Server) {
	t.Helper()
	sim, url := imdssim.Start(t, imdssim.Options{})
	sim.SetUserData([]byte(userData))
	e := newEnv(t.TempDir())
	e.endpoint, e.bootID, e.logLevel = url, "00000000-0000-4000-8000-00000000000a", "error"
	e.getenv = func(string) string { return "" }
	return e, sim
}

// TestRunBoot: the boot command's run, without cobra: the stages run,
// and a boot that cannot do its work is exit 1.
func TestRunBoot(t *testing.T) {
	for _, c := range []struct {
		name, userData string
		code           int
	}{{"done", "#!/bin/sh\necho ok\n", 0}, {"malformed cloud-config", "#cloud-config\nruncmd: [\n", 1}} {
		t.Run(c.name, func(t *testing.T) {
			e, _ := testEnv(t, c.userData)
			var console testkit.SyncBuffer
			err := runBoot(context.Background(), e, bootOptions{stage: "all", identifyDeadline: 10 * time.Second}, &console)
			var ee *exitError
			switch {
			case c.code == 0 && err != nil:
				t.Fatal(err)
			case c.code != 0 && (!errors.As(err, &ee) || ee.code != c.code):
				t.Fatalf("got %v, want exit %d", err, c.code)
			}
			if _, err := os.Stat(filepath.Join(e.root, "var/lib/ec2init/result.json")); err != nil {
				t.Errorf("no result: %v", err)
			}
		})
	}
}

// TestRunUserData: show and run-script on a booted root, without cobra.
func TestRunUserData(t *testing.T) {
	e, _ := testEnv(t, "#!/bin/sh\necho run >> \"$EC2INIT_ROOT/runs\"\n")
	if err := runBoot(context.Background(), e, bootOptions{stage: "all", identifyDeadline: 10 * time.Second}, &testkit.SyncBuffer{}); err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	if err := runUserDataShow(context.Background(), e, userDataShowOptions{}, &out); err != nil || !strings.Contains(out.String(), "final, per-instance  yes") {
		t.Errorf("show: %v\n%s", err, out.String())
	}
	out.Reset()
	var rep struct {
		Parts []struct{ Name string } `json:"parts"`
	}
	if err := runUserDataShow(context.Background(), e, userDataShowOptions{asJSON: true}, &out); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(out.String()), &rep); err != nil || len(rep.Parts) != 1 || rep.Parts[0].Name != "part-001" {
		t.Errorf("show --json: %v %s", err, out.String())
	}
	if err := runRunScript(context.Background(), e, runScriptOptions{name: "part-001"}, &testkit.SyncBuffer{}); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(e.root, "runs")); string(b) != "run\nrun\n" {
		t.Errorf("runs after run-script: %q", b)
	}
	if err := runRunScript(context.Background(), e, runScriptOptions{name: "nope"}, &testkit.SyncBuffer{}); err == nil || !strings.Contains(err.Error(), `no part named "nope"`) {
		t.Errorf("run-script nope: %v", err)
	}
}

// TestRunDaemon: the daemon command's run, without cobra, runs an
// event's hook and ends with its context.
func TestRunDaemon(t *testing.T) {
	e, sim := testEnv(t, "")
	sim.Set("meta-data/spot/instance-action", `{"action": "terminate", "time": "2026-11-29T12:00:00Z"}`)
	writeFileT(t, filepath.Join(e.root, "etc/ec2init/hooks.d/spot-interruption/10-record"),
		[]byte("#!/bin/sh\necho \"$EC2INIT_EVENT\" > \"$EC2INIT_ROOT/hook-saw\"\n"), 0o755)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- runDaemon(ctx, e, daemonOptions{notify: func(string) {}}) }()
	var saw []byte
	for ctx.Err() == nil {
		if saw, _ = os.ReadFile(filepath.Join(e.root, "hook-saw")); len(saw) > 0 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
		t.Errorf("daemon: %v", err)
	}
	if got := strings.TrimSpace(string(saw)); got != "spot-interruption" {
		t.Errorf("the hook saw EC2INIT_EVENT=%q", got)
	}
}
