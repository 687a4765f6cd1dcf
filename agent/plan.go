package agent

import (
	"context"
	"slices"
	"strings"

	"github.com/ec2init/ec2init/agent/config"
	"github.com/ec2init/ec2init/agent/state"
	"github.com/ec2init/ec2init/agent/userdata"
	"github.com/ec2init/ec2init/modules"
)

// The plan is the registry's steps, in run order: each module is one item
// of work (when the cloud-config gives it something to do), each Scripts
// slot as many items as it finds scripts at boot. The boot (stageWork),
// `userdata show` and `userdata run-script` all read it, so a script runs
// where the plan says, under the name the plan gives it.

// ItemKind says what a plan item runs.
type ItemKind string

// The kinds of plan items.
const (
	KindModule     ItemKind = "module"
	KindBoothooks  ItemKind = "boothooks"
	KindScriptDir  ItemKind = "script directory"
	KindUserScript ItemKind = "user-data scripts"
)

// PlanItem is one step of the plan: a module, or a slot where the user's
// scripts run (each script a gated item named "<Name>:<script>").
type PlanItem struct {
	Stage modules.Stage `json:"stage"`
	// Order is the item's place in its stage, from 1.
	Order     int             `json:"order"`
	Name      string          `json:"name"`
	Kind      ItemKind        `json:"kind"`
	Frequency state.Frequency `json:"frequency"`
	// User is set for the user's own code (scripts, runcmd, bootcmd): a
	// run a crash interrupted is not repeated.
	User bool `json:"user"`
	// Dir is a script directory's name under the script directories
	// (/etc/ec2init/scripts by default).
	Dir string `json:"dir,omitempty"`
}

// Plan lists the work reg plans, stage by stage in boot order, each
// stage's steps in run order.
func Plan(reg *modules.Registry) []PlanItem { return PlanFor(reg, nil) }

// PlanFor is the effective plan for cloud-config cfg (nil: the default
// plan): its module lists choose the modules and their frequencies.
func PlanFor(reg *modules.Registry, cfg *config.CloudConfig) []PlanItem {
	var out []PlanItem
	for _, st := range modules.Stages() {
		steps := effectiveSteps(reg, cfg, st)
		for i, ps := range steps {
			step := ps.m
			it := PlanItem{Stage: st, Order: i + 1, Name: step.Name(), Kind: KindModule,
				Frequency: ps.freq, User: userCommands[step.Name()]}
			if s, ok := step.(modules.Scripts); ok {
				it.User, it.Dir = true, s.Dir()
				switch s.Source() {
				case modules.FromBoothooks:
					it.Kind = KindBoothooks
				case modules.FromDirectory:
					it.Kind = KindScriptDir
				case modules.FromUserData:
					it.Kind = KindUserScript
				}
			}
			out = append(out, it)
		}
	}
	return out
}

// CloudInitScriptDirs holds cloud-init's script directories (per-boot,
// per-instance, per-once), run after ec2init's own of the same name.
const CloudInitScriptDirs = "/var/lib/cloud/scripts"

// userCommands are the modules that run the user's own commands: like
// script parts, they are not idempotent by ec2init's making, so they keep
// the never-run-twice rule after an interruption.
var userCommands = map[string]bool{"runcmd": true, "bootcmd": true}

// partKind is a kind of user-data part a slot runs, with its gate.
type partKind struct {
	kind userdata.Kind
	freq state.Frequency
}

// slotParts are the part kinds slot s runs, in the order it runs them.
func slotParts(s modules.Scripts) []partKind {
	switch s.Source() {
	case modules.FromBoothooks:
		return []partKind{{userdata.KindBoothook, s.Frequency()}}
	case modules.FromUserData:
		return []partKind{
			{userdata.KindScriptPerOnce, state.Once},
			{userdata.KindScriptPerBoot, state.PerBoot},
			{userdata.KindScriptPerInstance, state.PerInstance},
			{userdata.KindScript, s.Frequency()},
		}
	}
	return nil
}

// partSlot finds the slot of reg that runs parts of kind k, and the gate
// it gives them.
func partSlot(reg *modules.Registry, k userdata.Kind) (modules.Scripts, state.Frequency, bool) {
	for _, step := range reg.Steps() {
		s, ok := step.(modules.Scripts)
		if !ok {
			continue
		}
		for _, pk := range slotParts(s) {
			if pk.kind == k {
				return s, pk.freq, true
			}
		}
	}
	return modules.Scripts{}, "", false
}

// scriptsRegistry is the registry a command that only reads or runs the
// user's scripts plans with when its caller passes none: the script slots
// where cloud-init runs them.
func scriptsRegistry(reg *modules.Registry) *modules.Registry {
	if reg != nil {
		return reg
	}
	r, err := modules.NewRegistry()
	if err != nil {
		// An empty list cannot clash.
		panic(err)
	}
	return r
}

