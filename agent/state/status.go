package state

import (
	"fmt"
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
	// PID is the agent process that owns a running boot, 0 when none does
	// (between the stages of a boot, each its own process); PIDStart is
	// its start time in clock ticks since boot (0: unknown), which tells it
	// from a later process given the same pid. See Live.
	PID      int    `json:"pid"`
	PIDStart uint64 `json:"pid_start,omitzero"`
}

// AgentDied starts the error Live adds to a running status whose agent is
// gone.
const AgentDied = "agent died"

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

func (s *Store) statusPath() string { return s.state + "/status.json" }
func (s *Store) resultPath() string { return s.state + "/result.json" }

// Owner is the pid and start time (clock ticks since boot; 0 if /proc does
// not tell) of the process that opened the store, for Status.PID and
// Status.PIDStart.
func (s *Store) Owner() (pid int, start uint64) { return s.pid, s.pidStart }

// Live returns st as it really stands: a running status of this boot whose
// owner (PID, and PIDStart when set) no longer runs, because the agent was
// SIGKILLed or OOM-killed or its pid now names another process, is an
// error, with AgentDied first in Errors; otherwise st unchanged. A running
// status without a PID (between stages) cannot be judged and is kept.
// `ec2init status` reads every status through it, so it never waits on a
// dead agent.
func (s *Store) Live(st Status) Status {
	if st.State != StateRunning || st.BootID != s.bootID || st.PID <= 0 {
		return st
	}
	if processAlive(st.PID, st.PIDStart) {
		return st
	}
	st.State = StateError
	msg := fmt.Sprintf("%s: pid %d no longer runs (killed, or crashed) in stage %q", AgentDied, st.PID, st.Stage)
	st.Errors = append([]string{msg}, st.Errors...)
	return st
}

// ReadLiveStatus reads status.json, as ReadStatus does, through Live.
func (s *Store) ReadLiveStatus() (Status, error) {
	st, err := s.ReadStatus()
	if err != nil {
		return st, err
	}
	return s.Live(st), nil
}

// WriteStatus replaces status.json with st. A zero Version is set to
// StatusVersion, nil lists are written as [], and a zero DurationMS of a
// stage or module with both times set is computed from them. If status.json
// holds something unparsable it is kept as status.json.corrupt-<time>.
// A PID that is the writing process's own gets its PIDStart.
func (s *Store) WriteStatus(st Status) error {
	st = normalize(st)
	if st.PID == s.pid && st.PIDStart == 0 {
		st.PIDStart = s.pidStart // the writer's own: Live can tell pid reuse
	}
	return writeJSONTo(s, s.statusPath(), st, false)
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
