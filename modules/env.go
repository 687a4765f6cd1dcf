package modules

import (
	"io"

	"go.uber.org/zap"

	"github.com/ec2init/ec2init/agent/config"
	"github.com/ec2init/ec2init/agent/fetch"
	"github.com/ec2init/ec2init/agent/imds"
	"github.com/ec2init/ec2init/agent/state"
	"github.com/ec2init/ec2init/agent/sys"
)

// Env is what a module may use.
type Env struct {
	Instance *imds.Instance
	// IMDS is the agent's own metadata client (its endpoint and policy),
	// for modules that ask IMDS more (the instance role's credentials).
	// nil outside a boot.
	IMDS *imds.Client
	// Fetcher is the agent's one fetcher (its transport, retries,
	// redaction and size caps), for modules that download; an artifact
	// cache is built on its transport. nil outside a boot: build one.
	Fetcher *fetch.Fetcher
	// State gives a module its own store and item report in the
	// instance's state directory: env.State.For(name). nil outside a
	// boot (bake has no instance of its own): keep nothing.
	State *state.ModuleStates
	// NewInstance is true on the first boot of this instance id;
	// PreviousInstanceID is the instance this disk last ran as ("" on a
	// first boot ever).
	NewInstance        bool
	PreviousInstanceID string
	Root               *sys.Root
	Runner             *sys.Runner
	Log                *zap.Logger
	// Console is where messages meant for the operator go (host key
	// fingerprints, the final message): the serial console or journal.
	Console io.Writer
	// System is ec2init's own configuration (default user, ...).
	System config.System
	// Facts are the EC2_* variables scripts and commands get.
	Facts map[string]string
	// Version is ec2init's version, for messages.
	Version string
}

// Logger is env.Log, or a logger that drops everything when there is none.
func (e *Env) Logger() *zap.Logger {
	if e.Log == nil {
		return zap.NewNop()
	}
	return e.Log
}

// ConsoleWriter is env.Console, or io.Discard when there is none.
func (e *Env) ConsoleWriter() io.Writer {
	if e.Console == nil {
		return io.Discard
	}
	return e.Console
}
