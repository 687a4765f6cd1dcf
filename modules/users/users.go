// Package users implements cloud-init's users_groups: groups and users
// created with the image's own shadow tools (groupadd, useradd, usermod)
// against the root prefix, sudo and doas rules, authorized keys, and the
// distribution's default user.
package users

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"
	"gopkg.in/yaml.v3"

	"github.com/ec2init/ec2init/agent/config"
	"github.com/ec2init/ec2init/agent/state"
	"github.com/ec2init/ec2init/agent/sys"
	"github.com/ec2init/ec2init/modules"
	"github.com/ec2init/ec2init/modules/internal/accounts"
	"github.com/ec2init/ec2init/modules/internal/command"
)

// SudoersFile holds the users' sudo rules, under cloud-init's name (an
// image made by either tool has one file). As cloud-init, each user's
// block is appended unless the file has it already, so a re-run or a new
// instance adds no duplicates and keeps earlier users' rules.
const SudoersFile = "/etc/sudoers.d/90-cloud-init-users"

// OldSudoersFile is the name earlier ec2init releases used; its rules move
// into SudoersFile and it is removed.
const OldSudoersFile = "/etc/sudoers.d/90-ec2init-users"

// DoasFile holds the users' doas rules, as cloud-init writes them: each
// user's block appended unless the file has it already.
const DoasFile = "/etc/doas.conf"

// The schema types are built on first use, not at start: every ec2init
// process links this package, few validate or run it (issue #15).
var (
	stringOrList = sync.OnceValue(func() *config.Type {
		return config.OneOf(config.String(), config.ListOf(config.String()))
	})

	// userType is a users entry and the top-level user key alike.
	userType = sync.OnceValue(func() *config.Type {
		return config.Object(
			config.Field{Name: "name", Type: config.String(), Doc: "Login name; an entry without one configures the default user (as \"default\" does)."},
			config.Field{Name: "gecos", Type: config.String(), Doc: "Real name (GECOS field)."},
			config.Field{Name: "homedir", Type: config.String(), Default: "/home/<name>", Doc: "Home directory."},
			config.Field{Name: "primary_group", Type: config.String(), Default: "a group named after the user", Doc: "Login group; created if missing."},
			config.Field{Name: "groups", Type: stringOrList(), Doc: `Supplementary groups: a list or "a, b".`},
			config.Field{Name: "create_groups", Type: config.Bool(), Default: "true", Doc: "Create missing groups (otherwise they are skipped with a warning)."},
			config.Field{Name: "shell", Type: config.String(), Doc: "Login shell."},
			config.Field{Name: "uid", Type: config.OneOf(config.Int(), config.String()), Doc: "User id."},
			config.Field{Name: "system", Type: config.Bool(), Default: "false", Doc: "System account (no home directory)."},
			config.Field{Name: "no_create_home", Type: config.Bool(), Default: "false", Doc: "Do not create the home directory."},
			config.Field{Name: "no_user_group", Type: config.Bool(), Default: "false", Doc: "Do not create a group named after the user."},
			config.Field{Name: "no_log_init", Type: config.Bool(), Default: "false", Doc: "Do not add the user to lastlog and faillog."},
			config.Field{Name: "expiredate", Type: config.String(), Doc: "Date the account expires (YYYY-MM-DD, quoted); for a new user (useradd -e)."},
			config.Field{Name: "inactive", Type: config.String(), Doc: "Days after password expiry until the account is disabled (quoted); for a new user (useradd -f)."},
			config.Field{Name: "selinux_user", Type: config.String(), Doc: "SELinux user of the login (useradd --selinux-user); for a new user. useradd cannot set it under --root."},
			config.Field{Name: "passwd", Type: config.String(), Doc: "Password hash for a new user (never logged); ignored for an existing one, as cloud-init ignores it."},
			config.Field{Name: "hashed_passwd", Type: config.String(), Doc: "Password hash (never logged); wins over passwd and plain_text_passwd, and applies to an existing user too."},
			config.Field{Name: "plain_text_passwd", Type: config.String(), Doc: "Password in clear text, hashed by chpasswd (never logged); wins over passwd."},
			config.Field{Name: "lock_passwd", Type: config.Bool(), Default: "true",
				Doc: "Lock the password: no password logins. false unlocks it when a password is given (an empty one leaves it empty) or the existing user has one."},
			config.Field{Name: "sudo", Type: config.OneOf(config.String(), config.ListOf(config.String()), config.Bool(), config.Null()),
				Doc: "sudo rules (a string or a list), written to " + SudoersFile + "; false for none."},
			config.Field{Name: "doas", Type: config.ListOf(config.String()),
				Doc: "doas rules naming this user (permit|deny [options] NAME [as target] [cmd command [args ...]]), appended to " + DoasFile + "; one rule of another shape and none are written."},
			config.Field{Name: "ssh_authorized_keys", Type: config.ListOf(config.String()), Doc: "Public keys added to ~/.ssh/authorized_keys (made, even empty, when the key is given)."},
			config.Field{Name: "ssh_import_id", Type: stringOrList(), Doc: "Ids (lp:name, gh:name) whose keys ssh_import_id adds for the user."},
			config.Field{Name: "ssh_redirect_user", Type: config.OneOf(config.Bool(), config.Enum("default")), Default: "false",
				Doc: "true: the instance's key pair logs in as this user only to be told to use the default user (as disable_root does for root)."},
		)
	})

	usersType = sync.OnceValue(func() *config.Type {
		return config.OneOf(
			config.String(),
			config.ListOf(config.OneOf(config.String(), config.ListOf(config.String()), userType())),
			// cloud-init's older form: {name: true} or {name: {settings}}.
			config.MapOf(config.OneOf(config.Bool(), config.String(), config.Int(), userType())),
		)
	})

	groupsType = sync.OnceValue(func() *config.Type {
		return config.OneOf(
			config.String(),
			config.ListOf(config.OneOf(config.String(), config.MapOf(stringOrList()))),
			config.MapOf(stringOrList()),
		)
	})
)

