package packages

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ec2init/ec2init/internal/testkit"
	"github.com/ec2init/ec2init/modules/modtest"
)

// TestRealApt drives the modules' Run with the real apt-get and dpkg
// against a repository built here, installing into a temporary root:
//
//   - apt_configure writes the source (a flat file: repository) under the
//     root;
//   - package_update_upgrade_install runs apt-get update (real index
//     download and parsing), then installs a pinned old version while a
//     newer one is the candidate (apt's resolver honours name=version), with
//     the dpkg frontend lock held by this test for the first second (the
//     module sees apt's real "Could not get lock" exit 100 and retries);
//   - a second run with package_upgrade dist-upgrades to the new version,
//     which ships /var/run/reboot-required, so the reboot marker is written.
//
// apt is pointed at the root with its own options (Dir, the dpkg status
// file, dpkg --root) given through AptOptions: the module's normal path,
// no chroot. dpkg unpacks into the root; packages with maintainer scripts
// would need a root with /bin/sh (dpkg chroots to run them), so the test
// package has none. The host's dpkg database is checked to be untouched.
func TestRealApt(t *testing.T) {
	if testing.Short() {
		t.Skip("slow (real apt-get update, install and upgrade, a held lock for a second); run without -short")
	}
	testkit.RequireRoot(t, "needs root: dpkg --root and apt's lock files")
	for _, tool := range []string{"apt-get", "dpkg", "dpkg-deb", "apt-ftparchive"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not found (Debian packages apt, dpkg, apt-utils)", tool)
		}
	}
	repo := t.TempDir()
	buildDeb(t, repo, "1.0", nil)
	buildDeb(t, repo, "2.0", map[string]string{"var/run/reboot-required": "*** System restart required ***\n"})
	sh(t, repo, "apt-ftparchive packages . > Packages && apt-ftparchive release . > Release")

	e, out := modtest.Env(t)
	root := e.Root.Prefix()
	modtest.Put(t, e, "/etc/os-release", debianOS)
	for _, d := range []string{"/var/lib/dpkg/info", "/var/lib/dpkg/updates", "/var/lib/apt/lists/partial",
		"/var/cache/apt/archives/partial", "/etc/apt/apt.conf.d", "/etc/apt/preferences.d", "/var/log/apt"} {
		if err := e.Root.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	modtest.Put(t, e, "/var/lib/dpkg/status", "")
	modtest.Put(t, e, "/var/lib/dpkg/available", "")

	ctx := context.Background()
	if err := (AptConfigure{}).Run(ctx, e, modtest.Config(t, fmt.Sprintf("apt:\n  sources:\n    local:\n      source: deb [trusted=yes] file:%s ./\n", repo))); err != nil {
		t.Fatal(err)
	}

	m := PackageUpdateUpgradeInstall{
		AptOptions: []string{
			"-o", "Dir=" + root,
			"-o", "Dir::State::status=" + root + "/var/lib/dpkg/status",
			"-o", "APT::Sandbox::User=root", // the temporary root is not readable by _apt
			"-o", "DPkg::Options::=--root=" + root,
		},
		LockRetry: LockRetry{Attempts: 30, Base: 100 * time.Millisecond, Max: 400 * time.Millisecond},
	}

	// Another process (this test) holds the dpkg frontend lock for a while.
	release := holdLock(t, filepath.Join(root, "var/lib/dpkg/lock-frontend"))
	go func() {
		time.Sleep(time.Second)
		release()
	}()
	if err := m.Run(ctx, e, modtest.Config(t, "packages:\n  - [ec2init-hello, \"1.0\"]\npackage_reboot_if_required: true\n")); err != nil {
		t.Fatalf("install: %v\noutput:\n%s", err, out)
	}
	if !strings.Contains(out.String(), "Could not get lock") {
		t.Errorf("apt never met the held lock; output:\n%s", out)
	}
	if got := modtest.Get(t, e, "/usr/share/ec2init-hello/version"); got != "1.0\n" {
		t.Errorf("installed version file %q, want the pinned 1.0", got)
	}
	if st := modtest.Get(t, e, "/var/lib/dpkg/status"); !strings.Contains(st, "Package: ec2init-hello\nStatus: install ok installed") || !strings.Contains(st, "Version: 1.0\n") {
		t.Errorf("dpkg status in the root:\n%s", st)
	}
	if m := modtest.Get(t, e, RebootMarker); m != "<absent>" {
		t.Errorf("reboot marker without a reboot-required file: %q", m)
	}

	out.Reset()
	if err := m.Run(ctx, e, modtest.Config(t, "package_upgrade: true\npackage_reboot_if_required: true\n")); err != nil {
		t.Fatalf("upgrade: %v\noutput:\n%s", err, out)
	}
	if got := modtest.Get(t, e, "/usr/share/ec2init-hello/version"); got != "2.0\n" {
		t.Errorf("after the upgrade the version file is %q, want 2.0", got)
	}
	if m := modtest.Get(t, e, RebootMarker); !strings.Contains(m, RebootRequiredFile) {
		t.Errorf("reboot marker %q", m)
	}

	if host, err := os.ReadFile("/var/lib/dpkg/status"); err == nil && bytes.Contains(host, []byte("Package: ec2init-hello\n")) {
		t.Errorf("the host's dpkg database has the test package")
	}
}

// buildDeb builds ec2init-hello_<version>_all.deb into dir, shipping
// /usr/share/ec2init-hello/version and the extra files given.
func buildDeb(t *testing.T, dir, version string, extra map[string]string) {
	t.Helper()
	src := t.TempDir()
	files := map[string]string{
		"DEBIAN/control": "Package: ec2init-hello\nVersion: " + version + "\nArchitecture: all\n" +
			"Maintainer: ec2init tests <tests@example.invalid>\nDescription: ec2init test package\n",
		"usr/share/ec2init-hello/version": version + "\n",
	}
	for p, c := range extra {
		files[p] = c
	}
	for p, c := range files {
		full := filepath.Join(src, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	deb := filepath.Join(dir, "ec2init-hello_"+version+"_all.deb")
	if b, err := exec.Command("dpkg-deb", "--build", "--root-owner-group", src, deb).CombinedOutput(); err != nil {
		t.Fatalf("dpkg-deb: %v\n%s", err, b)
	}
}

func sh(t *testing.T, dir, script string) {
	t.Helper()
	c := exec.Command("/bin/sh", "-c", script)
	c.Dir = dir
	if b, err := c.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", script, err, b)
	}
}

// holdLock takes the write lock apt and dpkg take on path (fcntl, as
// apt's GetLock does) and returns its release.
func holdLock(t *testing.T, path string) func() {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o640)
	if err != nil {
		t.Fatal(err)
	}
	lk := syscall.Flock_t{Type: syscall.F_WRLCK, Whence: 0}
	if err := syscall.FcntlFlock(f.Fd(), syscall.F_SETLK, &lk); err != nil {
		f.Close()
		t.Fatal(err)
	}
	return func() { f.Close() } // closing drops the process's lock
}
