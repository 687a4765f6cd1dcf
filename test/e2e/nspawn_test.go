// Package e2e boots a real systemd in a systemd-nspawn container with
// ec2init installed as the package installs it, against the IMDS
// simulator on the host's loopback (the container shares the host's
// network), and checks what an operator would: unit order, status, and that
// user data runs once per instance.
package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
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

// install copies the base rootfs and installs the freshly built .deb
// into it with dpkg, as an AMI builder would (the package's postinst
// enables the units by preset), then points the config at the simulator.
func install(t *testing.T, base, endpoint string) string {
	t.Helper()
	deb, _ := buildPackages(t)
	dir, err := os.MkdirTemp("/var/tmp", "ec2init-e2e-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	root := filepath.Join(dir, "rootfs")
	run(t, "cp", "-a", base, root)
	run(t, "cp", deb, filepath.Join(root, "tmp", "ec2init.deb"))
	run(t, "chroot", root, "dpkg", "-i", "/tmp/ec2init.deb")

	write(t, filepath.Join(root, "etc/ec2init/conf.d/50-e2e.yaml"), "imds:\n  endpoint: "+endpoint+"\n  max_attempts: 2\n")
	// The container shares the host's network (it reaches the simulator on
	// loopback): its sshd listens on a free port, not on 22, which the
	// host's own sshd (or another test's container) may hold.
	write(t, filepath.Join(root, "etc/ssh/sshd_config.d/50-e2e.conf"), fmt.Sprintf("Port %d\nListenAddress 127.0.0.1\n", freePort(t)))
	// A persistent journal, so the test can read it after the container
	// powered off.
	if err := os.MkdirAll(filepath.Join(root, "var/log/journal"), 0o755); err != nil {
		t.Fatal(err)
	}
	// The test's own unit: once ec2init's boot work is done (and, when the
	// test asks, a hook has run), record the status and power off.
	write(t, filepath.Join(root, "etc/systemd/system/e2e-done.service"), `[Unit]
Description=e2e: record the status, power off
After=ec2init-final.service
[Service]
Type=oneshot
ExecStart=/bin/sh -c 'for i in $(seq 300); do [ -e /var/tmp/e2e-wait-for ] && [ ! -e "$(cat /var/tmp/e2e-wait-for)" ] || break; sleep 0.1; done; /usr/bin/ec2init status --long > /var/tmp/e2e-status.txt 2>&1; echo "exit=$?" >> /var/tmp/e2e-status.txt; echo "final-unit=$(systemctl is-active ec2init-final.service)" >> /var/tmp/e2e-status.txt; echo "sessions=$(systemctl is-active systemd-user-sessions.service)" >> /var/tmp/e2e-status.txt; echo "sshd=$(systemctl is-active ssh.service)" >> /var/tmp/e2e-status.txt; echo "hostname=$(hostname) file=$(cat /etc/hostname)" >> /var/tmp/e2e-status.txt; echo "e2e-hello=$(systemctl is-active e2e-hello.service)/$(systemctl is-enabled e2e-hello.service) hello-ran=$(cat /var/tmp/e2e-hello 2>/dev/null | wc -l)" >> /var/tmp/e2e-status.txt'
ExecStartPost=/bin/systemctl poweroff --no-block
[Install]
WantedBy=ec2init.target
`)
	run(t, "systemctl", "--root="+root, "enable", "e2e-done.service")
	return root
}

// artifactOrigin is an https server on loopback holding a software list's
// artifacts, counting requests.
type artifactOrigin struct {
	*httptest.Server
	requests atomic.Int64
}

// softwareInImage puts a software list into the image's cloud-config (as
// `ec2init bake --config` leaves it): a script and a unit running it, both
// policy boot, fetched over https from an origin whose CA is in ca_file.
func softwareInImage(t *testing.T, root string) *artifactOrigin {
	t.Helper()
	files := map[string][]byte{
		"/hello":         []byte("#!/bin/sh\necho hello >> /var/tmp/e2e-hello\n"),
		"/hello.service": []byte("[Unit]\nDescription=e2e: a unit the software module installed\n[Service]\nType=oneshot\nRemainAfterExit=yes\nExecStart=/usr/local/bin/e2e-hello\n[Install]\nWantedBy=multi-user.target\n"),
	}
	o := &artifactOrigin{}
	o.Server = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		o.requests.Add(1)
		b, ok := files[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Write(b)
	}))
	t.Cleanup(o.Close)
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: o.Certificate().Raw})
	write(t, filepath.Join(root, "etc/ec2init/e2e-ca.pem"), string(ca))
	sum := func(p string) string { h := sha256.Sum256(files[p]); return hex.EncodeToString(h[:]) }
	write(t, filepath.Join(root, "etc/ec2init/cloud.cfg.d/50-e2e-software.cfg"), fmt.Sprintf(`software:
  ca_file: /etc/ec2init/e2e-ca.pem
  items:
    - name: hello
      source: %[1]s/hello
      sha256: %[2]s
      install: {type: file, dest: /usr/local/bin/e2e-hello, mode: '0755'}
    - name: hello-unit
      source: %[1]s/hello.service
      sha256: %[3]s
      install: {type: file, dest: /etc/systemd/system/e2e-hello.service}
      service: {unit: e2e-hello.service, enable: true, start: true}
`, o.URL, sum("/hello"), sum("/hello.service")))
	return o
}

