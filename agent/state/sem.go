package state

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// SemInfo is the content of a semaphore file.
type SemInfo struct {
	Module     string    `json:"module"`
	Frequency  Frequency `json:"frequency"`
	At         time.Time `json:"at"`
	BootID     string    `json:"boot_id"`
	InstanceID string    `json:"instance_id,omitempty"`
}

// Outcome is how a module's run ended.
type Outcome string

// The outcomes.
const (
	OutcomeOK          Outcome = "ok"
	OutcomeFailed      Outcome = "failed"
	OutcomeSkipped     Outcome = "skipped"
	OutcomeInterrupted Outcome = "interrupted"
)

// Valid reports whether o is one of the four outcomes.
func (o Outcome) Valid() bool {
	switch o {
	case OutcomeOK, OutcomeFailed, OutcomeSkipped, OutcomeInterrupted:
		return true
	}
	return false
}

// The states of a run record.
const (
	RecordRunning  = "running"
	RecordFinished = "finished"
)

// Record is a module's run record: written "running" before the module runs
// and "finished" after. See the package documentation.
type Record struct {
	Module     string    `json:"module"`
	Frequency  Frequency `json:"frequency"`
	State      string    `json:"state"`             // RecordRunning or RecordFinished
	Outcome    Outcome   `json:"outcome,omitempty"` // when finished
	Error      string    `json:"error,omitempty"`
	InstanceID string    `json:"instance_id,omitempty"`
	BootID     string    `json:"boot_id"`
	PID        int       `json:"pid"`
	// PIDStart is when PID started, in clock ticks since boot, to tell the
	// process from a later one given the same pid; 0 if unknown.
	PIDStart   uint64    `json:"pid_start,omitzero"`
	StartedAt  time.Time `json:"started_at,omitzero"`
	FinishedAt time.Time `json:"finished_at,omitzero"`
	DurationMS float64   `json:"duration_ms,omitzero"`
}

// scope returns the directory holding the semaphores ("sem") or records
// ("records") of frequency f, and the current instance id for PerInstance.
func (s *Store) scope(module string, f Frequency, kind string) (dir, instanceID string, err error) {
	if err := checkName("module", module); err != nil {
		return "", "", err
	}
	switch f {
	case PerInstance:
		instanceID = s.InstanceID()
		if instanceID == "" {
			return "", "", ErrNoInstance
		}
		return filepath.Join(s.instanceDir(instanceID), kind), instanceID, nil
	case PerBoot, Always:
		return filepath.Join(s.bootDir(s.bootID), kind), s.InstanceID(), nil
	case Once:
		return filepath.Join(s.state, kind), s.InstanceID(), nil
	}
	return "", "", fmt.Errorf("frequency %q: want per-instance, per-boot, once or always", f)
}

func semName(module string, f Frequency) string    { return module + "." + string(f) }
func recordName(module string, f Frequency) string { return module + "." + string(f) + ".json" }

// ShouldRun reports whether module, of frequency f, is due: true for
// Always, and otherwise when its semaphore is absent. When it is present,
// info is its content. A semaphore that exists but does not parse still
// counts (run is false) and the error matches ErrCorrupt, for the agent to
// report.
func (s *Store) ShouldRun(module string, f Frequency) (run bool, info SemInfo, err error) {
	dir, _, err := s.scope(module, f, "sem")
	if err != nil {
		return false, SemInfo{}, err
	}
	if f == Always {
		return true, SemInfo{}, nil
	}
	info, err = readJSON[SemInfo](s, filepath.Join(dir, semName(module, f)))
	switch {
	case err == nil:
		return false, info, nil
	case errors.Is(err, fs.ErrNotExist):
		return true, SemInfo{}, nil
	case errors.Is(err, ErrCorrupt):
		return false, SemInfo{Module: module, Frequency: f}, err
	default:
		return false, SemInfo{}, err
	}
}

// MarkDone writes module's semaphore, after it succeeded; a no-op for
// Always.
func (s *Store) MarkDone(module string, f Frequency) error {
	dir, instanceID, err := s.scope(module, f, "sem")
	if err != nil || f == Always {
		return err
	}
	return writeJSON(s, filepath.Join(dir, semName(module, f)), SemInfo{
		Module:     module,
		Frequency:  f,
		At:         s.now().UTC(),
		BootID:     s.bootID,
		InstanceID: instanceID,
	})
}

// ClearDone removes module's semaphore, so it is due again (a forced
// re-run). Removing an absent semaphore is not an error.
func (s *Store) ClearDone(module string, f Frequency) error {
	dir, _, err := s.scope(module, f, "sem")
	if err != nil || f == Always {
		return err
	}
	if s.readOnly {
		return ErrReadOnly
	}
	if s.deferSync {
		s.dirty.Store(true)
	}
	if err := s.r.Remove(filepath.Join(dir, semName(module, f))); err != nil {
		return fmt.Errorf("state: %w", err)
	}
	return nil
}