// plannedStep is a step of the effective plan with its gate.
type plannedStep struct {
	m    modules.Module
	freq state.Frequency
}

// effectiveSteps are the steps of stage st that cfg's module lists
// (cloud_init_modules, cloud_config_modules, cloud_final_modules) keep, as
// cloud-init reads them: a list that is set runs only the modules it
// names, at the frequency it gives; a list set nowhere keeps ec2init's
// default; ec2init's own work (boothooks, software) is in no list and
// always planned. A module runs in ec2init's stage and order wherever a
// list names it. Validation (Registry.ValidateDoc) warns about the lists'
// malformed items and names that are no ec2init module.
func effectiveSteps(reg *modules.Registry, cfg *config.CloudConfig, st modules.Stage) []plannedStep {
	lists := map[string]map[string]config.ModuleEntry{}
	if cfg != nil {
		for _, key := range config.ModuleListKeys {
			entries, _, ok := cfg.ModuleList(key)
			if !ok {
				continue
			}
			byName := map[string]config.ModuleEntry{}
			for _, e := range entries {
				byName[e.Name] = e
			}
			lists[key] = byName
		}
	}
	var out []plannedStep
	for _, step := range reg.ForStage(st) {
		ps := plannedStep{m: step, freq: step.Frequency()}
		home := modules.CloudInitList(step.Name())
		if _, set := lists[home]; home != "" && set {
			var e config.ModuleEntry
			found := false
			for _, key := range config.ModuleListKeys {
				if got, ok := lists[key][step.Name()]; ok && !found {
					e, found = got, true
				}
			}
			if !found {
				continue // omitted from its list: not run, as in cloud-init
			}
			if e.Frequency != "" {
				ps.freq = e.Frequency
			}
		}
		out = append(out, ps)
	}
	return out
}

// stageWork expands the plan of stage st into gated work: the modules
// that have something to do, and each script a slot finds.
func (b *booter) stageWork(st modules.Stage) []work {
	var out []work
	steps := effectiveSteps(b.registry, b.cloudConfig, st)
	for _, ps := range steps {
		if s, ok := ps.m.(modules.Scripts); ok {
			out = append(out, b.slotWork(s, ps.freq)...)
			continue
		}
		if b.registry.ShouldRun(ps.m, b.cloudConfig) {
			out = append(out, b.moduleWork(ps.m, ps.freq))
		}
	}
	return out
}

// slotWork is one item per script slot s finds, gated by freq (the
// slot's own or a module list's); parts whose content type names their
// frequency keep it.
func (b *booter) slotWork(s modules.Scripts, freq state.Frequency) []work {
	if s.Source() == modules.FromDirectory {
		// ec2init's directory, then cloud-init's of the same name
		// (/var/lib/cloud/scripts/per-boot, ...), whose scripts an image
		// made for cloud-init keeps: named apart (":" is never in a
		// file-safe name), so each has its own semaphore.
		return append(b.dirWork(b.opts.ScriptDirs, s.Name(), s.Dir(), freq),
			b.dirWork(CloudInitScriptDirs, s.Name()+":cloud-init", s.Dir(), freq)...)
	}
	var out []work
	for _, pk := range slotParts(s) {
		f := pk.freq
		if pk.kind == userdata.KindScript || pk.kind == userdata.KindBoothook {
			f = freq
		}
		parts := b.parts(pk.kind)
		if s.Source() == modules.FromUserData {
			// cloud-init writes each script part to a file of its name
			// (the MIME filename, else part-NNN) and run-parts runs the
			// directory in lexical order, not in MIME order.
			slices.SortStableFunc(parts, func(a, b userdata.Part) int { return strings.Compare(a.Name, b.Name) })
		}
		for _, p := range parts {
			out = append(out, b.partWork(s.Name(), p, f))
		}
	}
	return out
}

// moduleWork runs module m, gated by freq.
func (b *booter) moduleWork(m modules.Module, freq state.Frequency) work {
	w := work{name: m.Name(), freq: freq, user: userCommands[m.Name()], run: func(ctx context.Context) (*int, error) {
		env, closeEnv, err := b.moduleEnv()
		if err != nil {
			return nil, err
		}
		defer closeEnv()
		return nil, runModule(ctx, m, env, b.cloudConfig)
	}}
	if s, ok := m.(modules.Starter); ok {
		w.start = func(ctx context.Context) func() {
			env, closeEnv, err := b.moduleEnv()
			if err != nil {
				return nil
			}
			wait := s.Start(ctx, env, b.cloudConfig)
			if wait == nil {
				closeEnv()
				return nil
			}
			return func() {
				wait()
				closeEnv()
			}
		}
	}
	return w
}
