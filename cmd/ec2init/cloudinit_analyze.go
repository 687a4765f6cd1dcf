package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ec2init/ec2init/agent"
	"github.com/ec2init/ec2init/agent/analyze"
	"github.com/ec2init/ec2init/agent/civiews"
	"github.com/ec2init/ec2init/agent/state"
)

// ciEvent is one of cloud-init's reporting events (analyze dump's
// records), made from ec2init's status: a stage or a module, started or
// finished.
type ciEvent struct {
	Description string  `json:"description"`
	EventType   string  `json:"event_type"`
	Name        string  `json:"name"`
	Origin      string  `json:"origin"`
	Result      string  `json:"result,omitempty"`
	Timestamp   float64 `json:"timestamp"`
}

// cloud-init's stage event names and descriptions.
var ciStageEvents = map[string][2]string{
	"local":   {"init-local", "searching for local datasources"},
	"network": {"init-network", "searching for network datasources"},
	"config":  {"modules-config", "running modules for config"},
	"final":   {"modules-final", "running modules for final"},
}

// ciFrequency is cloud-init's name of a frequency.
func ciFrequency(f string) string {
	switch state.Frequency(f) {
	case state.PerInstance:
		return "once-per-instance"
	case state.PerBoot, state.Always:
		return "always"
	}
	return f
}

// ciEvents are the boot's events in order: each stage's start, its
// modules' (skipped ones took no time and are left out), its finish.
func ciEvents(st state.Status) []ciEvent {
	ts := func(t time.Time) float64 { return float64(t.UnixNano()) / 1e9 }
	result := func(outcome string) string {
		if outcome == string(state.OutcomeFailed) || outcome == string(state.OutcomeInterrupted) {
			return "FAIL"
		}
		return "SUCCESS"
	}
	var out []ciEvent
	for _, sr := range st.Stages {
		se, ok := ciStageEvents[sr.Name]
		if !ok || sr.Deferred {
			continue
		}
		out = append(out, ciEvent{Description: se[1], EventType: "start", Name: se[0], Origin: "cloudinit", Timestamp: ts(sr.Start)})
		stageResult := "SUCCESS"
		for _, m := range sr.Modules {
			if m.Outcome == string(state.OutcomeSkipped) || m.Start.IsZero() {
				continue
			}
			name := se[0] + "/config-" + m.Name
			out = append(out, ciEvent{Description: fmt.Sprintf("running config-%s with frequency %s", m.Name, ciFrequency(m.Frequency)),
				EventType: "start", Name: name, Origin: "cloudinit", Timestamp: ts(m.Start)})
			r := result(m.Outcome)
			desc := "config-" + m.Name + " ran successfully"
			if r == "FAIL" {
				desc, stageResult = "running config-"+m.Name+" failed", "FAIL"
			}
			end := m.End
			if end.IsZero() {
				end = m.Start
			}
			out = append(out, ciEvent{Description: desc, EventType: "finish", Name: name, Origin: "cloudinit", Result: r, Timestamp: ts(end)})
		}
		if !sr.End.IsZero() {
			out = append(out, ciEvent{Description: se[1], EventType: "finish", Name: se[0], Origin: "cloudinit", Result: stageResult, Timestamp: ts(sr.End)})
		}
	}
	return out
}

// ciRecords is cloud-init's generate_records over one boot's events: a
// line per module in format (%I indent, %D description, %E elapsed,
// %d delta, %n name, ...), "Starting stage" and "Finished stage" lines,
// and the total.
func ciRecords(events []ciEvent, format string) []string {
	var records, open []string
	var start float64
	started := false
	total := 0.0
	openStart := map[string]float64{}
	for i, ev := range events {
		if ev.EventType == "start" {
			if !started {
				start, started = ev.Timestamp, true
			}
			// A stage is a parent even when nothing ran in it.
			if strings.Contains(ev.Name, "/") && i+1 < len(events) && events[i+1].Name == ev.Name && events[i+1].EventType == "finish" {
				records = append(records, ciFormatRecord(format, ev, events[i+1], start))
				continue
			}
			records = append(records, "Starting stage: "+ev.Name)
			open = append(open, ev.Name)
			openStart[ev.Name] = ev.Timestamp
			continue
		}
		if len(open) > 0 && open[len(open)-1] == ev.Name {
			open = open[:len(open)-1]
			delta := ev.Timestamp - openStart[ev.Name]
			records = append(records, fmt.Sprintf("Finished stage: (%s) %08.5f seconds\n", ev.Name, delta))
			total += delta
		}
	}
	return append(records, fmt.Sprintf("Total Time: %3.5f seconds\n", total))
}

func ciFormatRecord(format string, start, finish ciEvent, recordStart float64) string {
	indent := "|" + strings.Repeat(" ", max(strings.Count(start.Name, "/")-1, 0)) + "`->"
	sec := func(f float64) string { return fmt.Sprintf("%08.5f", f) }
	r := strings.NewReplacer(
		"%d", sec(finish.Timestamp-start.Timestamp),
		"%D", finish.Description,
		"%E", sec(start.Timestamp-recordStart),
		"%e", finish.EventType,
		"%I", indent,
		"%l", "DEBUG",
		"%n", finish.Name,
		"%o", finish.Origin,
		"%r", finish.Result,
		"%t", sec(finish.Timestamp),
		"%T", "",
	)
	// %D in show's default format is the start's description.
	if strings.Contains(format, "%D") {
		format = strings.ReplaceAll(format, "%D", start.Description)
	}
	return r.Replace(format)
}

