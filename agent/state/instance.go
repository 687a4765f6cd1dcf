package state

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"path/filepath"
	"strings"
	"time"
)

// Transition is a boot's decision: how this boot relates to what the disk
// recorded before it. It is taken by the first BeginInstance of a boot and
// recorded, so later stages of the same boot get the same answer (with
// Resumed set).
type Transition struct {
	InstanceID string `json:"instance_id"`
	// PreviousInstanceID is the instance id the disk recorded before this
	// boot: InstanceID again on a reboot, another id on a new instance, ""
	// on the first boot ever.
	PreviousInstanceID string `json:"previous_instance_id"`
	// NewInstance: the instance id differs from the recorded one (true on
	// the first boot ever too).
	NewInstance bool `json:"new_instance"`
	// FirstBootEver: no instance id was recorded on this disk (a fresh image,
	// or after Clean).
	FirstBootEver bool   `json:"first_boot_ever"`
	BootID        string `json:"boot_id"`
	// PreviousBootID is the boot before this one, "" if none was recorded.
	PreviousBootID string `json:"previous_boot_id"`
	// NewBoot: the boot id differs from the last recorded one.
	NewBoot bool `json:"new_boot"`
	// DecidedAt is when the first BeginInstance of this boot ran.
	DecidedAt time.Time `json:"decided_at"`
	// Resumed: the decision was taken earlier in this boot (a later stage,
	// or the agent run again); the other fields are as they were then.
	Resumed bool `json:"-"`
}

func (s *Store) dataPath(name string) string { return filepath.Join(s.state, "data", name) }
func (s *Store) bootDir(id string) string    { return filepath.Join(s.state, "boots", id) }
func (s *Store) instanceDir(id string) string {
	return filepath.Join(s.state, "instances", id)
}

// BeginInstance takes (or, later in the same boot, recalls) the boot's
// decision for instanceID, records the instance id and boot id in data/, and
// makes instanceID the store's current instance: its directory is created
// and per-instance operations refer to it.
//
// The decision is written first and the data files after, each atomically,
// so a crash in between is mended by the next call: every call is idempotent.
func (s *Store) BeginInstance(instanceID string) (Transition, error) {
	if err := checkName("instance id", instanceID); err != nil {
		return Transition{}, err
	}
	if s.readOnly {
		return Transition{}, ErrReadOnly
	}
	s.mu.Lock()
	defer s.mu.Unlock()

	transPath := filepath.Join(s.bootDir(s.bootID), "transition.json")
	t, err := readJSON[Transition](s, transPath)
	switch {
	case err == nil && t.InstanceID == instanceID && t.BootID == s.bootID:
		t.Resumed = true
	case err == nil || errors.Is(err, fs.ErrNotExist) || errors.Is(err, ErrCorrupt):
		// No decision yet in this boot (or one for another instance id, or
		// an unreadable one, which writeJSON keeps aside): take it now.
		if t, err = s.decide(instanceID); err != nil {
			return Transition{}, err
		}
		if err := writeJSON(s, transPath, t); err != nil {
			return Transition{}, err
		}
	default:
		return Transition{}, err
	}

	if err := s.apply(t); err != nil {
		return Transition{}, err
	}
	if err := s.pruneBoots(t.PreviousBootID); err != nil {
		return Transition{}, err
	}
	dir := s.instanceDir(instanceID)
	for _, p := range []string{dir, filepath.Join(dir, "sem"), filepath.Join(dir, "records")} {
		if err := s.ensureDirs(p); err != nil {
			return Transition{}, err
		}
	}
	s.instanceID = instanceID
	s.transition = &t
	return t, nil
}

// decide compares instanceID and the boot id with what data/ records.
func (s *Store) decide(instanceID string) (Transition, error) {
	recorded, err := s.readText(s.dataPath("instance-id"))
	if err != nil {
		return Transition{}, err
	}
	lastBoot, err := s.readText(s.dataPath("last-boot-id"))
	if err != nil {
		return Transition{}, err
	}
	t := Transition{
		InstanceID:         instanceID,
		PreviousInstanceID: recorded,
		NewInstance:        recorded != instanceID,
		FirstBootEver:      recorded == "",
		BootID:             s.bootID,
		NewBoot:            lastBoot != s.bootID,
		PreviousBootID:     lastBoot,
		DecidedAt:          s.now().UTC(),
	}
	if !t.NewBoot {
		// Already recorded in this boot (the instance id changed within it,
		// or the decision was lost): the boot before is in previous-boot-id.
		if t.PreviousBootID, err = s.readText(s.dataPath("previous-boot-id")); err != nil {
			return Transition{}, err
		}
	}
	return t, nil
}

// apply brings data/ in line with t; it writes only what differs.
func (s *Store) apply(t Transition) error {
	recorded, err := s.readText(s.dataPath("instance-id"))
	if err != nil {
		return err
	}
	if recorded != t.InstanceID {
		if recorded != "" {
			if err := s.writeText(s.dataPath("previous-instance-id"), recorded); err != nil {
				return err
			}
		}
		if err := s.writeText(s.dataPath("instance-id"), t.InstanceID); err != nil {
			return err
		}
	}
	lastBoot, err := s.readText(s.dataPath("last-boot-id"))
	if err != nil {
		return err
	}
	if lastBoot != t.BootID {
		if lastBoot != "" {
			if err := s.writeText(s.dataPath("previous-boot-id"), lastBoot); err != nil {
				return err
			}
		}
		if err := s.writeText(s.dataPath("last-boot-id"), t.BootID); err != nil {
			return err
		}
	}
	return nil
}

