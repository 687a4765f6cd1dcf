// Package e2e boots a real systemd in a systemd-nspawn container with
// ec2init installed as the package installs it, against the IMDS
// simulator on the host's loopback (the container shares the host's
// network), and checks what an operator would: unit order, status, and that
// user data runs once per instance.
package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/ec2init/ec2init/agent/imds/imdssim"
)

// baseRootfs is a Debian rootfs with systemd (test/e2e/mkrootfs.sh makes
// it; .ci/run does that before the tests).
func baseRootfs(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("boots containers")
	}
	p := os.Getenv("EC2INIT_E2E_ROOTFS")
	if p == "" {
		p = "/var/tmp/ec2init-rootfs"
	}
	var missing []string
	if os.Geteuid() != 0 {
		missing = append(missing, "root")
	}
	if _, err := exec.LookPath("systemd-nspawn"); err != nil {
		missing = append(missing, "systemd-nspawn (package systemd-container)")
	}
	if _, err := os.Stat(filepath.Join(p, "lib/systemd/systemd")); err != nil {
		missing = append(missing, "a rootfs at "+p+" (run test/e2e/mkrootfs.sh)")
	}
	if len(missing) > 0 {
		if os.Getenv("CI") != "" {
			t.Fatalf("e2e prerequisites missing in CI: %s", strings.Join(missing, ", "))
		}
		t.Skipf("needs %s", strings.Join(missing, ", "))
	}
	return p
}

// install lays ec2init into a copy of the base rootfs as the package does:
// binary, units enabled through the preset's list, config.
func install(t *testing.T, base, endpoint string) string {
	t.Helper()
	dir, err := os.MkdirTemp("/var/tmp", "ec2init-e2e-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	root := filepath.Join(dir, "rootfs")
	run(t, "cp", "-a", base, root)

	_, file, _, _ := runtime.Caller(0)
	repo := filepath.Join(filepath.Dir(file), "..", "..")
	build := exec.Command("go", "build", "-o", filepath.Join(root, "usr/bin/ec2init"), "./cmd/ec2init")
	build.Dir = repo
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	units, err := filepath.Glob(filepath.Join(repo, "packaging/systemd/ec2init*"))
	if err != nil || len(units) != 5 {
		t.Fatalf("units: %v %v", units, err)
	}
	for _, u := range units {
		run(t, "cp", u, filepath.Join(root, "etc/systemd/system/"))
	}
	write(t, filepath.Join(root, "etc/ec2init/config.yaml"), "imds:\n  endpoint: "+endpoint+"\n")
	// A persistent journal, so the test can read it after the container
	// powered off.
	if err := os.MkdirAll(filepath.Join(root, "var/log/journal"), 0o755); err != nil {
		t.Fatal(err)
	}
	// The test's own unit: record the status once ec2init's work is done,
	// then power the container off.
	write(t, filepath.Join(root, "etc/systemd/system/e2e-done.service"), `[Unit]
Description=e2e: record the status, power off
After=ec2init-final.service
[Service]
Type=oneshot
ExecStart=/bin/sh -c '/usr/bin/ec2init status --long > /var/tmp/e2e-status.txt 2>&1; echo "exit=$?" >> /var/tmp/e2e-status.txt; echo "final-unit=$(systemctl is-active ec2init-final.service)" >> /var/tmp/e2e-status.txt'
ExecStartPost=/bin/systemctl poweroff --no-block
[Install]
WantedBy=ec2init.target
`)
	run(t, "systemctl", "--root="+root, "enable", "ec2init.target", "ec2init-local.service", "ec2init.service",
		"ec2init-config.service", "ec2init-final.service", "e2e-done.service")
	return root
}

// boot starts the container's systemd and waits until it powers off.
func boot(t *testing.T, root string) (status, console string) {
	t.Helper()
	os.Remove(filepath.Join(root, "var/tmp/e2e-status.txt"))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "systemd-nspawn", "-q", "-D", root, "--boot", "--register=no", "--keep-unit")
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("the container did not power off within 2 minutes:\n%s", tail(string(out), 40))
	}
	if err != nil {
		t.Logf("systemd-nspawn: %v", err)
	}
	b, err := os.ReadFile(filepath.Join(root, "var/tmp/e2e-status.txt"))
	if err != nil {
		t.Fatalf("no status recorded: %v\n%s", err, tail(string(out), 40))
	}
	return string(b), string(out)
}

