package modules

import (
	"fmt"
	"slices"
	"sort"

	"gopkg.in/yaml.v3"

	"github.com/ec2init/ec2init/agent/config"
)

// Registry holds the work of a boot in the order it runs within a stage:
// the cloud-config modules and, among them, the Scripts slots where the
// user's scripts run.
type Registry struct {
	// mods are the modules as listed (no slots), for listings and
	// validation.
	mods []Module
	// steps are the modules and slots in run order.
	steps []Module
	// owners are the modules by the top-level keys they read: validation
	// asks for each key of each document, and building every module's
	// schema per question cost a 10-key document 300 KB (issue #15).
	owners map[string]Module
	// keys are each module's top-level keys, by module name: the stage
	// runner asks every module whether it has work, at every stage.
	keys map[string][]string
}

// NewRegistry returns a registry of ms, run in the order given; names must
// be unique. ms may list Scripts slots among the modules (modules/all
// does); a list with none gets every slot where cloud-init runs it:
// boothooks before the local stage's modules, and in the final stage the
// script directories and the user's scripts after the BeforeScripts
// modules and before the others.
func NewRegistry(ms ...Module) (*Registry, error) {
	r := &Registry{owners: map[string]Module{}, keys: map[string][]string{}}
	seen := map[string]bool{}
	slots := false
	for _, m := range ms {
		if seen[m.Name()] {
			return nil, fmt.Errorf("modules: %q registered twice", m.Name())
		}
		seen[m.Name()] = true
		if _, ok := m.(Scripts); ok {
			slots = true
			continue
		}
		r.keys[m.Name()] = nil
		for _, k := range m.Schema().Keys {
			if other, ok := r.owners[k.Name]; ok && other.Name() != m.Name() {
				return nil, fmt.Errorf("modules: key %q claimed by %s and %s", k.Name, other.Name(), m.Name())
			}
			r.owners[k.Name] = m
			r.keys[m.Name()] = append(r.keys[m.Name()], k.Name)
		}
		r.mods = append(r.mods, m)
	}
	if !slots {
		r.steps = withDefaultSlots(r.mods)
		return r, nil
	}
	// A BeforeScripts module listed after its stage's scripts would not
	// run before them.
	scriptsSeen := map[Stage]string{}
	for _, m := range ms {
		if s, ok := m.(Scripts); ok {
			if s.Source() != FromBoothooks {
				scriptsSeen[s.Stage()] = s.Name()
			}
			continue
		}
		if before(m) && scriptsSeen[m.Stage()] != "" {
			return nil, fmt.Errorf("modules: %s runs before the user's scripts but is listed after %s", m.Name(), scriptsSeen[m.Stage()])
		}
	}
	r.steps = append([]Module(nil), ms...)
	return r, nil
}

// withDefaultSlots places every Scripts slot among mods where cloud-init
// runs them.
func withDefaultSlots(mods []Module) []Module {
	out := []Module{Boothooks()}
	var early, late []Module
	for _, m := range mods {
		switch {
		case m.Stage() != StageFinal:
			out = append(out, m)
		case before(m):
			early = append(early, m)
		default:
			late = append(late, m)
		}
	}
	out = append(out, early...)
	for _, s := range ScriptSlots() {
		if s.Stage() == StageFinal {
			out = append(out, s)
		}
	}
	return append(out, late...)
}

func before(m Module) bool {
	bs, ok := m.(BeforeScripts)
	return ok && bs.BeforeScripts()
}

// All returns every cloud-config module (no Scripts slot) as listed.
func (r *Registry) All() []Module { return append([]Module(nil), r.mods...) }

// Steps returns the modules and Scripts slots in run order.
func (r *Registry) Steps() []Module { return append([]Module(nil), r.steps...) }

// ForStage returns the steps (modules and Scripts slots) of stage st in
// run order.
func (r *Registry) ForStage(st Stage) []Module {
	var out []Module
	for _, m := range r.steps {
		if m.Stage() == st {
			out = append(out, m)
		}
	}
	return out
}

