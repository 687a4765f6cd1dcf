package software

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/ec2init/ec2init/internal/testkit"
	"github.com/ec2init/ec2init/modules/internal/distro"
	"github.com/ec2init/ec2init/modules/internal/pkgmgr"
	"github.com/ec2init/ec2init/modules/modtest"
)

func TestPackageArgv(t *testing.T) {
	tests := []struct {
		name string
		got  []string
		want string
	}{
		{"deb on the host", packageFileArgv(TypeDeb, pmHost, "/", "/c/x"), "dpkg --force-confdef --force-confold -i /c/x"},
		{"deb chrooted", packageFileArgv(TypeDeb, pmChroot, "/mnt", "/c/x"), "dpkg --force-confdef --force-confold -i /c/x"},
		{"deb under --root", packageFileArgv(TypeDeb, pmOption, "/mnt", "/mnt/c/x"), "dpkg --root=/mnt --force-confdef --force-confold -i /mnt/c/x"},
		{"rpm on the host", packageFileArgv(TypeRPM, pmHost, "/", "/c/x"), "rpm -U --replacepkgs /c/x"},
		{"rpm under --root", packageFileArgv(TypeRPM, pmOption, "/mnt", "/mnt/c/x"), "rpm --root /mnt -U --replacepkgs /mnt/c/x"},
		{"deb info", packageInfoArgv(TypeDeb, "/c/x"), "dpkg-deb --show --showformat=${Package}\t${Version}\n /c/x"},
		{"rpm info", packageInfoArgv(TypeRPM, "/c/x"), "rpm -qp --qf %{NAME}\t%{VERSION}-%{RELEASE}\n /c/x"},
		{"deb version under --root", installedVersionArgv(TypeDeb, pmOption, "/mnt", "jq"), "dpkg-query --admindir=/mnt/var/lib/dpkg -W --showformat=${Version} jq"},
		{"rpm version", installedVersionArgv(TypeRPM, pmHost, "/", "jq"), "rpm -q --qf %{VERSION}-%{RELEASE} jq"},
		{"deb verify", verifyPackageArgv(TypeDeb, pmHost, "/", "jq"), "dpkg --verify jq"},
		{"rpm verify under --root", verifyPackageArgv(TypeRPM, pmOption, "/mnt", "jq"), "rpm --root /mnt -V jq"},
	}
	for _, tt := range tests {
		if got := strings.Join(tt.got, " "); got != tt.want {
			t.Errorf("%s: %q, want %q", tt.name, got, tt.want)
		}
	}
}