func TestSystemdBoot(t *testing.T) {
	base := baseRootfs(t)
	for _, tool := range []string{"systemctl", "systemd-analyze"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s: %v", tool, err)
		}
	}
	sim, url := imdssim.Start(t, imdssim.Options{})
	sim.SetUserData([]byte("#!/bin/sh\necho run >> /var/tmp/user-data-runs\n"))
	root := install(t, base, url)

	// Every unit passes systemd's own checks, in the system they ship in.
	var unitPaths []string
	for _, u := range []string{"ec2init-local.service", "ec2init.service", "ec2init-config.service", "ec2init-final.service", "ec2init.target"} {
		unitPaths = append(unitPaths, filepath.Join(root, "etc/systemd/system", u))
	}
	if out, err := exec.Command("systemd-analyze", append([]string{"verify", "--root=" + root, "--man=no"}, unitPaths...)...).CombinedOutput(); err != nil {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}

	runs := func() int {
		b, _ := os.ReadFile(filepath.Join(root, "var/tmp/user-data-runs"))
		return strings.Count(string(b), "run\n")
	}
	status, console := boot(t, root)
	if !strings.Contains(status, "status: done") || !strings.Contains(status, "exit=0") || !strings.Contains(status, "final-unit=active") {
		t.Fatalf("first boot status:\n%s\nconsole:\n%s", status, tail(console, 40))
	}
	// Stages ran in unit order, each exactly once.
	// Stages ran in unit order, each starting after the previous finished
	// (the console shortens unit names: match their starts).
	plain := ansi.ReplaceAllString(console, "")
	units := []string{"ec2init-local.ser", "ec2init.service", "ec2init-config.se", "ec2init-final.ser"}
	last := -1
	for i, u := range units {
		start := strings.Index(plain, "Starting "+u)
		if start < 0 || start < last {
			t.Errorf("unit %s did not start, or started out of order", u)
			continue
		}
		if i > 0 && strings.Index(plain, "Finished "+units[i-1]) > start {
			t.Errorf("%s started before %s finished", u, units[i-1])
		}
		last = start
	}
	if strings.Contains(console, "ordering cycle") {
		t.Errorf("systemd found an ordering cycle:\n%s", tail(console, 60))
	}
	if runs() != 1 {
		t.Fatalf("first boot: user data ran %d times", runs())
	}
	// Under systemd the agent logs to the journal natively, with fields.
	journal, err := exec.Command("journalctl", "--directory="+filepath.Join(root, "var/log/journal"),
		"--no-pager", "-o", "json", "EC2INIT_STAGE=final", "INSTANCE_ID=i-0123456789abcdef0").CombinedOutput()
	if err != nil || !strings.Contains(string(journal), `"SYSLOG_IDENTIFIER":"ec2init"`) || !strings.Contains(string(journal), `"EC2INIT_MODULE":"scripts_user:part-001"`) {
		t.Errorf("journal entries with EC2INIT_STAGE=final: %v\n%s", err, tail(string(journal), 10))
	}

	// A reboot: the same instance, nothing per-instance again.
	status, _ = boot(t, root)
	if !strings.Contains(status, "skipped") || runs() != 1 {
		t.Errorf("reboot: user data ran %d times; status:\n%s", runs(), status)
	}

	// The disk booted as a new instance (an AMI of this one): first boot.
	sim.Set("meta-data/instance-id", "i-0e2e0e2e0e2e0e2e0")
	status, _ = boot(t, root)
	if !strings.Contains(status, "instance: i-0e2e0e2e0e2e0e2e0") || runs() != 2 {
		t.Errorf("new instance: user data ran %d times; status:\n%s", runs(), status)
	}
}

var ansi = regexp.MustCompile(`\x1b\[[0-9;]*m`)

func run(t *testing.T, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

func write(t *testing.T, p, body string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
