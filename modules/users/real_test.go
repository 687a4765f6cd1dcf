package users

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"

	"github.com/ec2init/ec2init/internal/testkit"
	"github.com/ec2init/ec2init/modules/internal/accounts"
	"github.com/ec2init/ec2init/modules/modtest"
)

// k1 is an authorized key for the real tools' account.
const k1 = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIK1K1K1K1K1K1K1K1K1K1K1K1K1K1K1K1K1K1K1K1K1 one@a"

// TestRealShadowTools runs the real useradd, groupadd and usermod with
// --prefix against a temporary root holding minimal account databases,
// twice (the second run must change nothing).
func TestRealShadowTools(t *testing.T) {
	for _, tool := range []string{"useradd", "groupadd", "usermod"} {
		if _, err := exec.LookPath(tool); err != nil {
			if _, err := os.Stat("/usr/sbin/" + tool); err != nil {
				t.Skipf("%s not installed (Debian package passwd)", tool)
			}
		}
	}
	testkit.RequireRoot(t, "useradd --prefix needs root to write the account databases and chown homes")
	e, _ := modtest.Env(t)
	root := e.Root
	files := map[string]string{
		"/etc/passwd":  "root:x:0:0:root:/root:/bin/bash\n",
		"/etc/group":   "root:x:0:\nadm:x:4:\nsudo:x:27:\nusers:x:100:\n",
		"/etc/shadow":  "root:*:19000:0:99999:7:::\n",
		"/etc/gshadow": "root:*::\nadm:*::\nsudo:*::\nusers:*::\n",
		"/etc/sudoers": "Defaults env_reset\nroot ALL=(ALL:ALL) ALL\n",
		// Distribution defaults: a group per user, as Debian and Amazon Linux set.
		"/etc/login.defs": "USERGROUPS_ENAB yes\n",
		// Debian's AMIs call their default user admin.
		"/etc/os-release": "ID=debian\n",
	}
	for p, c := range files {
		mode := os.FileMode(0o644)
		if strings.Contains(p, "shadow") || p == "/etc/sudoers" {
			mode = 0o440
		}
		if err := root.WriteFile(p, []byte(c), mode, nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := root.MkdirAll("/home", 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := modtest.Config(t, `groups:
  - admingroup: [root, foobar]
  - cloud-users
users:
  - default
  - name: foobar
    gecos: Foo B. Bar
    primary_group: foobar
    groups: users, staff
    sudo: ALL=(ALL) NOPASSWD:ALL
    ssh_authorized_keys:
      - `+k1+`
  - name: hashy
    uid: 2345
    shell: /bin/sh
    passwd: "`+secretHash+`"
    lock_passwd: false
    expiredate: "2030-01-02"
    inactive: "7"
  - name: cloudy
    system: true
`)
	for round := 1; round <= 2; round++ {
		if err := (UsersGroups{}).Run(context.Background(), e, cfg); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
	}
	read := func(p string) string {
		b, err := root.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	passwd, group, shadow := read("/etc/passwd"), read("/etc/group"), read("/etc/shadow")
	for _, want := range []string{
		"\nadmin:x:", ":Debian:/home/admin:/bin/bash\n",
		"\nfoobar:x:", ":Foo B. Bar:/home/foobar:",
		"\nhashy:x:2345:", ":/home/hashy:/bin/sh\n",
		"\ncloudy:x:",
	} {
		if !strings.Contains(passwd, want) {
			t.Errorf("/etc/passwd lacks %q:\n%s", want, passwd)
		}
	}
	for _, want := range []string{"adm:x:4:admin\n", "sudo:x:27:admin\n", "users:x:100:foobar\n", "\nadmin:x:", "\nadmingroup:x:", ":root,foobar\n", "\ncloud-users:x:"} {
		if !strings.Contains(group, want) {
			t.Errorf("/etc/group lacks %q:\n%s", want, group)
		}
	}
	if strings.Count(group, "foobar") != 4 { // its own group, users, staff, admingroup
		t.Errorf("foobar's groups after two runs:\n%s", group)
	}
	// expiredate and inactive: days since 1970 and days, in fields 8 and 7.
	for _, want := range []string{"\nhashy:" + secretHash + ":", ":7:21916:\n", "\nfoobar:!", "\nadmin:!"} {
		if !strings.Contains(shadow, want) {
			t.Errorf("/etc/shadow lacks %q", strings.ReplaceAll(want, secretHash, "<hash>"))
		}
	}
	if ok, _ := root.Exists("/home/cloudy"); ok {
		t.Error("system user got a home")
	}

	keys := read("/home/foobar/.ssh/authorized_keys")
	if keys != k1+"\n" {
		t.Errorf("authorized_keys = %q", keys)
	}
	acct, _, _ := accounts.LookupAccount(root, "foobar")
	for p, mode := range map[string]os.FileMode{"/home/foobar/.ssh": 0o700, "/home/foobar/.ssh/authorized_keys": 0o600} {
		fi, err := root.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != mode {
			t.Errorf("%s mode %v", p, fi.Mode())
		}
		if uid, gid := owner(fi); uid != acct.UID || gid != acct.GID {
			t.Errorf("%s owned by %d:%d, want %d:%d", p, uid, gid, acct.UID, acct.GID)
		}
	}

	sudoers := read(SudoersFile)
	for _, want := range []string{"admin ALL=(ALL) NOPASSWD:ALL\n", "foobar ALL=(ALL) NOPASSWD:ALL\n"} {
		if !strings.Contains(sudoers, want) {
			t.Errorf("sudoers lacks %q:\n%s", want, sudoers)
		}
	}
	if main := read("/etc/sudoers"); strings.Count(main, "#includedir /etc/sudoers.d") != 1 {
		t.Errorf("/etc/sudoers includes:\n%s", main)
	}
	if _, err := exec.LookPath("visudo"); err == nil {
		full, _ := root.Path(SudoersFile)
		if out, err := exec.Command("visudo", "-c", "-f", full).CombinedOutput(); err != nil {
			t.Errorf("visudo -c on the result: %v: %s", err, out)
		}
	}
}

func owner(fi os.FileInfo) (uid, gid int) {
	st := fi.Sys().(*syscall.Stat_t)
	return int(st.Uid), int(st.Gid)
}
