// Package packages implements cloud-init's package modules:
// package_update_upgrade_install (packages, package_update,
// package_upgrade, package_reboot_if_required) with apt-get on Debian-likes
// and dnf (or yum) on Amazon Linux and Red Hat-likes, yum_add_repo
// (yum_repos) and the repository part of apt_configure (apt).
package packages

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"time"

	"go.uber.org/zap"
	"gopkg.in/yaml.v3"

	"github.com/ec2init/ec2init/agent/config"
	"github.com/ec2init/ec2init/agent/state"
	"github.com/ec2init/ec2init/agent/sys"
	"github.com/ec2init/ec2init/internal/backoff"
	"github.com/ec2init/ec2init/modules"
	"github.com/ec2init/ec2init/modules/internal/distro"
)

// Host paths of the reboot request.
const (
	// RebootRequiredFile is what Debian's packages (kernel, libc, ...)
	// create when the system needs a reboot to use them.
	RebootRequiredFile = "/var/run/reboot-required"
	// RebootMarker is ec2init's request for a reboot once the boot is done.
	// This module only writes it; rebooting is the power_state module's
	// job (a reboot in the middle of the config stage would cut the boot
	// short, which is what cloud-init does and what we avoid).
	RebootMarker = modules.RebootRequestFile
)

// Lock contention defaults: another apt or dnf (unattended-upgrades, a
// user's script, the SSM agent) commonly holds the lock during first boot.
const (
	defaultLockAttempts = 8
	defaultLockBase     = 2 * time.Second
	defaultLockMax      = 60 * time.Second
)

// ErrNeedsChroot is returned for a root other than "/" without --chroot:
// the package manager would otherwise change the running host.
var ErrNeedsChroot = errors.New("package installation needs --chroot or the real root")

// LockRetry bounds the retries of a command that failed because another
// process held the package manager's lock. Zero fields take the defaults
// (8 attempts, backoff from 2s up to 60s with full jitter).
type LockRetry struct {
	Attempts  int
	Base, Max time.Duration
}

func (l LockRetry) withDefaults() LockRetry {
	if l.Attempts <= 0 {
		l.Attempts = defaultLockAttempts
	}
	if l.Base <= 0 {
		l.Base = defaultLockBase
	}
	if l.Max <= 0 {
		l.Max = defaultLockMax
	}
	return l
}

// PackageUpdateUpgradeInstall refreshes the package index, upgrades and
// installs packages once per instance. The zero value is the agent's.
type PackageUpdateUpgradeInstall struct {
	// AptOptions are added to every apt-get command line, after ec2init's
	// own options (e.g. "-o", "Dir=/mnt/image", ...), and DnfOptions to
	// every dnf or yum one (e.g. "--installroot=/mnt/image"). Setting the
	// chosen tool's options declares that they point it at the root, so a
	// root other than "/" is accepted without chroot. Tests and image
	// builders use them; the agent leaves them empty.
	AptOptions []string
	DnfOptions []string
	// LockRetry bounds the retries on lock contention.
	LockRetry LockRetry
}

var packageItemType = config.OneOf(
	config.String(),
	config.ListOf(config.String()), // [name] or [name, version]
	// {apt: [...], snap: [...]}: not supported; an object with no known
	// keys makes each of them a warning by name rather than an error.
	config.Object(),
)

func (PackageUpdateUpgradeInstall) Name() string                 { return "package_update_upgrade_install" }
func (PackageUpdateUpgradeInstall) Stage() modules.Stage         { return modules.StageConfig }
func (PackageUpdateUpgradeInstall) Frequency() modules.Frequency { return state.PerInstance }
func (PackageUpdateUpgradeInstall) Schema() modules.Schema {
	return modules.Schema{
		Doc: "Update the package index, upgrade and install packages (apt-get on Debian-likes, dnf or yum on Amazon Linux and Red Hat-likes).",
		Keys: []config.Field{
			{Name: "packages", Type: config.ListOf(packageItemType),
				Doc: "Packages to install: a name, or [name, version] to pin a version. Installing implies package_update."},
			{Name: "package_update", Type: config.Bool(), Default: "false",
				Doc: "Refresh the package index (apt-get update, dnf makecache)."},
			{Name: "package_upgrade", Type: config.Bool(), Default: "false",
				Doc: "Upgrade every package (apt-get dist-upgrade, dnf upgrade). Implies package_update."},
			{Name: "package_reboot_if_required", Type: config.Bool(), Default: "false",
				Doc: "After an upgrade or install, request a reboot when " + RebootRequiredFile + " exists; power_state carries it out after the boot."},
			{Name: "apt_update", Type: config.Bool(), Doc: "Deprecated alias of package_update."},
			{Name: "apt_upgrade", Type: config.Bool(), Doc: "Deprecated alias of package_upgrade."},
			{Name: "apt_reboot_if_required", Type: config.Bool(), Doc: "Deprecated alias of package_reboot_if_required."},
		},
	}
}

