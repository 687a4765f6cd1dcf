package packages

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ec2init/ec2init/agent/sys"
	"github.com/ec2init/ec2init/internal/testkit"
	"github.com/ec2init/ec2init/modules"
	"github.com/ec2init/ec2init/modules/modtest"
)

const (
	debianOS = "ID=debian\nVERSION_ID=12\nVERSION_CODENAME=bookworm\n"
	ubuntuOS = "ID=ubuntu\nID_LIKE=debian\nVERSION_ID=\"22.04\"\nVERSION_CODENAME=jammy\n"
	amznOS   = "ID=\"amzn\"\nID_LIKE=\"fedora\"\nVERSION_ID=\"2023\"\n"
	amzn2OS  = "ID=\"amzn\"\nID_LIKE=\"centos rhel fedora\"\nVERSION_ID=\"2\"\n"
)

// fakeTool records each call ("argv... | DEBIAN_FRONTEND=...") in
// $FAKE_DIR/calls. While $FAKE_DIR/locked holds a count above 0 it fails
// as a held lock does (apt's message for apt-get, dnf's for dnf and yum);
// an argument "fail-me" fails as an unknown package.
const fakeTool = `#!/bin/sh
echo "$(basename "$0") $* | DEBIAN_FRONTEND=${DEBIAN_FRONTEND-}" >> "$FAKE_DIR/calls"
n=$(cat "$FAKE_DIR/locked" 2>/dev/null || echo 0)
if [ "$n" -gt 0 ]; then
	echo $((n-1)) > "$FAKE_DIR/locked"
	case "$0" in
	*apt-get) echo "E: Could not get lock /var/lib/dpkg/lock-frontend. It is held by process 4242 (apt-get)" >&2; exit 100;;
	*) echo "Error: Failed to obtain the transaction lock (logged in as: root)." >&2; exit 1;;
	esac
fi
case " $* " in *" fail-me"*) echo "E: Unable to locate package fail-me" >&2; exit 100;; esac
exit 0
`

// fakeEnv is an Env over a temporary root whose commands find fake
// apt-get, dnf and yum first on their PATH.
func fakeEnv(t *testing.T, osRelease string) (*modules.Env, string, *bytes.Buffer) {
	t.Helper()
	e, out := modtest.Env(t)
	dir := t.TempDir()
	bin := filepath.Join(dir, "bin")
	if err := os.Mkdir(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tool := range []string{"apt-get", "dnf", "yum", "snap"} {
		testkit.FakeTool(t, bin, tool, fakeTool)
	}
	e.Runner.Env = map[string]string{"PATH": bin + ":" + sys.DefaultPath, "FAKE_DIR": dir}
	if osRelease != "" {
		modtest.Put(t, e, "/etc/os-release", osRelease)
	}
	return e, dir, out
}

func calls(t *testing.T, dir string) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "calls"))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
}

const aptBase = "apt-get -y -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold"

// fastRetry keeps lock retries in milliseconds.
var fastRetry = LockRetry{Attempts: 4, Base: time.Millisecond, Max: 2 * time.Millisecond}