// UsersGroups creates groups and users once per instance, in the network
// stage, before ssh and write_files need them.
type UsersGroups struct{}

func (UsersGroups) Name() string                 { return "users_groups" }
func (UsersGroups) Stage() modules.Stage         { return modules.StageNetwork }
func (UsersGroups) Frequency() modules.Frequency { return state.PerInstance }
func (UsersGroups) Schema() modules.Schema {
	return modules.Schema{
		Doc: "Create groups and users (with sudo and doas rules and SSH keys), and the distribution's default user.",
		Keys: []config.Field{
			{Name: "users", Type: usersType(),
				Default: "[default]",
				Doc: `Users to create: "default" is the distribution's default user (ec2-user on Amazon Linux), created last; ` +
					`a list without it has no default user. Entries naming one user merge, the first's values winning.`},
			{Name: "user", Type: config.OneOf(config.String(), userType()),
				Doc: "The default user: a name, or settings overriding the distribution's field by field (groups replace its groups); " +
					`makes "default" part of users.`},
			{Name: "groups", Type: groupsType(),
				Doc: "Groups to create: names, or {name: [members]}."},
		},
	}
}

// Wanted: the default user is created even when the cloud-config has no
// users key.
func (UsersGroups) Wanted(*config.CloudConfig) bool { return true }

// userSpec is one user, its entries merged (accounts.NormalizeUsers) and
// decoded.
type userSpec struct {
	Name            string    `yaml:"name"`
	Gecos           string    `yaml:"gecos"`
	Homedir         string    `yaml:"homedir"`
	PrimaryGroup    string    `yaml:"primary_group"`
	Groups          nameList  `yaml:"groups"`
	CreateGroups    *bool     `yaml:"create_groups"`
	Shell           string    `yaml:"shell"`
	UID             string    `yaml:"uid"`
	System          bool      `yaml:"system"`
	NoCreateHome    bool      `yaml:"no_create_home"`
	NoUserGroup     bool      `yaml:"no_user_group"`
	NoLogInit       bool      `yaml:"no_log_init"`
	Expiredate      string    `yaml:"expiredate"`
	Inactive        string    `yaml:"inactive"`
	SelinuxUser     string    `yaml:"selinux_user"`
	Passwd          *string   `yaml:"passwd"`
	PlainTextPasswd *string   `yaml:"plain_text_passwd"`
	HashedPasswd    *string   `yaml:"hashed_passwd"`
	LockPasswd      *bool     `yaml:"lock_passwd"`
	Sudo            sudoRules `yaml:"sudo"`
	Doas            yaml.Node `yaml:"doas"`
	SSHKeys         []string  `yaml:"ssh_authorized_keys"`
	SSHImportID     nameList  `yaml:"ssh_import_id"`
	Redirect        yaml.Node `yaml:"ssh_redirect_user"`

	// hasKeys: ssh_authorized_keys is given (an empty list still makes
	// the file, as cloud-init does).
	hasKeys bool
	// isDefault: the distribution's default user.
	isDefault bool

	// where names the entry in messages: "users[2]" or "users[0] (default)".
	where string
}

