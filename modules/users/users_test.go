package users

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/ec2init/ec2init/agent/config"
	"github.com/ec2init/ec2init/agent/sys"
	"github.com/ec2init/ec2init/internal/testkit"
	"github.com/ec2init/ec2init/modules"
	"github.com/ec2init/ec2init/modules/internal/accounts"
	"github.com/ec2init/ec2init/modules/modtest"
)

// A password hash that must never show in logs or errors.
const secretHash = "$6$saltsalt$SECRETHASHVALUEdoNotLogMe0123456789"

func TestDefaultUser(t *testing.T) {
	tests := []struct {
		osRelease string
		name      string
		group     string
	}{
		{"", "ec2-user", "wheel"},
		{"NAME=\"Amazon Linux\"\nID=\"amzn\"\nID_LIKE=\"fedora\"\n", "ec2-user", "wheel"},
		{"ID=debian\nVERSION_ID=\"12\"\n", "admin", "sudo"},
		{"ID=ubuntu\nID_LIKE=debian\n", "ubuntu", "sudo"},
		{"ID=raspbian\nID_LIKE=debian\n", "admin", "sudo"},
		{"ID=\"rhel\"\nID_LIKE=\"fedora\"\n", "ec2-user", "wheel"},
	}
	for _, tt := range tests {
		e, _ := modtest.Env(t)
		if tt.osRelease != "" {
			if err := e.Root.WriteFile("/etc/os-release", []byte(tt.osRelease), 0o644, nil); err != nil {
				t.Fatal(err)
			}
		}
		d := accounts.DefaultUser(e.Root, config.DefaultUser{})
		if d.Name != tt.name || !slices.Contains(d.Groups, tt.group) || !d.LockPasswd || d.Shell != "/bin/bash" ||
			!reflect.DeepEqual(d.Sudo, []string{"ALL=(ALL) NOPASSWD:ALL"}) {
			t.Errorf("os-release %q: %+v, want %s in %s", tt.osRelease, d, tt.name, tt.group)
		}
	}
}

