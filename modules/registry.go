package modules

import (
	"fmt"
	"sort"

	"github.com/ec2init/ec2init/agent/config"
)

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
