// Package modules holds what boot work is organised by: the stages a boot
// runs in, and (as cloud-config modules arrive) the Module contract and its
// registry.
package modules

import "fmt"

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

// ParseStages accepts one stage name, or "all" (or "") for every stage.
func ParseStages(s string) ([]Stage, error) {
	if s == "all" || s == "" {
		return Stages(), nil
	}
	for _, st := range Stages() {
		if string(st) == s {
			return []Stage{st}, nil
		}
	}
	return nil, fmt.Errorf("stage %q: want local, network, config, final or all", s)
}
