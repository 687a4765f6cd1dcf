package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"strings"

	"github.com/ec2init/ec2init/agent/state"
	"github.com/ec2init/ec2init/agent/sys"
)

// DetailsNeedRoot replaces every message in the world-readable status.
const DetailsNeedRoot = "details need root"

// PublicStatus is st as anyone may read it: module names, outcomes, exit
// codes, times and how many errors, degraded and interrupted items there
// are, but none of their text, which can quote user data (a schema message
// naming a value, a script's error). Each message keeps only its leading
// name ("scripts_user:setup.sh", "cloud-config") when it has a plain one.
// st is not changed.
func PublicStatus(st state.Status) state.Status {
	redact := func(list []string) []string {
		out := make([]string, len(list))
		for i, msg := range list {
			out[i] = messageName(msg) + ": " + DetailsNeedRoot
		}
		return out
	}
	st.Errors = redact(st.Errors)
	st.Degraded = redact(st.Degraded)
	st.Interrupted = redact(st.Interrupted)
	stages := make([]state.StageResult, len(st.Stages))
	for i, sr := range st.Stages {
		mods := make([]state.ModuleResult, len(sr.Modules))
		for j, m := range sr.Modules {
			if m.Error != "" {
				m.Error = DetailsNeedRoot
			}
			mods[j] = m
		}
		sr.Modules = mods
		stages[i] = sr
	}
	st.Stages = stages
	return st
}

// messageName is the name a status message starts with (the text before
// its first ": "), if it is a plain name, else "error".
func messageName(msg string) string {
	name, _, ok := strings.Cut(msg, ": ")
	if !ok || name == "" || len(name) > 120 {
		return "error"
	}
	for _, r := range name {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', strings.ContainsRune(" -_.:@+", r):
		default:
			return "error"
		}
	}
	return name
}

// ReadRunStatus reads this boot's live status under root: the full copy
// (RunStatusFullFile) when the caller may read it (root), else the public
// one, with full false. A missing file is an error matching fs.ErrNotExist.
func ReadRunStatus(root *sys.Root) (st state.Status, full bool, err error) {
	data, err := root.ReadFile(RunStatusFullFile)
	full = err == nil
	if errors.Is(err, fs.ErrPermission) || errors.Is(err, fs.ErrNotExist) {
		data, err = root.ReadFile(RunStatusFile)
	}
	if err != nil {
		return state.Status{}, false, fmt.Errorf("runtime status: %w", err)
	}
	if err := json.Unmarshal(data, &st); err != nil {
		return state.Status{}, false, fmt.Errorf("runtime status %s: %w", RunStatusFile, err)
	}
	return st, full, nil
}