// Owner returns the module that reads top-level key.
func (r *Registry) Owner(key string) (Module, bool) {
	m, ok := r.owners[key]
	return m, ok
}

// ShouldRun is the package's ShouldRun for a module of r, from the keys r
// recorded when it was made instead of the module's schema built anew.
func (r *Registry) ShouldRun(m Module, cfg *config.CloudConfig) bool {
	keys, ok := r.keys[m.Name()]
	if !ok {
		return ShouldRun(m, cfg)
	}
	return hasWork(m, cfg, func() []string { return keys })
}

// ShouldRun reports whether m has anything to do for cfg.
func ShouldRun(m Module, cfg *config.CloudConfig) bool {
	return hasWork(m, cfg, func() []string {
		var keys []string
		for _, k := range m.Schema().Keys {
			keys = append(keys, k.Name)
		}
		return keys
	})
}

// hasWork: m wants to run whatever cfg says (Wanted), or cfg has one of
// its keys (asked only when m is not Wanted).
func hasWork(m Module, cfg *config.CloudConfig, keys func() []string) bool {
	if w, ok := m.(Wanted); ok && w.Wanted(cfg) {
		return true
	}
	for _, k := range keys() {
		if cfg.Has(k) {
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
	if config.MergesNothing(d) {
		out = append(out, config.Diagnostic{Source: d.Source, Line: d.Root.Line, Column: d.Root.Column, Path: "merge_how",
			Severity: config.SeverityWarning, Message: "the mergers name no dict(...): cloud-init merges nothing of this document, nor does ec2init"})
	}
	for i := 0; i+1 < len(d.Root.Content); i += 2 {
		k, v := d.Root.Content[i], d.Root.Content[i+1]
		if k.Value == "merge_how" || k.Value == "merge_type" {
			continue
		}
		if slices.Contains(config.ModuleListKeys, k.Value) {
			out = append(out, r.checkModuleList(d.Source, k.Value, v)...)
			continue
		}
		if k.Value == config.OutputKey { // the agent's, not a module's: see agent/output.go
			out = append(out, config.Validate(d.Source, k.Value, v, config.OutputType)...)
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

// moduleListType is an item of a module list as cloud-init reads it.
var moduleListType = config.ListOf(config.OneOf(
	config.String(),
	config.ListOf(config.Any()),
	config.Object(
		config.Field{Name: "name", Type: config.String(), Required: true},
		config.Field{Name: "frequency", Type: config.String()},
		config.Field{Name: "args", Type: config.Any()},
	),
))

// checkModuleList validates module list key (cloud_final_modules, ...):
// its shape, and, as warnings, names that are no module of r (cloud-init
// warns and goes on) and frequencies it does not know.
func (r *Registry) checkModuleList(source, key string, v *yaml.Node) []config.Diagnostic {
	if v.Tag == "!!null" {
		return nil
	}
	out := config.Validate(source, key, v, moduleListType)
	if config.HasErrors(out) {
		return out
	}
	c := config.Merge(config.Doc{Source: source, Root: &yaml.Node{Kind: yaml.MappingNode, Content: []*yaml.Node{{Kind: yaml.ScalarNode, Value: key}, v}}})
	entries, warns, _ := c.ModuleList(key)
	for _, w := range warns {
		out = append(out, config.Diagnostic{Source: source, Line: v.Line, Column: v.Column, Path: key, Severity: config.SeverityWarning, Message: w})
	}
	names := map[string]bool{}
	for _, m := range r.steps {
		names[m.Name()] = true
	}
	for i, e := range entries {
		if !names[e.Name] {
			out = append(out, config.Diagnostic{Source: source, Line: e.Line, Column: v.Column, Path: fmt.Sprintf("%s[%d]", key, i),
				Severity: config.SeverityWarning, Message: fmt.Sprintf("%s is not an ec2init module; skipped", e.Name)})
		}
	}
	return out
}
