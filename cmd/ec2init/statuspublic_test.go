package main

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/ec2init/ec2init/internal/testkit"
)

// TestStatusMessagesNeedRoot: `status` shows root every message; anyone
// else reads the world-readable copy, which names what failed and says the
// details need root.
func TestStatusMessagesNeedRoot(t *testing.T) {
	testkit.RequireRoot(t, "needs root to run status as another user")
	root, ep := bootFixture(t, "#!/bin/sh\nexit 3\n")
	if r := runCLI(t, binary, "boot", "--root="+root, ep, testBoot); r.code != 0 {
		t.Fatalf("boot: %+v", r)
	}
	r := runCLI(t, binary, "status", "--root="+root, testBoot)
	if r.code != 2 || !strings.Contains(r.stdout, "scripts_user:part-001: exit status 3") {
		t.Errorf("status as root: %+v", r)
	}

	// Someone else: the binary and the root made reachable, nothing more.
	for _, d := range []string{filepath.Dir(root), root} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	bin := filepath.Join(root, "ec2init")
	copyFile(t, binary, bin)
	cmd := exec.Command(bin, "status", "--root="+root, testBoot)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 {
		t.Errorf("status as nobody: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "scripts_user:part-001: details need root") || strings.Contains(out.String(), "exit status 3") {
		t.Errorf("status as nobody:\n%s", out.String())
	}
}

func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}
