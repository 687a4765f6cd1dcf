package state

import (
	"path/filepath"
	"time"
)

// StatusVersion is the version of the Status format written by this code.
// Fields are only ever added; a change of meaning gets a new version.
const StatusVersion = 1

// The states of a boot, in Status.State.
const (
	StateRunning  = "running"
	StateDone     = "done"
	StateError    = "error"
	StateDegraded = "degraded"
	StateDisabled = "disabled"
)

// Status is a boot's status: status.json while the agent runs and after,
// result.json once the boot finished. Field names are stable snake_case;
// lists are [] rather than null, so jq filters need no guards.
type Status struct {
	Version     int           `json:"version"`
	State       string        `json:"state"` // StateRunning, StateDone, ...
	InstanceID  string        `json:"instance_id"`
	BootID      string        `json:"boot_id"`
	Stage       string        `json:"stage"` // the current, or last, stage
	StartedAt   time.Time     `json:"started_at"`
	FinishedAt  time.Time     `json:"finished_at,omitzero"`
	Stages      []StageResult `json:"stages"`
	Errors      []string      `json:"errors"`
	Degraded    []string      `json:"degraded"`
	Interrupted []string      `json:"interrupted"`
	PID         int           `json:"pid"`
}

// StageResult is one stage of a boot.
type StageResult struct {
	Name       string         `json:"name"`
	Start      time.Time      `json:"start"`
	End        time.Time      `json:"end,omitzero"`
	DurationMS float64        `json:"duration_ms"`
	Modules    []ModuleResult `json:"modules"`
	// Deferred is set when the stage could not run yet (the local stage
	// before the network is up) and a later stage ran its work.
	Deferred bool `json:"deferred,omitempty"`
}

// ModuleResult is one module's run in a stage.
type ModuleResult struct {
	Name       string    `json:"name"`
	Frequency  string    `json:"frequency"`
	Outcome    string    `json:"outcome"` // an Outcome: ok, failed, skipped, interrupted
	Start      time.Time `json:"start,omitzero"`
	End        time.Time `json:"end,omitzero"`
	DurationMS float64   `json:"duration_ms"`
	Error      string    `json:"error,omitempty"`
	ExitCode   *int      `json:"exit_code,omitempty"`
}

func (s *Store) statusPath() string { return filepath.Join(s.state, "status.json") }
func (s *Store) resultPath() string { return filepath.Join(s.state, "result.json") }

// WriteStatus replaces status.json with st. A zero Version is set to
// StatusVersion, nil lists are written as [], and a zero DurationMS of a
// stage or module with both times set is computed from them. If status.json
// holds something unparsable it is kept as status.json.corrupt-<time>.
func (s *Store) WriteStatus(st Status) error {
	return writeJSON(s, s.statusPath(), normalize(st))
}

// ReadStatus reads status.json. A missing file is an error matching
// fs.ErrNotExist (no boot has started); an unparsable one is a
// *CorruptError matching ErrCorrupt.
func (s *Store) ReadStatus() (Status, error) {
	return readJSON[Status](s, s.statusPath())
}

// WriteResult replaces result.json, the last finished boot's status, as
// WriteStatus does status.json.
func (s *Store) WriteResult(st Status) error {
	return writeJSON(s, s.resultPath(), normalize(st))
}

// ReadResult reads result.json, as ReadStatus does status.json.
func (s *Store) ReadResult() (Status, error) {
	return readJSON[Status](s, s.resultPath())
}

// normalize returns a copy of st ready to write; st is not changed.
func normalize(st Status) Status {
	if st.Version == 0 {
		st.Version = StatusVersion
	}
	st.Errors = nonNil(st.Errors)
	st.Degraded = nonNil(st.Degraded)
	st.Interrupted = nonNil(st.Interrupted)
	stages := make([]StageResult, len(st.Stages))
	for i, sr := range st.Stages {
		if sr.DurationMS == 0 && !sr.Start.IsZero() && !sr.End.IsZero() {
			sr.DurationMS = Millis(sr.Start, sr.End)
		}
		mods := make([]ModuleResult, len(sr.Modules))
		for j, m := range sr.Modules {
			if m.DurationMS == 0 && !m.Start.IsZero() && !m.End.IsZero() {
				m.DurationMS = Millis(m.Start, m.End)
			}
			mods[j] = m
		}
		sr.Modules = mods
		stages[i] = sr
	}
	st.Stages = stages
	return st
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
