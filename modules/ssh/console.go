package ssh

import (
	"context"
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha3"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"path/filepath"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"go.uber.org/zap"

	"github.com/ec2init/ec2init/agent/config"
	"github.com/ec2init/ec2init/agent/state"
	"github.com/ec2init/ec2init/modules"
	"github.com/ec2init/ec2init/modules/internal/accounts"
)

// KeysToConsole is cloud-init's keys_to_console: the host keys'
// fingerprints and the public keys on the console, where the EC2 console
// output shows them to whoever checks a first login's host key.
type KeysToConsole struct {
	// Now stamps the fingerprint lines as logger(1) does; nil is time.Now.
	Now func() time.Time
}

func (KeysToConsole) Name() string                 { return "keys_to_console" }
func (KeysToConsole) Stage() modules.Stage         { return modules.StageFinal }
func (KeysToConsole) Frequency() modules.Frequency { return state.PerInstance }

// Wanted: cloud-init prints the keys on every new instance unless told not to.
func (KeysToConsole) Wanted(*config.CloudConfig) bool { return true }

func (KeysToConsole) Schema() modules.Schema {
	return modules.Schema{
		Doc: "Print the host keys' fingerprints and the public host keys to the console, in cloud-init's BEGIN/END SSH HOST KEY blocks.",
		Keys: []config.Field{
			{Name: "ssh", Type: config.Object(config.Field{Name: "emit_keys_to_console", Type: config.Bool(), Default: "true",
				Doc: "Print host key fingerprints and keys to the console."}),
				Doc: "Console output of host keys."},
			{Name: "ssh_fp_console_blacklist", Type: config.ListOf(config.String()),
				Doc: "Host key types (e.g. ssh-rsa) whose fingerprints are not printed."},
			{Name: "ssh_key_console_blacklist", Type: config.ListOf(config.String()),
				Doc: "Host key types whose keys are not printed."},
		},
	}
}

