// Package setpasswords implements cloud-init's set_passwords: passwords
// from chpasswd (users, or the legacy list) and password (the default
// user's) set with the image's chpasswd, expired unless chpasswd.expire is
// false, and RANDOM passwords made here and shown on the console alone.
// ssh_pwauth, which cloud-init handles in this module too, is the ssh
// module's: ec2init sets it before sshd starts.
package setpasswords

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"math/big"
	"regexp"
	"strings"
	"sync"

	"go.uber.org/zap"
	"gopkg.in/yaml.v3"

	"github.com/ec2init/ec2init/agent/config"
	"github.com/ec2init/ec2init/agent/state"
	"github.com/ec2init/ec2init/agent/sys"
	"github.com/ec2init/ec2init/modules"
	"github.com/ec2init/ec2init/modules/internal/accounts"
	"github.com/ec2init/ec2init/modules/internal/command"
)

// Password types of chpasswd.users.
const (
	TypeText   = "text"
	TypeHash   = "hash"
	TypeRandom = "RANDOM"
)

var userType = sync.OnceValue(func() *config.Type {
	return config.Object(
		config.Field{Name: "name", Type: config.String(), Required: true, Doc: "The user."},
		config.Field{Name: "password", Type: config.String(), Doc: "The password, as type says (never logged)."},
		config.Field{Name: "type", Type: config.Enum(TypeText, TypeHash, TypeRandom), Default: TypeHash,
			Doc: "hash (for chpasswd -e), text, or RANDOM (made here, printed on the console)."},
	)
})

// SetPasswords sets the passwords once per instance, in the config stage.
type SetPasswords struct{}

func (SetPasswords) Name() string                 { return "set_passwords" }
func (SetPasswords) Stage() modules.Stage         { return modules.StageConfig }
func (SetPasswords) Frequency() modules.Frequency { return state.PerInstance }

func (SetPasswords) Schema() modules.Schema {
	return modules.Schema{
		Doc: "Set passwords with chpasswd (hashes with chpasswd -e; RANDOM ones printed on the console only), expired unless chpasswd.expire is false. ssh_pwauth is the ssh module's.",
		Keys: []config.Field{
			{Name: "chpasswd", Type: config.Object(
				config.Field{Name: "expire", Type: config.Bool(), Default: "true",
					Doc: "Expire the passwords set (passwd --expire): the user must choose another at the first login."},
				config.Field{Name: "users", Type: config.ListOf(userType()),
					Doc: "The users and their passwords."},
				config.Field{Name: "list", Type: config.OneOf(config.String(), config.ListOf(config.String())),
					Doc: `Deprecated by cloud-init, still read: "user:password" lines (a list or one multi-line string); a password matching ^\$(1|2a|2y|5|6)(\$.+){2} is a hash, R or RANDOM a random one, anything else text.`},
			), Doc: "Passwords to set."},
			{Name: "password", Type: config.String(),
				Doc: "The default user's password (as a chpasswd.list entry), when chpasswd names no user."},
		},
	}
}

// Check warns of a chpasswd.users entry with neither password nor type:
// cloud-init then sets the hash "RANDOM", which no password matches.
func (SetPasswords) Check(source, key string, v *yaml.Node) []config.Diagnostic {
	if key != "chpasswd" || v.Kind != yaml.MappingNode {
		return nil
	}
	var out []config.Diagnostic
	users := field(v, "users")
	if users == nil || users.Kind != yaml.SequenceNode {
		return nil
	}
	for i, u := range users.Content {
		if u.Kind == yaml.MappingNode && field(u, "password") == nil && field(u, "type") == nil {
			out = append(out, config.Diagnostic{Source: source, Line: u.Line, Column: u.Column, Path: fmt.Sprintf("chpasswd.users[%d]", i),
				Severity: config.SeverityWarning, Message: "neither password nor type: RANDOM; cloud-init sets the hash \"RANDOM\", which locks the password"})
		}
	}
	return out
}