// freePort returns a loopback TCP port nothing listens on now.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
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
	origin := softwareInImage(t, root)

	// Every unit passes systemd's own checks, in the system they ship in.
	var unitPaths []string
	for _, u := range []string{"ec2init-local.service", "ec2init.service", "ec2init-config.service", "ec2init-final.service", "ec2init.target"} {
		unitPaths = append(unitPaths, filepath.Join(root, "usr/lib/systemd/system", u))
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
	// set_hostname named the container from IMDS local-hostname (Debian:
	// the short name), live and in /etc/hostname.
	if !strings.Contains(status, "hostname=ip-10-0-1-23 file=ip-10-0-1-23\n") {
		t.Errorf("first boot: hostname not set from IMDS:\n%s", status)
	}
	// The image's software list: both items fetched over https from the
	// origin (its CA in ca_file), verified, installed, and the unit
	// enabled and started through systemd's D-Bus API.
	if !strings.Contains(status, "e2e-hello=active/enabled") || !strings.Contains(status, "hello-ran=1") {
		t.Errorf("first boot: the software items' unit is not running:\n%s", status)
	}
	if n := origin.requests.Load(); n != 2 {
		t.Errorf("first boot: %d requests to the artifact origin, want 2", n)
	}
	// Under systemd the agent logs to the journal natively, with fields.
	journal, err := exec.Command("journalctl", "--directory="+filepath.Join(root, "var/log/journal"),
		"--no-pager", "-o", "json", "EC2INIT_STAGE=final", "INSTANCE_ID=i-0123456789abcdef0").CombinedOutput()
	if err != nil || !strings.Contains(string(journal), `"SYSLOG_IDENTIFIER":"ec2init"`) || !strings.Contains(string(journal), `"EC2INIT_MODULE":"scripts_user:part-001"`) {
		t.Errorf("journal entries with EC2INIT_STAGE=final: %v\n%s", err, tail(string(journal), 10))
	}

	// One process ran the boot: ec2init-main served every stage its unit
	// asked for (the stage units' clients fall back silently, so this is
	// where a broken server would show).
	served, err := exec.Command("journalctl", "--directory="+filepath.Join(root, "var/log/journal"),
		"--no-pager", "-o", "cat", "-b", "0", "-u", "ec2init-main.service").CombinedOutput()
	if err != nil || strings.Count(string(served), "boot server: stages asked") != 4 {
		t.Errorf("ec2init-main served %d stage requests, want 4: %v\n%s", strings.Count(string(served), "boot server: stages asked"), err, tail(string(served), 10))
	}

	// Boot overhead: from the local unit's start to READY of the final one,
	// by the container's journal (reported, not asserted: a measurement).
	if out, err := exec.Command("journalctl", "--directory="+filepath.Join(root, "var/log/journal"), "--no-pager",
		"-o", "json", "-b", "0", "_PID=1").Output(); err == nil {
		var start, ready float64
		for _, line := range strings.Split(string(out), "\n") {
			var e map[string]string
			if json.Unmarshal([]byte(line), &e) != nil {
				continue
			}
			ts, _ := strconv.ParseFloat(e["__MONOTONIC_TIMESTAMP"], 64)
			switch {
			case strings.HasPrefix(e["MESSAGE"], "Starting ec2init-local.service") && start == 0:
				start = ts
			case strings.HasPrefix(e["MESSAGE"], "Started ec2init-final.service"):
				ready = ts
			}
		}
		if start > 0 && ready > start {
			t.Logf("first boot: ec2init-local start to ec2init-final READY: %.0f ms (journal)", (ready-start)/1000)
		}
	}

	// A reboot: the same instance, nothing per-instance again.
	status, _ = boot(t, root)
	if n := origin.requests.Load(); n != 2 || !strings.Contains(status, "e2e-hello=active/enabled") {
		t.Errorf("reboot: %d requests to the artifact origin (want none since the first boot), unit:\n%s", n, status)
	}
	if !strings.Contains(status, "skipped") || runs() != 1 {
		t.Errorf("reboot: user data ran %d times; status:\n%s", runs(), status)
	}

	// The default user got the instance's key pair before sshd started,
	// and the first boot made host keys.
	keyFile := filepath.Join(root, "home/admin/.ssh/authorized_keys")
	keys, err := os.ReadFile(keyFile)
	if err != nil || !strings.Contains(string(keys), " my-key") {
		t.Errorf("first boot: authorized_keys %q, %v", keys, err)
	}
	hostKey := func() string {
		b, _ := os.ReadFile(filepath.Join(root, "etc/ssh/ssh_host_ed25519_key.pub"))
		return string(b)
	}
	firstHostKey := hostKey()
	if firstHostKey == "" {
		t.Error("no host key after the first boot")
	}
	// sshd needs host keys: it starts only because ec2init.service, ordered
	// before it, made them.
	if !strings.Contains(status, "sshd=active") {
		journal, _ := exec.Command("journalctl", "--directory="+filepath.Join(root, "var/log/journal"), "--no-pager",
			"-u", "ssh.service").CombinedOutput()
		t.Errorf("sshd not running after the first boot:\n%s\nssh.service's journal:\n%s", status, tail(string(journal), 30))
	}

	// The disk booted as a new instance (an AMI of this one) launched with
	// a new key pair (the seed's lost-key recovery): first boot again.
	const newKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHm1bOOkSGMqvRrTMKdcx4yR7YR6pNCgW2u0KxZqYPJz recovery-key"
	sim.Set("meta-data/instance-id", "i-0e2e0e2e0e2e0e2e0")
	sim.Delete("meta-data/public-keys")
	sim.Set("meta-data/public-keys/0=recovery-key/openssh-key", newKey)
	status, _ = boot(t, root)
	if !strings.Contains(status, "instance: i-0e2e0e2e0e2e0e2e0") || runs() != 2 {
		t.Errorf("new instance: user data ran %d times; status:\n%s", runs(), status)
	}
	keys, _ = os.ReadFile(keyFile)
	if !strings.Contains(string(keys), "recovery-key") || strings.Contains(string(keys), " my-key") {
		t.Errorf("new instance: authorized_keys %q: want the new key pair only", keys)
	}
	if h := hostKey(); h == "" || h == firstHostKey {
		t.Error("new instance: host keys not renewed")
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

// TestSystemdBootHardCases: IMDS down for the first seconds of boot, user
// data that fails, and a Spot interruption notice while the daemon runs.
func TestSystemdBootHardCases(t *testing.T) {
	base := baseRootfs(t)
	// Reserve a port, and serve IMDS on it only 5 seconds after the boot
	// begins.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	sim := imdssim.New(imdssim.Options{})
	t.Cleanup(func() { sim.Close() })
	sim.SetUserData([]byte("#!/bin/sh\necho ran >> /var/tmp/failing-runs\nexit 3\n"))
	root := install(t, base, "http://"+addr)
	write(t, filepath.Join(root, "etc/ec2init/hooks.d/spot-interruption/10-record"), "#!/bin/sh\ncat >> /var/tmp/spot-hook\necho >> /var/tmp/spot-hook\n")
	if err := os.Chmod(filepath.Join(root, "etc/ec2init/hooks.d/spot-interruption/10-record"), 0o755); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(root, "var/tmp/e2e-wait-for"), "/var/tmp/spot-hook")

	go func() {
		time.Sleep(5 * time.Second)
		if _, err := sim.Start(addr); err != nil {
			t.Errorf("start the simulator late: %v", err)
			return
		}
		// The Spot notice appears once the daemon is watching: after its
		// first poll of spot/instance-action.
		for i := 0; i < 600 && sim.Stats().ByPath["meta-data/spot/instance-action"] == 0; i++ {
			time.Sleep(50 * time.Millisecond)
		}
		sim.Set("meta-data/spot/instance-action", `{"action": "terminate", "time": "2026-11-29T09:00:00Z"}`)
	}()
	status, console := boot(t, root)
	if !strings.Contains(status, "status: degraded") || !strings.Contains(status, "exit status 3") || !strings.Contains(status, "exit=2") {
		t.Errorf("failing user data: status:\n%s\nconsole:\n%s", status, tail(console, 30))
	}
	if !strings.Contains(status, "sessions=active") {
		t.Errorf("logins blocked after failing user data:\n%s", status)
	}
	if b, _ := os.ReadFile(filepath.Join(root, "var/tmp/failing-runs")); string(b) != "ran\n" {
		t.Errorf("failing user data ran %q", b)
	}
	hook, err := os.ReadFile(filepath.Join(root, "var/tmp/spot-hook"))
	if err != nil || strings.Count(string(hook), "terminate") != 1 {
		t.Errorf("spot hook: %q, %v", hook, err)
	}
}
