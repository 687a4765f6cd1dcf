package modules

import (
	"context"
	"strings"
	"testing"

	"github.com/ec2init/ec2init/agent/config"
	"github.com/ec2init/ec2init/agent/state"
)

// keyModule is a module reading keys, for the registry's key index.
type keyModule struct {
	name string
	keys []string
}

func (m keyModule) Name() string       { return m.name }
func (keyModule) Stage() Stage         { return StageConfig }
func (keyModule) Frequency() Frequency { return state.PerInstance }
func (m keyModule) Schema() Schema {
	var s Schema
	for _, k := range m.keys {
		s.Keys = append(s.Keys, config.Field{Name: k, Type: config.String()})
	}
	return s
}
func (keyModule) Run(context.Context, *Env, *config.CloudConfig) error { return nil }

func TestRegistryOwner(t *testing.T) {
	r, err := NewRegistry(keyModule{"a", []string{"x", "y"}}, keyModule{"b", []string{"z"}}, keyModule{"c", nil})
	if err != nil {
		t.Fatal(err)
	}
	for key, want := range map[string]string{"x": "a", "y": "a", "z": "b", "w": ""} {
		m, ok := r.Owner(key)
		switch {
		case want == "" && ok:
			t.Errorf("Owner(%q) = %s, want none", key, m.Name())
		case want != "" && (!ok || m.Name() != want):
			t.Errorf("Owner(%q) = %v, %v; want %s", key, m, ok, want)
		}
	}
	_, err = NewRegistry(keyModule{"a", []string{"x"}}, keyModule{"b", []string{"y", "x"}})
	if err == nil || !strings.Contains(err.Error(), `key "x" claimed by a and b`) {
		t.Errorf("a key read by two modules: err = %v", err)
	}
}