func (m KeysToConsole) Run(ctx context.Context, env *modules.Env, cfg *config.CloudConfig) error {
	var console struct {
		Emit *bool `yaml:"emit_keys_to_console"`
	}
	var fpBlacklist, keyBlacklist []string
	var errs []error
	for key, v := range map[string]any{"ssh": &console, "ssh_fp_console_blacklist": &fpBlacklist, "ssh_key_console_blacklist": &keyBlacklist} {
		if _, err := cfg.Decode(key, v); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if console.Emit != nil && !*console.Emit {
		env.Logger().Info("ssh.emit_keys_to_console is false: host keys not printed")
		return nil
	}
	now := time.Now
	if m.Now != nil {
		now = m.Now
	}
	out := hostKeysBlock(env, fpBlacklist, keyBlacklist, now())
	if out == "" {
		env.Logger().Info("no host keys to print")
		return nil
	}
	_, err := io.WriteString(env.ConsoleWriter(), out)
	return err
}

// hostKeysBlock is what cloud-init's write-ssh-key-fingerprints prints for
// /etc/ssh/ssh_host_*key.pub: the fingerprints as `logger -s -t
// cloud-init` writes them to the console ("<14>Jan  2 15:04:05
// cloud-init: " before each line), then the keys as they are. A type is
// the key file's first field (ssh-rsa, ...), as the blacklists name it.
func hostKeysBlock(env *modules.Env, fpBlacklist, keyBlacklist []string, now time.Time) string {
	dir, err := env.Root.Path("/etc/ssh")
	if err != nil {
		return ""
	}
	pubs, _ := filepath.Glob(filepath.Join(dir, "ssh_host_*key.pub"))
	sort.Strings(pubs)
	var fps, keys []string
	for _, f := range pubs {
		hostPath := "/etc/ssh/" + filepath.Base(f)
		b, err := env.Root.ReadFile(hostPath)
		if err != nil {
			continue
		}
		keyType, _, _ := strings.Cut(strings.TrimSpace(string(b)), " ")
		if !contains(fpBlacklist, keyType) {
			fp, err := fingerprint(strings.TrimSpace(string(b)))
			if err != nil {
				env.Logger().Warn("host key fingerprint", zap.String("file", hostPath), zap.Error(err))
			} else {
				fps = append(fps, fp)
			}
		}
		if !contains(keyBlacklist, keyType) {
			k := string(b)
			if !strings.HasSuffix(k, "\n") {
				k += "\n"
			}
			keys = append(keys, k)
		}
	}
	var b strings.Builder
	if len(fps) > 0 {
		prefix := "<14>" + now.Format(time.Stamp) + " cloud-init: "
		b.WriteString(prefix + strings.Repeat("#", 61) + "\n")
		b.WriteString(prefix + "-----BEGIN SSH HOST KEY FINGERPRINTS-----\n")
		for _, fp := range fps {
			b.WriteString(prefix + fp + "\n")
		}
		b.WriteString(prefix + "-----END SSH HOST KEY FINGERPRINTS-----\n")
		b.WriteString(prefix + strings.Repeat("#", 61) + "\n")
	}
	if len(keys) > 0 {
		b.WriteString("-----BEGIN SSH HOST KEY KEYS-----\n")
		for _, k := range keys {
			b.WriteString(k)
		}
		b.WriteString("-----END SSH HOST KEY KEYS-----\n")
	}
	return b.String()
}

// AuthkeyFingerprints is cloud-init's ssh_authkey_fingerprints: for each
// user of the users list (the default user included) that has a home, a
// table of the fingerprints of its authorized keys on the console.
type AuthkeyFingerprints struct{}

func (AuthkeyFingerprints) Name() string                 { return "ssh_authkey_fingerprints" }
func (AuthkeyFingerprints) Stage() modules.Stage         { return modules.StageFinal }
func (AuthkeyFingerprints) Frequency() modules.Frequency { return state.PerInstance }

// Wanted: cloud-init prints the tables unless no_ssh_fingerprints says not.
func (AuthkeyFingerprints) Wanted(*config.CloudConfig) bool { return true }

func (AuthkeyFingerprints) Schema() modules.Schema {
	return modules.Schema{
		Doc: "Print a table of each user's authorized keys' fingerprints to the console, as cloud-init does.",
		Keys: []config.Field{
			{Name: "no_ssh_fingerprints", Type: config.Bool(), Default: "false",
				Doc: "Do not print the tables."},
			{Name: "authkey_hash", Type: config.String(), Default: "sha256",
				Doc: "Hash of the fingerprints: md5, sha1, sha224, sha256, sha384, sha512 or sha3_*."},
		},
	}
}

func (AuthkeyFingerprints) Run(ctx context.Context, env *modules.Env, cfg *config.CloudConfig) error {
	var off bool
	hashName := "sha256"
	if _, err := cfg.Decode("no_ssh_fingerprints", &off); err != nil {
		return err
	}
	if _, err := cfg.Decode("authkey_hash", &hashName); err != nil {
		return err
	}
	if off {
		env.Logger().Info("no_ssh_fingerprints: authorized keys' fingerprints not printed")
		return nil
	}
	if !accounts.HasAccounts(env.Root) {
		env.Logger().Info("no /etc/passwd under the root: no users to print keys of")
		return nil
	}
	var b strings.Builder
	var errs []error
	for _, u := range accounts.ListUsers(cfg, env.Root, env.System.DefaultUser) {
		if err := ctx.Err(); err != nil {
			return err
		}
		if u.True("no_create_home") || u.True("system") {
			continue
		}
		acct, found, err := accounts.LookupAccount(env.Root, u.Name)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("user %s: %w", u.Name, err))
			continue
		case !found:
			errs = append(errs, fmt.Errorf("user %s does not exist", u.Name))
			continue
		}
		file := accounts.AuthorizedKeysFile(acct)
		data, err := env.Root.ReadFile(file)
		if errors.Is(err, fs.ErrNotExist) {
			// cloud-init makes the file as it looks for it: ~/.ssh and an
			// empty authorized_keys, owned by the user.
			if err := accounts.UpdateAuthorizedKeys(env.Root, acct, nil, nil); err != nil {
				errs = append(errs, err)
			}
		} else if err != nil {
			errs = append(errs, fmt.Errorf("user %s: %w", u.Name, err))
			continue
		}
		b.WriteString(keyTable(u.Name, file, string(data), hashName))
	}
	if _, err := io.WriteString(env.ConsoleWriter(), b.String()); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// authLine is an authorized_keys line as cloud-init's parser splits it.
