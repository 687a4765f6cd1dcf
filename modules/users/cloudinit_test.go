package users

import (
	"context"
	"os/exec"
	"strings"
	"testing"

	"github.com/ec2init/ec2init/agent/imds"
	"github.com/ec2init/ec2init/internal/testkit"
	"github.com/ec2init/ec2init/modules"
	"github.com/ec2init/ec2init/modules/modtest"
)

// debianImage is a root with Debian's account databases for the real
// shadow tools (useradd --prefix).
func debianImage(t *testing.T) *modules.Env {
	t.Helper()
	for _, tool := range []string{"useradd", "groupadd", "usermod"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed (Debian package passwd)", tool)
		}
	}
	testkit.RequireRoot(t, "useradd --prefix needs root to write the account databases and chown homes")
	e, _ := modtest.Env(t)
	files := map[string]string{
		"/etc/passwd":     "root:x:0:0:root:/root:/bin/bash\n",
		"/etc/group":      "root:x:0:\nadm:x:4:\ncdrom:x:24:\nsudo:x:27:\naudio:x:29:\nvideo:x:44:\nplugdev:x:46:\nnetdev:x:100:\n",
		"/etc/shadow":     "root:*:19000:0:99999:7:::\n",
		"/etc/gshadow":    "root:*::\nadm:*::\ncdrom:*::\nsudo:*::\naudio:*::\nvideo:*::\nplugdev:*::\nnetdev:*::\n",
		"/etc/login.defs": "USERGROUPS_ENAB yes\nUID_MIN 1000\nGID_MIN 1000\n",
		"/etc/os-release": "ID=debian\n",
		"/etc/sudoers":    "root ALL=(ALL:ALL) ALL\n@includedir /etc/sudoers.d\n",
	}
	for p, c := range files {
		if err := e.Root.WriteFile(p, []byte(c), 0o644, nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.Root.MkdirAll("/home", 0o755); err != nil {
		t.Fatal(err)
	}
	return e
}

// TestDefaultUserLast: the default user is made after the others,
// wherever "default" stands in users (cloud-init's normalize_users_groups
// moves it to the end), so uids are those of a cloud-init instance of the
// same image; Debian's default user gets cloud-init's groups, those the
// image lacks created first (so its own group's gid follows them).
func TestDefaultUserLast(t *testing.T) {
	e := debianImage(t)
	if err := (UsersGroups{}).Run(context.Background(), e, modtest.Config(t, "users: [alice, default, bob]\n")); err != nil {
		t.Fatal(err)
	}
	passwd := modtest.Get(t, e, "/etc/passwd")
	for _, want := range []string{"\nalice:x:1000:1000:", "\nbob:x:1001:1001:", "\nadmin:x:1002:1005:Debian:/home/admin:/bin/bash\n"} {
		if !strings.Contains(passwd, want) {
			t.Errorf("passwd lacks %q:\n%s", want, passwd)
		}
	}
	group := modtest.Get(t, e, "/etc/group")
	for _, g := range []string{"adm", "cdrom", "sudo", "audio", "video", "plugdev", "netdev"} {
		if !strings.Contains(group, "\n"+g+":") || !strings.Contains(strings.SplitN(group[strings.Index(group, "\n"+g+":"):], "\n", 3)[1], "admin") {
			t.Errorf("admin not in %s:\n%s", g, group)
		}
	}
	// cloud-init's users_groups makes ~/.ssh only for users given keys
	// (ssh makes the default user's, ssh_authkey_fingerprints the others').
	for _, u := range []string{"alice", "admin", "bob"} {
		if ok, _ := e.Root.Exists("/home/" + u + "/.ssh"); ok {
			t.Errorf("%s got a ~/.ssh without keys", u)
		}
	}
}

// TestKeysHomesAndRedirect: an empty ssh_authorized_keys still makes the
// file; ssh_redirect_user gives the instance's key pair behind the
// refusal naming the default user; keys with no home are refused.
func TestKeysHomesAndRedirect(t *testing.T) {
	e := debianImage(t)
	const pair = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKiFNq/AYmuyXEmbp76GoYJ6uJxtpEzBivy4C4jB4W+9 pair"
	e.Instance = &imds.Instance{InstanceID: "i-1", PublicKeys: []imds.PublicKey{{OpenSSHKey: pair + "\n"}}}
	doc := `users:
  - default
  - {name: empty, ssh_authorized_keys: []}
  - {name: guest, ssh_redirect_user: true}
  - {name: svc, system: true, ssh_authorized_keys: ["` + pair + `"]}
  - {name: both, ssh_redirect_user: default, ssh_import_id: [gh:x]}
  - {name: odd, ssh_redirect_user: sometimes}
`
	err := (UsersGroups{}).Run(context.Background(), e, modtest.Config(t, doc))
	for _, want := range []string{
		"users[3]: not creating user svc: key(s) ssh_authorized_keys cannot be provided with system",
		"users[4]: not creating user both: ssh_redirect_user cannot be provided with ssh_import_id or ssh_authorized_keys",
		"users[5]: not creating user odd: invalid value of ssh_redirect_user",
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("err = %v, want %q", err, want)
		}
	}
	if got := modtest.Get(t, e, "/home/empty/.ssh/authorized_keys"); got != "" {
		t.Errorf("empty's authorized_keys %q", got)
	}
	want := `no-port-forwarding,no-agent-forwarding,no-X11-forwarding,command="echo 'Please login as the user \"admin\" rather than the user \"guest\".';echo;sleep 10;exit 142" ` + pair + "\n"
	if got := modtest.Get(t, e, "/home/guest/.ssh/authorized_keys"); got != want {
		t.Errorf("guest's authorized_keys %q, want %q", got, want)
	}
	for _, u := range []string{"svc", "both", "odd"} {
		if strings.Contains(modtest.Get(t, e, "/etc/passwd"), "\n"+u+":") {
			t.Errorf("%s created", u)
		}
	}
}

