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