type authLine struct {
	keyType, blob, comment, options string
}

// parseAuthLine splits line as cloud-init does: "type blob [comment]"
// when the first field is a key type, else options first; ok is false for
// comments, blank lines and lines that are no key.
func parseAuthLine(line string) (authLine, bool) {
	line = strings.TrimRight(line, "\r\n")
	if strings.HasPrefix(line, "#") || strings.TrimSpace(line) == "" {
		return authLine{}, false
	}
	ent := strings.TrimSpace(line)
	if l, ok := splitKey(ent); ok {
		return l, true
	}
	opts := ent[:len(ent)-len(skipOptionsField(ent))]
	l, ok := splitKey(strings.TrimLeft(skipOptionsField(ent), " \t"))
	l.options = opts
	return l, ok
}

func splitKey(ent string) (authLine, bool) {
	f := strings.Fields(ent)
	if len(f) < 2 || !contains(validKeyTypes, f[0]) {
		return authLine{}, false
	}
	l := authLine{keyType: f[0], blob: f[1]}
	// The comment is the rest of the line after the blob.
	rest := strings.TrimLeft(ent, " \t")
	rest = strings.TrimLeft(rest[len(f[0]):], " \t")
	rest = strings.TrimLeft(rest[len(f[1]):], " \t")
	l.comment = rest
	return l, true
}

// skipOptionsField returns what follows the options field: up to the first
// space or tab outside double quotes.
func skipOptionsField(s string) string {
	quoted := false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\' && i+1 < len(s) && s[i+1] == '"':
			i++
		case c == '"':
			quoted = !quoted
		case (c == ' ' || c == '\t') && !quoted:
			return s[i:]
		}
	}
	return ""
}

// validKeyTypes are the key types cloud-init prints.
var validKeyTypes = []string{
	"rsa", "ecdsa", "ed25519",
	"ecdsa-sha2-nistp256-cert-v01@openssh.com", "ecdsa-sha2-nistp256",
	"ecdsa-sha2-nistp384-cert-v01@openssh.com", "ecdsa-sha2-nistp384",
	"ecdsa-sha2-nistp521-cert-v01@openssh.com", "ecdsa-sha2-nistp521",
	"sk-ecdsa-sha2-nistp256-cert-v01@openssh.com", "sk-ecdsa-sha2-nistp256@openssh.com",
	"sk-ssh-ed25519-cert-v01@openssh.com", "sk-ssh-ed25519@openssh.com",
	"ssh-ed25519-cert-v01@openssh.com", "ssh-ed25519",
	"ssh-rsa-cert-v01@openssh.com", "ssh-rsa",
	"ssh-xmss-cert-v01@openssh.com", "ssh-xmss@openssh.com",
}

// hashes are the authkey_hash names Python's hashlib.new knows that
// fingerprints are made with.
var hashes = map[string]func() hash.Hash{
	"md5": md5.New, "sha1": sha1.New, "sha224": sha256.New224, "sha256": sha256.New,
	"sha384": sha512.New384, "sha512": sha512.New,
	"sha3_224": func() hash.Hash { return sha3.New224() }, "sha3_256": func() hash.Hash { return sha3.New256() },
	"sha3_384": func() hash.Hash { return sha3.New384() }, "sha3_512": func() hash.Hash { return sha3.New512() },
}

