// Package installhotplug accepts cloud-init's install_hotplug module and
// its updates.network.when key. cloud-init installs a udev rule that runs
// its hotplug hook when a NIC is added; ec2init installs none: its daemon
// already watches the instance's network interfaces in IMDS and runs the
// network-interfaces-changed hooks (README, "After boot: instance
// events"), so the module only says so.
package installhotplug

import (
	"context"
	"slices"

	"go.uber.org/zap"

	"github.com/ec2init/ec2init/agent/config"
	"github.com/ec2init/ec2init/agent/state"
	"github.com/ec2init/ec2init/modules"
)

// HooksDir is where the daemon's NIC-change hooks live.
const HooksDir = "/etc/ec2init/hooks.d/network-interfaces-changed"

// InstallHotplug reads updates once per instance.
type InstallHotplug struct{}

func (InstallHotplug) Name() string                 { return "install_hotplug" }
func (InstallHotplug) Stage() modules.Stage         { return modules.StageFinal }
func (InstallHotplug) Frequency() modules.Frequency { return state.PerInstance }
func (InstallHotplug) Schema() modules.Schema {
	return modules.Schema{
		Doc: "Accepted for cloud-init's updates.network.when: hotplug; no udev rule is installed, ec2init's daemon already watches NIC changes.",
		Keys: []config.Field{{Name: "updates", Type: config.Object(
			config.Field{Name: "network", Type: config.Object(
				config.Field{Name: "when", Type: config.ListOf(config.Enum("boot-new-instance", "boot-legacy", "boot", "hotplug")), Required: true,
					Doc: "The events network configuration is applied on; hotplug: ec2init's daemon runs the network-interfaces-changed hooks."},
			), Doc: "Network update events."},
		), Doc: "When to update the instance's configuration (cloud-init's event policy)."}},
	}
}

type settings struct {
	Network struct {
		When []string `yaml:"when"`
	} `yaml:"network"`
}

func (InstallHotplug) Run(ctx context.Context, env *modules.Env, cfg *config.CloudConfig) error {
	var s settings
	if ok, err := cfg.Decode("updates", &s); err != nil || !ok {
		return err
	}
	if !slices.Contains(s.Network.When, "hotplug") {
		env.Logger().Debug("install_hotplug: hotplug not asked for")
		return nil
	}
	env.Logger().Info("install_hotplug: no udev rule installed: ec2init's daemon already watches the network interfaces and runs the network-interfaces-changed hooks",
		zap.String("hooks", HooksDir))
	return nil
}
