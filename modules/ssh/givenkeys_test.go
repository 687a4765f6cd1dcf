package ssh

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/ec2init/ec2init/modules/modtest"
)

// realKey makes a host key of type t with the real ssh-keygen and returns
// its private and public files' contents.
func realKey(t *testing.T, typ string) (priv, pub string) {
	t.Helper()
	if _, err := exec.LookPath("ssh-keygen"); err != nil {
		t.Skipf("ssh-keygen not installed (Debian package openssh-client): %v", err)
	}
	f := filepath.Join(t.TempDir(), "k")
	if out, err := exec.Command("ssh-keygen", "-q", "-t", typ, "-N", "", "-C", "given@test", "-f", f).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v: %s", err, out)
	}
	p, _ := os.ReadFile(f)
	q, _ := os.ReadFile(f + ".pub")
	return string(p), string(q)
}

func indent(s string) string {
	return "    " + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n    ") + "\n"
}

// TestGivenHostKeys: ssh_keys' keys are installed as given (private 0600,
// public and certificate 0644), the image's keys deleted and none
// generated; an ed25519 private key without its public one gets it from
// ssh-keygen -y; a certificate adds HostCertificate; and no private key
// reaches the log, the console or the error.
func TestGivenHostKeys(t *testing.T) {
	rsaPriv, rsaPub := realKey(t, "rsa")
	edPriv, edPub := realKey(t, "ed25519")
	const cert = "ssh-rsa-cert-v01@openssh.com AAAAHHNzaC1yc2EtY2VydC12MDFAb3BlbnNzaC5jb20AAAAgCERT given-cert\n"
	d := newDisk(t)
	core, logs := observer.New(zap.DebugLevel)
	d.env.Log = zap.New(core)
	modtest.Put(t, d.env, "/etc/ssh/ssh_host_ecdsa_key", "IMAGE KEY")
	modtest.Put(t, d.env, "/etc/ssh/ssh_host_ecdsa_key.pub", "IMAGE PUB")
	doc := "ssh_keys:\n  rsa_private: |\n" + indent(rsaPriv) + "  rsa_public: " + strings.TrimSpace(rsaPub) + "\n" +
		"  rsa_certificate: " + strings.TrimSpace(cert) + "\n" +
		"  ed25519_private: |\n" + indent(edPriv) + "  ecdsa-sk_private: nope\n"
	err := d.boot(SSH{}, "i-aaaa", true, keyA, doc)
	if err == nil || !strings.Contains(err.Error(), "test.yaml:1: ssh_keys: ecdsa-sk_private: security-key host keys are not supported; skipped") {
		t.Errorf("err = %v, want the sk entry named", err)
	}
	for p, want := range map[string]struct {
		content string
		mode    os.FileMode
	}{
		"/etc/ssh/ssh_host_rsa_key":          {rsaPriv, 0o600},
		"/etc/ssh/ssh_host_rsa_key.pub":      {strings.TrimSpace(rsaPub), 0o644},
		"/etc/ssh/ssh_host_rsa_key-cert.pub": {strings.TrimSpace(cert), 0o644},
		"/etc/ssh/ssh_host_ed25519_key":      {edPriv, 0o600},
	} {
		if got := d.read(p); got != want.content {
			t.Errorf("%s = %q, want %q", p, got, want.content)
		}
		if fi, err := d.env.Root.Stat(p); err != nil || fi.Mode().Perm() != want.mode {
			t.Errorf("%s mode %v (%v), want %v", p, fi.Mode(), err, want.mode)
		}
	}
	// ssh-keygen -y prints the key and its comment; cloud-init adds
	// root@localhost.
	blob := strings.Fields(edPub)[1]
	if got := d.read("/etc/ssh/ssh_host_ed25519_key.pub"); !strings.HasPrefix(got, "ssh-ed25519 "+blob+" ") || !strings.HasSuffix(got, " root@localhost\n") {
		t.Errorf("derived public key %q", got)
	}
	if ok, _ := d.env.Root.Exists("/etc/ssh/ssh_host_ecdsa_key"); ok {
		t.Error("the image's ecdsa key was kept (ssh_deletekeys)")
	}
	if got := d.read(DropIn); got != "HostCertificate /etc/ssh/ssh_host_rsa_key-cert.pub\n" {
		t.Errorf("drop-in %q", got)
	}

	// A reboot keeps them, and generates nothing.
	if err := d.boot(SSH{}, "i-aaaa", false, keyA, doc); err != nil && !strings.Contains(err.Error(), "ecdsa-sk") {
		t.Fatal(err)
	}
	if got := d.read("/etc/ssh/ssh_host_rsa_key"); got != rsaPriv {
		t.Error("rsa key changed on a reboot")
	}
	if ok, _ := d.env.Root.Exists("/etc/ssh/ssh_host_ecdsa_key"); ok {
		t.Error("ecdsa generated although ssh_keys gives the keys")
	}
	if got := d.read(DropIn); got != "HostCertificate /etc/ssh/ssh_host_rsa_key-cert.pub\n" {
		t.Errorf("drop-in after a reboot %q", got)
	}

	secrets := []string{"PRIVATE KEY", strings.Split(rsaPriv, "\n")[1], strings.Split(edPriv, "\n")[1]}
	var seen strings.Builder
	for _, e := range logs.All() {
		seen.WriteString(e.Message)
		for k, v := range e.ContextMap() {
			seen.WriteString(" " + k + "=" + strings.TrimSpace(strings.ReplaceAll(fmtAny(v), "\n", " ")))
		}
		seen.WriteString("\n")
	}
	seen.WriteString(d.console.String())
	if err != nil {
		seen.WriteString(err.Error())
	}
	for _, s := range secrets {
		if strings.Contains(seen.String(), s) {
			t.Errorf("a private key shows in the log, console or error:\n%s", seen.String())
		}
	}
}

func fmtAny(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	if e, ok := v.(error); ok {
		return e.Error()
	}
	return ""
}

// TestGivenKeyUnreadable: a private key ssh-keygen cannot read fails
// naming the entry, never quoting the key.
func TestGivenKeyUnreadable(t *testing.T) {
	if _, err := exec.LookPath("ssh-keygen"); err != nil {
		t.Skipf("ssh-keygen not installed (Debian package openssh-client): %v", err)
	}
	d := newDisk(t)
	err := d.boot(SSH{}, "i-aaaa", true, "", "ssh_keys:\n  ed25519_private: NOT-A-KEY-SECRET-VALUE\n")
	if err == nil || !strings.Contains(err.Error(), "ssh_keys.ed25519_private: public key: ssh-keygen -y exited") {
		t.Fatalf("err = %v", err)
	}
	if strings.Contains(err.Error(), "SECRET") {
		t.Errorf("error quotes the key: %v", err)
	}
}

// TestGivenKeysWithoutPrivate: ssh_keys with no private key would leave
// sshd without host keys (cloud-init installs nothing then): they are
// generated as without ssh_keys.
func TestGivenKeysWithoutPrivate(t *testing.T) {
	if _, err := exec.LookPath("ssh-keygen"); err != nil {
		t.Skipf("ssh-keygen not installed (Debian package openssh-client): %v", err)
	}
	d := newDisk(t)
	if err := d.boot(SSH{}, "i-aaaa", true, keyA, "ssh_keys: {}\nssh_genkeytypes: [ed25519]\nssh_quiet_keygen: true\n"); err != nil {
		t.Fatal(err)
	}
	if fi, err := d.env.Root.Stat("/etc/ssh/ssh_host_ed25519_key"); err != nil || fi.Size() == 0 {
		t.Errorf("no host key generated: %v", err)
	}
}