var ciBlameLine = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^\s+\d+\.\d+`) })

// ciAnalyze is `analyze show|blame|dump|boot`, from ec2init's records
// (cloud-init parses its log): show and blame in cloud-init's format, dump
// its events as JSON, boot ec2init's report.
func ciAnalyze(_ context.Context, e *env, c ciIO, args []string) error {
	p := &ciParser{prog: c.prog, subDest: "subcommand", subs: [][2]string{
		{"blame", "Print list of executed stages ordered by time to init"},
		{"show", "Print list of in-order events during execution"},
		{"dump", "Dump cloud-init events in JSON format"},
		{"boot", "Print list of boot times for kernel and cloud-init"},
	}}
	a, done, err := parseSub(c, p, args)
	if done {
		return err
	}
	if a.sub == "" {
		return ciFail(c.stderr, p.errorf("the following arguments are required: subcommand"))
	}
	sp := &ciParser{prog: c.prog + " " + a.sub, opts: []ciOpt{
		{names: []string{"-i", "--infile"}, dest: "infile", help: "specify where to read input (ec2init reads its own records)."},
		{names: []string{"-o", "--outfile"}, dest: "outfile", help: "specify where to write output."},
	}}
	if a.sub == "show" || a.sub == "blame" {
		sp.opts = append(sp.opts, ciOpt{names: []string{"--format", "-f"}, dest: "print_format", help: "specify formatting of output."})
	}
	sa, done, err := parseSub(c, sp, a.rest)
	if done {
		return err
	}
	out := c.stdout
	if f := sa.val("outfile"); f != "" && f != "-" {
		fh, err := os.Create(f)
		if err != nil {
			return &exitError{code: 1, msg: err.Error()}
		}
		defer fh.Close()
		out = fh
	}
	bs, err := agent.ReadStatus(agent.Options{Root: e.root, BootID: e.bootID})
	if err != nil {
		return &exitError{code: 1, msg: err.Error()}
	}
	if a.sub == "boot" {
		kernel, _ := analyze.KernelBootTime("/proc/stat")
		return ciAnalyzeBoot(out, analyze.Boot(bs.Status, kernel, userspaceStart()))
	}
	events := ciEvents(bs.Status)
	switch a.sub {
	case "dump":
		b, err := civiews.MarshalJSON(events)
		if err != nil {
			return err
		}
		_, err = out.Write(b)
		return err
	case "blame":
		format := sa.val("print_format")
		if format == "" {
			format = "     %ds (%n)"
		}
		var lines []string
		for _, r := range ciRecords(events, format) {
			if ciBlameLine().MatchString(r) {
				lines = append(lines, r)
			}
		}
		sort.Sort(sort.Reverse(sort.StringSlice(lines)))
		fmt.Fprintf(out, "-- Boot Record 01 --\n%s\n\n1 boot records analyzed\n", strings.Join(lines, "\n"))
	default:
		format := sa.val("print_format")
		if format == "" {
			format = "%I%D @%Es +%ds"
		}
		fmt.Fprint(out, "-- Boot Record 01 --\n"+
			"The total time elapsed since completing an event is printed after the \"@\" character.\n"+
			"The time the event takes is printed after the \"+\" character.\n\n")
		fmt.Fprintf(out, "%s\n1 boot records analyzed\n", strings.Join(ciRecords(events, format), "\n"))
	}
	return nil
}

// ciAnalyzeBoot is analyze boot's report: the kernel's start, its end
// (systemd's start) and the agent's start; cloud-init's failure text where
// the kernel's times are unknown (a container).
func ciAnalyzeBoot(out io.Writer, b analyze.BootTimes) error {
	if b.KernelStart.IsZero() || b.UserspaceStart.IsZero() || b.EC2InitStart.IsZero() {
		fmt.Fprint(out, "Your Linux distro or container does not support this functionality.\n"+
			"You must be running a Kernel Telemetry supported distro.\nPlease check "+
			"https://docs.cloud-init.io/en/latest/topics/analyze.html for more information on supported distros.\n")
		return &exitError{code: 1}
	}
	pyTime := func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05.000000+00:00") }
	pyFloat := func(d time.Duration) string { return strconv.FormatFloat(d.Seconds(), 'g', -1, 64) }
	_, err := fmt.Fprintf(out, "-- Most Recent Boot Record --\n"+
		"    Kernel Started at: %s\n"+
		"    Kernel ended boot at: %s\n"+
		"    Kernel time to boot (seconds): %s\n"+
		"    Cloud-init activated by systemd at: %s\n"+
		"    Time between Kernel end boot and Cloud-init activation (seconds): %s\n"+
		"    Cloud-init start: %s\n",
		pyTime(b.KernelStart), pyTime(b.UserspaceStart), pyFloat(b.UserspaceStart.Sub(b.KernelStart)),
		pyTime(b.EC2InitStart), pyFloat(b.EC2InitStart.Sub(b.UserspaceStart)), pyTime(b.EC2InitStart))
	return err
}
