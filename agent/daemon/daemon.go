// Package daemon keeps watching the instance metadata after boot for the
// events an operator must act on — a Spot interruption notice, a rebalance
// recommendation, scheduled maintenance — and runs the hooks configured for
// each, reporting to systemd as it goes.
package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/ec2init/ec2init/agent/imds"
	"github.com/ec2init/ec2init/agent/sys"
)

// Event kinds, also the names of the hook directories under HooksDir.
const (
	SpotInterruption        = "spot-interruption"
	RebalanceRecommendation = "rebalance-recommendation"
	ScheduledMaintenance    = "scheduled-maintenance"
	LifecycleState          = "autoscaling-lifecycle"
	TagsChanged             = "tags-changed"
	InterfacesChanged       = "network-interfaces-changed"
)

// HooksDir holds one directory of executables per event kind.
const HooksDir = "/etc/ec2init/hooks.d"

// EventsDir receives one JSON file per event acted on.
const EventsDir = "/run/ec2init/events"

// DefaultMaxEvents is how many event files EventsDir keeps by default: a
// daemon running for months must not fill /run (a tmpfs, RAM).
const DefaultMaxEvents = 1000

// watch is one thing the daemon polls. A 404 (or an empty list) means no
// event. change marks states whose every new value is an event, including
// the first one seen after a previous value (not the first one at start:
// the boot already acted on that).
type watch struct {
	kind, path string
	change     bool
}

var watched = []watch{
	{kind: SpotInterruption, path: "spot/instance-action"},
	{kind: RebalanceRecommendation, path: "events/recommendations/rebalance"},
	{kind: ScheduledMaintenance, path: "events/maintenance/scheduled"},
	{kind: LifecycleState, path: "autoscaling/target-lifecycle-state", change: true},
	{kind: TagsChanged, path: "tags/instance/", change: true},
	{kind: InterfacesChanged, path: "network/interfaces/macs/", change: true},
}

// Event is one observed event: its kind and IMDS's JSON about it.
type Event struct {
	Kind   string
	Detail string
}

// Options configures the watcher.
type Options struct {
	IMDS *imds.Client
	Root *sys.Root
	Log  *zap.Logger
	// Facts are the EC2_* variables hooks get, besides the event's.
	Facts map[string]string
	// Interval between polls; AWS advises checking for interruption
	// notices every 5 seconds (the notice comes two minutes ahead).
	Interval time.Duration
	// Notify sends sd_notify lines (READY=1, STATUS=..., WATCHDOG=1); nil
	// sends nothing.
	Notify func(state string)
	// OnEvent, when set, is called for each new event (tests).
	OnEvent func(Event)
	// Hooks are commands from config, per event kind, run before the
	// hook directory's executables: argv lists, or one string run by sh -c.
	Hooks map[string][][]string
	// MaxEvents is how many event files EventsDir keeps, the newest; the
	// oldest are removed as new ones are written. 0 means
	// DefaultMaxEvents.
	MaxEvents int
}

// Run polls until ctx ends. An event is acted on once, when it appears or
// its detail changes; IMDS errors are logged and retried next tick.
func Run(ctx context.Context, opts Options) error {
	if opts.Interval <= 0 {
		opts.Interval = 5 * time.Second
	}
	if opts.Log == nil {
		opts.Log = zap.NewNop()
	}
	if opts.MaxEvents <= 0 {
		opts.MaxEvents = DefaultMaxEvents
	}
	notify := opts.Notify
	if notify == nil {
		notify = func(string) {}
	}
	seen := map[string]string{}
	notify("STATUS=watching instance metadata for events")
	for first := true; ; first = false {
		active := poll(ctx, opts, seen, first)
		status := "STATUS=watching instance metadata: no events"
		if len(active) > 0 {
			status = "STATUS=active events: " + strings.Join(active, ", ")
		}
		notify(status + "\nWATCHDOG=1")
		// Jitter of up to a fifth of the interval: a fleet started
		// together does not poll in lock-step.
		wait := opts.Interval + time.Duration(rand.Int64N(int64(opts.Interval)/5+1))
		select {
		case <-ctx.Done():
			notify("STOPPING=1")
			return nil
		case <-time.After(wait):
		}
	}
}

// poll checks every watched path once and acts on new events; it returns
// the kinds currently active.
func poll(ctx context.Context, opts Options, seen map[string]string, first bool) []string {
	var active []string
	for _, w := range watched {
		v, err := opts.IMDS.Get(ctx, w.path)
		switch {
		case errors.Is(err, imds.ErrNotFound) && w.change:
			v, err = "", nil
		case errors.Is(err, imds.ErrNotFound):
			delete(seen, w.kind)
			continue
		case err != nil:
			if ctx.Err() == nil {
				opts.Log.Warn("poll instance metadata", zap.String("event", w.kind), zap.Error(err))
			}
			continue
		}
		v = strings.TrimSpace(v)
		if w.change {
			prev, known := seen[w.kind]
			seen[w.kind] = v
			if first || !known || prev == v {
				continue
			}
		} else {
			if v == "" || v == "[]" {
				delete(seen, w.kind)
				continue
			}
			active = append(active, w.kind)
			if seen[w.kind] == v {
				continue
			}
			seen[w.kind] = v
		}
		ev := Event{Kind: w.kind, Detail: v}
		opts.Log.Warn("instance event", zap.String("event", ev.Kind), zap.String("detail", summarize(v)))
		if opts.OnEvent != nil {
			opts.OnEvent(ev)
		}
		record(opts, ev)
		runHooks(ctx, opts, ev)
	}
	return active
}

