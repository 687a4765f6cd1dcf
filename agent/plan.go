package agent

import (
	"context"

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
func Plan(reg *modules.Registry) []PlanItem {
	var out []PlanItem
	for _, st := range modules.Stages() {
		for i, step := range reg.ForStage(st) {
			it := PlanItem{Stage: st, Order: i + 1, Name: step.Name(), Kind: KindModule,
				Frequency: step.Frequency(), User: userCommands[step.Name()]}
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

// stageWork expands the plan of stage st into gated work: the modules
// that have something to do, and each script a slot finds.
func (b *booter) stageWork(st modules.Stage) []work {
	var out []work
	for _, step := range b.registry.ForStage(st) {
		if s, ok := step.(modules.Scripts); ok {
			out = append(out, b.slotWork(s)...)
			continue
		}
		if modules.ShouldRun(step, b.cloudConfig) {
			out = append(out, b.moduleWork(step))
		}
	}
	return out
}

// slotWork is one item per script slot s finds.
func (b *booter) slotWork(s modules.Scripts) []work {
	if s.Source() == modules.FromDirectory {
		return b.dirWork(s.Name(), s.Dir(), s.Frequency())
	}
	var out []work
	for _, pk := range slotParts(s) {
		for _, p := range b.parts(pk.kind) {
			out = append(out, b.partWork(s.Name(), p, pk.freq))
		}
	}
	return out
}

// moduleWork runs module m.
func (b *booter) moduleWork(m modules.Module) work {
	return work{name: m.Name(), freq: m.Frequency(), user: userCommands[m.Name()], run: func(ctx context.Context) (*int, error) {
		env, closeEnv, err := b.moduleEnv()
		if err != nil {
			return nil, err
		}
		defer closeEnv()
		return nil, runModule(ctx, m, env, b.cloudConfig)
	}}
}
