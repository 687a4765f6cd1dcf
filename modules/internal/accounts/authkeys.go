package accounts

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/ec2init/ec2init/agent/imds"
	"github.com/ec2init/ec2init/agent/sys"
)

// KeyID returns the identity of an authorized_keys line or a public key:
// its type and base64 blob, without options or comment. Two lines with the
// same identity are the same key. ok is false for blank lines, comments and
// text that is no public key.
func KeyID(line string) (id string, ok bool) {
	line = strings.TrimSpace(line)
	if line == "" || line[0] == '#' {
		return "", false
	}
	rest := line
	if first, _, _ := strings.Cut(rest, " "); !isKeyType(first) {
		// Options come first; they may quote spaces (command="...").
		rest = strings.TrimLeft(skipOptions(rest), " \t")
	}
	f := strings.Fields(rest)
	if len(f) < 2 || !isKeyType(f[0]) || !looksBase64(f[1]) {
		return "", false
	}
	return f[0] + " " + f[1], true
}

// isKeyType recognises the public key algorithms sshd accepts, certificates
// and security-key types included.
func isKeyType(s string) bool {
	return strings.HasPrefix(s, "ssh-") || strings.HasPrefix(s, "ecdsa-sha2-") || strings.HasPrefix(s, "sk-")
}

func looksBase64(s string) bool {
	if len(s) < 16 {
		return false
	}
	for _, c := range s {
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '+' || c == '/' || c == '=') {
			return false
		}
	}
	return true
}

// skipOptions returns what follows the options field of an authorized_keys
// line: up to the first space or tab outside double quotes.
func skipOptions(s string) string {
	quoted := false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\' && quoted && i+1 < len(s):
			i++
		case c == '"':
			quoted = !quoted
		case (c == ' ' || c == '\t') && !quoted:
			return s[i:]
		}
	}
	return ""
}

// AuthorizedKeysFile is where sshd reads acct's keys (its default
// AuthorizedKeysFile; a custom sshd setting is not followed).
func AuthorizedKeysFile(acct Account) string {
	return filepath.Join(acct.Home, ".ssh", "authorized_keys")
}

// UpdateAuthorizedKeys merges keys into acct's ~/.ssh/authorized_keys as
// cloud-init does: an existing line with the same key (see KeyID) is
// replaced by the new one (its options may change), other keys are
// appended, and every other line stays. Lines whose key is in remove are
// dropped (keys ec2init installed for a previous instance). ~/.ssh is
// created 0700 and the file written 0600, both owned by acct. Lines that
// are no key are ignored; callers name them before calling.
//
// The home directory must exist, and neither ~/.ssh nor the file may be a
// symlink: the agent runs as root and must not be led to write elsewhere.
func UpdateAuthorizedKeys(root *sys.Root, acct Account, keys []string, remove map[string]bool) error {
	if acct.Home == "" || !strings.HasPrefix(acct.Home, "/") {
		return fmt.Errorf("user %s: home %q is not an absolute path", acct.Name, acct.Home)
	}
	owner, err := root.LookupOwner(acct.Name)
	if err != nil {
		return fmt.Errorf("user %s: %w", acct.Name, err)
	}
	if fi, err := root.Stat(acct.Home); err != nil || !fi.IsDir() {
		if errors.Is(err, sys.ErrUntrustedSymlink) || errors.Is(err, sys.ErrEscapesRoot) {
			return fmt.Errorf("user %s: %w", acct.Name, err)
		}
		return fmt.Errorf("user %s: home directory %s does not exist (a system user, or no_create_home?)", acct.Name, acct.Home)
	}
	sshDir := filepath.Join(acct.Home, ".ssh")
	file := filepath.Join(sshDir, "authorized_keys")
	// sys.Root already refuses a symlink in a directory the user owns and
	// acts through opened directories; ~/.ssh and the file are refused as
	// symlinks even in a root-owned home, which sshd's StrictModes would
	// not trust either, with a message saying why.
	if err := refuseSymlink(root, sshDir); err != nil {
		return fmt.Errorf("user %s: %w", acct.Name, err)
	}
	// Made 0700 and owned by the user on the opened directory, never
	// through a path the user can change; an existing one is left alone.
	if err := root.MkdirAllOwned(sshDir, 0o700, owner); err != nil {
		return fmt.Errorf("user %s: %w", acct.Name, err)
	}
	if err := refuseSymlink(root, file); err != nil {
		return fmt.Errorf("user %s: %w", acct.Name, err)
	}
	var old []string
	switch b, err := root.ReadFile(file); {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return fmt.Errorf("user %s: %w", acct.Name, err)
	default:
		old = strings.Split(strings.TrimRight(string(b), "\n"), "\n")
		if len(old) == 1 && old[0] == "" {
			old = nil
		}
	}
	lines := MergeKeys(old, keys, remove)
	data := strings.Join(lines, "\n")
	if data != "" {
		data += "\n"
	}
	if err := root.WriteFile(file, []byte(data), 0o600, &owner); err != nil {
		return fmt.Errorf("user %s: %w", acct.Name, err)
	}
	return nil
}

// refuseSymlink fails if the last component of p is a symlink, and says
// when p is not a directory where one is expected (~/.ssh).
func refuseSymlink(root *sys.Root, p string) error {
	dir, base := filepath.Split(p)
	d, err := root.Path(dir)
	if err != nil {
		return err
	}
	switch fi, err := os.Lstat(filepath.Join(d, base)); {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return err
	case fi.Mode()&fs.ModeSymlink != 0:
		return fmt.Errorf("%s is a symlink; not writing keys through it", p)
	case base == ".ssh" && !fi.IsDir():
		return fmt.Errorf("%s is not a directory", p)
	}
	return nil
}

// MergeKeys is UpdateAuthorizedKeys on lines: old with keys merged in and
// the keys in remove dropped.
func MergeKeys(old, keys []string, remove map[string]bool) []string {
	want := map[string]string{} // id -> line
	var order []string
	for _, k := range keys {
		k = strings.TrimSpace(k)
		id, ok := KeyID(k)
		if !ok {
			continue
		}
		if _, dup := want[id]; !dup {
			order = append(order, id)
		}
		want[id] = k
	}
	placed := map[string]bool{}
	var out []string
	for _, line := range old {
		id, ok := KeyID(line)
		switch {
		case !ok:
			out = append(out, line)
		case want[id] != "" && !placed[id]:
			out = append(out, want[id])
			placed[id] = true
		case remove[id] && want[id] == "":
			// installed for an earlier instance: dropped
		default:
			out = append(out, line)
		}
	}
	for _, id := range order {
		if !placed[id] {
			out = append(out, want[id])
		}
	}
	return out
}

// DisableUserOpts is cloud-init's option prefix for the keys of an account
// that must not be logged into (root behind disable_root, a user with
// ssh_redirect_user): the login only prints whom to log in as instead.
// $USER is that user, $DISABLE_USER the refused account.
const DisableUserOpts = `no-port-forwarding,no-agent-forwarding,no-X11-forwarding,command="echo 'Please login as the user \"$USER\" rather than the user \"$DISABLE_USER\".';echo;sleep 10;exit 142"`

// InstanceKeys are the instance's key pair(s) from IMDS, one OpenSSH key a
// line; lines that are no key are left out.
func InstanceKeys(inst *imds.Instance) []string {
	if inst == nil {
		return nil
	}
	var out []string
	for _, pk := range inst.PublicKeys {
		for _, line := range strings.Split(pk.OpenSSHKey, "\n") {
			if _, ok := KeyID(line); ok {
				out = append(out, strings.TrimSpace(line))
			}
		}
	}
	return out
}
