package ssh

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestFingerprintMatchesSSHKeygen: the console's fingerprint lines are
// what the real `ssh-keygen -l` prints for the same keys.
func TestFingerprintMatchesSSHKeygen(t *testing.T) {
	if _, err := exec.LookPath("ssh-keygen"); err != nil {
		t.Skip("ssh-keygen not installed (Debian package openssh-client)")
	}
	dir := t.TempDir()
	for _, tt := range []struct{ typ, bits string }{{"rsa", "3072"}, {"rsa", "2048"}, {"ecdsa", "256"}, {"ecdsa", "384"}, {"ed25519", ""}} {
		key := filepath.Join(dir, tt.typ+tt.bits)
		args := []string{"-q", "-t", tt.typ, "-N", "", "-C", "root@ip-10-0-1-23", "-f", key}
		if tt.bits != "" {
			args = append(args, "-b", tt.bits)
		}
		if out, err := exec.Command("ssh-keygen", args...).CombinedOutput(); err != nil {
			t.Fatalf("ssh-keygen %v: %v\n%s", args, err, out)
		}
		want, err := exec.Command("ssh-keygen", "-l", "-f", key+".pub").Output()
		if err != nil {
			t.Fatal(err)
		}
		pub, err := os.ReadFile(key + ".pub")
		if err != nil {
			t.Fatal(err)
		}
		got, err := fingerprint(strings.TrimSpace(string(pub)))
		if err != nil || got != strings.TrimSpace(string(want)) {
			t.Errorf("%s %s: %q %v, want %q", tt.typ, tt.bits, got, err, want)
		}
	}
	if _, err := fingerprint("ssh-ed25519 not-base64 x"); err == nil {
		t.Error("a malformed key has a fingerprint")
	}
}