func field(n *yaml.Node, key string) *yaml.Node {
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}

// entry is one user's password to set.
type entry struct {
	user, password string
}

// plan is what a run sets: plain text (RANDOM ones included), hashes, and
// the RANDOM ones to show.
type plan struct {
	text, hashed, random []entry
	expire               bool
}

// hashRE is cloud-init's test of a chpasswd.list password for a hash.
var hashRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^\$(1|2a|2y|5|6)(\$.+){2}`) })

// otherHashRE matches crypt(3) hashes hashRE does not (yescrypt, ...):
// cloud-init sets them as text; ec2init does too, with a warning.
var otherHashRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^\$[a-z0-9]{1,3}\$[^:]*\$`) })

// decode reads chpasswd and password into a plan. Error messages name
// positions and users, never a password.
func decode(cfg *config.CloudConfig, defaultUser func() string, log *zap.Logger) (plan, []error) {
	p := plan{expire: true}
	var errs []error
	var list []string
	var listAt string
	if val, ok := cfg.Get("chpasswd"); ok && val.Node.Tag != "!!null" {
		at := fmt.Sprintf("%s:%d", val.Source, val.KeyLine)
		n := val.Node
		if n.Kind != yaml.MappingNode {
			return p, []error{fmt.Errorf("%s: chpasswd: expected a mapping", at)}
		}
		if e := field(n, "expire"); e != nil {
			b, err := config.ParseBool(e.Value)
			if e.Kind != yaml.ScalarNode || err != nil {
				errs = append(errs, fmt.Errorf("%s: chpasswd.expire: expected true or false", at))
			} else {
				p.expire = b
			}
		}
		if users := field(n, "users"); users != nil && users.Tag != "!!null" {
			var items []*yaml.Node
			if users.Kind == yaml.SequenceNode {
				items = users.Content
			} else {
				errs = append(errs, fmt.Errorf("%s: chpasswd.users: expected a list", at))
			}
			for i, u := range items {
				where := fmt.Sprintf("%s:%d: chpasswd.users[%d]", val.Source, u.Line, i)
				name, pw, typ := scalar(field(u, "name")), field(u, "password"), scalar(field(u, "type"))
				if u.Kind != yaml.MappingNode || name == "" {
					errs = append(errs, fmt.Errorf("%s: no name; skipped", where))
					continue
				}
				if typ == "" {
					typ = TypeHash
				}
				password := TypeRandom // cloud-init's default when password is absent
				if pw != nil {
					if pw.Kind != yaml.ScalarNode {
						errs = append(errs, fmt.Errorf("%s: user %s: password: expected a string; skipped", where, name))
						continue
					}
					password = pw.Value
				}
				switch typ {
				case TypeText:
					p.text = append(p.text, entry{name, password})
				case TypeHash:
					p.hashed = append(p.hashed, entry{name, password})
				case TypeRandom:
					p.random = append(p.random, entry{user: name})
				default:
					errs = append(errs, fmt.Errorf("%s: user %s: type: expected text, hash or RANDOM; skipped", where, name))
				}
			}
		}
		if l := field(n, "list"); l != nil && l.Tag != "!!null" {
			listAt = fmt.Sprintf("%s:%d: chpasswd.list", val.Source, l.Line)
			switch l.Kind {
			case yaml.ScalarNode:
				// The multi-line string form.
				sc := bufio.NewScanner(strings.NewReader(l.Value))
				for sc.Scan() {
					list = append(list, sc.Text())
				}
			case yaml.SequenceNode:
				for i, item := range l.Content {
					if item.Kind != yaml.ScalarNode {
						errs = append(errs, fmt.Errorf("%s[%d]: expected \"user:password\"; skipped", listAt, i))
						continue
					}
					list = append(list, item.Value)
				}
			default:
				errs = append(errs, fmt.Errorf("%s: expected a list or a string", listAt))
			}
		}
	}
	if len(p.text)+len(p.hashed)+len(p.random)+len(list) == 0 {
		if val, ok := cfg.Get("password"); ok && val.Node.Kind == yaml.ScalarNode && val.Node.Tag != "!!null" && val.Node.Value != "" {
			listAt = fmt.Sprintf("%s:%d: password", val.Source, val.KeyLine)
			if u := defaultUser(); u != "" {
				list = []string{u + ":" + val.Node.Value}
			} else {
				log.Warn("password: no default user to set it for (users has no default)")
			}
		}
	}
	for i, line := range list {
		user, pw, ok := strings.Cut(line, ":")
		if !ok {
			errs = append(errs, fmt.Errorf("%s[%d]: expected \"user:password\"; skipped", listAt, i))
			continue
		}
		switch {
		case hashRE().MatchString(pw) && !strings.Contains(pw, ":"):
			p.hashed = append(p.hashed, entry{user, pw})
		case pw == "R" || pw == TypeRandom:
			p.random = append(p.random, entry{user: user})
		default:
			if otherHashRE().MatchString(pw) {
				log.Warn("a password looks like a hash cloud-init does not recognise; set as plain text, as cloud-init does (use chpasswd.users with type: hash)",
					zap.String("user", user))
			}
			p.text = append(p.text, entry{user, pw})
		}
	}
	return p, errs
}