// MarkStarted writes module's run record as running, before it runs.
func (s *Store) MarkStarted(module string, f Frequency) error {
	dir, instanceID, err := s.scope(module, f, "records")
	if err != nil {
		return err
	}
	return writeJSON(s, filepath.Join(dir, recordName(module, f)), Record{
		Module:     module,
		Frequency:  f,
		State:      RecordRunning,
		InstanceID: instanceID,
		BootID:     s.bootID,
		PID:        s.pid,
		PIDStart:   s.pidStart,
		StartedAt:  s.now().UTC(),
	})
}

// MarkFinished rewrites module's run record as finished with outcome and
// runErr's text (nil for none). The start time is kept from MarkStarted's
// record of this boot.
func (s *Store) MarkFinished(module string, f Frequency, outcome Outcome, runErr error) error {
	dir, instanceID, err := s.scope(module, f, "records")
	if err != nil {
		return err
	}
	if !outcome.Valid() {
		return fmt.Errorf("outcome %q: want ok, failed, skipped or interrupted", outcome)
	}
	p := filepath.Join(dir, recordName(module, f))
	now := s.now().UTC()
	rec := Record{
		Module:     module,
		Frequency:  f,
		State:      RecordFinished,
		Outcome:    outcome,
		InstanceID: instanceID,
		BootID:     s.bootID,
		PID:        s.pid,
		PIDStart:   s.pidStart,
		FinishedAt: now,
	}
	if runErr != nil {
		rec.Error = runErr.Error()
	}
	if old, err := readJSON[Record](s, p); err == nil && old.State == RecordRunning && old.BootID == s.bootID {
		rec.StartedAt = old.StartedAt
		rec.DurationMS = Millis(old.StartedAt, now)
	}
	return writeJSON(s, p, rec)
}

// Interrupted reports whether module's last run, in the scope of frequency
// f, was cut short: its record says running but its boot is over or its
// process is gone, or it was marked finished with OutcomeInterrupted. rec is
// the record, if any. A module the current process is running is not
// interrupted. An unparsable record is an error matching ErrCorrupt.
func (s *Store) Interrupted(module string, f Frequency) (bool, Record, error) {
	dir, _, err := s.scope(module, f, "records")
	if err != nil {
		return false, Record{}, err
	}
	rec, err := readJSON[Record](s, filepath.Join(dir, recordName(module, f)))
	if errors.Is(err, fs.ErrNotExist) {
		return false, Record{}, nil
	}
	if err != nil {
		return false, Record{}, err
	}
	return s.interrupted(rec), rec, nil
}

func (s *Store) interrupted(rec Record) bool {
	switch rec.State {
	case RecordRunning:
		return rec.BootID != s.bootID || !processAlive(rec.PID, rec.PIDStart)
	case RecordFinished:
		return rec.Outcome == OutcomeInterrupted
	}
	return false
}

// ListInterrupted returns the interrupted records (see Interrupted) of the
// once modules, the current instance's modules, this boot's modules, and the
// previous boot's per-boot and always modules that have no record in this
// boot yet, sorted by module name. Unparsable records are skipped and
// reported in the error, with the list of the others.
func (s *Store) ListInterrupted() ([]Record, error) {
	var out []Record
	var errs []error
	scan := func(dir string, skip map[string]bool) map[string]bool {
		entries, err := s.readDir(dir)
		if err != nil {
			if !errors.Is(err, fs.ErrNotExist) {
				errs = append(errs, err)
			}
			return nil
		}
		seen := map[string]bool{}
		for _, e := range entries {
			name := e.Name()
			if !e.Type().IsRegular() || !strings.HasSuffix(name, ".json") || skip[name] {
				continue
			}
			seen[name] = true
			rec, err := readJSON[Record](s, filepath.Join(dir, name))
			if err != nil {
				errs = append(errs, err)
				continue
			}
			if s.interrupted(rec) {
				out = append(out, rec)
			}
		}
		return seen
	}
	scan(filepath.Join(s.state, "records"), nil)
	if id := s.InstanceID(); id != "" {
		scan(filepath.Join(s.instanceDir(id), "records"), nil)
	}
	thisBoot := scan(filepath.Join(s.bootDir(s.bootID), "records"), nil)
	if t, ok := s.Transition(); ok && t.PreviousBootID != "" && t.PreviousBootID != s.bootID {
		scan(filepath.Join(s.bootDir(t.PreviousBootID), "records"), thisBoot)
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Module != out[j].Module {
			return out[i].Module < out[j].Module
		}
		return out[i].Frequency < out[j].Frequency
	})
	return out, errors.Join(errs...)
}

// Millis is the duration from start to end in milliseconds, as status
// records give it.
func Millis(start, end time.Time) float64 {
	return float64(end.Sub(start)) / float64(time.Millisecond)
}
