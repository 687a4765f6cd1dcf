// Package packages implements cloud-init's package modules:
// package_update_upgrade_install (packages, package_update,
// package_upgrade, package_reboot_if_required) with apt-get on Debian-likes
// and dnf (or yum) on Amazon Linux and Red Hat-likes, yum_add_repo
// (yum_repos) and the repository part of apt_configure (apt).
package packages

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"go.uber.org/zap"
	"gopkg.in/yaml.v3"

	"github.com/ec2init/ec2init/agent/config"
	"github.com/ec2init/ec2init/agent/state"
	"github.com/ec2init/ec2init/modules"
	"github.com/ec2init/ec2init/modules/internal/pkgmgr"
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

// ErrNeedsChroot is returned for a root other than "/" without --chroot:
// the package manager would otherwise change the running host.
var ErrNeedsChroot = pkgmgr.ErrNeedsChroot

// LockRetry bounds the retries of a command that failed because another
// process held the package manager's lock. Zero fields take the defaults
// (8 attempts, backoff from 2s up to 60s with full jitter).
type LockRetry = pkgmgr.LockRetry

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

// packageItemType is an item of packages. This package's schema types and
// regexps are built on first use (sync.OnceValue), not at start: every
// ec2init process links the package, few validate or run it (issue #15).
var packageItemType = sync.OnceValue(func() *config.Type {
	return config.OneOf(
		config.String(),
		config.ListOf(config.String()), // [name] or [name, version]
		// {apt: [...], snap: [...]}: per package manager (cloud-init 23.4+).
		config.Object(
			config.Field{Name: "apt", Type: config.ListOf(config.OneOf(config.String(), config.ListOf(config.String()))), Doc: "Packages for apt-get."},
			config.Field{Name: "snap", Type: config.ListOf(config.OneOf(config.String(), config.ListOf(config.String()))), Doc: "Snaps for snap install; a version is the channel."},
		),
	)
})

func (PackageUpdateUpgradeInstall) Name() string                 { return "package_update_upgrade_install" }
func (PackageUpdateUpgradeInstall) Stage() modules.Stage         { return modules.StageConfig }
func (PackageUpdateUpgradeInstall) Frequency() modules.Frequency { return state.PerInstance }
func (PackageUpdateUpgradeInstall) Schema() modules.Schema {
	return modules.Schema{
		Doc: "Update the package index, upgrade and install packages (apt-get on Debian-likes, dnf or yum on Amazon Linux and Red Hat-likes).",
		Keys: append([]config.Field{
			{Name: "packages", Type: config.ListOf(packageItemType()),
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
		}, amazonKeys()...),
	}
}

// request is the module's decoded configuration.
type request struct {
	update, upgrade, reboot bool
	pkgs                    []pkgmgr.Package
	// aptPkgs are the apt: items of mappings, snaps the snap: items.
	aptPkgs, snaps []pkgmgr.Package
	amazon         amazonRequest
}

func (m PackageUpdateUpgradeInstall) Run(ctx context.Context, env *modules.Env, cfg *config.CloudConfig) error {
	log := env.Logger()
	req, err := parseRequest(cfg)
	if err != nil {
		return err
	}
	mgr := pkgmgr.Manager{AptOptions: m.AptOptions, DnfOptions: m.DnfOptions, LockRetry: m.LockRetry}
	tool, err := mgr.Open(env)
	if err != nil {
		return err
	}
	preq := pkgmgr.Request{Update: req.update, Upgrade: req.upgrade, Packages: req.pkgs}
	if len(req.aptPkgs) > 0 {
		if tool.Apt() {
			preq.Packages = append(preq.Packages, req.aptPkgs...)
		} else {
			// As cloud-init: a package manager the distribution lacks is skipped.
			log.Warn("packages: apt items on an image without apt-get; skipped", zap.Strings("packages", names(req.aptPkgs)))
			fmt.Fprintf(env.ConsoleWriter(), "ec2init: packages: apt items %v skipped: this image has no apt-get\n", names(req.aptPkgs))
		}
	}
	switch a := req.amazon; {
	case tool.Apt() && len(a.set) > 0:
		// Amazon Linux's keys: upstream cloud-init ignores them elsewhere.
		log.Warn("Amazon Linux's repo_* keys need dnf or yum; ignored on this image", zap.Strings("keys", a.set))
		fmt.Fprintf(env.ConsoleWriter(), "ec2init: packages: %v are Amazon Linux keys (dnf, yum); ignored on an apt image\n", a.set)
	case !tool.Apt():
		preq.Update = preq.Update || a.update
		if a.upgrade != "" {
			if !preq.Upgrade && a.upgrade != "all" {
				preq.UpgradeOnly = a.upgrade // package_upgrade: true upgrades everything
			}
			preq.Upgrade = true
			req.upgrade = true
		}
		preq.Exclude = a.exclude
		preq.ReleaseVer = a.releasever
	}
	var errs []error
	if err := tool.Apply(ctx, env, preq); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		errs = append(errs, err)
	}
	if err := installSnaps(ctx, env, m.LockRetry, req.snaps); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		errs = append(errs, err)
	}
	if req.reboot && (req.upgrade || len(preq.Packages) > 0 || len(req.snaps) > 0) {
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
	if req.amazon, err = parseAmazon(cfg); err != nil {
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
		p, mapping, err := parseItem(item)
		if mapping {
			var apt, snap []pkgmgr.Package
			apt, snap, err = parseMapping(item)
			req.aptPkgs = append(req.aptPkgs, apt...)
			req.snaps = append(req.snaps, snap...)
		}
		switch {
		case err != nil:
			bad = append(bad, fmt.Sprintf("packages[%d] (line %d): %v", i, item.Line, err))
		case mapping:
		default:
			req.pkgs = append(req.pkgs, p)
		}
	}
	if len(bad) > 0 {
		return req, fmt.Errorf("%s: %s", v.Source, strings.Join(bad, "; "))
	}
	return req, nil
}

// parseItem reads "name" or [name] or [name, version]; a mapping
// (cloud-init's per-manager lists) is reported for parseMapping.
func parseItem(n *yaml.Node) (p pkgmgr.Package, mapping bool, err error) {
	switch n.Kind {
	case yaml.ScalarNode:
		p.Name = n.Value
	case yaml.SequenceNode:
		if len(n.Content) < 1 || len(n.Content) > 2 {
			return p, false, errors.New("expected [name] or [name, version]")
		}
		for _, w := range n.Content {
			if w.Kind != yaml.ScalarNode {
				return p, false, errors.New("name and version must be plain values")
			}
		}
		p.Name = n.Content[0].Value
		if len(n.Content) == 2 {
			p.Version = n.Content[1].Value
			if err := pkgmgr.CheckWord("version", p.Version); err != nil {
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
	return p, false, pkgmgr.CheckWord("package name", p.Name)
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
