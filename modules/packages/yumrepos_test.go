package packages

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/ec2init/ec2init/modules/modtest"
)

// TestYumReposGolden: cloud-init's documented shape, with lists, YAML 1.1
// booleans and extra options, gives the .repo file in testdata.
func TestYumReposGolden(t *testing.T) {
	e, _ := modtest.Env(t)
	modtest.Put(t, e, "/etc/os-release", amznOS)
	doc, err := os.ReadFile("testdata/yum_repos.yaml")
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile("testdata/epel.repo")
	if err != nil {
		t.Fatal(err)
	}
	if err := (YumAddRepo{}).Run(context.Background(), e, modtest.Config(t, string(doc))); err != nil {
		t.Fatal(err)
	}
	if got := modtest.Get(t, e, "/etc/yum.repos.d/epel_testing.repo"); got != string(want) {
		t.Errorf("epel_testing.repo:\n%s\nwant:\n%s", got, want)
	}
	fi, err := e.Root.Stat("/etc/yum.repos.d/epel_testing.repo")
	if err != nil || fi.Mode().Perm() != 0o644 {
		t.Errorf("mode %v, %v; want 0644", fi.Mode(), err)
	}
	if d := modtest.Diagnostics(t, string(doc), YumAddRepo{}); d != "" {
		t.Errorf("the example has diagnostics:\n%s", d)
	}
}

func TestYumRepos(t *testing.T) {
	tests := []struct {
		name    string
		os      string
		before  map[string]string
		cfg     string
		want    map[string]string // file -> content ("<absent>")
		wantErr string
		console string
	}{
		{name: "minimal", os: amznOS, cfg: "yum_repos:\n  local:\n    baseurl: file:///srv/repo\n    enabled: 1\n",
			want: map[string]string{"/etc/yum.repos.d/local.repo": "# Written by ec2init from cloud-config yum_repos\n[local]\nbaseurl=file:///srv/repo\nenabled=1\n"}},
		{name: "metalink suffices", os: amznOS, cfg: "yum_repos:\n  m:\n    metalink: https://x/metalink\n    name: M\n",
			want: map[string]string{"/etc/yum.repos.d/m.repo": "# Written by ec2init from cloud-config yum_repos\n[m]\nmetalink=https://x/metalink\nname=M\n"}},
		{name: "yum_repo_dir", os: amznOS, cfg: "yum_repo_dir: /etc/dnf/repos\nyum_repos:\n  a:\n    mirrorlist: https://x/list\n",
			want: map[string]string{"/etc/dnf/repos/a.repo": "# Written by ec2init from cloud-config yum_repos\n[a]\nmirrorlist=https://x/list\n", "/etc/yum.repos.d/a.repo": "<absent>"}},
		{name: "existing file left alone", os: amznOS, before: map[string]string{"/etc/yum.repos.d/amazonlinux.repo": "[amazonlinux]\nmine\n"},
			cfg:  "yum_repos:\n  amazonlinux:\n    baseurl: https://other\n",
			want: map[string]string{"/etc/yum.repos.d/amazonlinux.repo": "[amazonlinux]\nmine\n"}},
		{name: "missing baseurl is an error, the others are written", os: amznOS,
			cfg:     "yum_repos:\n  bad:\n    name: no url\n  good:\n    baseurl: https://g\n",
			want:    map[string]string{"/etc/yum.repos.d/bad.repo": "<absent>", "/etc/yum.repos.d/good.repo": "# Written by ec2init from cloud-config yum_repos\n[good]\nbaseurl=https://g\n"},
			wantErr: "test.yaml:2: yum_repos.bad: needs baseurl, metalink or mirrorlist"},
		{name: "path in the id", os: amznOS, cfg: "yum_repos:\n  ../../etc/passwd:\n    baseurl: https://x\n",
			want: map[string]string{"/etc/passwd": "<absent>"}, wantErr: `"../../etc/passwd" is not a repository id`},
		{name: "newline injection", os: amznOS, cfg: "yum_repos:\n  x:\n    baseurl: \"https://x\\n[other]\\nenabled=1\"\n",
			want: map[string]string{"/etc/yum.repos.d/x.repo": "<absent>"}, wantErr: "yum_repos.x: baseurl: value spans lines"},
		{name: "debian skips with a message", os: debianOS, cfg: "yum_repos:\n  x:\n    baseurl: https://x\n",
			want: map[string]string{"/etc/yum.repos.d/x.repo": "<absent>"}, console: "yum_repos ignored: the image is debian 12"},
		{name: "relative yum_repo_dir", os: amznOS, cfg: "yum_repo_dir: repos\nyum_repos:\n  x:\n    baseurl: https://x\n",
			wantErr: "yum_repo_dir: expected an absolute directory path"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, out := modtest.Env(t)
			modtest.Put(t, e, "/etc/os-release", tt.os)
			for p, c := range tt.before {
				modtest.Put(t, e, p, c)
			}
			err := YumAddRepo{}.Run(context.Background(), e, modtest.Config(t, tt.cfg))
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("error: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("error %v, want %q", err, tt.wantErr)
			}
			for p, want := range tt.want {
				if got := modtest.Get(t, e, p); got != want {
					t.Errorf("%s:\n%s\nwant:\n%s", p, got, want)
				}
			}
			if !strings.Contains(out.String(), tt.console) {
				t.Errorf("console %q lacks %q", out, tt.console)
			}
		})
	}
}

func TestYumReposSchema(t *testing.T) {
	got := modtest.Diagnostics(t, `yum_repos:
  a:
    baseurl: [https://x, {y: z}]
    enabled: maybe
    cost: 100
  b: just a string
yum_repo_dir: 5
`, YumAddRepo{})
	for _, w := range []string{
		"u.yaml:3:26: error: yum_repos.a.baseurl[1]: expected string, got a mapping",
		"u.yaml:4:14: error: yum_repos.a.enabled: expected boolean or integer",
		"u.yaml:6:6: error: yum_repos.b: expected a mapping",
		"u.yaml:7:15: error: yum_repo_dir: expected string",
	} {
		if !strings.Contains(got, w) {
			t.Errorf("diagnostics lack %q:\n%s", w, got)
		}
	}
	if strings.Contains(got, "cost") {
		t.Errorf("an extra yum option is flagged:\n%s", got)
	}
}
