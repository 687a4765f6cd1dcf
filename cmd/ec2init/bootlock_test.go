package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestBootLockTimeoutFlag: while another process holds the boot lock,
// `boot --lock-timeout=0` fails at once naming the lock and its holder,
// and runs nothing.
func TestBootLockTimeoutFlag(t *testing.T) {
	root, ep := bootFixture(t, "#!/bin/sh\necho run >> \"$EC2INIT_ROOT/out/runs\"\n")
	lockPath := filepath.Join(root, "run/ec2init/boot.lock")
	if err := os.MkdirAll(filepath.Dir(lockPath), 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(lockPath, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	f.WriteString("4242\n")

	r := runCLI(t, binary, "boot", "--root="+root, ep, testBoot, "--lock-timeout=0")
	if r.code == 0 || !strings.Contains(r.stderr, "/run/ec2init/boot.lock (pid 4242)") {
		t.Errorf("boot while locked: %+v", r)
	}
	if _, err := os.Stat(filepath.Join(root, "out/runs")); err == nil {
		t.Error("the script ran while another boot held the lock")
	}

	unix.Flock(int(f.Fd()), unix.LOCK_UN)
	if r := runCLI(t, binary, "boot", "--root="+root, ep, testBoot, "--lock-timeout=0"); r.code != 0 {
		t.Errorf("boot after the lock was released: %+v", r)
	}
}