// hexFingerprint is cloud-init's fingerprint of a key blob: the hash of
// the decoded blob in hex, two digits a group, colon separated; "?" when
// the blob is no base64 or the hash is unknown.
func hexFingerprint(blob, hashName string) string {
	if blob == "" {
		return ""
	}
	newHash, ok := hashes[strings.ToLower(hashName)]
	raw, err := base64.StdEncoding.DecodeString(blob)
	if !ok || err != nil {
		return "?"
	}
	h := newHash()
	h.Write(raw)
	hx := hex.EncodeToString(h.Sum(nil))
	var parts []string
	for i := 0; i < len(hx); i += 2 {
		parts = append(parts, hx[i:i+2])
	}
	return strings.Join(parts, ":")
}

// keyTable is cloud-init's console report of user's authorized keys in
// file (content data): a line saying there are none, or a table framed by
// a centred title, each line after "ci-info: ".
func keyTable(user, file, data, hashName string) string {
	const prefix = "ci-info: "
	lines := strings.Split(data, "\n")
	if strings.HasSuffix(data, "\n") {
		lines = lines[:len(lines)-1]
	}
	if data == "" {
		return fmt.Sprintf("%sno authorized SSH keys fingerprints found for user %s.\n", prefix, user)
	}
	fields := []string{"Keytype", "Fingerprint (" + hashName + ")", "Options", "Comment"}
	var rows [][]string
	for _, line := range lines {
		l, ok := parseAuthLine(line)
		if !ok || !contains(validKeyTypes, strings.ToLower(strings.TrimSpace(l.keyType))) {
			continue
		}
		rows = append(rows, []string{orDash(l.keyType), orDash(hexFingerprint(l.blob, hashName)), orDash(l.options), orDash(l.comment)})
	}
	table := simpleTable(fields, rows)
	width := 0
	for _, l := range table {
		width = max(width, utf8.RuneCountInString(l))
	}
	var b strings.Builder
	b.WriteString(prefix + padCentre("Authorized keys from "+file+" for user "+user, '+', width) + "\n")
	for _, l := range table {
		b.WriteString(prefix + l + "\n")
	}
	return b.String()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// simpleTable draws cloud-init's SimpleTable: +---+ rules, cells centred
// with a space either side, as Python's str.center places them.
func simpleTable(fields []string, rows [][]string) []string {
	widths := make([]int, len(fields))
	for _, r := range append([][]string{fields}, rows...) {
		for i, c := range r {
			widths[i] = max(widths[i], utf8.RuneCountInString(c))
		}
	}
	rule := "+"
	for _, w := range widths {
		rule += strings.Repeat("-", w+2) + "+"
	}
	row := func(r []string) string {
		s := "|"
		for i, c := range r {
			s += pyCenter(c, widths[i]+2) + "|"
		}
		return s
	}
	out := []string{rule, row(fields), rule}
	for _, r := range rows {
		out = append(out, row(r))
	}
	return append(out, rule)
}

// pyCenter is Python's str.center: the odd space goes left when both the
// margin and the width are odd.
func pyCenter(s string, width int) string {
	n := utf8.RuneCountInString(s)
	marg := width - n
	if marg <= 0 {
		return s
	}
	left := marg/2 + (marg & width & 1)
	return strings.Repeat(" ", left) + s + strings.Repeat(" ", marg-left)
}

// padCentre is Python's "{:fill^width}" format: the odd fill goes right.
func padCentre(s string, fill rune, width int) string {
	n := utf8.RuneCountInString(s)
	if n >= width {
		return s
	}
	left := (width - n) / 2
	f := string(fill)
	return strings.Repeat(f, left) + s + strings.Repeat(f, width-n-left)
}
