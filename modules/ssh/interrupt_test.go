package ssh

import (
	"encoding/json"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestInterruptedRenewalFinishes: a run cut short while renewing the host
// keys of instance B (the record says so, an image key is still there, a
// new key half made) is followed by a run for B that is no longer told the
// instance is new: it renews again, leaving only complete keys of B's.
func TestInterruptedRenewalFinishes(t *testing.T) {
	if _, err := exec.LookPath("ssh-keygen"); err != nil {
		t.Skipf("ssh-keygen not installed: %v", err)
	}
	d := newDisk(t)
	const doc = "ssh_genkeytypes: [ed25519, ecdsa]\n"
	if err := d.boot(SSH{}, "i-aaaa", true, keyA, doc); err != nil {
		t.Fatal(err)
	}
	imageKeys := d.hostKeys()
	// The crash, in instance B's first run: renewal under way, an image
	// key of another type not yet deleted, one new public key empty, a
	// keygen's temporary directory left behind.
	rec, _ := json.Marshal(hostKeysState{InstanceID: "i-bbbb"})
	files := map[string]string{
		HostKeysStateFile:                  string(rec),
		"/etc/ssh/ssh_host_dsa_key":        "image key\n",
		"/etc/ssh/ssh_host_ecdsa_key.pub":  "",
		"/etc/ssh/.ec2init-keygen-x/stale": "half",
	}
	for p, c := range files {
		if err := d.env.Root.WriteFile(p, []byte(c), 0o600, nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := d.boot(SSH{}, "i-bbbb", false, keyB, doc); err != nil {
		t.Fatal(err)
	}
	for _, t2 := range []string{"ed25519", "ecdsa"} {
		for _, p := range []string{"/etc/ssh/ssh_host_" + t2 + "_key", "/etc/ssh/ssh_host_" + t2 + "_key.pub"} {
			if fi, err := d.env.Root.Stat(p); err != nil || fi.Size() == 0 {
				t.Errorf("%s missing or empty: %v", p, err)
			}
		}
	}
	if got := d.hostKeys(); got == imageKeys || strings.Contains(got, strings.SplitN(imageKeys, "\n", 2)[0]) {
		t.Errorf("host keys not renewed for the instance:\n%s", got)
	}
	dir, _ := d.env.Root.Path("/etc/ssh")
	if left, _ := filepath.Glob(filepath.Join(dir, "ssh_host_dsa_key*")); len(left) != 0 {
		t.Errorf("image key left: %v", left)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, keygenTempPrefix+"*")); len(left) != 0 {
		t.Errorf("temporary keygen files left: %v", left)
	}
	var st hostKeysState
	if b, err := d.env.Root.ReadFile(HostKeysStateFile); err != nil || json.Unmarshal(b, &st) != nil || !st.Done || st.InstanceID != "i-bbbb" {
		t.Errorf("renewal record: %+v, %v", st, err)
	}
	if !strings.Contains(d.read(userKeys), "key-b") {
		t.Errorf("authorized_keys lacks B's key:\n%s", d.read(userKeys))
	}

	// Finished: another run for B keeps them.
	renewed := d.hostKeys()
	if err := d.boot(SSH{}, "i-bbbb", false, keyB, doc); err != nil {
		t.Fatal(err)
	}
	if d.hostKeys() != renewed {
		t.Error("a finished renewal was done again")
	}
}

// TestHalfKeyPairMadeAgain: on a run for the same instance, a type whose
// public key is missing is made again as a whole, so its two files match.
func TestHalfKeyPairMadeAgain(t *testing.T) {
	if _, err := exec.LookPath("ssh-keygen"); err != nil {
		t.Skipf("ssh-keygen not installed: %v", err)
	}
	d := newDisk(t)
	const doc = "ssh_genkeytypes: [ed25519]\n"
	if err := d.boot(SSH{}, "i-aaaa", true, keyA, doc); err != nil {
		t.Fatal(err)
	}
	if err := d.env.Root.Remove("/etc/ssh/ssh_host_ed25519_key.pub"); err != nil {
		t.Fatal(err)
	}
	if err := d.boot(SSH{}, "i-aaaa", false, keyA, doc); err != nil {
		t.Fatal(err)
	}
	priv, err := d.env.Root.Path("/etc/ssh/ssh_host_ed25519_key")
	if err != nil {
		t.Fatal(err)
	}
	derived, err := exec.Command("ssh-keygen", "-y", "-f", priv).Output()
	if err != nil {
		t.Fatal(err)
	}
	pub := d.read("/etc/ssh/ssh_host_ed25519_key.pub")
	if f := strings.Fields(pub); len(f) < 2 || !strings.Contains(string(derived), f[1]) {
		t.Errorf("public key %q does not match the private key (%q)", pub, derived)
	}
}