// nameList is a list of names given as a YAML list or as "a, b".
type nameList []string

func (l *nameList) UnmarshalYAML(n *yaml.Node) error {
	switch n.Kind {
	case yaml.ScalarNode:
		*l = accounts.SplitNames(n.Value)
		return nil
	case yaml.SequenceNode:
		var out []string
		for _, item := range n.Content {
			if item.Kind != yaml.ScalarNode {
				return fmt.Errorf("line %d: expected a name", item.Line)
			}
			out = append(out, accounts.SplitNames(item.Value)...)
		}
		*l = out
		return nil
	}
	return fmt.Errorf("line %d: expected a list of names or \"a, b\"", n.Line)
}

// sudoRules is a rule, a list of rules, or false/null for none.
type sudoRules []string

func (s *sudoRules) UnmarshalYAML(n *yaml.Node) error {
	switch {
	case n.Kind == yaml.ScalarNode && (n.Tag == "!!null" || n.Tag == "!!bool"):
		// false (or null) means no rules; cloud-init ignores true as well.
		*s = nil
		return nil
	case n.Kind == yaml.ScalarNode:
		*s = []string{n.Value}
		return nil
	case n.Kind == yaml.SequenceNode:
		var out []string
		if err := n.Decode(&out); err != nil {
			return err
		}
		*s = out
		return nil
	}
	return fmt.Errorf("line %d: expected a sudo rule, a list of rules or false", n.Line)
}

func (u userSpec) lock() bool         { return u.LockPasswd == nil || *u.LockPasswd }
func (u userSpec) createGroups() bool { return u.CreateGroups == nil || *u.CreateGroups }

// run is one Run: the env and what failed so far.
type run struct {
	env      *modules.Env
	log      *zap.Logger
	failures []string
}

func (r *run) fail(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	r.failures = append(r.failures, msg)
	r.log.Warn(msg)
}

func (UsersGroups) Run(ctx context.Context, env *modules.Env, cfg *config.CloudConfig) error {
	r := &run{env: env, log: env.Logger()}
	if !accounts.HasAccounts(env.Root) {
		if cfg.Has("users") || cfg.Has("user") || cfg.Has("groups") {
			return fmt.Errorf("no /etc/passwd under the root %s: not an operating system image", env.Root.Prefix())
		}
		// A bare --root (a test, the demo): there is no system to add the
		// default user to.
		r.log.Info("no /etc/passwd under the root: default user skipped")
		return nil
	}
	groups, err := decodeGroups(cfg)
	if err != nil {
		r.fail("%v", err)
	}
	// Groups first, so users can join them; members after the users, so a
	// group may name a user created below (cloud-init would warn instead).
	for _, g := range groups {
		if err := r.ensureGroup(ctx, g.name); err != nil {
			r.fail("groups: %s: %v", g.name, err)
		}
	}
	specs, warns, err := decodeUsers(cfg, env.Root, env.System.DefaultUser)
	if err != nil {
		r.fail("%v", err)
	}
	for _, w := range warns {
		r.log.Warn(w)
	}
	var sudo []userSpec
	defUser := ""
	for _, u := range specs {
		if u.isDefault {
			defUser = u.Name
		}
	}
	for _, u := range specs {
		if err := ctx.Err(); err != nil {
			return err
		}
		redirect, err := r.checkUser(u, defUser)
		if err != nil {
			r.fail("%s: not creating user %s: %v", u.where, u.Name, err)
			continue
		}
		if err := r.ensureUser(ctx, u); err != nil {
			r.fail("%s: user %s: %v", u.where, u.Name, err)
			continue
		}
		if err := r.writeDoas(ctx, u); err != nil {
			r.fail("%s: user %s: doas: %v", u.where, u.Name, err)
		}
		if len(u.Sudo) > 0 {
			sudo = append(sudo, u)
		}
		if err := r.installKeys(u); err != nil {
			r.fail("%s: user %s: ssh_authorized_keys: %v", u.where, u.Name, err)
		}
		if redirect != "" {
			if err := r.redirectKeys(u, redirect); err != nil {
				r.fail("%s: user %s: ssh_redirect_user: %v", u.where, u.Name, err)
			}
		}
	}
	for _, g := range groups {
		for _, m := range g.members {
			if err := r.addToGroups(ctx, m, []string{g.name}); err != nil {
				r.fail("groups: %s: member %s: %v", g.name, m, err)
			}
		}
	}
	oldSudoers, _ := env.Root.Exists(OldSudoersFile)
	if len(sudo) > 0 || oldSudoers {
		if err := r.writeSudoers(ctx, sudo); err != nil {
			r.fail("sudo: %v", err)
		}
	}
	if len(r.failures) > 0 {
		return errors.New(strings.Join(r.failures, "; "))
	}
	return nil
}

