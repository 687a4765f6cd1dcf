package ssh

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/ec2init/ec2init/agent/sys"
	"github.com/ec2init/ec2init/internal/testkit"
	"github.com/ec2init/ec2init/modules/modtest"
)

// The real ssh-import-id asks Launchpad or GitHub, which tests may not
// reach: a fake stands in for it, writing to -o as the real one does.
const fakeImport = `#!/bin/sh
echo "$@" >> "$(dirname "$0")/calls"
[ "$1" = -o ] || exit 9
out=$2; shift 2
case "$1" in gh:fail) echo "ERROR: no such user" >&2; exit 1;; esac
for id in "$@"; do echo "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI$(echo "$id" | tr -dc a-z) $id # ssh-import-id $id" >> "$out"; done
`

func TestSSHImportID(t *testing.T) {
	d := newDisk(t)
	if err := d.env.Root.MkdirAll("/home/bob", 0o755); err != nil {
		t.Fatal(err)
	}
	if err := d.env.Root.AppendFile("/etc/passwd", []byte(strings.Replace(strings.Split(d.read("/etc/passwd"), "\n")[1], "ec2-user", "bob", 2)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	bin := testkit.FakeBin(t, map[string]string{"ssh-import-id": fakeImport})
	d.env.Runner.Env = map[string]string{"PATH": bin + ":" + sys.DefaultPath}
	doc := "ssh_import_id: [gh:alice, 'lp:al, gh:alice']\nusers: [default, {name: bob, ssh_import_id: [gh:bob]}, {name: carol}]\n"
	cfg := modtest.Config(t, doc)
	if !(SSHImportID{}).Wanted(modtest.Config(t, "users: [{name: bob, ssh_import_id: [gh:bob]}]\n")) {
		t.Error("a user's ssh_import_id alone must run the module")
	}
	if err := (SSHImportID{}).Run(context.Background(), d.env, cfg); err != nil {
		t.Fatal(err)
	}
	if got := d.read(userKeys); strings.Count(got, "ssh-import-id") != 2 || !strings.Contains(got, " gh:alice #") || !strings.Contains(got, " lp:al #") {
		t.Errorf("ec2-user's keys %q", got)
	}
	if got := d.read("/home/bob/.ssh/authorized_keys"); !strings.Contains(got, "gh:bob") {
		t.Errorf("bob's keys %q", got)
	}
	calls, _ := os.ReadFile(filepath.Join(bin, "calls"))
	if n := strings.Count(string(calls), "\n"); n != 2 {
		t.Errorf("calls:\n%s", calls)
	}

	// A failing import is tried twice and named.
	err := (SSHImportID{}).Run(context.Background(), d.env, modtest.Config(t, "ssh_import_id: [gh:fail]\n"))
	if err == nil || !strings.Contains(err.Error(), "user ec2-user: ssh-import-id exited 1: ERROR: no such user") {
		t.Errorf("err = %v", err)
	}
}

func TestSSHImportIDNotInstalled(t *testing.T) {
	d := newDisk(t)
	d.env.Runner.Env = map[string]string{"PATH": t.TempDir()}
	err := (SSHImportID{}).Run(context.Background(), d.env, modtest.Config(t, "ssh_import_id: [gh:alice]\n"))
	if err == nil || err.Error() != "ssh-import-id not installed (needs network to Launchpad/GitHub)" {
		t.Errorf("err = %v", err)
	}
	// Nothing asked: nothing said.
	if err := (SSHImportID{}).Run(context.Background(), d.env, modtest.Config(t, "users: [default]\n")); err != nil {
		t.Errorf("err = %v", err)
	}
}

// TestSSHImportIDAsUser: on the host the command is cloud-init's, run as
// the user (argv only: running it would touch the host's accounts).
func TestSSHImportIDAsUser(t *testing.T) {
	d := newDisk(t)
	for _, tt := range []struct {
		tools map[string]string
		want  []string
	}{
		{map[string]string{"sudo": "#!/bin/sh\n", "doas": "#!/bin/sh\n"}, []string{"sudo", "--preserve-env=https_proxy", "-Hu", "bob", "ssh-import-id", "gh:a", "lp:b"}},
		{map[string]string{"doas": "#!/bin/sh\n"}, []string{"doas", "-u", "bob", "ssh-import-id", "gh:a", "lp:b"}},
		{nil, nil},
	} {
		d.env.Runner.Env = map[string]string{"PATH": testkit.FakeBin(t, tt.tools)}
		r := &run{env: d.env, log: d.env.Logger()}
		got, err := r.asUser("bob", []string{"gh:a", "lp:b"})
		if !reflect.DeepEqual(got, tt.want) || (err != nil) != (tt.want == nil) {
			t.Errorf("asUser = %q, %v; want %q", got, err, tt.want)
		}
	}
}
