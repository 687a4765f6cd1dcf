package testkit

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Signing with the real tools, as a publisher does: minisign and gpg from
// Debian (apt-get install minisign gnupg). A test without the tool skips.

// MinisignKey is a minisign key pair without a password: Pub and Sec are
// the paths of its public and secret key files.
type MinisignKey struct{ Pub, Sec string }

// NewMinisignKey makes a key pair with the real minisign.
func NewMinisignKey(tb testing.TB) MinisignKey {
	tb.Helper()
	if _, err := exec.LookPath("minisign"); err != nil {
		tb.Skip("minisign not installed (apt-get install minisign)")
	}
	dir := tb.TempDir()
	k := MinisignKey{Pub: filepath.Join(dir, "key.pub"), Sec: filepath.Join(dir, "key.sec")}
	runTool(tb, nil, "minisign", "-G", "-W", "-p", k.Pub, "-s", k.Sec)
	return k
}

// PubFile is the public key file's content, comment line included.
func (k MinisignKey) PubFile(tb testing.TB) []byte {
	tb.Helper()
	return readFile(tb, k.Pub)
}

// Line is the public key's base64 line, as a user pastes it.
func (k MinisignKey) Line(tb testing.TB) string {
	tb.Helper()
	lines := strings.Split(strings.TrimSpace(string(k.PubFile(tb))), "\n")
	return lines[len(lines)-1]
}

// Sign returns the .minisig file minisign makes for data.
func (k MinisignKey) Sign(tb testing.TB, data []byte) []byte {
	tb.Helper()
	msg := writeArtifact(tb, data)
	runTool(tb, nil, "minisign", "-S", "-s", k.Sec, "-m", msg, "-x", msg+".minisig")
	return readFile(tb, msg+".minisig")
}

// GPGKey is an OpenPGP signing key in its own GNUPGHOME, Home.
type GPGKey struct{ Home string }

// NewGPGKey makes an ed25519 signing key for uid with the real gpg; at,
// when set, is gpg's --faked-system-time for the key's creation, and
// expire its lifetime ("never", "1d").
func NewGPGKey(tb testing.TB, uid, at, expire string) GPGKey {
	tb.Helper()
	if _, err := exec.LookPath("gpg"); err != nil {
		tb.Skip("gpg not installed (apt-get install gnupg)")
	}
	// A short path of its own, for gpg-agent's socket; the agent is
	// stopped before the directory goes.
	home, err := os.MkdirTemp("", "gpg")
	if err != nil {
		tb.Fatal(err)
	}
	os.Chmod(home, 0o700)
	k := GPGKey{Home: home}
	tb.Cleanup(func() {
		exec.Command("gpgconf", "--homedir", home, "--kill", "gpg-agent").Run()
		os.RemoveAll(home)
	})
	k.GPG(tb, at, "--passphrase", "", "--quick-gen-key", uid, "ed25519", "sign", expire)
	return k
}

// GPG runs gpg in batch mode on the key's home, at the faked time at if
// set, and returns its standard output.
func (k GPGKey) GPG(tb testing.TB, at string, args ...string) []byte {
	tb.Helper()
	argv := []string{"--batch", "--no-tty", "--pinentry-mode", "loopback"}
	if at != "" {
		argv = append(argv, "--faked-system-time", at)
	}
	return runTool(tb, []string{"GNUPGHOME=" + k.Home}, "gpg", append(argv, args...)...)
}

// Export returns the public key, ASCII-armored or binary.
func (k GPGKey) Export(tb testing.TB, armor bool) []byte {
	tb.Helper()
	if armor {
		return k.GPG(tb, "", "--armor", "--export")
	}
	return k.GPG(tb, "", "--export")
}

// Sign makes a detached signature of data, at the faked time at if set.
func (k GPGKey) Sign(tb testing.TB, data []byte, at string, armor bool) []byte {
	tb.Helper()
	msg := writeArtifact(tb, data)
	args := []string{"--detach-sign", "-o", msg + ".sig"}
	if armor {
		args = append(args, "--armor")
	}
	k.GPG(tb, at, append(args, msg)...)
	return readFile(tb, msg+".sig")
}

// writeArtifact writes data to a fresh file to sign and returns its path.
func writeArtifact(tb testing.TB, data []byte) string {
	tb.Helper()
	msg := filepath.Join(tb.TempDir(), "artifact")
	if err := os.WriteFile(msg, data, 0o600); err != nil {
		tb.Fatal(err)
	}
	return msg
}

func readFile(tb testing.TB, p string) []byte {
	tb.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// runTool runs name with args, env added to the test's environment, and
// returns its standard output; a failure fails the test with its stderr.
func runTool(tb testing.TB, env []string, name string, args ...string) []byte {
	tb.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	cmd.Stdin = strings.NewReader("")
	if err := cmd.Run(); err != nil {
		tb.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, errb.String())
	}
	return out.Bytes()
}