type groupSpec struct {
	name    string
	members []string
}

// decodeGroups reads groups: "a, b", [a, {b: [m1, m2]}] or {a: [m1]}.
func decodeGroups(cfg *config.CloudConfig) ([]groupSpec, error) {
	val, ok := cfg.Get("groups")
	if !ok {
		return nil, nil
	}
	var out []groupSpec
	fromMap := func(n *yaml.Node) error {
		for i := 0; i+1 < len(n.Content); i += 2 {
			var members nameList
			if v := n.Content[i+1]; v.Tag != "!!null" {
				if err := v.Decode(&members); err != nil {
					return fmt.Errorf("%s:%d: groups.%s: %w", val.Source, v.Line, n.Content[i].Value, err)
				}
			}
			out = append(out, groupSpec{name: n.Content[i].Value, members: members})
		}
		return nil
	}
	n := val.Node
	switch n.Kind {
	case yaml.ScalarNode:
		for _, g := range accounts.SplitNames(n.Value) {
			out = append(out, groupSpec{name: g})
		}
	case yaml.MappingNode:
		if err := fromMap(n); err != nil {
			return nil, err
		}
	case yaml.SequenceNode:
		for i, item := range n.Content {
			switch item.Kind {
			case yaml.ScalarNode:
				for _, g := range accounts.SplitNames(item.Value) {
					out = append(out, groupSpec{name: g})
				}
			case yaml.MappingNode:
				if err := fromMap(item); err != nil {
					return nil, err
				}
			default:
				return nil, fmt.Errorf("%s:%d: groups[%d]: expected a name or {name: [members]}", val.Source, item.Line, i)
			}
		}
	default:
		return nil, fmt.Errorf("%s:%d: groups: expected a list", val.Source, val.KeyLine)
	}
	return out, nil
}

// decodeUsers reads users and user, merged with the default user as
// cloud-init merges them (accounts.NormalizeUsers); no users key means the
// default user alone. An entry that cannot be decoded is reported and
// skipped, the others stay; warns are values ignored as cloud-init
// ignores them.
func decodeUsers(cfg *config.CloudConfig, root *sys.Root, override config.DefaultUser) (specs []userSpec, warns []string, err error) {
	set := accounts.NormalizeUsers(cfg, root, override)
	errs := set.Errors
	for _, nu := range set.Users {
		var u userSpec
		// The error names the line and field, never the value (it may be
		// a password hash).
		if err := nu.Fields.Decode(&u); err != nil {
			errs = append(errs, fmt.Sprintf("%s:%d: %s: %s", nu.Source, nu.Line, nu.Where, typeErrorLines(err)))
			continue
		}
		u.Name, u.where, u.isDefault = nu.Name, nu.Where, nu.Default
		_, u.hasKeys = nu.Field("ssh_authorized_keys")
		specs = append(specs, u)
	}
	if len(errs) > 0 {
		return specs, set.Warnings, errors.New(strings.Join(errs, "; "))
	}
	return specs, set.Warnings, nil
}

