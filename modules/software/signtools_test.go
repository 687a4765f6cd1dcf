package software

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Signing with the real tools, as a publisher does: minisign and gpg from
// Debian (apt-get install minisign gnupg).

type minisignKey struct{ pub, sec string }

func newMinisignKey(t testing.TB) minisignKey {
	t.Helper()
	if _, err := exec.LookPath("minisign"); err != nil {
		t.Skip("minisign not installed (apt-get install minisign)")
	}
	dir := t.TempDir()
	k := minisignKey{pub: filepath.Join(dir, "key.pub"), sec: filepath.Join(dir, "key.sec")}
	runTool(t, nil, "minisign", "-G", "-W", "-p", k.pub, "-s", k.sec)
	return k
}

// line is the public key's base64 line, as a user pastes it.
func (k minisignKey) line(t testing.TB) string {
	t.Helper()
	b, err := os.ReadFile(k.pub)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return lines[len(lines)-1]
}

func (k minisignKey) sign(t testing.TB, data []byte) []byte {
	t.Helper()
	dir := t.TempDir()
	msg := filepath.Join(dir, "artifact")
	if err := os.WriteFile(msg, data, 0o600); err != nil {
		t.Fatal(err)
	}
	runTool(t, nil, "minisign", "-S", "-s", k.sec, "-m", msg, "-x", msg+".minisig")
	sig, err := os.ReadFile(msg + ".minisig")
	if err != nil {
		t.Fatal(err)
	}
	return sig
}

// gpgKey is a signing key in its own GNUPGHOME.
type gpgKey struct{ home string }

// newGPGKey makes an ed25519 signing key; at, when set, is gpg's
// --faked-system-time for the key's creation (and its signatures), and
// expire its lifetime ("never", "1d").
func newGPGKey(t testing.TB, uid, at, expire string) gpgKey {
	t.Helper()
	if _, err := exec.LookPath("gpg"); err != nil {
		t.Skip("gpg not installed (apt-get install gnupg)")
	}
	home, err := os.MkdirTemp("", "gpg")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(home, 0o700)
	k := gpgKey{home: home}
	t.Cleanup(func() {
		exec.Command("gpgconf", "--homedir", home, "--kill", "gpg-agent").Run()
		os.RemoveAll(home)
	})
	k.gpg(t, at, "--passphrase", "", "--quick-gen-key", uid, "ed25519", "sign", expire)
	return k
}

func (k gpgKey) gpg(t testing.TB, at string, args ...string) []byte {
	t.Helper()
	argv := []string{"--batch", "--no-tty", "--pinentry-mode", "loopback"}
	if at != "" {
		argv = append(argv, "--faked-system-time", at)
	}
	return runTool(t, []string{"GNUPGHOME=" + k.home}, "gpg", append(argv, args...)...)
}

func (k gpgKey) export(t testing.TB, armor bool) []byte {
	t.Helper()
	if armor {
		return k.gpg(t, "", "--armor", "--export")
	}
	return k.gpg(t, "", "--export")
}

// sign makes a detached signature of data, at the faked time at if set.
func (k gpgKey) sign(t testing.TB, data []byte, at string, armor bool) []byte {
	t.Helper()
	msg := filepath.Join(t.TempDir(), "artifact")
	if err := os.WriteFile(msg, data, 0o600); err != nil {
		t.Fatal(err)
	}
	args := []string{"--detach-sign", "-o", msg + ".sig"}
	if armor {
		args = append(args, "--armor")
	}
	k.gpg(t, at, append(args, msg)...)
	sig, err := os.ReadFile(msg + ".sig")
	if err != nil {
		t.Fatal(err)
	}
	return sig
}

func runTool(t testing.TB, env []string, name string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	cmd.Stdin = strings.NewReader("")
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, errb.String())
	}
	return out.Bytes()
}

func mustRead(t testing.TB, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
