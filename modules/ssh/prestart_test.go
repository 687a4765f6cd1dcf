package ssh

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/ec2init/ec2init/agent/imds"
	"github.com/ec2init/ec2init/modules/modtest"
)

// plantStaged makes a finished staged key as Start leaves it, for instance
// id and type t, holding marker as its keys.
func plantStaged(t *testing.T, d *disk, id, typ, marker string) string {
	t.Helper()
	dir, err := d.env.Root.Path("/etc/ssh/" + preKeygenPrefix + id + "-" + typ)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	name := "ssh_host_" + typ + "_key"
	for f, c := range map[string]string{name: marker, name + ".pub": marker + ".pub\n", preKeygenDone: ""} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte(c), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func stagedLeft(t *testing.T, d *disk) []string {
	t.Helper()
	dir, err := d.env.Root.Path("/etc/ssh")
	if err != nil {
		t.Fatal(err)
	}
	left, _ := filepath.Glob(filepath.Join(dir, preKeygenPrefix+"*"))
	return left
}

// TestStartGeneratesAhead: on a new instance Start has ssh-keygen make the
// keys Run will install (another instance's leftovers are removed, never
// used), and Run installs exactly those and leaves no staging behind.
func TestStartGeneratesAhead(t *testing.T) {
	if _, err := exec.LookPath("ssh-keygen"); err != nil {
		t.Skip("ssh-keygen not installed (apt-get install openssh-client)")
	}
	d := newDisk(t)
	stale := plantStaged(t, d, "i-other", "ed25519", "stale")
	d.env.NewInstance = true
	d.env.Instance = &imds.Instance{InstanceID: "i-aaaa"}
	const doc = "ssh_genkeytypes: [ed25519, ecdsa]\nssh_quiet_keygen: true\n"
	wait := SSH{}.Start(context.Background(), d.env, modtest.Config(t, doc))
	if wait == nil {
		t.Fatal("Start started nothing on a new instance")
	}
	wait()
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Errorf("another instance's staged key left: %v", err)
	}
	staged := map[string]string{}
	for _, typ := range []string{"ed25519", "ecdsa"} {
		dir, _ := d.env.Root.Path("/etc/ssh/" + preKeygenPrefix + "i-aaaa-" + typ)
		pub, err := os.ReadFile(filepath.Join(dir, "ssh_host_"+typ+"_key.pub"))
		if err != nil {
			t.Fatalf("%s not staged: %v", typ, err)
		}
		staged[typ] = string(pub)
	}
	if err := d.boot(SSH{}, "i-aaaa", true, keyA, doc); err != nil {
		t.Fatal(err)
	}
	for typ, pub := range staged {
		if got := d.read("/etc/ssh/ssh_host_" + typ + "_key.pub"); got != pub {
			t.Errorf("%s: installed %q, Start made %q", typ, got, pub)
		}
	}
	if left := stagedLeft(t, d); len(left) != 0 {
		t.Errorf("staging left behind: %v", left)
	}
}

func TestStartNothingToDo(t *testing.T) {
	for _, tt := range []struct {
		name        string
		newInstance bool
		doc         string
	}{
		{"same instance", false, ""},
		{"keys given in ssh_keys", true, "ssh_keys:\n  ed25519_private: |\n    -----BEGIN OPENSSH PRIVATE KEY-----\n    x\n    -----END OPENSSH PRIVATE KEY-----\n"},
		{"no types", true, "ssh_genkeytypes: []\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			d := newDisk(t)
			d.env.NewInstance = tt.newInstance
			d.env.Instance = &imds.Instance{InstanceID: "i-aaaa"}
			if wait := (SSH{}).Start(context.Background(), d.env, modtest.Config(t, tt.doc)); wait != nil {
				wait()
				t.Errorf("Start started work: %v", stagedLeft(t, d))
			}
		})
	}
}

// TestRunIgnoresOtherInstancesStaging: without Start, a staged key left
// by another instance's crashed boot is never installed, and is removed.
func TestRunIgnoresOtherInstancesStaging(t *testing.T) {
	if _, err := exec.LookPath("ssh-keygen"); err != nil {
		t.Skip("ssh-keygen not installed (apt-get install openssh-client)")
	}
	d := newDisk(t)
	plantStaged(t, d, "i-other", "ed25519", "stale")
	if err := d.boot(SSH{}, "i-aaaa", true, keyA, "ssh_genkeytypes: [ed25519]\nssh_quiet_keygen: true\n"); err != nil {
		t.Fatal(err)
	}
	if got := d.read("/etc/ssh/ssh_host_ed25519_key.pub"); got == "stale.pub\n" {
		t.Error("another instance's staged key was installed")
	}
	if left := stagedLeft(t, d); len(left) != 0 {
		t.Errorf("staging left behind: %v", left)
	}
}