// typeErrorLines keeps only "line N: cannot unmarshal !!T into ..." parts of
// a yaml error: they name positions and types, not the values.
func typeErrorLines(err error) string {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return "cannot be decoded"
	}
	var out []string
	for _, e := range te.Errors {
		if i := strings.Index(e, "`"); i >= 0 {
			e = strings.TrimSpace(e[:i]) + " (value not shown)"
		}
		out = append(out, e)
	}
	return strings.Join(out, ", ")
}

// ensureGroup creates group name unless it exists.
func (r *run) ensureGroup(ctx context.Context, name string) error {
	_, found, err := accounts.LookupGroup(r.env.Root, name)
	if err != nil || found {
		return err
	}
	return r.tool(ctx, "groupadd", name)
}

// ensureUser creates u, or, when the account exists already, adds it to
// the groups it is missing from; then sets the password and lock.
func (r *run) ensureUser(ctx context.Context, u userSpec) error {
	root := r.env.Root
	groups, err := r.usableGroups(ctx, u)
	if err != nil {
		return err
	}
	_, exists, err := accounts.LookupAccount(root, u.Name)
	if err != nil {
		return err
	}
	if exists {
		// As cloud-init: an existing account keeps its attributes; groups,
		// password, lock, sudo and keys still apply.
		r.log.Info("user exists; adding missing groups only", zap.String("user", u.Name))
		if err := r.addToGroups(ctx, u.Name, groups); err != nil {
			return err
		}
	} else {
		args, err := r.useraddArgs(ctx, u, groups)
		if err != nil {
			return err
		}
		if err := r.tool(ctx, "useradd", args...); err != nil {
			return err
		}
		r.log.Info("user created", zap.String("user", u.Name), zap.Strings("groups", groups))
	}
	return r.setPassword(ctx, u, exists)
}

// setPassword sets u's password and locks or unlocks it as cloud-init's
// create_user does. Passwords go through chpasswd's stdin, never argv.
// Of passwd (a new account's only), plain_text_passwd and hashed_passwd,
// the last given in that order wins, as cloud-init applies them in turn.
// lock_passwd (true by default) locks; false unlocks when user data gives
// a password (an empty one included) or the existing account has one,
// and otherwise leaves the account as it is, with a warning.
func (r *run) setPassword(ctx context.Context, u userSpec, exists bool) error {
	var (
		given, blank bool // a password key is set; one is set to ""
		secret       *string
		hashed       bool
	)
	take := func(p *string, isHash bool) {
		if p == nil {
			return
		}
		given = true
		if *p == "" {
			blank = true
			return
		}
		secret, hashed = p, isHash
	}
	if !exists {
		take(u.Passwd, true)
	}
	take(u.PlainTextPasswd, false)
	take(u.HashedPasswd, true)
	if exists && u.Passwd != nil && u.PlainTextPasswd == nil && u.HashedPasswd == nil {
		r.log.Warn("passwd is ignored for an existing user, as cloud-init ignores it (hashed_passwd applies)", zap.String("user", u.Name))
	}
	if secret != nil {
		if err := r.chpasswd(ctx, u.Name, *secret, hashed); err != nil {
			return fmt.Errorf("setting the password: %w", err)
		}
	}
	if u.lock() {
		if err := r.tool(ctx, "usermod", "-L", u.Name); err != nil {
			return fmt.Errorf("locking the password: %w", err)
		}
		return nil
	}
	hasPassword := false
	if exists && !given {
		// cloud-init: an account whose shadow entry is not "" or "!" has
		// a password (an account missing from shadow counts as one).
		field, found, err := accounts.ShadowPassword(r.env.Root, u.Name)
		if err != nil {
			return err
		}
		hasPassword = !found || (field != "" && field != "!")
	}
	switch {
	case given || hasPassword:
		return r.unlock(ctx, u.Name, blank)
	case exists:
		r.log.Warn("lock_passwd is false, but the existing user has no password and none is given (plain_text_passwd, hashed_passwd): not unlocking", zap.String("user", u.Name))
	default:
		r.log.Warn("lock_passwd is false, but no passwd, plain_text_passwd or hashed_passwd is given: not unlocking", zap.String("user", u.Name))
	}
	return nil
}

