package modules

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"

	"go.uber.org/zap"
	"gopkg.in/yaml.v3"

	"github.com/ec2init/ec2init/agent/config"
	"github.com/ec2init/ec2init/agent/imds"
	"github.com/ec2init/ec2init/agent/state"
	"github.com/ec2init/ec2init/agent/sys"
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

// Env is what a module may use.
type Env struct {
	Instance *imds.Instance
	// IMDS is the agent's own metadata client (its endpoint and policy),
	// for modules that ask IMDS more (the instance role's credentials).
	// nil outside a boot.
	IMDS *imds.Client
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

// Registry holds the modules in the order they run within a stage.
type Registry struct {
	mods []Module
}

// NewRegistry returns a registry of ms; names must be unique.
func NewRegistry(ms ...Module) (*Registry, error) {
	r := &Registry{}
	seen := map[string]bool{}
	keys := map[string]string{}
	for _, m := range ms {
		if seen[m.Name()] {
			return nil, fmt.Errorf("modules: %q registered twice", m.Name())
		}
		seen[m.Name()] = true
		for _, k := range m.Schema().Keys {
			if other, ok := keys[k.Name]; ok && other != m.Name() {
				return nil, fmt.Errorf("modules: key %q claimed by %s and %s", k.Name, other, m.Name())
			}
			keys[k.Name] = m.Name()
		}
		r.mods = append(r.mods, m)
	}
	return r, nil
}

// All returns every module in run order.
func (r *Registry) All() []Module { return append([]Module(nil), r.mods...) }

// ForStage returns the modules of stage st in run order.
func (r *Registry) ForStage(st Stage) []Module {
	var out []Module
	for _, m := range r.mods {
		if m.Stage() == st {
			out = append(out, m)
		}
	}
	return out
}

// Owner returns the module that reads top-level key.
func (r *Registry) Owner(key string) (Module, bool) {
	for _, m := range r.mods {
		for _, k := range m.Schema().Keys {
			if k.Name == key {
				return m, true
			}
		}
	}
	return nil, false
}

// ShouldRun reports whether m has anything to do for cfg.
func ShouldRun(m Module, cfg *config.CloudConfig) bool {
	if w, ok := m.(Wanted); ok && w.Wanted(cfg) {
		return true
	}
	for _, k := range m.Schema().Keys {
		if cfg.Has(k.Name) {
			return true
		}
	}
	return false
}

// ValidateDoc checks one cloud-config document: keys no module reads are
// warnings (they may be meant for another tool), keys of known modules are
// checked against their schema. Messages carry the document's source, line
// and column.
func (r *Registry) ValidateDoc(d config.Doc) []config.Diagnostic {
	var out []config.Diagnostic
	if d.Root == nil {
		return nil
	}
	for i := 0; i+1 < len(d.Root.Content); i += 2 {
		k, v := d.Root.Content[i], d.Root.Content[i+1]
		if k.Value == "merge_how" || k.Value == "merge_type" {
			continue
		}
		m, ok := r.Owner(k.Value)
		if !ok {
			out = append(out, config.Diagnostic{Source: d.Source, Line: k.Line, Column: k.Column, Path: k.Value,
				Severity: config.SeverityWarning, Message: "not supported by ec2init; ignored"})
			continue
		}
		for _, f := range m.Schema().Keys {
			if f.Name == k.Value {
				out = append(out, config.Validate(d.Source, k.Value, v, f.Type)...)
			}
		}
		if c, ok := m.(Checker); ok {
			// A Checker formats its own messages: scrub secrets and URLs.
			out = append(out, config.ScrubDiagnostics(k.Value, v, c.Check(d.Source, k.Value, v))...)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Line < out[j].Line })
	return out
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
