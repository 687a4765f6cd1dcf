package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestBootServer: `boot --serve` runs the whole boot in one process, each
// stage when `boot --stage S` asks for it, and exits after the final
// stage. The clients run with --lock-timeout=0: had one run its stage
// itself, the server's boot lock would have failed it at once.
func TestBootServer(t *testing.T) {
	root, ep := bootFixture(t, "#!/bin/sh\n:\n")
	server := exec.Command(binary, "boot", "--serve", "--root", root, ep, testBoot, "--log-level=error")
	server.Env = append(os.Environ(), "AWS_EC2_METADATA_SERVICE_ENDPOINT=", "NOTIFY_SOCKET=")
	var serverErr bytes.Buffer
	server.Stderr = &serverErr
	if err := server.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	done := make(chan struct{})
	go func() {
		exited <- server.Wait()
		close(done)
	}()
	t.Cleanup(func() {
		server.Process.Kill()
		<-done
	})
	sock := filepath.Join(root, bootSocket)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if fi, err := os.Stat(sock); err == nil {
			if fi.Mode().Perm() != 0o600 {
				t.Errorf("socket mode %v, want 0600", fi.Mode().Perm())
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no socket at %s: %s", sock, serverErr.String())
		}
	}
	// As the units run them: ec2init-stage for local, network and config,
	// the agent itself for final (it stays as the events daemon).
	client := stageClient(t)
	for _, stage := range []string{"local", "network", "config"} {
		r := runCLI(t, client, "--socket", sock, "--agent", "/bin/false", stage)
		if r.code != 0 {
			t.Fatalf("stage %s: exit %d: %s (server: %s)", stage, r.code, r.stderr, serverErr.String())
		}
	}
	if r := runCLI(t, binary, "boot", "--stage", "final", "--root", root, "--lock-timeout=0", "--log-level=error"); r.code != 0 {
		t.Fatalf("stage final: exit %d: %s (server: %s)", r.code, r.stderr, serverErr.String())
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("server: %v: %s", err, serverErr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the server did not exit after the final stage")
	}
	if _, err := os.Stat(sock); !os.IsNotExist(err) {
		t.Errorf("socket left behind: %v", err)
	}
	r := runCLI(t, binary, "status", "--root", root, testBoot)
	if r.code != 0 || !strings.HasPrefix(r.stdout, "status: done\n") {
		t.Errorf("status after a served boot: exit %d %q", r.code, r.stdout)
	}
	// With no server, a stage runs in its own process, as before.
	r = runCLI(t, binary, "boot", "--stage", "final", "--root", root, ep, testBoot, "--lock-timeout=0", "--log-level=error")
	if r.code != 0 {
		t.Errorf("a stage without a server: exit %d: %s", r.code, r.stderr)
	}
}

// stageClient builds cmd/ec2init-stage.
func stageClient(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "ec2init-stage")
	if out, err := exec.Command("go", "build", "-o", bin, "../ec2init-stage").CombinedOutput(); err != nil {
		t.Fatalf("build ec2init-stage: %v\n%s", err, out)
	}
	return bin
}

// TestStageClientFallsBack: with no boot process listening, ec2init-stage
// becomes the agent running the stage itself (a fake agent here, which
// records its arguments); a stage it does not know is refused.
func TestStageClientFallsBack(t *testing.T) {
	client := stageClient(t)
	dir := t.TempDir()
	agentBin := filepath.Join(dir, "agent")
	argsFile := filepath.Join(dir, "args")
	if err := os.WriteFile(agentBin, []byte("#!/bin/sh\necho \"$@\" > "+argsFile+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	r := runCLI(t, client, "--socket", filepath.Join(dir, "none.sock"), "--agent", agentBin, "network")
	if got, _ := os.ReadFile(argsFile); r.code != 0 || string(got) != "boot --stage network\n" {
		t.Errorf("fallback: exit %d %s, agent ran with %q", r.code, r.stderr, got)
	}
	if r := runCLI(t, client, "--socket", filepath.Join(dir, "none.sock"), "--agent", agentBin, "bogus"); r.code != 2 {
		t.Errorf("unknown stage: exit %d, want 2", r.code)
	}
}
