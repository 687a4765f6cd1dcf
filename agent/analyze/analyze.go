// Package analyze turns the records a boot leaves (status.json,
// result.json) into timings an operator can read: what ran when, what was
// slow, and where the boot's time went from kernel start to ec2init done.
package analyze

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/ec2init/ec2init/agent/state"
)

// Row is one stage or module with its offset from the boot's start.
type Row struct {
	Stage      string  `json:"stage"`
	Module     string  `json:"module,omitempty"`
	Frequency  string  `json:"frequency,omitempty"`
	Outcome    string  `json:"outcome,omitempty"`
	OffsetMS   float64 `json:"offset_ms"`
	DurationMS float64 `json:"duration_ms"`
}

// Show lists stages and the modules that ran in them, in order, with their
// start offsets from the boot's start. Skipped modules are left out: they
// took no time.
func Show(st state.Status) []Row {
	var rows []Row
	for _, s := range st.Stages {
		if s.Deferred {
			continue
		}
		rows = append(rows, Row{Stage: s.Name, OffsetMS: offset(st.StartedAt, s.Start), DurationMS: s.DurationMS})
		for _, m := range s.Modules {
			if m.Outcome == string(state.OutcomeSkipped) {
				continue
			}
			rows = append(rows, Row{Stage: s.Name, Module: m.Name, Frequency: m.Frequency, Outcome: m.Outcome,
				OffsetMS: offset(st.StartedAt, m.Start), DurationMS: m.DurationMS})
		}
	}
	return rows
}

// Blame lists the modules that ran, slowest first.
func Blame(st state.Status) []Row {
	var rows []Row
	for _, r := range Show(st) {
		if r.Module != "" {
			rows = append(rows, r)
		}
	}
	sort.SliceStable(rows, func(i, j int) bool { return rows[i].DurationMS > rows[j].DurationMS })
	return rows
}

func offset(start, t time.Time) float64 {
	if t.IsZero() || start.IsZero() {
		return 0
	}
	return state.Millis(start, t)
}

// BootTimes places ec2init's boot in the machine's: when the kernel
// started, when systemd (userspace) started, when ec2init started and
// finished.
type BootTimes struct {
	KernelStart    time.Time `json:"kernel_start,omitzero"`
	UserspaceStart time.Time `json:"userspace_start,omitzero"`
	EC2InitStart   time.Time `json:"ec2init_start"`
	EC2InitEnd     time.Time `json:"ec2init_end,omitzero"`
	// Seconds between the marks; 0 where a mark is unknown.
	KernelSeconds    float64 `json:"kernel_seconds,omitempty"`
	ToEC2InitSeconds float64 `json:"userspace_to_ec2init_seconds,omitempty"`
	EC2InitSeconds   float64 `json:"ec2init_seconds,omitempty"`
}

// Boot computes BootTimes from st, the kernel's boot time (from /proc/stat
// btime) and systemd's userspace start (zero when unknown).
func Boot(st state.Status, kernelStart, userspaceStart time.Time) BootTimes {
	b := BootTimes{KernelStart: kernelStart, UserspaceStart: userspaceStart, EC2InitStart: st.StartedAt, EC2InitEnd: st.FinishedAt}
	if !kernelStart.IsZero() && !userspaceStart.IsZero() {
		b.KernelSeconds = userspaceStart.Sub(kernelStart).Seconds()
	}
	if !userspaceStart.IsZero() && !st.StartedAt.IsZero() {
		b.ToEC2InitSeconds = st.StartedAt.Sub(userspaceStart).Seconds()
	}
	if !st.FinishedAt.IsZero() {
		b.EC2InitSeconds = st.FinishedAt.Sub(st.StartedAt).Seconds()
	}
	return b
}

// KernelBootTime reads btime from a /proc/stat formatted file.
func KernelBootTime(procStat string) (time.Time, error) {
	f, err := os.Open(procStat)
	if err != nil {
		return time.Time{}, err
	}
	defer f.Close()
	return parseBtime(f)
}

func parseBtime(r io.Reader) (time.Time, error) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "btime "); ok {
			sec, err := strconv.ParseInt(strings.TrimSpace(rest), 10, 64)
			if err != nil {
				return time.Time{}, fmt.Errorf("btime %q: %w", rest, err)
			}
			return time.Unix(sec, 0), nil
		}
	}
	if err := sc.Err(); err != nil {
		return time.Time{}, err
	}
	return time.Time{}, fmt.Errorf("no btime line")
}
