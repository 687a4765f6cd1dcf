package state

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"time"

	"github.com/ec2init/ec2init/agent/sys"
)

// ModuleStates gives each module its own store in the current instance's
// directory, so no module builds a state path itself. The agent sets one
// on the Env of a boot; outside a boot (bake) there is no instance and the
// Env has none.
type ModuleStates struct {
	root       *sys.Root
	instanceID string
}

// NewModuleStates is the module stores of instance instanceID under root.
func NewModuleStates(root *sys.Root, instanceID string) *ModuleStates {
	return &ModuleStates{root: root, instanceID: instanceID}
}

// For is module's store: the JSON document
// /var/lib/ec2init/instances/<instance-id>/<module>.json.
func (s *ModuleStates) For(module string) *ModuleStore {
	return &ModuleStore{root: s.root, path: ModuleStatePath(s.instanceID, module), module: module, instanceID: s.instanceID}
}

// ModuleStatePath is where module keeps its document for instanceID.
func ModuleStatePath(instanceID, module string) string {
	return path.Join(StateDir, "instances", instanceID, module+".json")
}

// ModuleStore is one module's JSON document for one instance, replaced
// atomically (0600, its directory 0700: it may name private software).
type ModuleStore struct {
	root       *sys.Root
	path       string
	module     string
	instanceID string
}

// Path is the document's host path.
func (m *ModuleStore) Path() string { return m.path }

func (m *ModuleStore) check() error {
	if err := checkName("instance id", m.instanceID); err != nil {
		return err
	}
	return checkName("module", m.module)
}

// Save replaces the document with v as indented JSON.
func (m *ModuleStore) Save(v any) error {
	if err := m.check(); err != nil {
		return err
	}
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("encode %s: %w", m.path, err)
	}
	if dir := path.Dir(m.path); !exists(m.root, dir) {
		if err := m.root.MkdirAll(dir, 0o700); err != nil {
			return err
		}
	}
	return m.root.WriteFile(m.path, append(data, '\n'), 0o600, nil)
}

// Load decodes the document into v; found is false (and v untouched)
// when the module never saved one for this instance.
func (m *ModuleStore) Load(v any) (found bool, err error) {
	if err := m.check(); err != nil {
		return false, err
	}
	data, err := m.root.ReadFile(m.path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if err := json.Unmarshal(data, v); err != nil {
		return false, fmt.Errorf("%s: %w", m.path, err)
	}
	return true, nil
}

func exists(root *sys.Root, p string) bool {
	ok, err := root.Exists(p)
	return err == nil && ok
}

// ItemReport is a module's record of what each of its items did (one
// entry per item, of the module's own type), as `status --long` shows it.
type ItemReport[T any] struct {
	Updated time.Time `json:"updated"`
	Items   []T       `json:"items"`
}

// SaveItems records items as the module's report, stamped now.
func SaveItems[T any](m *ModuleStore, items []T, now time.Time) error {
	return m.Save(ItemReport[T]{Updated: now.UTC(), Items: items})
}

// LoadItems returns the module's last report's items (nil, nil when it has
// none for this instance).
func LoadItems[T any](m *ModuleStore) ([]T, error) {
	var rep ItemReport[T]
	if _, err := m.Load(&rep); err != nil {
		return nil, err
	}
	return rep.Items, nil
}