// unlock unlocks user's password (usermod -U, as cloud-init's passwd -u).
// Unlocking an account with no password behind the lock is refused by
// both tools; cloud-init then empties the password, which ec2init does
// only when the user data gave an empty password (blank), and otherwise
// leaves the account locked with a warning.
func (r *run) unlock(ctx context.Context, user string, blank bool) error {
	field, found, err := accounts.ShadowPassword(r.env.Root, user)
	if err != nil {
		return err
	}
	if found && strings.TrimLeft(field, "!") == "" {
		if !blank {
			r.log.Warn("lock_passwd is false, but the account has no password to unlock: left locked", zap.String("user", user))
			return nil
		}
		r.log.Info("unlocking with an empty password, as the user data's empty password asks", zap.String("user", user))
		if err := r.tool(ctx, "usermod", "-p", "", user); err != nil {
			return fmt.Errorf("emptying the password: %w", err)
		}
		return nil
	}
	if err := r.tool(ctx, "usermod", "-U", user); err != nil {
		return fmt.Errorf("unlocking the password: %w", err)
	}
	return nil
}

// usableGroups returns u's supplementary groups that exist, creating the
// missing ones when u allows it, before the user, as cloud-init's add_user
// does: the default user's netdev, absent from a minimal Debian, is made
// and takes the first free gid, so gids match a cloud-init instance.
func (r *run) usableGroups(ctx context.Context, u userSpec) ([]string, error) {
	var out []string
	for _, g := range u.Groups {
		_, found, err := accounts.LookupGroup(r.env.Root, g)
		if err != nil {
			return nil, err
		}
		switch {
		case found:
		case !u.createGroups():
			r.log.Warn("group does not exist and create_groups is false; skipped", zap.String("user", u.Name), zap.String("group", g))
			continue
		default:
			if err := r.tool(ctx, "groupadd", g); err != nil {
				return nil, fmt.Errorf("group %s: %w", g, err)
			}
		}
		out = append(out, g)
	}
	return out, nil
}

func (r *run) useraddArgs(ctx context.Context, u userSpec, groups []string) ([]string, error) {
	var a []string
	add := func(flag, v string) {
		if v != "" {
			a = append(a, flag, v)
		}
	}
	add("-c", u.Gecos)
	add("-d", u.Homedir)
	add("-s", u.Shell)
	add("-u", u.UID)
	add("-e", u.Expiredate)
	add("-f", u.Inactive)
	add("--selinux-user", u.SelinuxUser)
	if len(groups) > 0 {
		add("-G", strings.Join(groups, ","))
	}
	if pg := u.PrimaryGroup; pg != "" {
		_, found, err := accounts.LookupGroup(r.env.Root, pg)
		if err != nil {
			return nil, err
		}
		switch {
		case !found && pg == u.Name && !u.NoUserGroup:
			// useradd's own user group is exactly this one.
		case !found:
			if err := r.tool(ctx, "groupadd", pg); err != nil {
				return nil, fmt.Errorf("primary group %s: %w", pg, err)
			}
			add("-g", pg)
		default:
			add("-g", pg)
		}
	}
	if u.System {
		a = append(a, "-r")
	}
	if u.NoUserGroup {
		a = append(a, "-N")
	}
	if u.NoLogInit {
		a = append(a, "-l")
	}
	// As cloud-init: a home for ordinary users, none for system accounts.
	if u.NoCreateHome || u.System {
		a = append(a, "-M")
	} else {
		a = append(a, "-m")
	}
	return append(a, u.Name), nil
}

