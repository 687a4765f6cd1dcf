package packages

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ec2init/ec2init/internal/testkit"
	"github.com/ec2init/ec2init/modules/modtest"
)

// updateInfo marks ec2init-sec 1.1 a security update and ec2init-bug 1.1
// a bugfix; ec2init-plain 1.1 has no advisory.
const updateInfo = `<?xml version="1.0" encoding="UTF-8"?>
<updates>
%s
</updates>
`

const advisory = `<update from="tests@example.invalid" status="final" type="%[1]s" version="1">
  <id>ALAS-TEST-%[2]s</id><title>%[2]s</title><issued date="2026-01-01 00:00:00"/><description>test</description>
  <pkglist><collection short="t"><name>t</name>
    <package name="ec2init-%[2]s" version="1.1" release="1" epoch="0" arch="noarch"><filename>ec2init-%[2]s-1.1-1.noarch.rpm</filename></package>
  </collection></pkglist>
</update>`

// TestRealDnf drives package_update_upgrade_install with the real dnf
// against an rpm repository built here (nfpm, createrepo_c, an
// updateinfo.xml added with modifyrepo_c), installing into a temporary
// root with dnf's own --installroot (the module's DnfOptions path, no
// chroot). The repository's baseurl has $releasever in it, so a wrong or
// missing repo_releasever finds no repository: it checks that the key
// reaches dnf. Skipped under -short: nfpm and dnf take several seconds.
func TestRealDnf(t *testing.T) {
	if testing.Short() {
		t.Skip("slow (builds rpms, runs dnf several times); run without -short")
	}
	testkit.RequireRoot(t, "needs root: dnf --installroot writes an rpm database")
	for _, tool := range []string{"dnf", "createrepo_c", "modifyrepo_c", "go"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not found (Debian packages dnf, createrepo-c; Go for nfpm)", tool)
		}
	}
	base := t.TempDir()
	repo := filepath.Join(base, "repo", "2023.7")
	for _, p := range []string{"sec", "bug", "plain"} {
		for _, v := range []string{"1.0", "1.1"} {
			buildRpm(t, repo, "ec2init-"+p, v)
		}
	}
	run(t, base, "createrepo_c", "-q", repo)
	ui := filepath.Join(base, "updateinfo.xml")
	body := fmt.Sprintf(updateInfo, fmt.Sprintf(advisory, "security", "sec")+"\n"+fmt.Sprintf(advisory, "bugfix", "bug"))
	if err := os.WriteFile(ui, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	run(t, base, "modifyrepo_c", "--mdtype=updateinfo", ui, filepath.Join(repo, "repodata"))

	e, out := modtest.Env(t)
	root := e.Root.Prefix()
	modtest.Put(t, e, "/etc/os-release", amznOS)
	modtest.Put(t, e, "/etc/yum.repos.d/local.repo", "[local]\nname=local\nbaseurl=file://"+base+"/repo/$releasever/\ngpgcheck=0\nenabled=1\n")
	m := PackageUpdateUpgradeInstall{DnfOptions: []string{
		"--installroot=" + root,
		"--setopt=reposdir=" + root + "/etc/yum.repos.d",
		"--setopt=cachedir=" + root + "/var/cache/dnf",
		"--nogpgcheck", "--setopt=install_weak_deps=False",
	}}
	ctx := context.Background()
	step := func(cfg string) {
		t.Helper()
		out.Reset()
		if err := m.Run(ctx, e, modtest.Config(t, cfg)); err != nil {
			t.Fatalf("%s: %v\noutput:\n%s", cfg, err, out)
		}
	}
	versions := func(want string) {
		t.Helper()
		var got []string
		for _, p := range []string{"sec", "bug", "plain"} {
			got = append(got, p+"="+strings.TrimSpace(modtest.Get(t, e, "/usr/share/ec2init-"+p+"/version")))
		}
		if g := strings.Join(got, " "); g != want {
			t.Errorf("installed %s, want %s\noutput:\n%s", g, want, out)
		}
	}

	// Another release reads another repository (which does not exist;
	// dnf skips an unavailable repository by default, so only its output
	// tells).
	out.Reset()
	_ = m.Run(ctx, e, modtest.Config(t, "repo_update: true\nrepo_releasever: \"2099\"\n"))
	if !strings.Contains(out.String(), base+"/repo/2099/repodata") {
		t.Errorf("dnf did not read release 2099's repository:\n%s", out)
	}
	// Pinned versions, with the release of the versioned repository.
	step("repo_releasever: \"2023.7\"\npackages: [[ec2init-sec, \"1.0\"], [ec2init-bug, \"1.0\"], [ec2init-plain, \"1.0\"]]\n")
	versions("sec=1.0 bug=1.0 plain=1.0")
	step("repo_releasever: \"2023.7\"\nrepo_upgrade: security\n")
	versions("sec=1.1 bug=1.0 plain=1.0")
	step("repo_releasever: \"2023.7\"\nrepo_upgrade: bugfix\nrepo_upgrade_exclude: [ec2init-bu*]\n")
	versions("sec=1.1 bug=1.0 plain=1.0")
	step("repo_releasever: \"2023.7\"\nrepo_upgrade: all\nrepo_upgrade_exclude: [ec2init-plain]\n")
	versions("sec=1.1 bug=1.1 plain=1.0")
	step("repo_releasever: \"2023.7\"\npackage_upgrade: true\n")
	versions("sec=1.1 bug=1.1 plain=1.1")
	if _, err := os.Stat("/var/lib/rpm/rpmdb.sqlite"); err == nil {
		if b, _ := exec.Command("rpm", "-q", "ec2init-sec").CombinedOutput(); !strings.Contains(string(b), "not installed") {
			t.Errorf("the host's rpm database has the test package: %s", b)
		}
	}
}

// buildRpm builds name-version-1.noarch.rpm into dir with nfpm (the
// version the Makefile packages with), shipping /usr/share/<name>/version.
func buildRpm(t *testing.T, dir, name, version string) {
	t.Helper()
	src := t.TempDir()
	content := filepath.Join(src, "version")
	if err := os.WriteFile(content, []byte(version+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(src, "nfpm.yaml")
	y := fmt.Sprintf("name: %s\narch: all\nplatform: linux\nversion: %q\nversion_schema: none\nrelease: \"1\"\n"+
		"maintainer: ec2init tests <tests@example.invalid>\ndescription: ec2init test package\n"+
		"contents:\n  - src: %s\n    dst: /usr/share/%s/version\n", name, version, content, name)
	if err := os.WriteFile(conf, []byte(y), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	run(t, src, "go", "run", "github.com/goreleaser/nfpm/v2/cmd/nfpm@v2.45.2", "package", "--config", conf, "--packager", "rpm", "--target", dir+"/")
}

func run(t *testing.T, dir string, argv ...string) {
	t.Helper()
	c := exec.Command(argv[0], argv[1:]...)
	c.Dir = dir
	if b, err := c.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(argv, " "), err, b)
	}
}