// TestSudoersCloudInitName: the rules go to cloud-init's file, appended
// once per user; an earlier release's file is folded in and removed.
func TestSudoersCloudInitName(t *testing.T) {
	e := debianImage(t)
	modtest.Put(t, e, OldSudoersFile, "# Written by ec2init (users_groups) for this instance; rewritten on the next one.\n\n# User rules for olduser\nolduser ALL=(ALL) ALL\n")
	doc := "users: [default, {name: ops, sudo: 'ALL=(ALL) ALL'}]\n"
	for range 2 {
		if err := (UsersGroups{}).Run(context.Background(), e, modtest.Config(t, doc)); err != nil {
			t.Fatal(err)
		}
	}
	got := modtest.Get(t, e, SudoersFile)
	for _, want := range []string{"\n# User rules for olduser\nolduser ALL=(ALL) ALL\n", "\n# User rules for admin\nadmin ALL=(ALL) NOPASSWD:ALL\n", "\n# User rules for ops\nops ALL=(ALL) ALL\n"} {
		if strings.Count(got, want) != 1 {
			t.Errorf("%s:\n%s\nwant %q once", SudoersFile, got, want)
		}
	}
	if modtest.Get(t, e, OldSudoersFile) != "<absent>" {
		t.Error("the old sudoers file is left")
	}
	if fi, err := e.Root.Stat(SudoersFile); err != nil || fi.Mode().Perm() != 0o440 {
		t.Errorf("mode %v %v", fi, err)
	}
	if _, err := exec.LookPath("visudo"); err == nil {
		full, _ := e.Root.Path(SudoersFile)
		if out, err := exec.Command("visudo", "-c", "-f", full).CombinedOutput(); err != nil {
			t.Errorf("visudo -c: %v: %s", err, out)
		}
	}
}