func scalar(n *yaml.Node) string {
	if n == nil || n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		return ""
	}
	return n.Value
}

func (SetPasswords) Run(ctx context.Context, env *modules.Env, cfg *config.CloudConfig) error {
	log := env.Logger()
	if !accounts.HasAccounts(env.Root) {
		return fmt.Errorf("no /etc/passwd under the root %s: no accounts to set passwords of", env.Root.Prefix())
	}
	defaultUser := func() string { return accounts.DefaultUserName(cfg, env.Root, env.System.DefaultUser) }
	p, errs := decode(cfg, defaultUser, log)
	for i := range p.random {
		pw, err := RandomPassword(20)
		if err != nil {
			return errors.Join(append(errs, err)...)
		}
		p.random[i].password = pw
	}
	t := tools{env: env}
	text := append(append([]entry{}, p.text...), p.random...)
	if len(text) > 0 {
		log.Info("setting passwords", zap.Strings("users", names(text)))
		if err := t.chpasswd(ctx, text, false); err != nil {
			errs = append(errs, err)
		}
	}
	if len(p.hashed) > 0 {
		log.Info("setting hashed passwords", zap.Strings("users", names(p.hashed)))
		if err := t.chpasswd(ctx, p.hashed, true); err != nil {
			errs = append(errs, err)
		}
	}
	if len(p.random) > 0 {
		// The console alone: never the log, the status or an error.
		var b strings.Builder
		b.WriteString("Set the following 'random' passwords\n\n")
		for i, e := range p.random {
			if i > 0 {
				b.WriteString("\n")
			}
			b.WriteString(e.user + ":" + e.password)
		}
		b.WriteString("\n")
		if _, err := io.WriteString(env.ConsoleWriter(), b.String()); err != nil {
			errs = append(errs, fmt.Errorf("printing the random passwords: %w", err))
		}
	}
	if p.expire {
		// As cloud-init since 22.3, hashed passwords expire too.
		var expired []string
		for _, u := range append(names(text), names(p.hashed)...) {
			if err := t.expire(ctx, u); err != nil {
				errs = append(errs, err)
				continue
			}
			expired = append(expired, u)
		}
		if len(expired) > 0 {
			log.Info("passwords expired", zap.Strings("users", expired))
		}
	}
	return errors.Join(errs...)
}

func names(es []entry) []string {
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = e.user
	}
	return out
}

