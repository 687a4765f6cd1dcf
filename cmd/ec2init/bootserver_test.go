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
	for _, stage := range []string{"local", "network", "config", "final"} {
		r := runCLI(t, binary, "boot", "--stage", stage, "--root", root, "--lock-timeout=0", "--log-level=error")
		if r.code != 0 {
			t.Fatalf("stage %s: exit %d: %s (server: %s)", stage, r.code, r.stderr, serverErr.String())
		}
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
