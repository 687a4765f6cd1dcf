package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ec2init/ec2init/agent"
	"github.com/ec2init/ec2init/agent/imds/imdssim"
)

const testBoot = "--boot-id=00000000-0000-4000-8000-00000000000a"

func bootFixture(t *testing.T, userData string) (root, ep string) {
	t.Helper()
	sim, url := imdssim.Start(t, imdssim.Options{})
	sim.SetUserData([]byte(userData))
	root = t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "out"), 0o755); err != nil {
		t.Fatal(err)
	}
	return root, "--endpoint=" + url
}

func TestBootAndStatusExitCodes(t *testing.T) {
	tests := []struct {
		name       string
		userData   string
		bootCode   int
		statusCode int
		statusLine string
	}{
		{"done", "#!/bin/sh\necho ok\n", 0, 0, "status: done\n"},
		{"failing script", "#!/bin/sh\nexit 4\n", 0, 2, "status: degraded\n"},
		{"malformed cloud-config", "#cloud-config\nruncmd: [\n", 1, 1, "status: error\n"},
		{"degraded", "echo no shebang\n", 0, 2, "status: degraded\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root, ep := bootFixture(t, tt.userData)
			r := runCLI(t, binary, "boot", "--root", root, ep, testBoot, "--log-level=error")
			if r.code != tt.bootCode {
				t.Fatalf("boot exit %d, want %d: %s", r.code, tt.bootCode, r.stderr)
			}
			r = runCLI(t, binary, "status", "--root", root, testBoot)
			if r.code != tt.statusCode || !strings.HasPrefix(r.stdout, tt.statusLine) {
				t.Errorf("status exit %d %q, want %d %q", r.code, r.stdout, tt.statusCode, tt.statusLine)
			}
			r = runCLI(t, binary, "status", "--json", "--root", root, testBoot)
			var st map[string]any
			if err := json.Unmarshal([]byte(r.stdout), &st); err != nil || st["instance_id"] != "i-0123456789abcdef0" {
				t.Errorf("status --json: %v %q", err, r.stdout)
			}
		})
	}
}

// TestStatusWait takes over a second: the boot's script sleeps one, for
// status --wait to have something to wait for.
func TestStatusWait(t *testing.T) {
	root, ep := bootFixture(t, "#!/bin/sh\nsleep 1\n")
	r := runCLI(t, binary, "status", "--root", root, testBoot)
	if r.code != 3 || !strings.Contains(r.stdout, "not started") {
		t.Errorf("before any boot: %+v", r)
	}
	r = runCLI(t, binary, "status", "--wait", "--timeout", "300ms", "--root", root, testBoot)
	if r.code != 3 || !strings.Contains(r.stderr, "still running after 300ms") {
		t.Errorf("wait with timeout: %+v", r)
	}

	boot := exec.Command(binary, "boot", "--root", root, ep, testBoot, "--log-level=error")
	if err := boot.Start(); err != nil {
		t.Fatal(err)
	}
	defer boot.Wait()
	begin := time.Now()
	r = runCLI(t, binary, "status", "--wait", "--timeout", "30s", "--root", root, testBoot)
	if r.code != 0 || !strings.HasPrefix(r.stdout, "status: done") {
		t.Errorf("wait: %+v", r)
	}
	if time.Since(begin) < 500*time.Millisecond {
		t.Errorf("status --wait returned before the 1s script could finish")
	}
}

// TestStatusWaitWhenDisabled: with ec2init or cloud-init switched off no
// boot will come; status --wait says so at once, and exits 0.
func TestStatusWaitWhenDisabled(t *testing.T) {
	for _, marker := range []string{"etc/ec2init/disabled", "etc/cloud/cloud-init.disabled"} {
		root := t.TempDir()
		if err := os.MkdirAll(filepath.Join(root, filepath.Dir(marker)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, marker), nil, 0o644); err != nil {
			t.Fatal(err)
		}
		r := runCLI(t, binary, "status", "--wait", "--timeout", "5s", "--root", root, testBoot)
		if r.code != 0 || !strings.Contains(r.stdout, "status: disabled (/"+marker+")") {
			t.Errorf("%s: %+v", marker, r)
		}
	}
}