// addToGroups adds user to those of groups it is not in yet.
func (r *run) addToGroups(ctx context.Context, user string, groups []string) error {
	if len(groups) == 0 {
		return nil
	}
	_, exists, err := accounts.LookupAccount(r.env.Root, user)
	if err != nil {
		return err
	}
	if !exists {
		return errors.New("no such user")
	}
	in, err := accounts.GroupsOf(r.env.Root, user)
	if err != nil {
		return err
	}
	var missing []string
	for _, g := range groups {
		if !in[g] {
			missing = append(missing, g)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	return r.tool(ctx, "usermod", "-a", "-G", strings.Join(missing, ","), user)
}

// checkUser applies cloud-init's rules on keys that cannot go together:
// a user without a home (system, no_create_home) cannot be given keys,
// and ssh_redirect_user (true or "default") excludes keys of its own. It
// returns the user ssh_redirect_user sends logins to ("" for none).
func (r *run) checkUser(u userSpec, defUser string) (string, error) {
	var noHome, needHome []string
	if u.NoCreateHome {
		noHome = append(noHome, "no_create_home")
	}
	if u.System {
		noHome = append(noHome, "system")
	}
	redirect := false
	switch n := u.Redirect; {
	case n.Kind == 0 || n.Tag == "!!null":
	case n.Kind == yaml.ScalarNode && n.Value == "default":
		redirect = true
	case n.Kind == yaml.ScalarNode && n.Tag == "!!bool":
		b, _ := config.ParseBool(n.Value)
		redirect = b
	default:
		return "", errors.New("invalid value of ssh_redirect_user: expected true, default or false")
	}
	if u.hasKeys {
		needHome = append(needHome, "ssh_authorized_keys")
	}
	if len(u.SSHImportID) > 0 {
		needHome = append(needHome, "ssh_import_id")
	}
	if redirect {
		needHome = append(needHome, "ssh_redirect_user")
	}
	if len(noHome) > 0 && len(needHome) > 0 {
		return "", fmt.Errorf("key(s) %s cannot be provided with %s", strings.Join(needHome, ", "), strings.Join(noHome, ", "))
	}
	if !redirect {
		return "", nil
	}
	if u.hasKeys || len(u.SSHImportID) > 0 {
		return "", errors.New("ssh_redirect_user cannot be provided with ssh_import_id or ssh_authorized_keys")
	}
	if defUser == "" {
		r.log.Warn("ssh_redirect_user ignored: no default user (users has no default)", zap.String("user", u.Name))
		return "", nil
	}
	return defUser, nil
}

// redirectKeys gives user the instance's key pair behind cloud-init's
// refusal, which names to the default user to log in as.
func (r *run) redirectKeys(u userSpec, to string) error {
	keys := accounts.InstanceKeys(r.env.Instance)
	if len(keys) == 0 {
		r.log.Warn("ssh_redirect_user: the instance has no key pair; nothing to redirect", zap.String("user", u.Name), zap.String("to", to))
		return nil
	}
	opts := strings.NewReplacer("$USER", to, "$DISABLE_USER", u.Name).Replace(accounts.DisableUserOpts)
	for i, k := range keys {
		keys[i] = opts + " " + k
	}
	acct, found, err := accounts.LookupAccount(r.env.Root, u.Name)
	if err != nil {
		return err
	}
	if !found {
		return errors.New("no such user")
	}
	return accounts.UpdateAuthorizedKeys(r.env.Root, acct, keys, nil)
}

// installKeys adds u's ssh_authorized_keys; entries that are no key are
// named by position.
func (r *run) installKeys(u userSpec) error {
	if !u.hasKeys && len(u.SSHKeys) == 0 {
		return nil
	}
	var bad []string
	for i, k := range u.SSHKeys {
		if _, ok := accounts.KeyID(k); !ok {
			bad = append(bad, strconv.Itoa(i))
		}
	}
	acct, found, err := accounts.LookupAccount(r.env.Root, u.Name)
	if err != nil {
		return err
	}
	if !found {
		return errors.New("no such user")
	}
	if err := accounts.UpdateAuthorizedKeys(r.env.Root, acct, u.SSHKeys, nil); err != nil {
		return err
	}
	if len(bad) > 0 {
		return fmt.Errorf("items %s are not public keys; skipped", strings.Join(bad, ", "))
	}
	return nil
}

// chpasswd sets user's password (hashed: a crypt hash) through chpasswd's
// stdin; its message, should it fail, names the user, never the password.
func (r *run) chpasswd(ctx context.Context, user, password string, hashed bool) error {
	argv := accounts.ChpasswdArgv(r.env.Root, r.env.Runner.Chroot, hashed)
	var out bytes.Buffer
	res, err := r.env.Runner.Run(ctx, sys.Cmd{Name: "users_groups: chpasswd", Argv: argv,
		Stdin: strings.NewReader(user + ":" + password + "\n"), Output: &out})
	if err != nil {
		return err
	}
	if res.ExitCode != 0 {
		return fmt.Errorf("chpasswd exited %d: %s", res.ExitCode, strings.ReplaceAll(command.FirstLine(out.String()), password, "(password)"))
	}
	return nil
}

// tool runs one of the shadow tools against the root: with --prefix when
// the root is not "/", plainly when the runner chroots into it.
func (r *run) tool(ctx context.Context, name string, args ...string) error {
	argv := []string{name}
	root := r.env.Root
	if !root.IsHost() && !r.env.Runner.Chroot {
		argv = append(argv, "--prefix", root.Prefix())
	}
	argv = append(argv, args...)
	var out bytes.Buffer
	res, err := r.env.Runner.Run(ctx, sys.Cmd{Name: "users_groups: " + name, Argv: argv, Output: &out})
	if err != nil {
		return err
	}
	if res.ExitCode != 0 {
		// The tools' messages name users and groups, never a password.
		return fmt.Errorf("%s exited %d: %s", name, res.ExitCode, command.FirstLine(out.String()))
	}
	return nil
}

// header opens a file this module creates, as cloud-init's make_header.
func (r *run) header() string {
	version := r.env.Version
	if version == "" {
		version = "unknown"
	}
	return fmt.Sprintf("# Created by ec2init v. %s (cloud-init's users_groups) on %s\n",
		version, time.Now().UTC().Format(time.RFC1123Z))
}

// writeSudoers adds each user's rules to SudoersFile (0440) as cloud-init
// does: a "# User rules for NAME" block appended unless the file holds it
// already, under a header when the file is new. The rules of
// OldSudoersFile come first and that file goes. The whole is checked by
// visudo, when installed, before it replaces the file; /etc/sudoers is
// made to read /etc/sudoers.d.
func (r *run) writeSudoers(ctx context.Context, specs []userSpec) error {
	root := r.env.Root
	var content string
	for _, f := range []string{OldSudoersFile, SudoersFile} {
		b, err := root.ReadFile(f)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		content += string(b)
	}
	if content == "" {
		content = r.header()
	}
	for _, u := range specs {
		var b strings.Builder
		fmt.Fprintf(&b, "\n# User rules for %s\n", u.Name)
		for _, rule := range u.Sudo {
			fmt.Fprintf(&b, "%s %s\n", u.Name, rule)
		}
		if !strings.Contains(content, b.String()) {
			content += b.String()
		}
	}
	data := []byte(content)
	// sudo ignores names with a dot, so the candidate is never live.
	tmp := "/etc/sudoers.d/.90-cloud-init-users.check"
	if err := root.MkdirAll("/etc/sudoers.d", 0o750); err != nil {
		return err
	}
	out, res, checked, err := r.checkCandidate(ctx, tmp, data, func(p string) []string { return []string{"visudo", "-c", "-q", "-f", p} })
	switch {
	case err != nil:
		return err
	case !checked:
		r.log.Info("visudo not installed; sudo rules written unchecked")
	case res.ExitCode != 0:
		// visudo quotes the offending line; the rules are not secret, but the
		// message stays short.
		return fmt.Errorf("visudo rejected the rules (%s); %s not written", command.FirstLine(out), SudoersFile)
	}
	if err := root.WriteFile(SudoersFile, data, 0o440, &sys.Owner{UID: 0, GID: 0}); err != nil {
		return err
	}
	if err := root.Remove(OldSudoersFile); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return r.ensureIncludeDir()
}

// ensureIncludeDir appends "#includedir /etc/sudoers.d" to /etc/sudoers
// when it has no include of that directory, as cloud-init does. Without
// /etc/sudoers (sudo not installed) there is nothing to do.
func (r *run) ensureIncludeDir() error {
	root := r.env.Root
	b, err := root.ReadFile("/etc/sudoers")
	if err != nil {
		if ok, _ := root.Exists("/etc/sudoers"); !ok {
			r.log.Info("no /etc/sudoers; is sudo installed?")
			return nil
		}
		return err
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && (f[0] == "#includedir" || f[0] == "@includedir") && strings.TrimRight(f[1], "/") == "/etc/sudoers.d" {
			return nil
		}
	}
	add := "\n# Added by ec2init: the users' rules live in /etc/sudoers.d\n#includedir /etc/sudoers.d\n"
	if len(b) > 0 && b[len(b)-1] != '\n' {
		add = "\n" + add
	}
	return root.AppendFile("/etc/sudoers", []byte(add), 0o440)
}