// pkg is one package to install; version "" means any.
type pkg struct {
	name, version string
}

// request is the module's decoded configuration.
type request struct {
	update, upgrade, reboot bool
	pkgs                    []pkg
	// skipped names the items not supported (package-manager mappings).
	skipped []string
}

func (m PackageUpdateUpgradeInstall) Run(ctx context.Context, env *modules.Env, cfg *config.CloudConfig) error {
	log := env.Logger()
	req, err := parseRequest(cfg)
	if err != nil {
		return err
	}
	for _, s := range req.skipped {
		log.Warn("packages: item not supported by ec2init; skipped", zap.String("item", s))
		fmt.Fprintf(env.ConsoleWriter(), "ec2init: packages: %s is not supported (package-manager mappings such as apt:/snap:); skipped\n", s)
	}
	if !req.update && !req.upgrade && len(req.pkgs) == 0 {
		return nil
	}
	d, err := distro.Detect(env.Root)
	if err != nil {
		return fmt.Errorf("%s: %w", m.Name(), err)
	}
	mgr, err := m.managerFor(env.Root, d)
	if err != nil {
		return fmt.Errorf("%s: %w", m.Name(), err)
	}
	if !env.Root.IsHost() && !env.Runner.Chroot && !mgr.rootOptions {
		return fmt.Errorf("%s: %w (root is %s)", m.Name(), ErrNeedsChroot, env.Root.Prefix())
	}

	// As cloud-init: each step is tried even when an earlier one failed
	// (an index refresh that fails for one repository may still let the
	// install succeed), and every failure is reported.
	var errs []error
	if req.update || req.upgrade || len(req.pkgs) > 0 {
		if err := m.run(ctx, env, mgr, "package_update", mgr.update()); err != nil {
			errs = append(errs, err)
		}
	}
	if req.upgrade {
		if err := m.run(ctx, env, mgr, "package_upgrade", mgr.upgrade()); err != nil {
			errs = append(errs, err)
		}
	}
	if len(req.pkgs) > 0 {
		if err := m.run(ctx, env, mgr, "packages", mgr.install(req.pkgs)); err != nil {
			errs = append(errs, err)
		}
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if req.reboot && (req.upgrade || len(req.pkgs) > 0) {
		if err := requestReboot(env); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// parseRequest reads the module's keys; the deprecated apt_* aliases count
// when either spelling is true, as in cloud-init.
func parseRequest(cfg *config.CloudConfig) (request, error) {
	var req request
	var err error
	flag := func(keys ...string) bool {
		for _, k := range keys {
			v, e := boolKey(cfg, k)
			if e != nil && err == nil {
				err = e
			}
			if v {
				return true
			}
		}
		return false
	}
	req.update = flag("package_update", "apt_update")
	req.upgrade = flag("package_upgrade", "apt_upgrade")
	req.reboot = flag("package_reboot_if_required", "apt_reboot_if_required")
	if err != nil {
		return req, err
	}
	v, ok := cfg.Get("packages")
	if !ok || v.Node.Tag == "!!null" {
		return req, nil
	}
	if v.Node.Kind != yaml.SequenceNode {
		return req, fmt.Errorf("%s:%d: packages: expected a list of packages", v.Source, v.KeyLine)
	}
	var bad []string
	for i, item := range v.Node.Content {
		p, skip, err := parseItem(item)
		switch {
		case err != nil:
			bad = append(bad, fmt.Sprintf("packages[%d] (line %d): %v", i, item.Line, err))
		case skip:
			req.skipped = append(req.skipped, fmt.Sprintf("packages[%d] (line %d)", i, item.Line))
		default:
			req.pkgs = append(req.pkgs, p)
		}
	}
	if len(bad) > 0 {
		return req, fmt.Errorf("%s: %s", v.Source, strings.Join(bad, "; "))
	}
	return req, nil
}

// parseItem reads "name" or [name] or [name, version]; a mapping is
// skipped (cloud-init's per-manager lists).
func parseItem(n *yaml.Node) (p pkg, skip bool, err error) {
	switch n.Kind {
	case yaml.ScalarNode:
		p.name = n.Value
	case yaml.SequenceNode:
		if len(n.Content) < 1 || len(n.Content) > 2 {
			return p, false, errors.New("expected [name] or [name, version]")
		}
		for _, w := range n.Content {
			if w.Kind != yaml.ScalarNode {
				return p, false, errors.New("name and version must be plain values")
			}
		}
		p.name = n.Content[0].Value
		if len(n.Content) == 2 {
			p.version = n.Content[1].Value
			if err := checkWord("version", p.version); err != nil {
				return p, false, err
			}
		}
	case yaml.MappingNode:
		return p, true, nil
	default:
		return p, false, errors.New("expected a package name or [name, version]")
	}
	if n.Tag == "!!null" {
		return p, false, errors.New("empty package name")
	}
	return p, false, checkWord("package name", p.name)
}

// checkWord refuses what would not be one argument naming a package: an
// empty word, whitespace, or a leading "-" (an option to the package
// manager, e.g. --allow-unauthenticated).
func checkWord(what, s string) error {
	switch {
	case s == "":
		return fmt.Errorf("empty %s", what)
	case strings.HasPrefix(s, "-"):
		return fmt.Errorf("%s %q starts with '-'", what, s)
	case strings.ContainsFunc(s, func(r rune) bool { return r <= ' ' || r == 0x7f }):
		return fmt.Errorf("%s %q contains whitespace or control characters", what, s)
	}
	return nil
}

// boolKey reads a boolean key; absent or null is false.
func boolKey(cfg *config.CloudConfig, key string) (bool, error) {
	v, ok := cfg.Get(key)
	if !ok || v.Node.Tag == "!!null" {
		return false, nil
	}
	if v.Node.Kind == yaml.ScalarNode && (v.Node.Tag == "!!bool" || v.Node.Style == 0) {
		if b, err := config.ParseBool(v.Node.Value); err == nil {
			return b, nil
		}
	}
	return false, fmt.Errorf("%s:%d: %s: expected true or false", v.Source, v.KeyLine, key)
}

// manager is one package manager's command lines.
type manager struct {
	apt  bool
	base []string // command and the options every call gets
	env  map[string]string
	// rootOptions: the caller's options point the tool at the root.
	rootOptions bool
}

// managerFor picks the package manager for the distribution under root.
func (m PackageUpdateUpgradeInstall) managerFor(root *sys.Root, d distro.Distro) (manager, error) {
	switch {
	case d.IsDebianLike():
		base := []string{"apt-get", "-y",
			// Keep the image's changed config files and take new defaults
			// otherwise: never ask.
			"-o", "Dpkg::Options::=--force-confdef", "-o", "Dpkg::Options::=--force-confold"}
		base = append(base, m.AptOptions...)
		return manager{apt: true, base: base, env: map[string]string{"DEBIAN_FRONTEND": "noninteractive"},
			rootOptions: len(m.AptOptions) > 0}, nil
	case d.IsRedHatLike():
		// dnf on Amazon Linux 2023 and RHEL 8+; yum where dnf is absent
		// (Amazon Linux 2, RHEL 7).
		// Neither found: dnf, so the error says what is missing.
		tool := "dnf"
		if !has(root, "/usr/bin/dnf", "/bin/dnf") && has(root, "/usr/bin/yum", "/bin/yum") {
			tool = "yum"
		}
		return manager{base: append([]string{tool, "-y"}, m.DnfOptions...), rootOptions: len(m.DnfOptions) > 0}, nil
	}
	return manager{}, fmt.Errorf("cannot tell the package manager: the image's os-release says %q, neither Debian- nor Red Hat-like", d.String())
}

// has reports whether any of paths exists under root.
func has(root *sys.Root, paths ...string) bool {
	for _, p := range paths {
		if ok, _ := root.Exists(p); ok {
			return true
		}
	}
	return false
}

func (g manager) cmd(args ...string) []string {
	return append(append([]string(nil), g.base...), args...)
}

func (g manager) update() []string {
	if g.apt {
		return g.cmd("update")
	}
	return g.cmd("makecache")
}

// upgrade is dist-upgrade on apt, as cloud-init's default: an upgrade that
// may add or remove packages (a new kernel ABI) rather than hold them back.
func (g manager) upgrade() []string {
	if g.apt {
		return g.cmd("dist-upgrade")
	}
	return g.cmd("upgrade")
}

func (g manager) install(pkgs []pkg) []string {
	args := []string{"install"}
	for _, p := range pkgs {
		args = append(args, g.spec(p))
	}
	return g.cmd(args...)
}

// spec pins a version the way each tool spells it: apt name=version, dnf
// and yum name-version.
func (g manager) spec(p pkg) string {
	switch {
	case p.version == "":
		return p.name
	case g.apt:
		return p.name + "=" + p.version
	default:
		return p.name + "-" + p.version
	}
}

// locked reports whether a failed run failed on the lock, from what the
// tools print when another process holds it (checked case-insensitively).
func (g manager) locked(exit int, output []byte) bool {
	markers := []string{"waiting for process", "rpmdb lock", "transaction lock", "holding the yum lock", "another app is currently holding"}
	if g.apt {
		if exit != 100 {
			return false
		}
		markers = []string{"could not get lock", "unable to acquire the dpkg frontend lock", "unable to lock directory", "unable to lock the administration directory"}
	}
	low := bytes.ToLower(output)
	for _, mk := range markers {
		if bytes.Contains(low, []byte(mk)) {
			return true
		}
	}
	return false
}

// run runs argv (key names the config key it serves, for messages),
// retrying with backoff while another process holds the lock. The tool's
// output goes to the console (the output log).
func (m PackageUpdateUpgradeInstall) run(ctx context.Context, env *modules.Env, g manager, key string, argv []string) error {
	retry := m.LockRetry.withDefaults()
	what := describe(g, argv)
	for attempt := 1; ; attempt++ {
		var tail tailBuffer
		res, err := env.Runner.Run(ctx, sys.Cmd{
			Name:   fmt.Sprintf("%s: %s", key, what),
			Argv:   argv,
			Env:    g.env,
			Output: io.MultiWriter(&tail, env.ConsoleWriter()), // the tail first: a failing console must not blind the lock check
			Header: true,
		})
		if err != nil {
			return fmt.Errorf("%s: %s: %w", key, what, err)
		}
		if res.ExitCode == 0 {
			return nil
		}
		status := exitStatus(res)
		if !g.locked(res.ExitCode, tail.Bytes()) {
			return fmt.Errorf("%s: %s: %s", key, what, status)
		}
		if attempt >= retry.Attempts {
			return fmt.Errorf("%s: %s: %s: the package manager's lock was held by another process through %d attempts", key, what, status, attempt)
		}
		wait := backoff.Delay(retry.Base, retry.Max, attempt, rand.Float64())
		env.Logger().Info("package manager lock held by another process; retrying",
			zap.String("key", key), zap.Int("attempt", attempt), zap.Duration("wait", wait))
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: %s: waiting for the package manager's lock: %w", key, what, ctx.Err())
		case <-time.After(wait):
		}
	}
}

// describe names a command for messages: the tool, its subcommand and
// arguments, without the options every call gets ("apt-get install curl
// nginx=1.18").
func describe(g manager, argv []string) string {
	return g.base[0] + " " + strings.Join(argv[len(g.base):], " ")
}

func exitStatus(res sys.Result) string {
	if res.Signal != "" {
		return "killed by signal " + res.Signal
	}
	return fmt.Sprintf("exit status %d", res.ExitCode)
}

// requestReboot writes the reboot marker when the packages asked for one.
func requestReboot(env *modules.Env) error {
	need, err := env.Root.Exists(RebootRequiredFile)
	if err != nil {
		return fmt.Errorf("package_reboot_if_required: %w", err)
	}
	if !need {
		return nil
	}
	msg := "package_update_upgrade_install: " + RebootRequiredFile + " exists\n"
	if err := env.Root.WriteFile(RebootMarker, []byte(msg), 0o644, nil); err != nil {
		return fmt.Errorf("package_reboot_if_required: %w", err)
	}
	env.Logger().Warn("a reboot is required after the package changes; requested",
		zap.String("marker", RebootMarker))
	fmt.Fprintf(env.ConsoleWriter(), "ec2init: packages require a reboot (%s exists); reboot requested in %s\n", RebootRequiredFile, RebootMarker)
	return nil
}

// tailBuffer keeps the last tailMax bytes written: enough to recognise a
// lock message without holding an upgrade's whole output.
type tailBuffer struct{ b []byte }

const tailMax = 64 << 10

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.b = append(t.b, p...)
	if len(t.b) > tailMax {
		t.b = append(t.b[:0], t.b[len(t.b)-tailMax:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) Bytes() []byte { return t.b }
