package software

import (
	"context"
	"fmt"

	"github.com/ec2init/ec2init/agent/sys"
	"github.com/ec2init/ec2init/modules"
	"github.com/ec2init/ec2init/modules/internal/distro"
	"github.com/ec2init/ec2init/modules/internal/pkgmgr"
)

// packageManager is the package manager with the module's lock-retry
// base (LockBase) when one is set.
func (m Software) packageManager() pkgmgr.Manager {
	pm := m.Packages
	if m.LockBase > 0 && pm.LockRetry.Base == 0 {
		pm.LockRetry.Base = m.LockBase
	}
	return pm
}

// installByName installs a package from the distribution's repositories
// as package_update_upgrade_install does (index refresh, then install):
// the same manager choice, lock handling and root rules.
func (m Software) installByName(ctx context.Context, env *modules.Env, it *Item) error {
	p := pkgmgr.Package{Name: it.Install.Name, Version: it.Install.Version}
	return m.packageManager().Apply(ctx, env, pkgmgr.Request{Packages: []pkgmgr.Package{p}})
}

// upgrade upgrades the installed packages: every one as package_upgrade
// does, or security updates only (dnf/yum upgrade --security;
// unattended-upgrade on Debian-likes, which applies the security origins
// it is configured with).
func (m Software) upgrade(ctx context.Context, env *modules.Env, it *Item) error {
	if !it.Install.SecurityOnly {
		return m.packageManager().Apply(ctx, env, pkgmgr.Request{Upgrade: true})
	}
	d, err := distro.Detect(env.Root)
	if err != nil {
		return err
	}
	argv, extra, err := pkgmgr.SecurityUpgrade(env.Root, d)
	if err != nil {
		return err
	}
	if modeOf(env) == pmOption {
		return fmt.Errorf("%s: %w (root is %s)", describe(argv), pkgmgr.ErrNeedsChroot, env.Root.Prefix())
	}
	_, err = m.runPackageTool(ctx, env, it.Name+": security upgrade", argv, extra)
	return err
}

// runPackageTool runs a package tool (dpkg, rpm, unattended-upgrade) with
// the package manager's lock-retry policy.
func (m Software) runPackageTool(ctx context.Context, env *modules.Env, name string, argv []string, extra map[string]string) (sys.Result, error) {
	return m.packageManager().LockRetry.Run(ctx, env, pkgmgr.Cmd{Name: name, What: describe(argv), Argv: argv, Env: extra})
}
