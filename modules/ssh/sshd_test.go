package ssh

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ec2init/ec2init/internal/testkit"
)

// sshdAccepts runs the real `sshd -t` on the root's /etc/ssh as if it were
// the host's: in a private mount namespace, the root's /etc/ssh is bound
// over /etc/ssh and /run gets a tmpfs for sshd's privilege separation
// directory, so nothing of the host is read or changed.
func sshdAccepts(t *testing.T, etcSSH string) {
	t.Helper()
	// sshd only warns of a certificate it cannot load: that counts too.
	if out, err := sshdCheck(t, etcSSH); err != nil || strings.Contains(string(out), "Could not load") {
		t.Errorf("sshd -t rejects the configuration: %v: %s", err, out)
	}
}

func sshdCheck(t *testing.T, etcSSH string) ([]byte, error) {
	t.Helper()
	testkit.RequireRoot(t, "a mount namespace for sshd -t needs root")
	for _, tool := range []string{"sshd", "unshare"} {
		if _, err := exec.LookPath(tool); err != nil {
			if _, err := os.Stat("/usr/sbin/" + tool); err != nil {
				t.Skipf("%s not installed (Debian packages openssh-server, util-linux)", tool)
			}
		}
	}
	script := `mount --bind "$1" /etc/ssh && mount -t tmpfs none /run && mkdir -m 755 /run/sshd && exec sshd -t -f /etc/ssh/sshd_config`
	return exec.Command("unshare", "-m", "--propagation", "private", "sh", "-c", script, "sh", etcSSH).CombinedOutput()
}

// TestSSHDAcceptsWrittenConfig: Debian's own sshd_config (it includes
// sshd_config.d), host keys and a host certificate from ssh_keys, and
// ssh_pwauth: what the module writes passes the real sshd -t, the
// certificate included.
func TestSSHDAcceptsWrittenConfig(t *testing.T) {
	main, err := os.ReadFile("/etc/ssh/sshd_config")
	if err != nil || !strings.Contains(string(main), "Include /etc/ssh/sshd_config.d/*.conf") {
		t.Skip("no Debian sshd_config with its Include (Debian package openssh-server)")
	}
	rsaPriv, rsaPub := realKey(t, "rsa")
	// A host certificate for the RSA key, signed by a CA made here.
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca")
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", ca).CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	pub := filepath.Join(dir, "host.pub")
	if err := os.WriteFile(pub, []byte(rsaPub), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("ssh-keygen", "-q", "-s", ca, "-I", "host", "-h", "-n", "host.example", pub).CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	cert, err := os.ReadFile(filepath.Join(dir, "host-cert.pub"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct{ name, main, file, want string }{
		{"drop-in", string(main), DropIn, "PasswordAuthentication no\nHostCertificate /etc/ssh/ssh_host_rsa_key-cert.pub\n"},
		{"in place", "HostKey /etc/ssh/ssh_host_rsa_key\nUsePAM no\nMatch User nobody\n  X11Forwarding no\n", sshdConfig,
			"HostKey /etc/ssh/ssh_host_rsa_key\nUsePAM no\nPasswordAuthentication no\n\nHostCertificate /etc/ssh/ssh_host_rsa_key-cert.pub\n\nMatch User nobody\n  X11Forwarding no\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			d := newDisk(t)
			if err := d.env.Root.WriteFile(sshdConfig, []byte(tt.main), 0o644, nil); err != nil {
				t.Fatal(err)
			}
			doc := "ssh_pwauth: false\nssh_keys:\n  rsa_private: |\n" + indent(rsaPriv) + "  rsa_public: " + strings.TrimSpace(rsaPub) + "\n" +
				"  rsa_certificate: " + strings.TrimSpace(string(cert)) + "\n"
			if err := d.boot(SSH{}, "i-aaaa", true, keyA, doc); err != nil {
				t.Fatal(err)
			}
			if got := d.read(tt.file); got != tt.want {
				t.Errorf("%s:\n%s\nwant:\n%s", tt.file, got, tt.want)
			}
			etc, _ := d.env.Root.Path("/etc/ssh")
			sshdAccepts(t, etc)
			// The check can fail.
			if err := d.env.Root.AppendFile(tt.file, []byte("Ciphers nonsense\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			if out, err := sshdCheck(t, etc); err == nil {
				t.Errorf("sshd -t accepts a broken configuration: %s", out)
			}
		})
	}
}
