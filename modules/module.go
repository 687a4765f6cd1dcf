package modules

import (
	"context"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/ec2init/ec2init/agent/config"
	"github.com/ec2init/ec2init/agent/state"
)

// RebootRequestFile is a module's request for a reboot once the boot is
// done (packages that need one). Modules only write it; power_state
// carries it out after the final stage, so no module cuts a boot short.
// It lives in /run: a reboot clears it.
const RebootRequestFile = "/run/ec2init/reboot-required"

// Frequency gates a module: per-instance, per-boot, once or always.
type Frequency = state.Frequency

// Module is one cloud-config module: it reads its keys from the merged
// cloud-config and changes the host only through Env's root-prefixed
// helpers.
type Module interface {
	// Name is cloud-init's module name (cc_<name>), e.g. "write_files".
	Name() string
	Stage() Stage
	// Frequency is the default gate.
	Frequency() Frequency
	// Schema lists the top-level cloud-config keys the module reads.
	Schema() Schema
	// Run applies cfg. It is only called when cfg sets one of the
	// module's keys, unless the module is Always-wanted (see Wanted).
	Run(ctx context.Context, env *Env, cfg *config.CloudConfig) error
}

// Wanted is implemented by modules that have work to do even without
// their keys (the ssh module installs IMDS keys on every new instance).
type Wanted interface {
	Wanted(cfg *config.CloudConfig) bool
}

// Starter is implemented by modules with slow work of their own that can
// begin when their stage starts, before the modules ahead of them run:
// ssh's host-key generation (RSA takes hundreds of milliseconds) then
// overlaps the rest of the stage. Start must not change what anyone else
// sees (it prepares in private places that Run takes over or removes);
// the runner calls it only when the module is due to run, and calls the
// returned wait (nil: nothing started) before Run, or at the stage's end
// if Run never comes.
type Starter interface {
	Start(ctx context.Context, env *Env, cfg *config.CloudConfig) (wait func())
}

// BeforeScripts is implemented by final-stage modules that must run before
// the user's scripts (files a script may need), as cloud-init orders them.
type BeforeScripts interface {
	BeforeScripts() bool
}

// Checker is implemented by modules whose keys have rules a schema Type
// cannot say (a key required when another is set). Check returns findings
// on the value v of key, after the type checks, located in source.
type Checker interface {
	Check(source, key string, v *yaml.Node) []config.Diagnostic
}

// Schema documents and validates a module's keys.
type Schema struct {
	// Doc is one line on what the module does.
	Doc  string
	Keys []config.Field
}

// ItemErrors are the failed items of a module's run (files, artifacts):
// every item is tried, and the error lists them all, each still reachable
// with errors.Is/As.
type ItemErrors []error

func (e ItemErrors) Error() string {
	msgs := make([]string, len(e))
	for i, err := range e {
		msgs[i] = err.Error()
	}
	return strings.Join(msgs, "; ")
}

func (e ItemErrors) Unwrap() []error { return e }

// JoinItemErrors is nil without failures, else ItemErrors.
func JoinItemErrors(failures []error) error {
	if len(failures) == 0 {
		return nil
	}
	return ItemErrors(failures)
}