// TestPasswordsThroughChpasswd: plain_text_passwd and hashed_passwd reach
// /etc/shadow through the real chpasswd (stdin, never argv); an existing
// user's passwd is ignored and hashed_passwd applies, as cloud-init does.
func TestPasswordsThroughChpasswd(t *testing.T) {
	if _, err := exec.LookPath("chpasswd"); err != nil {
		t.Skip("chpasswd not installed (Debian package passwd)")
	}
	e := debianImage(t)
	modtest.Put(t, e, "/etc/passwd", "root:x:0:0:root:/root:/bin/bash\nold:x:900:900::/home/old:/bin/sh\n")
	modtest.Put(t, e, "/etc/shadow", "root:*:19000:0:99999:7:::\nold:!:19000:0:99999:7:::\n")
	doc := `users:
  - {name: pt, plain_text_passwd: "Plain-Secret-1", lock_passwd: false}
  - {name: old, passwd: "` + secretHash + `", lock_passwd: false}
  - {name: old2, hashed_passwd: "` + secretHash + `", lock_passwd: false}
`
	if err := (UsersGroups{}).Run(context.Background(), e, modtest.Config(t, doc)); err != nil {
		t.Fatal(err)
	}
	field := func(user string) string {
		for _, line := range strings.Split(modtest.Get(t, e, "/etc/shadow"), "\n") {
			if f := strings.Split(line, ":"); len(f) > 1 && f[0] == user {
				return f[1]
			}
		}
		return "<none>"
	}
	if pt := field("pt"); !strings.HasPrefix(pt, "$6$") {
		t.Errorf("pt's shadow field %q: want a SHA-512 hash of the text", pt)
	}
	if old := field("old"); old != "!" {
		t.Errorf("existing user's passwd applied: %q", old)
	}
	if old2 := field("old2"); old2 != secretHash {
		t.Errorf("old2's hash %q", old2)
	}
}

// TestUserKey: the top-level user key renames and reconfigures the
// default user, which users_groups then creates (last) with the
// distribution's remaining settings; a users entry under its real name
// wins over it; groups are the union of both, created when missing.
func TestUserKey(t *testing.T) {
	e := debianImage(t)
	doc := `user:
  name: carol
  gecos: Carol C.
  groups: [docker]
  shell: /bin/sh
  lock_passwd: false
  hashed_passwd: "` + secretHash + `"
users:
  - alice
  - name: carol
    groups: [adm]
    shell: /bin/bash
`
	if err := (UsersGroups{}).Run(context.Background(), e, modtest.Config(t, doc)); err != nil {
		t.Fatal(err)
	}
	passwd := modtest.Get(t, e, "/etc/passwd")
	for _, want := range []string{"\nalice:x:1000:1000:", "\ncarol:x:1001:", ":Carol C.:/home/carol:/bin/bash\n"} {
		if !strings.Contains(passwd, want) {
			t.Errorf("passwd lacks %q:\n%s", want, passwd)
		}
	}
	if strings.Contains(passwd, "\nadmin:") {
		t.Errorf("the distribution's default name used:\n%s", passwd)
	}
	group := modtest.Get(t, e, "/etc/group")
	for _, want := range []string{"\nadm:x:4:carol\n", "\ndocker:x:"} {
		if !strings.Contains(group, want) {
			t.Errorf("group lacks %q:\n%s", want, group)
		}
	}
	if !strings.Contains(group[strings.Index(group, "\ndocker:x:"):], ":carol\n") {
		t.Errorf("carol not in docker:\n%s", group)
	}
	if !strings.Contains(group, "\ncdrom:x:24:\n") {
		t.Errorf("the user key's groups replace the distribution's, yet carol is in cdrom:\n%s", group)
	}
	if !strings.Contains(modtest.Get(t, e, "/etc/shadow"), "\ncarol:"+secretHash+":") {
		t.Error("carol's password not set and unlocked")
	}
	if got := modtest.Get(t, e, SudoersFile); !strings.Contains(got, "\n# User rules for carol\ncarol ALL=(ALL) NOPASSWD:ALL\n") {
		t.Errorf("the distribution's sudo rule not given to carol:\n%s", got)
	}

	// A name alone keeps every other setting of the distribution's.
	e = debianImage(t)
	if err := (UsersGroups{}).Run(context.Background(), e, modtest.Config(t, "user: dave\n")); err != nil {
		t.Fatal(err)
	}
	if passwd := modtest.Get(t, e, "/etc/passwd"); !strings.Contains(passwd, "\ndave:x:1000:1003:Debian:/home/dave:/bin/bash\n") {
		t.Errorf("passwd:\n%s", passwd)
	}
	if group := modtest.Get(t, e, "/etc/group"); !strings.Contains(group, "\nsudo:x:27:dave\n") {
		t.Errorf("group:\n%s", group)
	}
}
