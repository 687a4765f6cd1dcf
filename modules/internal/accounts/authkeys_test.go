package accounts

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/ec2init/ec2init/agent/sys"
	"github.com/ec2init/ec2init/internal/testkit"
)

const (
	k1 = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIK1K1K1K1K1K1K1K1K1K1K1K1K1K1K1K1K1K1K1K1K1 one@a"
	k2 = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIK2K2K2K2K2K2K2K2K2K2K2K2K2K2K2K2K2K2K2K2K2 two@b"
	k3 = "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYK3K3K3K3K3K3K3K3 hand"
)

func TestKeyID(t *testing.T) {
	tests := []struct {
		line, want string
	}{
		{k1, "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIK1K1K1K1K1K1K1K1K1K1K1K1K1K1K1K1K1K1K1K1K1"},
		{"  " + k3 + "  ", "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYK3K3K3K3K3K3K3K3"},
		{`no-pty,command="echo 'a b ssh-rsa x';exit 1" ` + k1, "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIK1K1K1K1K1K1K1K1K1K1K1K1K1K1K1K1K1K1K1K1K1"},
		{`from="10.0.0.0/8",no-agent-forwarding ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAAB`, "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAAB"},
		{"", ""},
		{"# ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAAB", ""},
		{"not a key at all", ""},
		{"ssh-rsa short", ""},
	}
	for _, tt := range tests {
		got, ok := KeyID(tt.line)
		if got != tt.want || ok != (tt.want != "") {
			t.Errorf("KeyID(%q) = %q, %v; want %q", tt.line, got, ok, tt.want)
		}
	}
}

func TestMergeKeys(t *testing.T) {
	id1, _ := KeyID(k1)
	tests := []struct {
		name     string
		old, add []string
		remove   map[string]bool
		want     []string
	}{
		{name: "append to empty", add: []string{k1, k2}, want: []string{k1, k2}},
		{name: "already there", old: []string{"# mine", k1}, add: []string{k1}, want: []string{"# mine", k1}},
		{name: "options replaced in place", old: []string{k3, "no-pty " + k1}, add: []string{k1}, want: []string{k3, k1}},
		{name: "duplicates in input once", add: []string{k1, k1}, want: []string{k1}},
		{name: "removed unless wanted", old: []string{k1, k3}, add: []string{k2}, remove: map[string]bool{id1: true}, want: []string{k3, k2}},
		{name: "removed but wanted again stays", old: []string{k1}, add: []string{k1}, remove: map[string]bool{id1: true}, want: []string{k1}},
		{name: "junk input skipped", add: []string{"junk", k2}, want: []string{k2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := MergeKeys(tt.old, tt.add, tt.remove)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

// testRoot returns a root with one account, owned by the test's own uid so
// chown works without privileges.
func testRoot(t *testing.T, home string) (*sys.Root, Account) {
	t.Helper()
	root, err := sys.NewRoot(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	uid, gid := os.Getuid(), os.Getgid()
	passwd := "root:x:0:0:root:/root:/bin/bash\n" +
		"ec2-user:x:" + strconv.Itoa(uid) + ":" + strconv.Itoa(gid) + ":EC2 Default User:" + home + ":/bin/bash\n"
	if err := root.WriteFile("/etc/passwd", []byte(passwd), 0o644, nil); err != nil {
		t.Fatal(err)
	}
	if err := root.WriteFile("/etc/group", []byte("root:x:0:\nwheel:x:10:\n"), 0o644, nil); err != nil {
		t.Fatal(err)
	}
	if err := root.MkdirAll(home, 0o755); err != nil {
		t.Fatal(err)
	}
	acct, found, err := LookupAccount(root, "ec2-user")
	if err != nil || !found {
		t.Fatalf("LookupAccount: %v %v", found, err)
	}
	return root, acct
}

func TestUpdateAuthorizedKeys(t *testing.T) {
	root, acct := testRoot(t, "/home/ec2-user")
	if err := UpdateAuthorizedKeys(root, acct, []string{k1}, nil); err != nil {
		t.Fatal(err)
	}
	if err := UpdateAuthorizedKeys(root, acct, []string{k1, k2}, nil); err != nil {
		t.Fatal(err)
	}
	b, err := root.ReadFile("/home/ec2-user/.ssh/authorized_keys")
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != k1+"\n"+k2+"\n" {
		t.Errorf("authorized_keys = %q", b)
	}
	for p, want := range map[string]os.FileMode{"/home/ec2-user/.ssh": 0o700 | os.ModeDir, "/home/ec2-user/.ssh/authorized_keys": 0o600} {
		fi, err := root.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode() != want {
			t.Errorf("%s mode %v, want %v", p, fi.Mode(), want)
		}
	}
}

func TestUpdateAuthorizedKeysRefusesSymlinks(t *testing.T) {
	root, acct := testRoot(t, "/home/ec2-user")
	if err := os.Symlink("/etc", filepath.Join(root.Prefix(), "home/ec2-user/.ssh")); err != nil {
		t.Fatal(err)
	}
	err := UpdateAuthorizedKeys(root, acct, []string{k1}, nil)
	if err == nil || !strings.Contains(err.Error(), "symlink") {
		t.Fatalf("err = %v, want a refusal", err)
	}
	if ok, _ := root.Exists("/etc/authorized_keys"); ok {
		t.Error("wrote through the symlink")
	}
}

func TestUpdateAuthorizedKeysNoHome(t *testing.T) {
	root, acct := testRoot(t, "/home/ec2-user")
	acct.Home = "/nonexistent"
	if err := UpdateAuthorizedKeys(root, acct, []string{k1}, nil); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("err = %v", err)
	}
}

// A service user who owns a directory on the way to its home can swap the
// home for a symlink to /root: the keys must not be written there, nor
// /root/.ssh given to that user.
func TestUpdateAuthorizedKeysPlantedHome(t *testing.T) {
	testkit.RequireRoot(t, "a directory owned by another user needs root")
	root, acct := testRoot(t, "/srv/app/home")
	prefix := root.Prefix()
	if err := os.MkdirAll(filepath.Join(prefix, "root/.ssh"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(filepath.Join(prefix, "srv/app"), 1000, 1000); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(prefix, "srv/app/home")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/root", filepath.Join(prefix, "srv/app/home")); err != nil {
		t.Fatal(err)
	}
	err := UpdateAuthorizedKeys(root, acct, []string{k1}, nil)
	if !errors.Is(err, sys.ErrUntrustedSymlink) || !strings.Contains(err.Error(), "/srv/app/home is a symlink") {
		t.Fatalf("err = %v, want the planted home refused", err)
	}
	if _, err := os.Lstat(filepath.Join(prefix, "root/.ssh/authorized_keys")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("keys written through the planted home (stat error %v)", err)
	}
}