// TestDefaultUserOverride: default_user in ec2init's config wins field by
// field over the distribution's, for "default" in users and without users.
func TestDefaultUserOverride(t *testing.T) {
	e, _ := modtest.Env(t)
	if err := e.Root.WriteFile("/etc/os-release", []byte("ID=debian\n"), 0o644, nil); err != nil {
		t.Fatal(err)
	}
	no := false
	tests := []struct {
		name     string
		override config.DefaultUser
		doc      string
		want     []string // name:groups:sudo:shell:lock
	}{
		{"distribution's", config.DefaultUser{}, "{}",
			[]string{"admin:adm,audio,cdrom,dialout,dip,floppy,netdev,plugdev,sudo,video:ALL=(ALL) NOPASSWD:ALL:/bin/bash:true"}},
		{"name only", config.DefaultUser{Name: "ops"}, "{}",
			[]string{"ops:adm,audio,cdrom,dialout,dip,floppy,netdev,plugdev,sudo,video:ALL=(ALL) NOPASSWD:ALL:/bin/bash:true"}},
		{"every field", config.DefaultUser{Name: "ops", Groups: []string{"wheel"}, Sudo: []string{}, Shell: "/bin/zsh", LockPasswd: &no},
			"users: [default, bob]", []string{"bob::::false", "ops:wheel::/bin/zsh:false"}},
		{"no default in users", config.DefaultUser{Name: "ops"}, "users: [bob]", []string{"bob::::false"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			specs, _, err := decodeUsers(modtest.Config(t, tt.doc), e.Root, tt.override)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, u := range specs {
				lock := u.LockPasswd != nil && *u.LockPasswd
				got = append(got, fmt.Sprintf("%s:%s:%s:%s:%v", u.Name, strings.Join(u.Groups, ","), strings.Join(u.Sudo, ","), u.Shell, lock))
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestDefaultUserEnabled(t *testing.T) {
	tests := []struct {
		doc  string
		want bool
	}{
		{"runcmd: [ls]\n", true},
		{"users: [default, bob]\n", true},
		{"users: default\n", true},
		{"users: 'bob, default'\n", true},
		{"users: [bob]\n", false},
		{"users: [{name: default}]\n", true},
		{"users: [{gecos: G}]\n", true},
		{"users: [bob]\nuser: carol\n", true},
		{"users: [bob]\nuser: ''\n", false},
		{"users: []\n", false},
	}
	for _, tt := range tests {
		if got := accounts.DefaultUserEnabled(modtest.Config(t, tt.doc)); got != tt.want {
			t.Errorf("%q: %v, want %v", tt.doc, got, tt.want)
		}
	}
}

func TestDecodeUsers(t *testing.T) {
	e, _ := modtest.Env(t)
	tests := []struct {
		doc     string
		want    []string // name:groups:sudo rules
		wantErr string
	}{
		{"{}", []string{"ec2-user:adm,systemd-journal,wheel:ALL=(ALL) NOPASSWD:ALL"}, ""},
		{"users: []", nil, ""},
		// cloud-init sorts the pieces before trimming them: " b" < "a".
		{"users: 'a, b'", []string{"b::", "a::"}, ""},
		{"users:\n  - default\n  - name: x\n    groups: 'g1, g2'\n    sudo: ALL=(ALL) ALL\n",
			[]string{"x:g1,g2:ALL=(ALL) ALL", "ec2-user:adm,systemd-journal,wheel:ALL=(ALL) NOPASSWD:ALL"}, ""},
		{"users:\n  - name: y\n    groups: [g1, g2]\n    sudo: [r1, r2]\n  - name: z\n    sudo: false\n", []string{"y:g1,g2:r1,r2", "z::"}, ""},
		{"users:\n  - snapuser: joe@example.com\n  - name: ok\n", []string{"ok::"}, "users[0]: snapuser is not supported"},
		{"users:\n  - name: ''\n  - name: ok\n", []string{"ok::"}, "test.yaml:2: users[0]: no name"},
		{"users:\n  - name: bad\n    passwd: [\"" + secretHash + "\"]\n  - name: ok\n", []string{"ok::"}, "users[0]"},
	}
	for _, tt := range tests {
		specs, _, err := decodeUsers(modtest.Config(t, tt.doc), e.Root, config.DefaultUser{})
		var got []string
		for _, u := range specs {
			got = append(got, u.Name+":"+strings.Join(u.Groups, ",")+":"+strings.Join(u.Sudo, ","))
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%q: %q, want %q", tt.doc, got, tt.want)
		}
		switch {
		case tt.wantErr == "" && err != nil:
			t.Errorf("%q: %v", tt.doc, err)
		case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
			t.Errorf("%q: err %v, want %q", tt.doc, err, tt.wantErr)
		}
		if err != nil && strings.Contains(err.Error(), "SECRET") {
			t.Errorf("error shows a password: %v", err)
		}
	}
}

func TestUIDAndBools(t *testing.T) {
	e, _ := modtest.Env(t)
	specs, _, err := decodeUsers(modtest.Config(t, "users:\n  - name: a\n    uid: 1234\n    lock_passwd: no\n    system: yes\n"), e.Root, config.DefaultUser{})
	if err != nil || len(specs) != 1 {
		t.Fatal(specs, err)
	}
	if u := specs[0]; u.UID != "1234" || u.lock() || !u.System {
		t.Errorf("%+v", u)
	}
}

func TestDecodeGroups(t *testing.T) {
	tests := []struct {
		doc  string
		want []groupSpec
	}{
		{"groups: 'a, b'", []groupSpec{{name: "a"}, {name: "b"}}},
		{"groups:\n  - admingroup: [root, sys]\n  - cloud-users\n", []groupSpec{{name: "admingroup", members: []string{"root", "sys"}}, {name: "cloud-users"}}},
		{"groups: {g: 'x, y', h: null}", []groupSpec{{name: "g", members: []string{"x", "y"}}, {name: "h"}}},
	}
	for _, tt := range tests {
		got, err := decodeGroups(modtest.Config(t, tt.doc))
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%q: %+v, %v; want %+v", tt.doc, got, err, tt.want)
		}
	}
}

func TestSchema(t *testing.T) {
	got := modtest.Diagnostics(t, `users:
  - default
  - name: a
    uid: [1]
    selinux_usr: staff_u
    lock_passwd: maybe
groups: 3
`, UsersGroups{})
	for _, want := range []string{
		"u.yaml:4:10: error: users[1].uid: expected integer or string, got a list",
		"u.yaml:5:5: warning: users[1].selinux_usr: unknown key",
		"u.yaml:6:18: error: users[1].lock_passwd: expected boolean",
		"u.yaml:7:9: error: groups:",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("diagnostics\n%s\nlack %q", got, want)
		}
	}
	if ok := modtest.Diagnostics(t, "users:\n  - name: a\n    sudo: false\n    groups: 'x, y'\n    uid: '5'\n", UsersGroups{}); ok != "" {
		t.Errorf("valid config: %s", ok)
	}
}

// TestSchemaUserKeyAndDoas: the user key is checked as a users entry,
// with file:line; doas rules cloud-init would refuse are warned about
// (the user is still created, without doas rules).
func TestSchemaUserKeyAndDoas(t *testing.T) {
	tests := []struct {
		doc  string
		want []string
	}{
		{"user: {name: x, shell: 5, lock-passwd: false}\n", []string{
			"u.yaml:1:24: error: user.shell: expected string",
			// cloud-init reads this mapping's keys as written: lock-passwd is ignored.
			"u.yaml:1:27: warning: user.lock-passwd: unknown key",
		}},
		{"user: [a]\n", []string{"u.yaml:1:7: error: user: expected string or mapping"}},
		{"user: bob\n", nil},
		{"user:\n  doas: [permit nopass anyone]\n", nil},
		{"user:\n  name: boss\n  doas: [permit nopass anyone]\n", []string{
			"u.yaml:3:10: warning: user.doas[0]: the rule is for anyone, not boss; no doas rules are written for this user"}},
		{"users:\n  - name: ops\n    selinux_user: staff_u\n    doas:\n      - permit nopass ops\n      - permit :wheel\n", []string{
			"u.yaml:6:9: warning: users[0].doas[1]: not a doas rule as cloud-init takes them"}},
		{"users:\n  - name: ops\n    doas: permit ops\n", []string{"u.yaml:3:11: error: users[0].doas: expected list of string"}},
		{"users:\n  ops: {doas: [permit bob]}\n  dev: true\n", []string{"u.yaml:2:16: warning: users.ops.doas[0]: the rule is for bob, not ops"}},
		{"users: [[a, b], default]\n", nil},
		{"users:\n  default: {doas: [permit nopass admin]}\n", nil},
	}
	for _, tt := range tests {
		got := modtest.Diagnostics(t, tt.doc, UsersGroups{})
		lines := strings.Split(got, "\n")
		if got == "" {
			lines = nil
		}
		if len(lines) != len(tt.want) {
			t.Errorf("%q:\n%s\nwant %d findings", tt.doc, got, len(tt.want))
			continue
		}
		for i, want := range tt.want {
			if !strings.HasPrefix(lines[i], want) {
				t.Errorf("%q: finding %q, want %q...", tt.doc, lines[i], want)
			}
		}
	}
}

// fakeTools puts logging stand-ins for the shadow tools first in PATH; the
// fake useradd adds a passwd line and a home so later steps can work.
func fakeTools(t *testing.T, e *modules.Env) string {
	t.Helper()
	dir := t.TempDir()
	log := filepath.Join(dir, "log")
	logger := "#!/bin/sh\necho \"$(basename \"$0\") $*\" >> " + log + "\n"
	useradd := logger + `prefix=""
if [ "$1" = --prefix ]; then prefix="$2"; fi
for last; do :; done
echo "$last:x:` + strconv.Itoa(os.Getuid()) + `:` + strconv.Itoa(os.Getgid()) + `::/home/$last:/bin/sh" >> "$prefix/etc/passwd"
mkdir -p "$prefix/home/$last"
`
	// The fake chpasswd keeps its stdin apart: the password must be there,
	// never in argv.
	chpasswd := logger + "cat >> " + log + ".stdin\n"
	for name, body := range map[string]string{"useradd": useradd, "groupadd": logger, "usermod": logger, "visudo": logger, "chpasswd": chpasswd} {
		testkit.FakeTool(t, dir, name, body)
	}
	e.Runner.Env = map[string]string{"PATH": dir + ":" + sys.DefaultPath}
	return log
}

func TestRunArgv(t *testing.T) {
	e, _ := modtest.Env(t)
	core, logs := observer.New(zap.DebugLevel)
	e.Log = zap.New(core)
	log := fakeTools(t, e)
	root := e.Root
	if err := root.WriteFile("/etc/passwd", []byte("root:x:0:0:root:/root:/bin/bash\nold:x:900:900::/home/old:/bin/sh\n"), 0o644, nil); err != nil {
		t.Fatal(err)
	}
	if err := root.WriteFile("/etc/group", []byte("root:x:0:\nwheel:x:10:old\nadm:x:4:\n"), 0o644, nil); err != nil {
		t.Fatal(err)
	}
	cfg := modtest.Config(t, `groups:
  - ops: [newbie]
users:
  - default
  - name: newbie
    gecos: New Bie
    groups: [adm, extra]
    shell: /bin/zsh
    uid: 2001
    passwd: "`+secretHash+`"
    lock_passwd: false
    sudo: ["ALL=(ALL) ALL"]
    selinux_user: staff_u
    expiredate: "2030-01-02"
    inactive: "7"
  - name: old
    groups: wheel, adm
  - name: sys1
    system: true
`)
	if err := (UsersGroups{}).Run(context.Background(), e, cfg); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(log)
	got := strings.ReplaceAll(string(b), root.Prefix(), "ROOT")
	want := []string{
		"groupadd --prefix ROOT ops",
		"groupadd --prefix ROOT extra",
		"useradd --prefix ROOT -c New Bie -s /bin/zsh -u 2001 -e 2030-01-02 -f 7 --selinux-user staff_u -G adm,extra -m newbie",
		"chpasswd -R ROOT -e",
		"usermod --prefix ROOT -U newbie",
		"usermod --prefix ROOT -a -G adm old",
		"usermod --prefix ROOT -L old",
		"useradd --prefix ROOT -r -M sys1",
		"usermod --prefix ROOT -L sys1",
		// The default user last, as cloud-init creates it; its groups
		// sorted, as cloud-init sorts them.
		"groupadd --prefix ROOT systemd-journal", // absent from the image: created, as cloud-init's add_user does
		"useradd --prefix ROOT -c EC2 Default User -s /bin/bash -G adm,systemd-journal,wheel -m ec2-user",
		"usermod --prefix ROOT -L ec2-user",
		"usermod --prefix ROOT -a -G ops newbie",
		"visudo -c -q -f ROOT/etc/sudoers.d/.90-cloud-init-users.check",
	}
	if lines := strings.Split(strings.TrimSpace(got), "\n"); !reflect.DeepEqual(lines, want) {
		t.Errorf("commands:\n%s\nwant:\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
	}
	if stdin, _ := os.ReadFile(log + ".stdin"); string(stdin) != "newbie:"+secretHash+"\n" {
		t.Errorf("chpasswd's stdin %q", stdin)
	}
	if strings.Contains(got, "-L newbie") {
		t.Error("lock_passwd: false locked the user")
	}
	sudoers, err := root.ReadFile(SudoersFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{"ec2-user ALL=(ALL) NOPASSWD:ALL\n", "newbie ALL=(ALL) ALL\n"} {
		if !strings.Contains(string(sudoers), w) {
			t.Errorf("sudoers %q lacks %q", sudoers, w)
		}
	}
	if fi, _ := root.Stat(SudoersFile); fi.Mode().Perm() != 0o440 {
		t.Errorf("sudoers mode %v", fi.Mode())
	}
	if ok, _ := root.Exists("/etc/sudoers.d/.90-cloud-init-users.check"); ok {
		t.Error("candidate sudoers file left behind")
	}
	for _, entry := range logs.All() {
		if line := fmt.Sprint(entry.Message, entry.ContextMap()); strings.Contains(line, "SECRET") {
			t.Errorf("log entry shows the password hash: %s", line)
		}
	}
}
