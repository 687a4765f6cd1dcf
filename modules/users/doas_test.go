package users

import (
	"context"
	"os/exec"
	"regexp"
	"strings"
	"testing"

	"github.com/ec2init/ec2init/modules/modtest"
)

func TestCheckDoasRule(t *testing.T) {
	tests := []struct {
		rule, user string
		ok         bool
	}{
		{"permit bob", "bob", true},
		{"deny bob", "bob", true},
		{"permit nopass bob", "bob", true},
		{"permit persist keepenv bob as root", "bob", true},
		{"permit nopass bob as root cmd /usr/bin/apt args update", "bob", true},
		{"permit nopass bob cmd /usr/bin/apt args update -y --quiet", "bob", true},
		{"permit setenv { FOO=bar PATH } bob", "bob", true},
		{"permit bob  ", "bob", true},
		{"permit nopass bob", "", true},
		// cloud-init takes options run together (doas itself does not:
		// doas -C catches it before the file is replaced).
		{"permit nopassnolog bob", "bob", true},
		{"permit alice", "bob", false},
		{"permit :wheel", "bob", false},
		{"permit", "bob", false},
		{"allow bob", "bob", false},
		{"permit bob cmd", "bob", false},
		{"permit bob cmd ls args", "bob", false},
		{"permit bob args x", "bob", false},
		{"permit bob as", "bob", false},
		{"permit bob extra", "bob", false},
		{"permit bob\npermit nopass alice", "bob", false},
		{"permit setenv {} bob", "bob", false},
	}
	for _, tt := range tests {
		if why := checkDoasRule(tt.rule, tt.user); (why == "") != tt.ok {
			t.Errorf("%q for %q: %q, want ok=%v", tt.rule, tt.user, why, tt.ok)
		}
	}
}

// TestDoasRules: each user's rules appended to /etc/doas.conf as cloud-init
// writes them (a header when new, a block per user, none twice); a user
// with a rule of another shape gets no rules, and is still created. The
// file is checked by the real doas -C when opendoas is installed.
func TestDoasRules(t *testing.T) {
	e := debianImage(t)
	doc := `users:
  - name: ops
    doas: ["permit nopass ops as root", "deny ops cmd /bin/rm"]
  - name: dev
    doas: ["permit persist dev"]
  - name: bad
    doas: ["permit nopass ops"]
`
	var err error
	for range 2 {
		err = (UsersGroups{}).Run(context.Background(), e, modtest.Config(t, doc))
	}
	if err == nil || !strings.Contains(err.Error(), "users[2]: user bad: doas: rule 0: the rule is for ops, not bad; no doas rules written for the user") {
		t.Errorf("err = %v", err)
	}
	if !strings.Contains(modtest.Get(t, e, "/etc/passwd"), "\nbad:x:") {
		t.Error("bad not created")
	}
	got := modtest.Get(t, e, DoasFile)
	want := regexp.MustCompile(`^# Created by ec2init v\. unknown \(cloud-init's users_groups\) on [^\n]+\n` +
		regexp.QuoteMeta("\n# cloud-init User rules for ops\npermit nopass ops as root\ndeny ops cmd /bin/rm\n"+
			"\n# cloud-init User rules for dev\npermit persist dev\n") + "$")
	if !want.MatchString(got) {
		t.Errorf("%s:\n%s", DoasFile, got)
	}
	if fi, err := e.Root.Stat(DoasFile); err != nil || fi.Mode().Perm() != 0o440 {
		t.Errorf("mode %v %v", fi, err)
	}
	if ok, _ := e.Root.Exists("/etc/.doas.conf.check"); ok {
		t.Error("candidate file left behind")
	}
	if _, err := exec.LookPath("doas"); err == nil {
		full, _ := e.Root.Path(DoasFile)
		if out, err := exec.Command("doas", "-C", full).CombinedOutput(); err != nil {
			t.Errorf("doas -C on the result: %v: %s", err, out)
		}
	}
}

// TestDoasAppendAndCheck: an existing doas.conf keeps its rules and mode,
// the user key gives the default user rules under its own name, and a
// rule doas itself refuses leaves the file as it was (when doas is
// installed to say so).
func TestDoasAppendAndCheck(t *testing.T) {
	e := debianImage(t)
	modtest.Put(t, e, DoasFile, "permit persist :wheel\n")
	if err := e.Root.Chmod(DoasFile, 0o400); err != nil {
		t.Fatal(err)
	}
	doc := "users: [default]\nuser: {name: boss, doas: [permit nopass boss]}\n"
	if err := (UsersGroups{}).Run(context.Background(), e, modtest.Config(t, doc)); err != nil {
		t.Fatal(err)
	}
	if got, want := modtest.Get(t, e, DoasFile), "permit persist :wheel\n\n# cloud-init User rules for boss\npermit nopass boss\n"; got != want {
		t.Errorf("%s %q, want %q", DoasFile, got, want)
	}
	if fi, err := e.Root.Stat(DoasFile); err != nil || fi.Mode().Perm() != 0o400 {
		t.Errorf("mode %v %v", fi, err)
	}
	if _, err := exec.LookPath("doas"); err != nil {
		t.Skip("doas not installed (Debian package opendoas): doas -C not exercised")
	}
	before := modtest.Get(t, e, DoasFile)
	err := (UsersGroups{}).Run(context.Background(), e, modtest.Config(t, "users: [{name: odd, doas: [permit nopassnolog odd]}]\n"))
	if err == nil || !strings.Contains(err.Error(), "doas -C rejected the file (doas: syntax error at line") {
		t.Errorf("err = %v", err)
	}
	if got := modtest.Get(t, e, DoasFile); got != before {
		t.Errorf("file changed:\n%s", got)
	}
}