// tools runs the image's shadow tools against the root: plainly on the
// host or chrooted, with -R (chroot into the prefix) under a --root
// prefix.
type tools struct {
	env *modules.Env
}

func (t tools) prefixed() bool { return !t.env.Root.IsHost() && !t.env.Runner.Chroot }

// chpasswd sets es' passwords through chpasswd's stdin (never argv), with
// -e for hashes (see accounts.ChpasswdArgv for a --root prefix).
func (t tools) chpasswd(ctx context.Context, es []entry, hashed bool) error {
	argv := accounts.ChpasswdArgv(t.env.Root, t.env.Runner.Chroot, hashed)
	var in bytes.Buffer
	for _, e := range es {
		in.WriteString(e.user + ":" + e.password + "\n")
	}
	what := "chpasswd"
	if hashed {
		what = "chpasswd -e"
	}
	if err := t.run(ctx, argv, &in, es); err != nil {
		return fmt.Errorf("%s for %s: %w", what, strings.Join(names(es), ", "), err)
	}
	return nil
}

// expire makes user choose a new password at the next login, with
// cloud-init's passwd --expire.
func (t tools) expire(ctx context.Context, user string) error {
	argv := []string{"passwd"}
	if t.prefixed() {
		argv = append(argv, "-R", t.env.Root.Prefix())
	}
	argv = append(argv, "--expire", user)
	if err := t.run(ctx, argv, nil, nil); err != nil {
		return fmt.Errorf("expiring the password of %s: %w", user, err)
	}
	return nil
}

// run runs argv with stdin; a failure quotes the tool's first line of
// output, with any of es' passwords blotted out should a tool echo one.
func (t tools) run(ctx context.Context, argv []string, stdin io.Reader, es []entry) error {
	var out bytes.Buffer
	res, err := t.env.Runner.Run(ctx, sys.Cmd{Name: "set_passwords: " + argv[0], Argv: argv, Stdin: stdin, Output: &out})
	if err != nil {
		return err
	}
	if res.ExitCode != 0 {
		msg := command.FirstLine(out.String())
		for _, e := range es {
			if e.password != "" {
				msg = strings.ReplaceAll(msg, e.password, "(password)")
			}
		}
		return fmt.Errorf("%s exited %d: %s", argv[0], res.ExitCode, msg)
	}
	return nil
}

// Character classes of a random password, as Python's string module
// names them.
const (
	digits      = "0123456789"
	lowercase   = "abcdefghijklmnopqrstuvwxyz"
	uppercase   = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	punctuation = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"
)

// RandomPassword makes a password of n characters (n >= 4) from
// crypto/rand, with a digit, a lower and an upper case letter and a
// punctuation mark at least, as cloud-init's rand_user_password makes
// them for password rules that ask for every class.
func RandomPassword(n int) (string, error) {
	if n < 4 {
		return "", errors.New("a random password needs 4 characters at least")
	}
	pick := func(set string) (byte, error) {
		i, err := rand.Int(rand.Reader, big.NewInt(int64(len(set))))
		if err != nil {
			return 0, fmt.Errorf("random password: %w", err)
		}
		return set[i.Int64()], nil
	}
	out := make([]byte, 0, n)
	all := digits + lowercase + uppercase + punctuation
	for _, set := range []string{digits, lowercase, uppercase, punctuation} {
		c, err := pick(set)
		if err != nil {
			return "", err
		}
		out = append(out, c)
	}
	for len(out) < n {
		c, err := pick(all)
		if err != nil {
			return "", err
		}
		out = append(out, c)
	}
	// Fisher-Yates, so the classes' first four are not in fixed places.
	for i := len(out) - 1; i > 0; i-- {
		j, err := rand.Int(rand.Reader, big.NewInt(int64(i+1)))
		if err != nil {
			return "", fmt.Errorf("random password: %w", err)
		}
		out[i], out[j.Int64()] = out[j.Int64()], out[i]
	}
	return string(out), nil
}