func TestSecurityUpgradeArgv(t *testing.T) {
	tests := []struct {
		name    string
		release string
		files   []string
		want    string
		wantErr string
	}{
		{name: "amazon linux 2023", release: "ID=amzn\nVERSION_ID=2023\n", files: []string{"/usr/bin/dnf"}, want: "dnf -y upgrade --security"},
		{name: "amazon linux 2", release: "ID=amzn\nVERSION_ID=2\n", files: []string{"/usr/bin/yum"}, want: "yum -y upgrade --security"},
		{name: "debian with unattended-upgrades", release: "ID=debian\n", files: []string{"/usr/bin/unattended-upgrade"}, want: "unattended-upgrade -v"},
		{name: "ubuntu without it", release: "ID=ubuntu\nID_LIKE=debian\n", wantErr: "needs unattended-upgrades"},
		{name: "unknown", release: "ID=arch\n", wantErr: `os-release says "arch"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := newEnv(t)
			writeHost(t, env.Root, "/etc/os-release", []byte(tt.release))
			for _, f := range tt.files {
				writeHost(t, env.Root, f, nil)
			}
			d, err := distro.Detect(env.Root)
			if err != nil {
				t.Fatal(err)
			}
			argv, _, err := pkgmgr.SecurityUpgrade(env.Root, d)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || strings.Join(argv, " ") != tt.want {
				t.Errorf("argv %q, %v; want %q", argv, err, tt.want)
			}
		})
	}
}

// Under a --root without --chroot the package managers would change the
// running host: package and package-upgrade items refuse, naming why.
func TestPackagesNeedChroot(t *testing.T) {
	env := newEnv(t)
	writeHost(t, env.Root, "/etc/os-release", []byte("ID=amzn\nVERSION_ID=2023\n"))
	cfg := modtest.Config(t, `software:
  items:
    - {name: jq, install: {type: package, name: jq}}
    - {name: sec, install: {type: package-upgrade, security_only: true}}
    - {name: all, install: {type: package-upgrade}}
`)
	m, _ := module()
	err := m.Run(context.Background(), env, cfg)
	if !errors.Is(err, pkgmgr.ErrNeedsChroot) {
		t.Fatalf("err = %v", err)
	}
	for _, name := range []string{"jq:", "sec:", "all:"} {
		if !strings.Contains(err.Error(), name) {
			t.Errorf("error does not name %s: %v", name, err)
		}
	}
}

// buildDeb makes a tiny .deb with dpkg-deb: one file, no maintainer
// scripts (so dpkg never needs to chroot).
func buildDeb(t *testing.T, version, content string) []byte {
	t.Helper()
	dir := t.TempDir()
	pkg := filepath.Join(dir, "pkg")
	for p, body := range map[string]string{
		"DEBIAN/control": "Package: ec2init-test-hello\nVersion: " + version + "\nArchitecture: all\n" +
			"Maintainer: ec2init tests <tests@example.com>\nDescription: a file for the software module's tests\n",
		"opt/hello/hello.txt": content,
	} {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(pkg, p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(pkg, p), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out := filepath.Join(dir, "hello.deb")
	if b, err := exec.Command("dpkg-deb", "--root-owner-group", "--build", pkg, out).CombinedOutput(); err != nil {
		t.Fatalf("dpkg-deb: %v\n%s", err, b)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// A real .deb installed with dpkg --root into the temporary root (the
// host's package database is never touched), baked, then verified: the
// version in the root's database, and with verify: full dpkg's own file
// check.
func TestDebInstalledUnderRoot(t *testing.T) {
	for _, tool := range []string{"dpkg", "dpkg-deb", "dpkg-query"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed (Debian package dpkg)", tool)
		}
	}
	env := newEnv(t)
	deb := buildDeb(t, "1.0-1", "hello\n")
	writeHost(t, env.Root, "/srv/hello.deb", deb)
	doc := func(verify string) string {
		return `software:
  items:
    - name: hello
      policy: bake
      verify: ` + verify + `
      source: file:///srv/hello.deb
      sha256: ` + sha256hex(deb) + `
      install: {type: deb}
`
	}
	m, _ := module()
	man, _, err := m.Bake(context.Background(), env, modtest.Config(t, doc("quick")), "test")
	if err != nil {
		t.Fatal(err)
	}
	if readHost(t, env.Root, "/opt/hello/hello.txt") != "hello\n" {
		t.Fatal("the package's file is not under the root")
	}
	if p := man.Find("hello").Package; !reflect.DeepEqual(p, &PackageInfo{Manager: TypeDeb, Name: "ec2init-test-hello", Version: "1.0-1"}) {
		t.Errorf("manifest package: %+v", p)
	}
	// The host's own database does not know the package.
	if out, err := exec.Command("dpkg-query", "-W", "ec2init-test-hello").CombinedOutput(); err == nil {
		t.Fatalf("the host's dpkg database lists the test package: %s", out)
	}
	if err := WriteManifest(env.Root, man); err != nil {
		t.Fatal(err)
	}
	if err := m.Run(context.Background(), env, modtest.Config(t, doc("full"))); err != nil {
		t.Fatalf("verify untouched: %v", err)
	}
	// Same size, another content: dpkg --verify's md5sums notice.
	writeHost(t, env.Root, "/opt/hello/hello.txt", []byte("HELLO\n"))
	if err := m.Run(context.Background(), env, modtest.Config(t, doc("quick"))); err != nil {
		t.Errorf("quick verify looks at the version only: %v", err)
	}
	err = m.Run(context.Background(), env, modtest.Config(t, doc("full")))
	if !errors.Is(err, ErrChanged) || !strings.Contains(err.Error(), "package ec2init-test-hello: files changed: ??5") {
		t.Errorf("full verify: %v", err)
	}
	// Another version installed since (an upgrade by hand): quick sees it.
	newer := buildDeb(t, "1.1-1", "hello again\n")
	writeHost(t, env.Root, "/srv/newer.deb", newer)
	if err := m.Run(context.Background(), env, modtest.Config(t, `software:
  items:
    - {name: newer, source: "file:///srv/newer.deb", install: {type: deb}}
`)); err != nil {
		t.Fatal(err)
	}
	err = m.Run(context.Background(), env, modtest.Config(t, doc("quick")))
	if !errors.Is(err, ErrChanged) || !strings.Contains(err.Error(), "version 1.1-1 installed, baked 1.0-1") {
		t.Errorf("quick verify after an upgrade: %v", err)
	}
}

// A real .rpm (built with rpmbuild) installed with rpm --root into the
// temporary root, baked and verified like the .deb.
func TestRPMInstalledUnderRoot(t *testing.T) {
	for _, tool := range []string{"rpm", "rpmbuild"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed (Debian packages rpm and rpm2cpio)", tool)
		}
	}
	top := t.TempDir()
	spec := filepath.Join(top, "hello.spec")
	if err := os.WriteFile(spec, []byte(`Name: ec2init-test-hello
Version: 1.0
Release: 1
Summary: a file for the software module's tests
License: MIT
BuildArch: noarch
%description
A file for the software module's tests.
%install
mkdir -p %{buildroot}/opt/hello
echo hello > %{buildroot}/opt/hello/hello.txt
%files
/opt/hello/hello.txt
`), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("rpmbuild", "--define", "_topdir "+top, "--define", "_build_id_links none", "-bb", spec)
	cmd.Env = append(os.Environ(), "HOME="+top)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("rpmbuild: %v\n%s", err, out)
	}
	rpm, err := os.ReadFile(filepath.Join(top, "RPMS/noarch/ec2init-test-hello-1.0-1.noarch.rpm"))
	if err != nil {
		t.Fatal(err)
	}
	env := newEnv(t)
	writeHost(t, env.Root, "/srv/hello.rpm", rpm)
	doc := func(verify string) string {
		return "software:\n  items:\n    - {name: hello, policy: bake, verify: " + verify +
			", source: \"file:///srv/hello.rpm\", sha256: " + sha256hex(rpm) + ", install: {type: rpm}}\n"
	}
	m, _ := module()
	man, _, err := m.Bake(context.Background(), env, modtest.Config(t, doc("quick")), "test")
	if err != nil {
		t.Fatal(err)
	}
	if readHost(t, env.Root, "/opt/hello/hello.txt") != "hello\n" {
		t.Fatal("the package's file is not under the root")
	}
	if p := man.Find("hello").Package; !reflect.DeepEqual(p, &PackageInfo{Manager: TypeRPM, Name: "ec2init-test-hello", Version: "1.0-1"}) {
		t.Errorf("manifest package: %+v", p)
	}
	if err := WriteManifest(env.Root, man); err != nil {
		t.Fatal(err)
	}
	if err := m.Run(context.Background(), env, modtest.Config(t, doc("full"))); err != nil {
		t.Fatalf("verify untouched: %v", err)
	}
	writeHost(t, env.Root, "/opt/hello/hello.txt", []byte("HELLO\n"))
	err = m.Run(context.Background(), env, modtest.Config(t, doc("full")))
	if !errors.Is(err, ErrChanged) || !strings.Contains(err.Error(), "package ec2init-test-hello: files changed:") {
		t.Errorf("full verify: %v", err)
	}
}

// While another process holds the package database's lock, the install
// is retried (with backoff) rather than failed; a failure that is not the
// lock is reported at once. The tool is a stand-in on the runner's PATH.
func TestPackageLockRetried(t *testing.T) {
	tests := []struct {
		name     string
		failures int // lock failures before success
		other    bool
		wantRuns int
		wantErr  string
	}{
		{name: "lock held twice", failures: 2, wantRuns: 3},
		{name: "lock held throughout", failures: 100, wantRuns: 8, wantErr: "lock was held by another process through 8 attempts"},
		{name: "another failure", other: true, wantRuns: 1, wantErr: "x.deb: exit status 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := newEnv(t)
			bin := t.TempDir()
			runs := filepath.Join(bin, "runs")
			script := "#!/bin/sh\necho \"$@\" >> " + runs + "\nn=$(wc -l < " + runs + ")\n"
			if tt.other {
				script += "echo 'dpkg: error: archive is not a debian format archive'; exit 1\n"
			} else {
				script += "if [ $n -le " + fmt.Sprint(tt.failures) + " ]; then echo 'dpkg: error: dpkg frontend lock was locked by another process with pid 42'; exit 2; fi\n"
			}
			testkit.FakeTool(t, bin, "dpkg", script)
			env.Runner.Env = map[string]string{"PATH": bin + ":/usr/bin:/bin"}
			art := writeHost(t, env.Root, "/srv/x.deb", []byte("not really a deb"))
			m, _ := module()
			_, err := m.installPackageFile(context.Background(), env, &Item{Name: "x", Install: Install{Type: TypeDeb}}, art, false)
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("err = %v, want %q", err, tt.wantErr)
			}
			b, _ := os.ReadFile(runs)
			lines := strings.Split(strings.TrimSpace(string(b)), "\n")
			if len(lines) != tt.wantRuns || lines[0] != "--root="+env.Root.Prefix()+" --force-confdef --force-confold -i "+art {
				t.Errorf("runs: %q", lines)
			}
		})
	}
}