// summarize keeps the event's JSON when it is JSON (IMDS's event documents
// hold times and actions, no secrets) and its size otherwise.
func summarize(v string) string {
	if json.Valid([]byte(v)) && len(v) < 2048 {
		return v
	}
	return fmt.Sprintf("%d bytes", len(v))
}

// record writes the event to EventsDir, for operators and other tools.
func record(opts Options, ev Event) {
	if opts.Root == nil {
		return
	}
	b, err := json.Marshal(map[string]string{"kind": ev.Kind, "detail": ev.Detail, "at": time.Now().UTC().Format(time.RFC3339Nano)})
	if err != nil {
		return
	}
	name := fmt.Sprintf("%s/%s-%d.json", EventsDir, ev.Kind, time.Now().UnixNano())
	if err := opts.Root.WriteFile(name, b, 0o644, nil); err != nil {
		opts.Log.Warn("record event", zap.Error(err))
	}
	if err := prune(opts.Root, opts.MaxEvents); err != nil {
		opts.Log.Warn("prune recorded events", zap.String("dir", EventsDir), zap.Error(err))
	}
}

// prune keeps the newest max event files of EventsDir and removes the
// rest, oldest first. Age is the nanosecond time in the name (the part
// after the last '-'), not the mtime, which a clock step or a copy changes.
func prune(root *sys.Root, max int) error {
	dir, err := root.Path(EventsDir)
	if err != nil {
		return err
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("read %s: %w", EventsDir, err)
	}
	type file struct {
		name string
		at   int64
	}
	var files []file
	for _, e := range entries {
		at, ok := eventTime(e.Name())
		if !ok || !e.Type().IsRegular() {
			continue // not an event this daemon wrote: left alone
		}
		files = append(files, file{e.Name(), at})
	}
	if len(files) <= max {
		return nil
	}
	sort.Slice(files, func(i, j int) bool {
		if files[i].at != files[j].at {
			return files[i].at < files[j].at
		}
		return files[i].name < files[j].name
	})
	var errs []error
	for _, f := range files[:len(files)-max] {
		if err := root.Remove(path.Join(EventsDir, f.name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// eventTime reads the time from an event file's name, <kind>-<unixnano>.json.
func eventTime(name string) (int64, bool) {
	stem, ok := strings.CutSuffix(name, ".json")
	if !ok {
		return 0, false
	}
	i := strings.LastIndexByte(stem, '-')
	if i < 0 {
		return 0, false
	}
	at, err := strconv.ParseInt(stem[i+1:], 10, 64)
	return at, err == nil
}

// runHooks runs the configured commands for the event, then the
// executables of HooksDir/<kind> in lexical order, each with the event's
// JSON on stdin and in EC2INIT_EVENT_DETAIL, and EC2INIT_EVENT.
func runHooks(ctx context.Context, opts Options, ev Event) {
	if opts.Root == nil {
		return
	}
	env := map[string]string{"EC2INIT_EVENT": ev.Kind, "EC2INIT_EVENT_DETAIL": ev.Detail}
	runner := &sys.Runner{Root: opts.Root, Log: opts.Log, Env: opts.Facts}
	for i, argv := range opts.Hooks[ev.Kind] {
		res, err := runner.Run(ctx, sys.Cmd{
			Name: fmt.Sprintf("hook %s[%d]", ev.Kind, i), Argv: argv, Env: env, Timeout: time.Minute,
			Stdin: strings.NewReader(ev.Detail), Output: os.Stderr, Header: true,
		})
		if err != nil || res.ExitCode != 0 {
			opts.Log.Error("hook failed", zap.String("hook", fmt.Sprintf("%s[%d]", ev.Kind, i)), zap.Int("exit_code", res.ExitCode), zap.Error(err))
		}
	}
	dir := path.Join(HooksDir, ev.Kind)
	host, err := opts.Root.Path(dir)
	if err != nil {
		return
	}
	entries, err := os.ReadDir(host)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			opts.Log.Warn("read hooks", zap.String("dir", dir), zap.Error(err))
		}
		return
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].Name() < entries[j].Name() })
	for _, e := range entries {
		info, err := e.Info()
		if err != nil || !info.Mode().IsRegular() || info.Mode().Perm()&0o111 == 0 {
			continue
		}
		res, err := runner.RunScript(ctx, path.Join(dir, e.Name()), sys.Cmd{
			Name:    "hook " + ev.Kind + "/" + e.Name(),
			Env:     env,
			Stdin:   strings.NewReader(ev.Detail),
			Timeout: time.Minute,
			Output:  os.Stderr,
			Header:  true,
		})
		if err != nil || res.ExitCode != 0 {
			opts.Log.Error("hook failed", zap.String("hook", e.Name()), zap.Int("exit_code", res.ExitCode), zap.Error(err))
		}
	}
}
