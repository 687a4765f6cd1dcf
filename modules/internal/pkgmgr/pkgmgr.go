// Package pkgmgr runs the distribution's package manager for the modules
// that install packages (package_update_upgrade_install, software): apt-get
// on Debian-likes, dnf (or yum) on Amazon Linux and Red Hat-likes, with
// one lock-retry policy and one set of messages.
package pkgmgr

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/ec2init/ec2init/agent/sys"
	"github.com/ec2init/ec2init/modules"
	"github.com/ec2init/ec2init/modules/internal/distro"
)

// ErrNeedsChroot is returned for a root other than "/" without --chroot:
// the package manager would otherwise change the running host.
var ErrNeedsChroot = errors.New("package installation needs --chroot or the real root")

// Package is one package to install; Version "" means any.
type Package struct {
	Name, Version string
}

// Request is the work of one Apply: refresh the index, upgrade every
// package, install packages. Upgrading or installing implies refreshing.
type Request struct {
	Update, Upgrade bool
	Packages        []Package
	// UpgradeOnly limits the upgrade to one kind of advisory: "" (every
	// package), "security" or "bugfix" (dnf and yum --security, --bugfix;
	// Amazon Linux's repo_upgrade). dnf and yum only.
	UpgradeOnly string
	// Exclude keeps packages (names or globs) out of the upgrade
	// (--exclude=, Amazon Linux's repo_upgrade_exclude). dnf and yum only.
	Exclude []string
	// ReleaseVer is given to every dnf or yum command as --releasever
	// (Amazon Linux 2023's versioned repositories). dnf and yum only.
	ReleaseVer string
}

// dnfOnly names the request's fields that apt has no equivalent for.
func (r Request) dnfOnly() []string {
	var keys []string
	if r.UpgradeOnly != "" {
		keys = append(keys, "upgrade --"+r.UpgradeOnly)
	}
	if len(r.Exclude) > 0 {
		keys = append(keys, "--exclude")
	}
	if r.ReleaseVer != "" {
		keys = append(keys, "--releasever")
	}
	return keys
}

