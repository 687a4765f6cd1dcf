package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
)

func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// packages builds the .deb and .rpm once per test run, as `make package`
// does (the tests of this package share them, and run one at a time, so
// the build's work files are never written twice at once).
var packages = struct {
	once     sync.Once
	dir      string
	deb, rpm string
	err      error
	buildLog string
}{}

const testVersion = "1.2.3"

func buildPackages(t *testing.T) (deb, rpm string) {
	t.Helper()
	if testing.Short() {
		t.Skip("builds packages")
	}
	if _, err := exec.LookPath("dpkg-deb"); err != nil {
		t.Skip("needs dpkg-deb")
	}
	packages.once.Do(func() {
		packages.dir, packages.err = os.MkdirTemp("", "ec2init-pkg-")
		if packages.err != nil {
			return
		}
		cmd := exec.Command("make", "package", "DIST="+packages.dir, "VERSION="+testVersion)
		cmd.Dir = repoRoot()
		out, err := cmd.CombinedOutput()
		packages.buildLog, packages.err = string(out), err
		debs, _ := filepath.Glob(filepath.Join(packages.dir, "*.deb"))
		rpms, _ := filepath.Glob(filepath.Join(packages.dir, "*.rpm"))
		if err == nil && len(debs) == 1 && len(rpms) == 1 {
			packages.deb, packages.rpm = debs[0], rpms[0]
		}
	})
	if packages.err != nil || packages.deb == "" {
		t.Fatalf("make package: %v\n%s", packages.err, packages.buildLog)
	}
	return packages.deb, packages.rpm
}

// TestPackages inspects the packages with the distributions' own tools.
func TestPackages(t *testing.T) {
	deb, rpm := buildPackages(t)
	debs, rpms := []string{deb}, []string{rpm}

	contents := output(t, "dpkg-deb", "-c", debs[0])
	for _, want := range []string{
		"-rwxr-xr-x root/root", "./usr/bin/ec2init",
		"./usr/lib/systemd/system/ec2init.service",
		"./usr/lib/systemd/system/ec2init-local.service",
		"./usr/lib/systemd/system/ec2init-config.service",
		"./usr/lib/systemd/system/ec2init-final.service",
		"./usr/lib/systemd/system/ec2init.target",
		"./usr/lib/systemd/system/ec2init-network.target",
		"./usr/libexec/ec2init/cloud-init -> /usr/bin/ec2init",
		"./usr/libexec/ec2init/cloud-init-per -> /usr/bin/ec2init",
		"./usr/lib/systemd/system-preset/80-ec2init.preset",
		"./etc/ec2init/config.yaml",
		"./usr/libexec/ec2init/ec2-metadata -> /usr/bin/ec2init",
		"./usr/share/bash-completion/completions/ec2init",
		"./usr/share/man/man1/ec2init.1.gz",
		"./usr/share/man/man1/ec2init-status.1.gz",
	} {
		if !strings.Contains(contents, want) {
			t.Errorf("deb lacks %q:\n%s", want, contents)
		}
	}
	if !lineHas(contents, "drwx------ root/root", "./var/lib/ec2init/") {
		t.Errorf("deb: /var/lib/ec2init is not 0700 root:\n%s", contents)
	}
	if strings.Contains(contents, "./usr/bin/ec2-metadata") {
		t.Error("deb ships /usr/bin/ec2-metadata: it must not overwrite amazon-ec2-utils'")
	}
	// cloud-init's names are links the postinst makes where cloud-init is
	// absent: shipped, they would conflict with its package's files.
	for _, name := range []string{"cloud-final.service", "cloud-init.target", "cloud-init.service", "/usr/bin/cloud-init ", "cloud-init.log", "/var/lib/cloud"} {
		if strings.Contains(contents, name) {
			t.Errorf("deb ships %s: it must not conflict with cloud-init's package", name)
		}
	}
	info := output(t, "dpkg-deb", "-I", debs[0])
	for _, want := range []string{"Package: ec2init", "Version: " + testVersion, "postinst", "prerm"} {
		if !strings.Contains(info, want) {
			t.Errorf("deb control lacks %q:\n%s", want, info)
		}
	}
	if conf := output(t, "dpkg-deb", "-f", debs[0]); conf == "" {
		t.Error("no control fields")
	}
	ctrl := t.TempDir()
	output(t, "dpkg-deb", "-e", debs[0], ctrl)
	if b, err := os.ReadFile(filepath.Join(ctrl, "conffiles")); err != nil || !strings.Contains(string(b), "/etc/ec2init/config.yaml") {
		t.Errorf("conffiles: %q %v (the config must survive upgrades)", b, err)
	}

	if _, err := exec.LookPath("rpm"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("rpm is needed in CI to inspect the .rpm")
		}
		t.Skip("needs rpm to inspect the .rpm")
	}
	list := output(t, "rpm", "-qlvp", rpms[0])
	if !lineHas(list, "drwx------", "/var/lib/ec2init") || !lineHas(list, "-rwxr-xr-x", "/usr/bin/ec2init") {
		t.Errorf("rpm modes:\n%s", list)
	}
	if cfg := output(t, "rpm", "-qcp", rpms[0]); !strings.Contains(cfg, "/etc/ec2init/config.yaml") {
		t.Errorf("rpm config files: %q", cfg)
	}
	scripts := output(t, "rpm", "-qp", "--scripts", rpms[0])
	if !strings.Contains(scripts, "postinstall scriptlet") || !strings.Contains(scripts, "preuninstall scriptlet") {
		t.Errorf("rpm scriptlets:\n%s", scripts)
	}
}

func lineHas(text string, parts ...string) bool {
	for _, l := range strings.Split(text, "\n") {
		ok := true
		for _, p := range parts {
			ok = ok && strings.Contains(l, p)
		}
		if ok {
			return true
		}
	}
	return false
}

func output(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}
