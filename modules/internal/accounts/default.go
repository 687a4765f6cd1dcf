package accounts

import (
	"strings"

	"github.com/ec2init/ec2init/agent/config"
	"github.com/ec2init/ec2init/agent/sys"
	"github.com/ec2init/ec2init/modules/internal/distro"
)

// DefaultUserSpec is the distribution's default user, as cloud-init's
// system_info.default_user describes it in each distribution's cloud.cfg.
type DefaultUserSpec struct {
	Name  string
	Gecos string
	// Groups are added when they exist in the image; missing ones are
	// skipped, not created (the list names groups of several releases).
	Groups     []string
	Sudo       []string
	Shell      string
	LockPasswd bool
	// Distro is the os-release ID the choice was made from ("" if none).
	Distro string
}

// DefaultUser returns the default user for the image under root, from its
// os-release: "admin" on Debian (as Debian's AMIs name it), "ubuntu" on
// Ubuntu, "ec2-user" otherwise (Amazon Linux, RHEL-likes), with the fields
// set in ec2init's own config (default_user in /etc/ec2init/config.yaml)
// taking precedence. The users and ssh modules both resolve it here so they
// always agree.
func DefaultUser(root *sys.Root, override config.DefaultUser) DefaultUserSpec {
	spec := distroDefaultUser(root)
	if override.Name != "" {
		spec.Name = override.Name
	}
	if override.Gecos != "" {
		spec.Gecos = override.Gecos
	}
	if override.Groups != nil {
		spec.Groups = override.Groups
	}
	if override.Sudo != nil {
		spec.Sudo = override.Sudo
	}
	if override.Shell != "" {
		spec.Shell = override.Shell
	}
	if override.LockPasswd != nil {
		spec.LockPasswd = *override.LockPasswd
	}
	return spec
}

func distroDefaultUser(root *sys.Root) DefaultUserSpec {
	// cloud-init's cloud.cfg for Amazon Linux (and every distribution
	// without a list of its own): wheel, adm, systemd-journal.
	spec := DefaultUserSpec{
		Name:       "ec2-user",
		Gecos:      "EC2 Default User",
		Groups:     []string{"wheel", "adm", "systemd-journal"},
		Sudo:       []string{"ALL=(ALL) NOPASSWD:ALL"},
		Shell:      "/bin/bash",
		LockPasswd: true,
	}
	// An unreadable os-release is no distribution: the Amazon Linux
	// defaults.
	d, _ := distro.Detect(root)
	id, like := d.ID, d.IDLike
	spec.Distro = id
	switch {
	case id == "ubuntu":
		spec.Name, spec.Gecos = "ubuntu", "Ubuntu"
		// cloud-init's cloud.cfg for Ubuntu (the longer list of older
		// releases named groups Ubuntu has dropped).
		spec.Groups = []string{"adm", "cdrom", "dip", "lxd", "sudo"}
	case id == "debian" || (id != "amzn" && contains(like, "debian")):
		spec.Name, spec.Gecos = "admin", "Debian"
		spec.Groups = []string{"adm", "audio", "cdrom", "dialout", "dip", "floppy", "netdev", "plugdev", "sudo", "video"}
	}
	return spec
}

// SplitNames splits cloud-init's comma-separated name lists ("a, b").
func SplitNames(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