// Manager runs the package manager of the image under a root. The zero
// value is the agent's.
type Manager struct {
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

// Apply refreshes the index, upgrades and installs as req asks, with the
// image's package manager (Open, then Tool.Apply).
func (m Manager) Apply(ctx context.Context, env *modules.Env, req Request) error {
	if !req.Update && !req.Upgrade && len(req.Packages) == 0 {
		return nil
	}
	t, err := m.Open(env)
	if err != nil {
		return err
	}
	return t.Apply(ctx, env, req)
}

// Open picks the package manager of the image under env's root and checks
// that it may run there.
func (m Manager) Open(env *modules.Env) (Tool, error) {
	d, err := distro.Detect(env.Root)
	if err != nil {
		return Tool{}, err
	}
	t, err := m.toolFor(env.Root, d)
	if err != nil {
		return Tool{}, err
	}
	if !env.Root.IsHost() && !env.Runner.Chroot && !t.rootOptions {
		return Tool{}, fmt.Errorf("%w (root is %s)", ErrNeedsChroot, env.Root.Prefix())
	}
	t.retry = m.LockRetry
	return t, nil
}

// Apply refreshes the index, upgrades and installs as req asks; upgrading
// or installing implies refreshing. As cloud-init: each step is tried even
// when an earlier one failed (an index refresh that fails for one
// repository may still let the install succeed), and every failure is
// reported, named by the cloud-config key it serves (package_update,
// package_upgrade, packages). A canceled ctx is ctx's error alone.
func (t Tool) Apply(ctx context.Context, env *modules.Env, req Request) error {
	if !req.Update && !req.Upgrade && len(req.Packages) == 0 {
		return nil
	}
	if t.apt {
		if k := req.dnfOnly(); len(k) > 0 {
			return fmt.Errorf("%s: only dnf and yum have them, this image uses apt-get", strings.Join(k, ", "))
		}
	}
	switch req.UpgradeOnly {
	case "", "security", "bugfix":
	default:
		return fmt.Errorf("unknown upgrade kind %q (security, bugfix or every package)", req.UpgradeOnly)
	}
	for _, x := range req.Exclude {
		if err := CheckWord("excluded package", x); err != nil {
			return err
		}
	}
	if req.ReleaseVer != "" {
		if err := CheckWord("release version", req.ReleaseVer); err != nil {
			return err
		}
		// Every command of this request, so makecache, upgrade and install
		// read the same versioned repositories.
		t.base = append(append([]string(nil), t.base...), "--releasever="+req.ReleaseVer)
	}
	for _, p := range req.Packages {
		if err := CheckWord("package name", p.Name); err != nil {
			return err
		}
		if p.Version != "" {
			if err := CheckWord("version", p.Version); err != nil {
				return err
			}
		}
	}
	var errs []error
	step := func(key string, argv []string) {
		what := t.describe(argv)
		_, err := t.retry.Run(ctx, env, Cmd{Name: key + ": " + what, What: what, Argv: argv, Env: t.env})
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", key, err))
		}
	}
	step("package_update", t.update())
	if req.Upgrade {
		step("package_upgrade", t.upgrade(req.UpgradeOnly, req.Exclude))
	}
	if len(req.Packages) > 0 {
		step("packages", t.install(req.Packages))
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return errors.Join(errs...)
}

// CheckWord refuses what would not be one argument naming a package: an
// empty word, whitespace, or a leading "-" (an option to the package
// manager, e.g. --allow-unauthenticated).
func CheckWord(what, s string) error {
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

// Tool is the package manager of one image: its command lines and the
// lock-retry policy they run with.
type Tool struct {
	apt  bool
	base []string // command and the options every call gets
	env  map[string]string
	// rootOptions: the caller's options point the tool at the root.
	rootOptions bool
	retry       LockRetry
}

// Apt reports whether the tool is apt-get (not dnf or yum).
func (t Tool) Apt() bool { return t.apt }

// debianEnv is the environment of Debian's package tools: never ask.
func debianEnv() map[string]string {
	return map[string]string{"DEBIAN_FRONTEND": "noninteractive"}
}

// toolFor picks the package manager for the distribution under root.
func (m Manager) toolFor(root *sys.Root, d distro.Distro) (Tool, error) {
	switch {
	case d.IsDebianLike():
		base := []string{"apt-get", "-y",
			// Keep the image's changed config files and take new defaults
			// otherwise: never ask.
			"-o", "Dpkg::Options::=--force-confdef", "-o", "Dpkg::Options::=--force-confold"}
		base = append(base, m.AptOptions...)
		return Tool{apt: true, base: base, env: debianEnv(), rootOptions: len(m.AptOptions) > 0}, nil
	case d.IsRedHatLike():
		// dnf on Amazon Linux 2023 and RHEL 8+; yum where dnf is absent
		// (Amazon Linux 2, RHEL 7).
		// Neither found: dnf, so the error says what is missing.
		name := "dnf"
		if !has(root, "/usr/bin/dnf", "/bin/dnf") && has(root, "/usr/bin/yum", "/bin/yum") {
			name = "yum"
		}
		return Tool{base: append([]string{name, "-y"}, m.DnfOptions...), rootOptions: len(m.DnfOptions) > 0}, nil
	}
	return Tool{}, unknownDistro(d)
}

func unknownDistro(d distro.Distro) error {
	return fmt.Errorf("cannot tell the package manager: the image's os-release says %q, neither Debian- nor Red Hat-like", d.String())
}

// SecurityUpgrade is the security-only upgrade for the distribution under
// root: dnf/yum upgrade --security, or unattended-upgrade on Debian-likes
// (which applies the security origins it is configured with), and the
// environment to run it with.
func SecurityUpgrade(root *sys.Root, d distro.Distro) ([]string, map[string]string, error) {
	switch {
	case d.IsRedHatLike():
		name := "dnf"
		if !has(root, "/usr/bin/dnf") && has(root, "/usr/bin/yum") {
			name = "yum" // Amazon Linux 2: yum knows --security
		}
		return []string{name, "-y", "upgrade", "--security"}, nil, nil
	case d.IsDebianLike():
		if !has(root, "/usr/bin/unattended-upgrade") {
			return nil, nil, errors.New("security_only on a Debian-like image needs unattended-upgrades (install it first, e.g. with a package item)")
		}
		return []string{"unattended-upgrade", "-v"}, debianEnv(), nil
	}
	return nil, nil, unknownDistro(d)
}

// has reports whether any of paths exists under root.
func has(root *sys.Root, paths ...string) bool {
	for _, p := range paths {
		if ok, err := root.Exists(p); ok && err == nil {
			return true
		}
	}
	return false
}

func (t Tool) cmd(args ...string) []string {
	return append(append([]string(nil), t.base...), args...)
}

func (t Tool) update() []string {
	if t.apt {
		return t.cmd("update")
	}
	return t.cmd("makecache")
}

// upgrade is dist-upgrade on apt, as cloud-init's default: an upgrade that
// may add or remove packages (a new kernel ABI) rather than hold them back.
func (t Tool) upgrade(only string, exclude []string) []string {
	if t.apt {
		return t.cmd("dist-upgrade")
	}
	args := []string{"upgrade"}
	if only != "" {
		args = append(args, "--"+only)
	}
	for _, x := range exclude {
		args = append(args, "--exclude="+x)
	}
	return t.cmd(args...)
}

func (t Tool) install(pkgs []Package) []string {
	args := []string{"install"}
	for _, p := range pkgs {
		args = append(args, t.spec(p))
	}
	return t.cmd(args...)
}

// spec pins a version the way each tool spells it: apt name=version, dnf
// and yum name-version.
func (t Tool) spec(p Package) string {
	switch {
	case p.Version == "":
		return p.Name
	case t.apt:
		return p.Name + "=" + p.Version
	default:
		return p.Name + "-" + p.Version
	}
}

// describe names a command for messages: the tool, its subcommand and
// arguments, without the options every call gets ("apt-get install curl
// nginx=1.18").
func (t Tool) describe(argv []string) string {
	n := len(t.base)
	if strings.HasPrefix(t.base[n-1], "--releasever=") {
		n-- // worth naming: it chooses the repositories
	}
	return t.base[0] + " " + strings.Join(argv[n:], " ")
}
