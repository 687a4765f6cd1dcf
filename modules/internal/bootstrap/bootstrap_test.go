package bootstrap

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ec2init/ec2init/agent/fetch"
	"github.com/ec2init/ec2init/agent/sys"
	"github.com/ec2init/ec2init/internal/testkit"
	"github.com/ec2init/ec2init/modules/modtest"
)

func TestFetch(t *testing.T) {
	body := []byte("#!/bin/sh\necho installed\n")
	sum := sha256.Sum256(body)
	good := hex.EncodeToString(sum[:])
	o := testkit.NewOrigin(t, nil)
	u := o.Put("/install.sh", body)
	tests := []struct {
		name, url, sha, wantErr string
	}{
		{"https, no checksum", u, "", ""},
		{"https, checksum", u, strings.ToUpper(good), ""},
		{"checksum mismatch", u, strings.Repeat("0", 64), "sha256 mismatch"},
		{"not hex", u, "abc", "x_sha256: not a sha256"},
		{"http without a checksum", "http://127.0.0.1:1/install.sh", "", "without x_sha256 the installer is fetched over https only"},
		{"missing", o.URL + "/nope", "", "HTTP 404"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, _ := modtest.Env(t)
			e.Fetcher = fetch.New(fetch.Options{Client: o.Client(), Attempts: 1})
			got, err := Fetch(context.Background(), e, Script{URL: tt.url, URLKey: "x_url", SHA256: tt.sha, SHA256Key: "x_sha256", Attempts: 1})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				if tt.name == "checksum mismatch" && !errors.Is(err, ErrChecksum) {
					t.Errorf("%v is not ErrChecksum", err)
				}
				return
			}
			if err != nil || string(got) != string(body) {
				t.Fatalf("Fetch = %q, %v", got, err)
			}
		})
	}
}

func TestRunScript(t *testing.T) {
	e, console := modtest.Env(t)
	dir := t.TempDir()
	mark := filepath.Join(dir, "ran")
	err := RunScript(context.Background(), e, "installer", []byte("#!/bin/sh\necho \"$@\" > "+mark+"\necho hello\n"), []string{"-v", "1.2"})
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(mark); string(b) != "-v 1.2\n" {
		t.Errorf("script got args %q", b)
	}
	if !strings.Contains(console.String(), "hello") {
		t.Errorf("output not in the output log: %q", console)
	}
	if got := modtest.Get(t, e, ScriptDir+"/installer"); got != "<absent>" {
		t.Errorf("script left behind")
	}
	err = RunScript(context.Background(), e, "installer", []byte("#!/bin/sh\nexit 3\n"), nil)
	if err == nil || !strings.Contains(err.Error(), "installer: exit status 3") {
		t.Errorf("err = %v", err)
	}
}

// TestServiceArgv: under a root prefix, enable and disable act on the
// image (systemctl --root) and start is skipped; on the host both run.
func TestServiceArgv(t *testing.T) {
	e, _ := modtest.Env(t)
	log := filepath.Join(t.TempDir(), "argv")
	bin := testkit.FakeBin(t, map[string]string{"systemctl": "#!/bin/sh\necho \"systemctl $*\" >> " + log + "\n"})
	e.Runner.Env = map[string]string{"PATH": bin + ":" + sys.DefaultPath}
	ctx := context.Background()
	for _, verb := range []string{"enable", "restart", "disable", "stop"} {
		if err := Service(ctx, e, verb, "salt-minion"); err != nil {
			t.Fatal(err)
		}
	}
	b, _ := os.ReadFile(log)
	want := "systemctl --root=" + e.Root.Prefix() + " enable salt-minion\nsystemctl --root=" + e.Root.Prefix() + " disable salt-minion\n"
	if string(b) != want {
		t.Errorf("systemctl runs:\n%s\nwant:\n%s", b, want)
	}
	failing := testkit.FakeBin(t, map[string]string{"systemctl": "#!/bin/sh\necho 'Failed to enable unit: Unit file x.service does not exist.' >&2\nexit 1\n"})
	e.Runner.Env["PATH"] = failing
	err := Service(ctx, e, "enable", "x.service")
	if err == nil || !strings.Contains(err.Error(), "exit status 1: Failed to enable unit") {
		t.Errorf("err = %v", err)
	}
}

// TestServiceEnableReal enables a unit in a temporary root with the real
// systemctl --root, and checks the link it makes.
func TestServiceEnableReal(t *testing.T) {
	if _, err := exec.LookPath("systemctl"); err != nil {
		t.Skip("systemctl not installed")
	}
	e, _ := modtest.Env(t)
	modtest.Put(t, e, "/lib/systemd/system/demo.service", "[Service]\nExecStart=/bin/true\n[Install]\nWantedBy=multi-user.target\n")
	if err := Service(context.Background(), e, "enable", "demo.service"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Root.Stat("/etc/systemd/system/multi-user.target.wants/demo.service"); err != nil {
		t.Errorf("not enabled: %v", err)
	}
}

func TestInstalled(t *testing.T) {
	e, _ := modtest.Env(t)
	bin := testkit.FakeBin(t, map[string]string{"tool": "#!/bin/sh\n"})
	e.Runner.Env = map[string]string{"PATH": bin}
	if !Installed(e, "tool") || Installed(e, "other") || !Installed(e, filepath.Join(bin, "tool")) {
		t.Error("Installed is wrong on the running system")
	}
	// Chrooted, the root's PATH directories count, not the host's.
	e.Runner.Chroot = true
	e.Runner.Env = nil
	modtest.Put(t, e, "/usr/bin/inroot", "#!/bin/sh\n")
	if err := e.Root.Chmod("/usr/bin/inroot", 0o755); err != nil {
		t.Fatal(err)
	}
	if !Installed(e, "inroot") || Installed(e, "sh") {
		t.Error("Installed is wrong chrooted")
	}
}
