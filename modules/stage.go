// Package modules holds what boot work is organised by: the stages a boot
// runs in, and (as cloud-config modules arrive) the Module contract and its
// registry.
package modules

import (
	"fmt"
	"slices"
	"strings"
)

// Stage is one step of a boot, run by its own systemd unit.
type Stage string

// The stages, in boot order.
const (
	// StageLocal runs before the network: boothooks, cached facts.
	StageLocal Stage = "local"
	// StageNetwork runs once the network is up, before logins: users, keys,
	// hostname, files.
	StageNetwork Stage = "network"
	// StageConfig runs the remaining configuration modules.
	StageConfig Stage = "config"
	// StageFinal runs after multi-user.target: runcmd, user scripts,
	// software, the final message.
	StageFinal Stage = "final"
)

// Stages returns every stage in boot order.
func Stages() []Stage { return []Stage{StageLocal, StageNetwork, StageConfig, StageFinal} }

// ParseStages accepts stage names separated by commas, in boot order, or
// "all" (or "") for every stage.
func ParseStages(s string) ([]Stage, error) {
	if s == "all" || s == "" {
		return Stages(), nil
	}
	var out []Stage
	last := -1
	for _, name := range strings.Split(s, ",") {
		i := slices.Index(Stages(), Stage(strings.TrimSpace(name)))
		if i < 0 {
			return nil, fmt.Errorf("stage %q: want local, network, config, final or all", name)
		}
		if i <= last {
			return nil, fmt.Errorf("stages %q: give them once each, in boot order", s)
		}
		last = i
		out = append(out, Stages()[i])
	}
	return out, nil
}

// cloudInitLists is the module list of cloud-init's default cloud.cfg each
// module of ec2init's is in: a user's cloud_init_modules,
// cloud_config_modules or cloud_final_modules chooses among them.
// ec2init's own modules (software) and the boothooks are in none and run
// whatever the lists say.
var cloudInitLists = map[string]string{
	"bootcmd": "cloud_init_modules", "write_files": "cloud_init_modules", "growpart": "cloud_init_modules",
	"resizefs": "cloud_init_modules", "disk_setup": "cloud_init_modules", "mounts": "cloud_init_modules",
	"set_hostname": "cloud_init_modules", "update_hostname": "cloud_init_modules", "update_etc_hosts": "cloud_init_modules",
	"ca_certs": "cloud_init_modules", "users_groups": "cloud_init_modules", "ssh": "cloud_init_modules",
	"seed_random": "cloud_init_modules", "rsyslog": "cloud_init_modules", "resolv_conf": "cloud_init_modules",
	"disable_ec2_metadata": "cloud_config_modules", "phone_home": "cloud_final_modules",
	"set_passwords": "cloud_config_modules", "locale": "cloud_config_modules", "apt_configure": "cloud_config_modules",
	"yum_add_repo": "cloud_config_modules", "ntp": "cloud_config_modules", "timezone": "cloud_config_modules",
	"runcmd": "cloud_config_modules", "ssh_import_id": "cloud_config_modules",
	"wireguard": "cloud_config_modules", "snap": "cloud_config_modules", "keyboard": "cloud_config_modules",
	"apt_pipelining": "cloud_config_modules", "rh_subscription": "cloud_config_modules", "spacewalk": "cloud_config_modules",
	"package_update_upgrade_install": "cloud_final_modules", "write_files_deferred": "cloud_final_modules",
	"puppet": "cloud_final_modules", "chef": "cloud_final_modules", "ansible": "cloud_final_modules", "salt_minion": "cloud_final_modules",
	"scripts_per_once": "cloud_final_modules", "scripts_per_boot": "cloud_final_modules",
	"scripts_per_instance": "cloud_final_modules", "scripts_user": "cloud_final_modules",
	"ssh_authkey_fingerprints": "cloud_final_modules", "keys_to_console": "cloud_final_modules", "install_hotplug": "cloud_final_modules",
	"final_message": "cloud_final_modules", "power_state_change": "cloud_final_modules",
}

// CloudInitList is the cloud-init module list module name is in by
// default ("" for none: ec2init's own work, run whatever the lists say).
func CloudInitList(name string) string { return cloudInitLists[name] }
