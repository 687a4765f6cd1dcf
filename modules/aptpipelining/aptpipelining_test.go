package aptpipelining

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ec2init/ec2init/modules/modtest"
)

func TestAptPipelining(t *testing.T) {
	tests := []struct {
		name, osRelease, cfg, want, wantErr string
	}{
		{"false", "ID=debian\n", "apt_pipelining: false\n", "0", ""},
		{"false as a string", "ID=ubuntu\nID_LIKE=debian\n", "apt_pipelining: 'False'\n", "0", ""},
		{"no (YAML 1.1)", "ID=debian\n", "apt_pipelining: no\n", "0", ""},
		{"depth", "ID=debian\n", "apt_pipelining: 3\n", "3", ""},
		{"depth as a string", "ID=debian\n", "apt_pipelining: ' 5 '\n", "5", ""},
		{"zero", "ID=debian\n", "apt_pipelining: 0\n", "0", ""},
		{"os", "ID=debian\n", "apt_pipelining: os\n", "", ""},
		{"deprecated none", "ID=debian\n", "apt_pipelining: none\n", "", ""},
		{"null", "ID=debian\n", "apt_pipelining: ~\n", "", ""},
		{"true is no depth", "ID=debian\n", "apt_pipelining: true\n", "", "test.yaml:1: apt_pipelining: want os, false or 0 to 5"},
		{"out of range", "ID=debian\n", "apt_pipelining: 6\n", "", "want os, false or 0 to 5"},
		{"not APT", "ID=amzn\nID_LIKE=\"centos rhel fedora\"\n", "apt_pipelining: false\n", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, _ := modtest.Env(t)
			modtest.Put(t, e, "/etc/os-release", tt.osRelease)
			err := AptPipelining{}.Run(context.Background(), e, modtest.Config(t, tt.cfg))
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("err = %v, want %q", err, tt.wantErr)
			}
			want := "<absent>"
			if tt.want != "" {
				want = "//Written by cloud-init per 'apt_pipelining'\nAcquire::http::Pipeline-Depth \"" + tt.want + "\";\n"
			}
			if got := modtest.Get(t, e, File); got != want {
				t.Errorf("%s = %q, want %q", File, got, want)
			}
		})
	}
}

// TestAptConfigReads has the real apt-config read the written snippet
// from the temporary root (Dir set through APT_CONFIG, so the host's own
// configuration is not read).
func TestAptConfigReads(t *testing.T) {
	if _, err := exec.LookPath("apt-config"); err != nil {
		t.Skip("apt-config not installed (Debian package apt)")
	}
	for cfg, want := range map[string]string{"apt_pipelining: false\n": "0", "apt_pipelining: 2\n": "2"} {
		e, _ := modtest.Env(t)
		modtest.Put(t, e, "/etc/os-release", "ID=debian\n")
		if err := (AptPipelining{}).Run(context.Background(), e, modtest.Config(t, cfg)); err != nil {
			t.Fatal(err)
		}
		main := filepath.Join(t.TempDir(), "apt.conf")
		if err := os.WriteFile(main, []byte("Dir \""+e.Root.Prefix()+"/\";\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command("apt-config", "shell", "DEPTH", "Acquire::http::Pipeline-Depth")
		cmd.Env = []string{"APT_CONFIG=" + main, "PATH=/usr/bin:/bin"}
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("apt-config: %v: %s", err, out)
		}
		if got := strings.TrimSpace(string(out)); got != "DEPTH='"+want+"'" {
			t.Errorf("%q: apt-config says %q, want depth %s", cfg, got, want)
		}
	}
}

func TestSchema(t *testing.T) {
	for doc, want := range map[string]string{
		"apt_pipelining: bogus\n":      "u.yaml:1:17: error: apt_pipelining: want os, false or 0 to 5",
		"apt_pipelining: [1]\n":        "u.yaml:1:17: error: apt_pipelining: expected integer or boolean or string",
		"apt_pipelining: true\n":       "u.yaml:1:17: warning: apt_pipelining: not a depth",
		"apt_pipelining: 9\n":          "u.yaml:1:17: warning: apt_pipelining: not a depth",
		"apt_pipelining: unchanged\n":  "u.yaml:1:17: warning: apt_pipelining: deprecated: use os",
		"\n\napt_pipelining: 'nope'\n": "u.yaml:3:17: error: apt_pipelining:",
	} {
		if got := modtest.Diagnostics(t, doc, AptPipelining{}); !strings.Contains(got, want) {
			t.Errorf("%q: diagnostics %q, want %q", doc, got, want)
		}
	}
	for _, ok := range []string{"apt_pipelining: os\n", "apt_pipelining: false\n", "apt_pipelining: 4\n", "apt_pipelining: '0'\n"} {
		if got := modtest.Diagnostics(t, ok, AptPipelining{}); got != "" {
			t.Errorf("%q: unexpected findings %q", ok, got)
		}
	}
}