func TestPackageUpdateUpgradeInstall(t *testing.T) {
	tests := []struct {
		name    string
		os      string
		files   []string // host paths created (empty) before the run
		cfg     string
		locked  int // failures on the lock before success
		want    []string
		wantErr string
		marker  bool
		console string
	}{
		{name: "apt install implies update", os: debianOS, cfg: "packages:\n  - curl\n  - [nginx, \"1.18.0-6\"]\n  - [jq]\n",
			want: []string{aptBase + " update | DEBIAN_FRONTEND=noninteractive",
				aptBase + " install curl nginx=1.18.0-6 jq | DEBIAN_FRONTEND=noninteractive"}},
		{name: "apt upgrade is dist-upgrade", os: ubuntuOS, cfg: "package_upgrade: true\n",
			want: []string{aptBase + " update | DEBIAN_FRONTEND=noninteractive", aptBase + " dist-upgrade | DEBIAN_FRONTEND=noninteractive"}},
		{name: "update only", os: debianOS, cfg: "package_update: true\n",
			want: []string{aptBase + " update | DEBIAN_FRONTEND=noninteractive"}},
		{name: "deprecated alias", os: debianOS, cfg: "apt_update: yes\n",
			want: []string{aptBase + " update | DEBIAN_FRONTEND=noninteractive"}},
		{name: "false does nothing", os: debianOS, cfg: "package_update: false\npackage_upgrade: false\n"},
		{name: "dnf pins name-version", os: amznOS, files: []string{"/usr/bin/dnf", "/usr/bin/yum"},
			cfg:  "packages: [httpd, [nginx, \"1.24.0\"]]\npackage_upgrade: true\n",
			want: []string{"dnf -y makecache | DEBIAN_FRONTEND=", "dnf -y upgrade | DEBIAN_FRONTEND=", "dnf -y install httpd nginx-1.24.0 | DEBIAN_FRONTEND="}},
		{name: "amazon security upgrade at boot", os: amznOS, files: []string{"/usr/bin/dnf"},
			cfg: "repo_update: true\nrepo_upgrade: security\nrepo_upgrade_exclude: [kernel, nvidia*]\nrepo_releasever: 2023.6.20241010\n",
			want: []string{"dnf -y --releasever=2023.6.20241010 makecache | DEBIAN_FRONTEND=",
				"dnf -y --releasever=2023.6.20241010 upgrade --security --exclude=kernel --exclude=nvidia* | DEBIAN_FRONTEND="}},
		{name: "amazon bugfix with packages", os: amznOS, files: []string{"/usr/bin/dnf"}, cfg: "repo_upgrade: bugfix\npackages: [jq]\n",
			want: []string{"dnf -y makecache | DEBIAN_FRONTEND=", "dnf -y upgrade --bugfix | DEBIAN_FRONTEND=", "dnf -y install jq | DEBIAN_FRONTEND="}},
		{name: "package_upgrade upgrades everything", os: amznOS, files: []string{"/usr/bin/dnf"}, cfg: "repo_upgrade: security\npackage_upgrade: true\n",
			want: []string{"dnf -y makecache | DEBIAN_FRONTEND=", "dnf -y upgrade | DEBIAN_FRONTEND="}},
		{name: "amazon none", os: amznOS, files: []string{"/usr/bin/dnf"}, cfg: "repo_upgrade: none\nrepo_upgrade_exclude: [kernel]\n"},
		{name: "amazon all on yum", os: amzn2OS, files: []string{"/usr/bin/yum"}, cfg: "repo_upgrade: all\nrepo_releasever: 2\n",
			want: []string{"yum -y --releasever=2 makecache | DEBIAN_FRONTEND=", "yum -y --releasever=2 upgrade | DEBIAN_FRONTEND="}},
		{name: "amazon keys ignored on apt", os: debianOS, cfg: "repo_upgrade: security\nrepo_releasever: \"2023\"\n",
			console: "[repo_upgrade repo_releasever] are Amazon Linux keys"},
		{name: "amazon bad value", os: amznOS, cfg: "repo_upgrade: sometimes\n", wantErr: "repo_upgrade: expected none, security, bugfix or all"},
		{name: "amazon exclude injection", os: amznOS, cfg: "repo_upgrade: all\nrepo_upgrade_exclude: [--nogpgcheck]\n", wantErr: `excluded package "--nogpgcheck" starts with '-'`},
		{name: "yum without dnf", os: amzn2OS, files: []string{"/usr/bin/yum"}, cfg: "packages: [git]\n",
			want: []string{"yum -y makecache | DEBIAN_FRONTEND=", "yum -y install git | DEBIAN_FRONTEND="}},
		{name: "failure names packages and status, later steps still run", os: debianOS, cfg: "package_upgrade: true\npackages: [fail-me, curl]\n",
			want: []string{aptBase + " update | DEBIAN_FRONTEND=noninteractive", aptBase + " dist-upgrade | DEBIAN_FRONTEND=noninteractive",
				aptBase + " install fail-me curl | DEBIAN_FRONTEND=noninteractive"},
			wantErr: "packages: apt-get install fail-me curl: exit status 100", console: "Unable to locate package fail-me"},
		{name: "apt lock retried", os: debianOS, cfg: "package_update: true\n", locked: 2,
			want: []string{aptBase + " update | DEBIAN_FRONTEND=noninteractive", aptBase + " update | DEBIAN_FRONTEND=noninteractive",
				aptBase + " update | DEBIAN_FRONTEND=noninteractive"}},
		{name: "dnf lock retried", os: amznOS, files: []string{"/usr/bin/dnf"}, cfg: "package_update: true\n", locked: 1,
			want: []string{"dnf -y makecache | DEBIAN_FRONTEND=", "dnf -y makecache | DEBIAN_FRONTEND="}},
		{name: "lock retries are bounded", os: debianOS, cfg: "package_update: true\n", locked: 99,
			want:    []string{aptBase + " update | DEBIAN_FRONTEND=noninteractive", aptBase + " update | DEBIAN_FRONTEND=noninteractive", aptBase + " update | DEBIAN_FRONTEND=noninteractive", aptBase + " update | DEBIAN_FRONTEND=noninteractive"},
			wantErr: "package_update: apt-get update: exit status 100: the package manager's lock was held by another process through 4 attempts"},
		{name: "reboot requested", os: debianOS, files: []string{RebootRequiredFile}, cfg: "packages: [linux-image-cloud-amd64]\npackage_reboot_if_required: true\n",
			want:   []string{aptBase + " update | DEBIAN_FRONTEND=noninteractive", aptBase + " install linux-image-cloud-amd64 | DEBIAN_FRONTEND=noninteractive"},
			marker: true, console: "packages require a reboot"},
		{name: "no reboot when not required", os: debianOS, cfg: "packages: [curl]\npackage_reboot_if_required: true\n",
			want: []string{aptBase + " update | DEBIAN_FRONTEND=noninteractive", aptBase + " install curl | DEBIAN_FRONTEND=noninteractive"}},
		{name: "no reboot after an update alone", os: debianOS, files: []string{RebootRequiredFile}, cfg: "package_update: true\npackage_reboot_if_required: true\n",
			want: []string{aptBase + " update | DEBIAN_FRONTEND=noninteractive"}},
		{name: "apt and snap mappings", os: ubuntuOS, files: []string{"/usr/bin/snap"},
			cfg: "packages:\n  - curl\n  - apt: [jq, [nginx, \"1.18\"]]\n    snap: [lxd, [go, 1.22/stable]]\n",
			want: []string{aptBase + " update | DEBIAN_FRONTEND=noninteractive", aptBase + " install curl jq nginx=1.18 | DEBIAN_FRONTEND=noninteractive",
				"snap install lxd | DEBIAN_FRONTEND=", "snap install go --channel=1.22/stable | DEBIAN_FRONTEND="}},
		{name: "snap missing", os: debianOS, cfg: "packages:\n  - snap: [lxd]\n",
			wantErr: "packages: snap items [lxd] need snapd, which this image lacks (no /usr/bin/snap)"},
		{name: "apt mapping on dnf", os: amznOS, files: []string{"/usr/bin/dnf"}, cfg: "packages:\n  - {apt: [jq]}\n  - git\n",
			want:    []string{"dnf -y makecache | DEBIAN_FRONTEND=", "dnf -y install git | DEBIAN_FRONTEND="},
			console: "apt items [jq] skipped: this image has no apt-get"},
		{name: "unknown manager", os: debianOS, cfg: "packages:\n  - {brew: [jq]}\n", wantErr: `packages[0] (line 2): unknown package manager "brew"`},
		{name: "option injection refused", os: debianOS, cfg: "packages: [curl, --allow-unauthenticated, [jq, \"1 2\"]]\n",
			wantErr: `packages[1] (line 1): package name "--allow-unauthenticated" starts with '-'; packages[2] (line 1): version "1 2" contains whitespace`},
		{name: "too many words", os: debianOS, cfg: "packages: [[a, b, c]]\n", wantErr: "packages[0] (line 1): expected [name] or [name, version]"},
		{name: "unknown distro", os: "ID=alpine\n", cfg: "packages: [curl]\n", wantErr: `cannot tell the package manager: the image's os-release says "alpine"`},
		{name: "no os-release", cfg: "packages: [curl]\n", wantErr: `says "unknown"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, dir, out := fakeEnv(t, tt.os)
			for _, f := range tt.files {
				modtest.Put(t, e, f, "")
			}
			if tt.locked > 0 {
				if err := os.WriteFile(filepath.Join(dir, "locked"), []byte(strconv.Itoa(tt.locked)), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			// Options stand for pointing the tools at the temporary root.
			m := PackageUpdateUpgradeInstall{AptOptions: []string{"-o", "Debug::NoLocking=1"}, DnfOptions: []string{"--installroot=" + e.Root.Prefix()}, LockRetry: fastRetry}
			err := m.Run(context.Background(), e, modtest.Config(t, tt.cfg))
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("error: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("error %v, want %q", err, tt.wantErr)
			}
			got := calls(t, dir)
			for i := range got { // the test's root options are not the point here
				got[i] = strings.ReplaceAll(strings.ReplaceAll(got[i], " -o Debug::NoLocking=1", ""), " --installroot="+e.Root.Prefix(), "")
			}
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("calls:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
			if m := modtest.Get(t, e, RebootMarker); (m != "<absent>") != tt.marker {
				t.Errorf("reboot marker: %q, want present=%v", m, tt.marker)
			}
			if !strings.Contains(out.String(), tt.console) {
				t.Errorf("console %q lacks %q", out, tt.console)
			}
		})
	}
}

// TestNeedsChroot: a root other than "/" without --chroot is refused
// before anything runs, so the host's packages are never changed.
func TestNeedsChroot(t *testing.T) {
	for _, osr := range []string{debianOS, amznOS} {
		e, dir, _ := fakeEnv(t, osr)
		err := PackageUpdateUpgradeInstall{}.Run(context.Background(), e, modtest.Config(t, "packages: [curl]\n"))
		if !errors.Is(err, ErrNeedsChroot) || !strings.Contains(err.Error(), "package installation needs --chroot or the real root") {
			t.Errorf("error %v, want ErrNeedsChroot", err)
		}
		if c := calls(t, dir); c != nil {
			t.Errorf("commands ran: %q", c)
		}
	}
}

// TestLockWaitCanceled: a canceled boot stops waiting for the lock.
func TestLockWaitCanceled(t *testing.T) {
	e, dir, _ := fakeEnv(t, debianOS)
	if err := os.WriteFile(filepath.Join(dir, "locked"), []byte("99"), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	m := PackageUpdateUpgradeInstall{AptOptions: []string{"-q"}, LockRetry: LockRetry{Attempts: 100, Base: time.Hour, Max: time.Hour}}
	start := time.Now()
	err := m.Run(ctx, e, modtest.Config(t, "package_update: true\n"))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("error %v, want the context's", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("took %s", d)
	}
}

func TestPackagesSchema(t *testing.T) {
	got := modtest.Diagnostics(t, `packages:
  - curl
  - [nginx, 1.18]
  - {apt: [jq], brew: [x]}
  - 3
package_update: maybe
package_reboot_if_required: true
`, PackageUpdateUpgradeInstall{})
	for _, w := range []string{
		"u.yaml:3:13: error: packages[1][1]: expected string, got number 1.18 (quote it to make it a string)",
		`u.yaml:4:17: warning: packages[2].brew: unknown key "brew"`,
		"u.yaml:5:5: error: packages[3]",
		"u.yaml:6:17: error: package_update: expected boolean",
	} {
		if !strings.Contains(got, w) {
			t.Errorf("diagnostics lack %q:\n%s", w, got)
		}
	}
	if strings.Count(got, "\n") != 3 {
		t.Errorf("want 4 diagnostics:\n%s", got)
	}
}
