package config

import (
	"fmt"

	"gopkg.in/yaml.v3"

	"github.com/ec2init/ec2init/agent/state"
)

// ModuleEntry is one item of a cloud-init module list: a bare name,
// [name, frequency, args...] or {name, frequency, args}.
type ModuleEntry struct {
	Name string // canonical (see ModuleName)
	// Frequency is the list's gate for the module; "" keeps the module's own.
	Frequency state.Frequency
	Line      int
}

// ParseFrequency reads a frequency as cloud-init's lists spell it.
func ParseFrequency(s string) (state.Frequency, bool) {
	switch s {
	case "once":
		return state.Once, true
	case "once-per-instance", "per-instance", "instance":
		return state.PerInstance, true
	case "always":
		return state.Always, true
	case "per-boot", "boot":
		return state.PerBoot, true
	}
	return "", false
}

// ModuleList reads module list key (cloud_init_modules, ...) of c. ok is
// false when no document sets it. Problems (an item of another shape, an
// unknown frequency: cloud-init then keeps the module's own) are returned
// as warnings located by source and line; the rest of the list applies.
func (c *CloudConfig) ModuleList(key string) (entries []ModuleEntry, warnings []string, ok bool) {
	v, ok := c.values[key]
	if !ok {
		return nil, nil, false
	}
	n := deref(v.Node)
	if n.Kind != yaml.SequenceNode {
		if n.Tag == "!!null" {
			return nil, nil, true // an empty list: cloud-init runs none
		}
		return nil, []string{fmt.Sprintf("%s:%d: %s: expected a list of modules; ignored", v.Source, n.Line, key)}, false
	}
	for i, item := range n.Content {
		item = deref(item)
		e := ModuleEntry{Line: item.Line}
		var freq *yaml.Node
		switch item.Kind {
		case yaml.ScalarNode:
			e.Name = ModuleName(item.Value)
		case yaml.SequenceNode:
			if len(item.Content) > 0 {
				e.Name = ModuleName(deref(item.Content[0]).Value)
			}
			if len(item.Content) > 1 {
				freq = deref(item.Content[1])
			}
		case yaml.MappingNode:
			for j := 0; j+1 < len(item.Content); j += 2 {
				switch item.Content[j].Value {
				case "name":
					e.Name = ModuleName(deref(item.Content[j+1]).Value)
				case "frequency":
					freq = deref(item.Content[j+1])
				}
			}
		}
		if e.Name == "" {
			warnings = append(warnings, fmt.Sprintf("%s:%d: %s[%d]: not a module name; skipped", v.Source, item.Line, key, i))
			continue
		}
		if freq != nil && freq.Value != "" {
			f, ok := ParseFrequency(freq.Value)
			if !ok {
				warnings = append(warnings, fmt.Sprintf("%s:%d: %s[%d]: unknown frequency for %s (want once, once-per-instance or always); the module's own applies", v.Source, freq.Line, key, i, e.Name))
			}
			e.Frequency = f
		}
		entries = append(entries, e)
	}
	return entries, warnings, true
}
