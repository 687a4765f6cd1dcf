package modules

import (
	"context"
	"errors"

	"github.com/ec2init/ec2init/agent/config"
	"github.com/ec2init/ec2init/agent/state"
)

// ScriptSource says which of the user's scripts a Scripts slot runs.
type ScriptSource int

const (
	// FromBoothooks runs the user data's boothook parts.
	FromBoothooks ScriptSource = iota + 1
	// FromDirectory runs the executables of one script directory
	// (/etc/ec2init/scripts/<Dir>).
	FromDirectory
	// FromUserData runs the user data's script parts.
	FromUserData
)

// Scripts is the place in the run order where some of the user's own
// scripts run, listed in a Registry among the modules as cloud-init lists
// scripts_per_once or scripts_user among its final modules. It is not run
// as a module: the agent expands it, at each boot, into one gated item per
// script, named "<slot name>:<script>" in the state records.
type Scripts struct {
	name   string
	stage  Stage
	freq   Frequency
	source ScriptSource
	dir    string
	doc    string
}

// The script slots ec2init has. Their names are the prefixes of the
// scripts' run records and must not change (semaphores on disk use them).
var (
	scriptsBoothook = Scripts{name: "boothook", stage: StageLocal, freq: state.Always, source: FromBoothooks,
		doc: "Runs the user data's boothook parts at every boot, before the network."}
	scriptsPerOnce = Scripts{name: "scripts_per_once", stage: StageFinal, freq: state.Once, source: FromDirectory, dir: "per-once",
		doc: "Runs the executables in /etc/ec2init/scripts/per-once once ever."}
	scriptsPerBoot = Scripts{name: "scripts_per_boot", stage: StageFinal, freq: state.PerBoot, source: FromDirectory, dir: "per-boot",
		doc: "Runs the executables in /etc/ec2init/scripts/per-boot at every boot."}
	scriptsPerInstance = Scripts{name: "scripts_per_instance", stage: StageFinal, freq: state.PerInstance, source: FromDirectory, dir: "per-instance",
		doc: "Runs the executables in /etc/ec2init/scripts/per-instance once per instance."}
	scriptsUser = Scripts{name: "scripts_user", stage: StageFinal, freq: state.PerInstance, source: FromUserData,
		doc: "Runs the user data's scripts (per-instance unless their content type says per-boot or per-once)."}
)

// Boothooks is the slot of the user data's boothook parts.
func Boothooks() Scripts { return scriptsBoothook }

// ScriptsPerOnce is the slot of the per-once script directory.
func ScriptsPerOnce() Scripts { return scriptsPerOnce }

// ScriptsPerBoot is the slot of the per-boot script directory.
func ScriptsPerBoot() Scripts { return scriptsPerBoot }

// ScriptsPerInstance is the slot of the per-instance script directory.
func ScriptsPerInstance() Scripts { return scriptsPerInstance }

// ScriptsUser is the slot of the user data's script parts.
func ScriptsUser() Scripts { return scriptsUser }

// ScriptSlots are every slot, in the order cloud-init runs them.
func ScriptSlots() []Scripts {
	return []Scripts{scriptsBoothook, scriptsPerOnce, scriptsPerBoot, scriptsPerInstance, scriptsUser}
}

// Name is the slot's name, the prefix of its scripts' run records.
func (s Scripts) Name() string { return s.name }

// Stage is where the slot runs.
func (s Scripts) Stage() Stage { return s.stage }

// Frequency is the slot's gate; user-data parts may set their own by
// content type.
func (s Scripts) Frequency() Frequency { return s.freq }

// Source says which scripts the slot runs.
func (s Scripts) Source() ScriptSource { return s.source }

// Dir is the script directory's name under the script directories
// (FromDirectory only).
func (s Scripts) Dir() string { return s.dir }

// Schema documents the slot; it reads no cloud-config key.
func (s Scripts) Schema() Schema { return Schema{Doc: s.doc} }

// ErrScriptsSlot is what a Scripts slot's Run returns: the agent expands
// a slot into its scripts and never runs it as a module.
var ErrScriptsSlot = errors.New("modules: a scripts slot is expanded by the agent, not run")

// Run is never called by the agent (see ErrScriptsSlot); it lets a slot
// be listed among the modules of a Registry.
func (s Scripts) Run(context.Context, *Env, *config.CloudConfig) error { return ErrScriptsSlot }
