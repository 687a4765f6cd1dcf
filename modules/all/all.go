// Package all assembles every module ec2init ships, in run order: the one
// place that lists them, for the agent, `ec2init schema`, `ec2init
// modules` and the generated docs.
package all

import (
	"github.com/ec2init/ec2init/modules"
	"github.com/ec2init/ec2init/modules/ansible"
	"github.com/ec2init/ec2init/modules/aptpipelining"
	"github.com/ec2init/ec2init/modules/cacerts"
	"github.com/ec2init/ec2init/modules/chef"
	"github.com/ec2init/ec2init/modules/disableimds"
	"github.com/ec2init/ec2init/modules/disksetup"
	"github.com/ec2init/ec2init/modules/finalmessage"
	"github.com/ec2init/ec2init/modules/growpart"
	"github.com/ec2init/ec2init/modules/hostname"
	"github.com/ec2init/ec2init/modules/installhotplug"
	"github.com/ec2init/ec2init/modules/keyboard"
	"github.com/ec2init/ec2init/modules/locale"
	"github.com/ec2init/ec2init/modules/mounts"
	"github.com/ec2init/ec2init/modules/ntp"
	"github.com/ec2init/ec2init/modules/packages"
	"github.com/ec2init/ec2init/modules/phonehome"
	"github.com/ec2init/ec2init/modules/powerstate"
	"github.com/ec2init/ec2init/modules/puppet"
	"github.com/ec2init/ec2init/modules/resolvconf"
	"github.com/ec2init/ec2init/modules/rhsubscription"
	"github.com/ec2init/ec2init/modules/rsyslog"
	"github.com/ec2init/ec2init/modules/runcmd"
	"github.com/ec2init/ec2init/modules/saltminion"
	"github.com/ec2init/ec2init/modules/seedrandom"
	"github.com/ec2init/ec2init/modules/setpasswords"
	"github.com/ec2init/ec2init/modules/snap"
	"github.com/ec2init/ec2init/modules/software"
	"github.com/ec2init/ec2init/modules/spacewalk"
	"github.com/ec2init/ec2init/modules/ssh"
	"github.com/ec2init/ec2init/modules/timezone"
	"github.com/ec2init/ec2init/modules/users"
	"github.com/ec2init/ec2init/modules/wireguard"
	"github.com/ec2init/ec2init/modules/writefiles"
)

// Registry returns a registry of every module.
func Registry() *modules.Registry {
	r, err := modules.NewRegistry(
		// local stage: the user data's boothooks, before the network
		modules.Boothooks(),
		// network stage, in cloud-init's init-stage order: the disks
		// first (grow the root, format and mount new volumes, so homes
		// and files land on them), then the host's name (sshd's host keys
		// and /etc/hosts use it), users before files (an owner may be
		// new), ssh last
		seedrandom.SeedRandom{},
		runcmd.Bootcmd{},
		growpart.Growpart{},
		growpart.Resizefs{},
		disksetup.DiskSetup{},
		mounts.Mounts{},
		hostname.SetHostname{},
		hostname.UpdateHostname{},
		hostname.UpdateEtcHosts{},
		resolvconf.ResolvConf{},
		cacerts.CACerts{},
		rsyslog.Rsyslog{},
		users.UsersGroups{},
		writefiles.WriteFiles{},
		ssh.SSH{},
		// config stage: repositories before the packages that come from
		// them; packages before locale and ntp, which may need what they
		// install (locales, chrony); cloud-init installs packages in its
		// final stage, ec2init earlier so the user's scripts find them
		rhsubscription.RHSubscription{}, // registered before yum_add_repo, as cloud-init
		spacewalk.Spacewalk{},
		setpasswords.SetPasswords{},
		packages.YumAddRepo{},
		aptpipelining.AptPipelining{}, // before apt_configure, as cloud-init
		packages.AptConfigure{},
		packages.PackageUpdateUpgradeInstall{},
		// cloud-init's wireguard, snap, ssh_import_id, keyboard, locale, in
		// its order, after the packages they may need (wireguard-tools,
		// snapd, ssh-import-id, console-setup)
		wireguard.Wireguard{},
		snap.Snap{},
		ssh.SSHImportID{}, // after packages, which may install ssh-import-id
		keyboard.Keyboard{},
		locale.Locale{},
		ntp.NTP{},
		timezone.Timezone{},
		// final stage: software, then deferred files (they may land in
		// installed trees, or be owned by users packages made), both
		// before the user's scripts (see modules.BeforeScripts); the
		// script directories, then the user data's scripts, as
		// cloud-init's scripts_per_* and scripts_user; then runcmd (after
		// the scripts, as cloud-init's runcmd script runs after the parts
		// scripts_user sorts before it), the message, and the power
		// change last of all
		software.Software{},
		writefiles.WriteFilesDeferred{},
		puppet.Puppet{},
		chef.Chef{},
		ansible.Ansible{},
		saltminion.SaltMinion{},
		modules.ScriptsPerOnce(),
		modules.ScriptsPerBoot(),
		modules.ScriptsPerInstance(),
		modules.ScriptsUser(),
		runcmd.Runcmd{},
		ssh.AuthkeyFingerprints{},
		ssh.KeysToConsole{},
		installhotplug.InstallHotplug{},
		phonehome.PhoneHome{},
		disableimds.DisableEC2Metadata{}, // after the boot: ec2init's stages ask IMDS
		finalmessage.FinalMessage{},
		powerstate.PowerState{},
	)
	if err != nil {
		// The list above is fixed at build time and covered by tests.
		panic(err)
	}
	return r
}