func TestStatusWaitEndsWithoutMetadataSource(t *testing.T) {
	root := t.TempDir()
	r := runCLI(t, binary, "boot", "--root", root, "--endpoint", "http://127.0.0.1:1", "--identify-deadline", "300ms", testBoot, "--log-level=error")
	if r.code != 1 || !strings.Contains(r.stderr, "no metadata source") {
		t.Errorf("boot: %+v", r)
	}
	r = runCLI(t, binary, "status", "--wait", "--timeout", "5s", "--root", root, testBoot)
	if r.code != 1 || !strings.Contains(r.stdout, "no metadata source") {
		t.Errorf("status --wait after no source: %+v", r)
	}
}

func TestCleanAndUserDataCommands(t *testing.T) {
	root, ep := bootFixture(t, "#!/bin/sh\necho run >> \"$EC2INIT_ROOT/out/runs\"\n")
	if r := runCLI(t, binary, "boot", "--root", root, ep, testBoot, "--log-level=error"); r.code != 0 {
		t.Fatalf("boot: %+v", r)
	}
	r := runCLI(t, binary, "userdata", "show", "--root", root, testBoot)
	if r.code != 0 || !strings.Contains(r.stdout, "part-001") || !strings.Contains(r.stdout, "final, per-instance  yes") {
		t.Errorf("userdata show: %+v", r)
	}
	r = runCLI(t, binary, "userdata", "run-script", "part-001", "--root", root, testBoot, "--log-level=error")
	if r.code != 0 {
		t.Errorf("run-script: %+v", r)
	}
	if b, _ := os.ReadFile(filepath.Join(root, "out/runs")); string(b) != "run\nrun\n" {
		t.Errorf("runs after run-script: %q", b)
	}
	if r := runCLI(t, binary, "userdata", "run-script", "nope", "--root", root, testBoot); r.code != 1 || !strings.Contains(r.stderr, `no part named "nope"`) {
		t.Errorf("run-script nope: %+v", r)
	}

	for _, p := range []string{"etc/machine-id", "etc/ssh/ssh_host_ed25519_key", "etc/ssh/ssh_host_ed25519_key.pub", "etc/ssh/sshd_config"} {
		if err := os.MkdirAll(filepath.Join(root, filepath.Dir(p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, p), []byte("x\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	r = runCLI(t, binary, "clean", "--logs", "--machine-id", "--ssh-host-keys", "--root", root)
	if r.code != 0 {
		t.Fatalf("clean: %+v", r)
	}
	for p, wantExists := range map[string]bool{
		"var/lib/ec2init/instances/i-0123456789abcdef0": false,
		"var/log/ec2init-output.log":                    false,
		"etc/ssh/ssh_host_ed25519_key":                  false,
		"etc/ssh/ssh_host_ed25519_key.pub":              false,
		"etc/ssh/sshd_config":                           true,
	} {
		if _, err := os.Stat(filepath.Join(root, p)); (err == nil) != wantExists {
			t.Errorf("%s: exists=%v after clean, want %v", p, err == nil, wantExists)
		}
	}
	if b, err := os.ReadFile(filepath.Join(root, "etc/machine-id")); err != nil || len(b) != 0 {
		t.Errorf("machine-id after clean: %q %v", b, err)
	}
	// After clean the next boot is a first boot: the script runs again.
	if r := runCLI(t, binary, "boot", "--root", root, ep, "--boot-id=00000000-0000-4000-8000-00000000000b", "--log-level=error"); r.code != 0 {
		t.Fatalf("boot after clean: %+v", r)
	}
	if b, _ := os.ReadFile(filepath.Join(root, "out/runs")); string(b) != "run\nrun\nrun\n" {
		t.Errorf("runs after clean and boot: %q", b)
	}
}

func TestDemo(t *testing.T) {
	r := runCLI(t, binary, "demo")
	if r.code != 0 {
		t.Fatalf("demo: %+v", r)
	}
	for _, want := range []string{
		"setup.sh ran for: i-0123456789abcdef0, i-0fedcba9876543210",
		"scripts_user:setup.sh                per-instance  skipped (already ran)",
		"every-boot.sh: boot of i-0fedcba9876543210",
		"write_files wrote /etc/motd: Configured by ec2init",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("demo output lacks %q:\n%s", want, r.stdout)
		}
	}
}

// TestNoSecretsInLogs plants a secret in user data and in the instance
// role's credentials, boots at debug level, and greps every log.
func TestNoSecretsInLogs(t *testing.T) {
	const secret = "PLANTED-SECRET-7f3a"
	root, ep := bootFixture(t, "#!/bin/sh\n# token="+secret+"\necho done\n")
	r := runCLI(t, binary, "boot", "--root", root, ep, testBoot, "--log-level=debug")
	if r.code != 0 {
		t.Fatalf("boot: %+v", r)
	}
	logFile, err := os.ReadFile(filepath.Join(root, "var/log/ec2init.log"))
	if err != nil || len(logFile) == 0 {
		t.Fatalf("ec2init.log: %v", err)
	}
	for name, text := range map[string]string{"ec2init.log": string(logFile), "stderr": r.stderr} {
		for _, s := range []string{secret, "wJalrXUtnFEMI/K7MDENG", "IQoJb3JpZ2luX2VjEXAMPLESESSIONTOKEN"} {
			if strings.Contains(text, s) {
				t.Errorf("%s contains %q", name, s)
			}
		}
	}
	fi, err := os.Stat(filepath.Join(root, "var/log/ec2init.log"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("ec2init.log mode: %v %v", fi.Mode(), err)
	}
}

func TestModulesDocCurrent(t *testing.T) {
	want, err := os.ReadFile(filepath.Join("..", "..", "docs", "modules.md"))
	if err != nil {
		t.Fatal(err)
	}
	r := runCLI(t, binary, "modules", "--markdown")
	if r.code != 0 || r.stdout != string(want) {
		t.Errorf("docs/modules.md is stale: run `go run ./cmd/ec2init modules --markdown > docs/modules.md`")
	}
}

func TestSchemaCommand(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("#cloud-config\nruncmd: echo hi\nfrobnicate: true\n"), 0o600)
	r := runCLI(t, binary, "schema", bad)
	if r.code != 1 || !strings.Contains(r.stdout, bad+":2:9: error: runcmd: expected list of") ||
		!strings.Contains(r.stdout, bad+":3:1: warning: frobnicate: not supported by ec2init") {
		t.Errorf("schema bad.yaml: %+v", r)
	}
	good := filepath.Join(dir, "good.yaml")
	os.WriteFile(good, []byte("runcmd:\n  - [echo, hi]\n"), 0o600)
	if r := runCLI(t, binary, "schema", good); r.code != 0 || !strings.Contains(r.stdout, "valid cloud-config") {
		t.Errorf("schema good.yaml: %+v", r)
	}
	mime := filepath.Join(dir, "ud.txt")
	os.WriteFile(mime, []byte("Content-Type: multipart/mixed; boundary=\"b\"\nMIME-Version: 1.0\n\n--b\nContent-Type: text/x-shellscript\n\n#!/bin/sh\necho\n--b\nContent-Type: text/cloud-config\nContent-Disposition: attachment; filename=\"c.yaml\"\n\n#cloud-config\nbootcmd: 3\n--b--\n"), 0o600)
	if r := runCLI(t, binary, "schema", "--annotate", mime); r.code != 1 || !strings.Contains(r.stdout, "bootcmd: 3\t\t# E1") {
		t.Errorf("schema --annotate user data: %+v", r)
	}
}

func TestAnalyze(t *testing.T) {
	root, ep := bootFixture(t, "#!/bin/sh\nsleep 0.2\n")
	if r := runCLI(t, binary, "analyze", "show", "--root", root, testBoot); r.code == 0 || !strings.Contains(r.stderr, "no boot recorded") {
		t.Errorf("analyze before a boot: %+v", r)
	}
	if r := runCLI(t, binary, "boot", "--root", root, ep, testBoot, "--log-level=error"); r.code != 0 {
		t.Fatalf("boot: %+v", r)
	}
	r := runCLI(t, binary, "analyze", "show", "--json", "--root", root, testBoot)
	var rows []map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &rows); err != nil {
		t.Fatalf("analyze show --json: %v %q", err, r.stdout)
	}
	// Every stage, and each module that ran, by name (which modules run
	// without keys changes as modules arrive: not counted here).
	seen := map[string]int{}
	for _, row := range rows {
		if m, ok := row["module"].(string); ok {
			seen[m]++
		} else {
			seen["stage:"+row["stage"].(string)]++
		}
	}
	for _, want := range []string{"stage:local", "stage:network", "stage:config", "stage:final", "users_groups", "ssh", "scripts_user:part-001", "final_message"} {
		if seen[want] != 1 {
			t.Errorf("analyze show --json: %s appears %d times in %q", want, seen[want], r.stdout)
		}
	}
	r = runCLI(t, binary, "analyze", "blame", "--root", root, testBoot)
	if r.code != 0 || !strings.Contains(r.stdout, "scripts_user:part-001") {
		t.Errorf("analyze blame: %+v", r)
	}
	r = runCLI(t, binary, "analyze", "boot", "--root", root, testBoot)
	if r.code != 0 || !strings.Contains(r.stdout, "ec2init took (seconds):") {
		t.Errorf("analyze boot: %+v", r)
	}
}

// TestDaemonFactsFromInstanceEnv: started after a boot, the daemon gives
// hooks the facts of the instance.env the boot wrote, instead of crawling
// IMDS again; without one it crawls.
func TestDaemonFactsFromInstanceEnv(t *testing.T) {
	for _, withEnv := range []bool{true, false} {
		t.Run(fmt.Sprintf("instance.env=%v", withEnv), func(t *testing.T) {
			sim, url := imdssim.Start(t, imdssim.Options{})
			sim.Set("meta-data/spot/instance-action", `{"action": "terminate", "time": "2026-11-29T12:00:00Z"}`)
			root := t.TempDir()
			hook := filepath.Join(root, "etc/ec2init/hooks.d/spot-interruption/10-record")
			writeFileT(t, hook, []byte("#!/bin/sh\necho \"$EC2_INSTANCE_ID\" > \"$EC2INIT_ROOT/hook-saw\"\n"), 0o755)
			want := "i-0123456789abcdef0" // the simulator's
			if withEnv {
				want = "i-fromtheinstanceenv"
				writeFileT(t, filepath.Join(root, "run/ec2init/instance.env"), agent.EnvFile(map[string]string{"EC2_INSTANCE_ID": want}), 0o644)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, binary, "daemon", "--root", root, "--endpoint="+url, "--log-level=error")
			cmd.Env = append(os.Environ(), "AWS_EC2_METADATA_SERVICE_ENDPOINT=")
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer func() { cmd.Process.Kill(); cmd.Wait() }()
			var saw []byte
			for ctx.Err() == nil {
				if saw, _ = os.ReadFile(filepath.Join(root, "hook-saw")); len(saw) > 0 {
					break
				}
				time.Sleep(50 * time.Millisecond)
			}
			if got := strings.TrimSpace(string(saw)); got != want {
				t.Errorf("the hook saw EC2_INSTANCE_ID=%q, want %q", got, want)
			}
			crawled := sim.Stats().ByPath["meta-data/"] > 0
			if crawled == withEnv {
				t.Errorf("IMDS crawled: %v (requests by path: %v)", crawled, sim.Stats().ByPath)
			}
		})
	}
}
