package daemon

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/ec2init/ec2init/agent/imds"
	"github.com/ec2init/ec2init/agent/imds/imdssim"
	"github.com/ec2init/ec2init/agent/sys"
	"github.com/ec2init/ec2init/internal/testkit"
)

func TestWatch(t *testing.T) {
	sim, url := imdssim.Start(t, imdssim.Options{})
	client, err := imds.New(imds.Config{Endpoint: url})
	if err != nil {
		t.Fatal(err)
	}
	rootDir := t.TempDir()
	root, err := sys.NewRoot(rootDir)
	if err != nil {
		t.Fatal(err)
	}
	hook := filepath.Join(rootDir, "etc/ec2init/hooks.d/spot-interruption/10-drain")
	if err := os.MkdirAll(filepath.Dir(hook), 0o755); err != nil {
		t.Fatal(err)
	}
	testkit.FakeTool(t, filepath.Dir(hook), filepath.Base(hook), "#!/bin/sh\necho \"$EC2INIT_EVENT $(cat) $EC2_INSTANCE_ID\" >> \"$EC2INIT_ROOT/drained\"\n")

	var mu sync.Mutex
	var events []Event
	var notes []string
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() {
		done <- Run(ctx, Options{
			IMDS: client, Root: root, Interval: 20 * time.Millisecond,
			Hooks:   map[string][][]string{TagsChanged: {{"/bin/sh", "-c", "cat >> \"$EC2INIT_ROOT/tags\""}}},
			Facts:   map[string]string{"EC2_INSTANCE_ID": "i-0123456789abcdef0"},
			Notify:  func(s string) { mu.Lock(); notes = append(notes, s); mu.Unlock() },
			OnEvent: func(e Event) { mu.Lock(); events = append(events, e); mu.Unlock() },
		})
	}()
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for {
			mu.Lock()
			ok := cond()
			mu.Unlock()
			if ok {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s; events %v", what, events)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	waitFor("a quiet poll", func() bool {
		return len(notes) > 1 && strings.Contains(notes[len(notes)-1], "no events")
	})
	// The default tree has no scheduled maintenance: "[]" is no event.
	notice := `{"action": "terminate", "time": "2026-11-29T09:00:00Z"}`
	sim.Set("meta-data/spot/instance-action", notice)
	waitFor("the spot notice", func() bool { return len(events) == 1 })
	sim.Set("meta-data/events/maintenance/scheduled", `[{"Code":"system-reboot","EventId":"instance-event-1"}]`)
	waitFor("maintenance", func() bool { return len(events) == 2 })
	sim.Set("meta-data/tags/instance/Owner", "ops")
	waitFor("a tag change", func() bool { return len(events) == 3 })
	time.Sleep(100 * time.Millisecond) // more polls: no repeats
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if len(events) != 3 || events[0].Kind != SpotInterruption || events[1].Kind != ScheduledMaintenance || events[2].Kind != TagsChanged {
		t.Errorf("events %+v", events)
	}
	b, err := os.ReadFile(filepath.Join(rootDir, "drained"))
	if err != nil || strings.Count(string(b), "\n") != 1 || !strings.HasPrefix(string(b), "spot-interruption "+notice+" i-0123456789abcdef0") {
		t.Errorf("hook output %q, %v: want one run with the event and facts", b, err)
	}
	if b, err := os.ReadFile(filepath.Join(rootDir, "tags")); err != nil || string(b) != "Environment\nName\nOwner\nTeam" {
		t.Errorf("config hook got %q on stdin, %v", b, err)
	}
	if files, _ := filepath.Glob(filepath.Join(rootDir, "run/ec2init/events/*.json")); len(files) != 3 {
		t.Errorf("recorded events: %v", files)
	}
	last := notes[len(notes)-1]
	if last != "STOPPING=1" || !strings.Contains(strings.Join(notes, "\n"), "STATUS=active events: spot-interruption, scheduled-maintenance\nWATCHDOG=1") {
		t.Errorf("notifications %q", notes)
	}
}

// eventsRoot is a fresh root with its EventsDir made, and that directory.
func eventsRoot(t *testing.T) (*sys.Root, string) {
	t.Helper()
	rootDir := t.TempDir()
	root, err := sys.NewRoot(rootDir)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(rootDir, EventsDir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return root, dir
}

// TestEventsBounded: EventsDir keeps the newest MaxEvents events, removing
// the oldest (by the time in their names) as new ones are recorded; files
// that are not events stay.
func TestEventsBounded(t *testing.T) {
	const max, extra = 5, 7
	root, dir := eventsRoot(t)
	// Earlier events, written in an order unlike their age.
	base := time.Now().Add(-time.Hour).UnixNano()
	for _, i := range []int{3, 0, 11, 7, 1, 9, 2, 10, 4, 8, 6, 5} {
		name := filepath.Join(dir, fmt.Sprintf("%s-%d.json", TagsChanged, base+int64(i)))
		if err := os.WriteFile(name, []byte("{}"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "README"), []byte("not an event"), 0o644); err != nil {
		t.Fatal(err)
	}
	record(Options{Root: root, Log: zap.NewNop(), MaxEvents: max}, Event{Kind: SpotInterruption, Detail: "{}"})

	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range entries {
		got = append(got, e.Name())
	}
	// The new event and the max-1 newest before it (8 to 11), and README.
	want := []string{"README"}
	for i := max + extra - (max - 1); i < max+extra; i++ {
		want = append(want, fmt.Sprintf("%s-%d.json", TagsChanged, base+int64(i)))
	}
	var spot []string
	for _, g := range got {
		if strings.HasPrefix(g, SpotInterruption+"-") {
			spot = append(spot, g)
		}
	}
	if len(spot) != 1 {
		t.Fatalf("the new event is not kept: %v", got)
	}
	want = append(want, spot[0])
	sort.Strings(want)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("kept %v, want %v", got, want)
	}
}

// TestEventsDefaultBound: without MaxEvents, DefaultMaxEvents apply.
func TestEventsDefaultBound(t *testing.T) {
	root, dir := eventsRoot(t)
	for i := 0; i < DefaultMaxEvents+3; i++ {
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("x-%d.json", i+1)), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := prune(root, DefaultMaxEvents); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != DefaultMaxEvents {
		t.Fatalf("%d events kept, want %d", len(entries), DefaultMaxEvents)
	}
	for _, old := range []string{"x-1.json", "x-2.json", "x-3.json"} {
		if _, err := os.Stat(filepath.Join(dir, old)); err == nil {
			t.Errorf("the oldest event %s is still there", old)
		}
	}
}