// pruneBoots removes the directories of boots other than this one and prev.
func (s *Store) pruneBoots(prev string) error {
	dir := filepath.Join(s.state, "boots")
	entries, err := s.readDir(dir)
	if err != nil {
		return err
	}
	var errs []error
	for _, e := range entries {
		if e.Name() == s.bootID || e.Name() == prev {
			continue
		}
		if err := s.removeAll(filepath.Join(dir, e.Name())); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("state: pruning old boots: %w", err)
	}
	return nil
}

// Transition returns the decision of the last BeginInstance; false before.
func (s *Store) Transition() (Transition, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.transition == nil {
		return Transition{}, false
	}
	return *s.transition, true
}

// InstanceID is the current instance id, "" before BeginInstance.
func (s *Store) InstanceID() string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.instanceID
}

// UseInstance selects instance id for reading and for one-off runs
// (semaphores, records, instance files) without taking this boot's
// decision: inspection commands and deliberate re-runs use it, boots use
// BeginInstance.
func (s *Store) UseInstance(id string) error {
	if err := checkName("instance id", id); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.instanceID = id
	return nil
}

// RecordedInstanceID reads the instance id the disk last recorded
// (data/instance-id), "" if none; it works on a read-only store.
func (s *Store) RecordedInstanceID() (string, error) {
	return s.readText(s.dataPath("instance-id"))
}

// InstanceDir is the current instance's directory: its real path under the
// root prefix (lexical, symlinks not resolved).
func (s *Store) InstanceDir() (string, error) {
	dir, err := s.currentInstanceDir()
	if err != nil {
		return "", err
	}
	return s.lexical(dir), nil
}

// currentInstanceDir is the current instance's directory as a host path.
func (s *Store) currentInstanceDir() (string, error) {
	id := s.InstanceID()
	if id == "" {
		return "", ErrNoInstance
	}
	return s.instanceDir(id), nil
}

// instanceFile checks name, a slash-separated path relative to the instance
// directory, and returns its host path.
func (s *Store) instanceFile(name string) (string, error) {
	dir, err := s.currentInstanceDir()
	if err != nil {
		return "", err
	}
	if name == "" || strings.HasPrefix(name, "/") || strings.IndexByte(name, 0) >= 0 || path.Clean(name) != name {
		return "", fmt.Errorf("instance file %q: not a clean relative path: %w", name, ErrInvalidName)
	}
	for _, c := range strings.Split(name, "/") {
		if c == ".." {
			return "", fmt.Errorf("instance file %q: %w", name, ErrEscapesRoot)
		}
	}
	switch first, _, _ := strings.Cut(name, "/"); first {
	case "sem", "records", "boot-finished":
		return "", fmt.Errorf("instance file %q: reserved for the store: %w", name, ErrInvalidName)
	}
	return filepath.Join(dir, filepath.FromSlash(name)), nil
}

// WriteInstanceFile writes data to name in the current instance's directory
// ("user-data.raw", "user-data.parts/001-script"), atomically, mode 0600;
// missing directories are created 0700. name is a clean relative path; "..",
// and the store's own "sem", "records" and "boot-finished", are refused.
func (s *Store) WriteInstanceFile(name string, data []byte) error {
	p, err := s.instanceFile(name)
	if err != nil {
		return err
	}
	return s.writeFile(p, data)
}

// ReadInstanceFile reads name from the current instance's directory.
func (s *Store) ReadInstanceFile(name string) ([]byte, error) {
	p, err := s.instanceFile(name)
	if err != nil {
		return nil, err
	}
	b, err := s.r.ReadFile(p)
	if err != nil {
		return nil, fmt.Errorf("state: %w", err)
	}
	return b, nil
}

// RemoveInstanceFile removes name (a file, or a directory with all it
// holds, such as "user-data.parts") from the current instance's directory.
// Removing what does not exist is not an error.
func (s *Store) RemoveInstanceFile(name string) error {
	p, err := s.instanceFile(name)
	if err != nil {
		return err
	}
	if s.readOnly {
		return ErrReadOnly
	}
	if err := s.removeAll(p); err != nil {
		return err
	}
	return nil
}

// BootFinished is the content of an instance's boot-finished file.
type BootFinished struct {
	At      time.Time `json:"at"`
	BootID  string    `json:"boot_id"`
	Version string    `json:"version"`
}

// MarkBootFinished records that the agent finished the current boot of the
// current instance, with the agent's version.
func (s *Store) MarkBootFinished(version string) error {
	dir, err := s.currentInstanceDir()
	if err != nil {
		return err
	}
	return writeJSON(s, filepath.Join(dir, "boot-finished"), BootFinished{At: s.now().UTC(), BootID: s.bootID, Version: version})
}

// ReadBootFinished reads the current instance's boot-finished record; an
// error matching fs.ErrNotExist when no boot of it finished.
func (s *Store) ReadBootFinished() (BootFinished, error) {
	dir, err := s.currentInstanceDir()
	if err != nil {
		return BootFinished{}, err
	}
	return readJSON[BootFinished](s, filepath.Join(dir, "boot-finished"))
}
