package daemon

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ec2init/ec2init/agent/imds"
	"github.com/ec2init/ec2init/agent/imds/imdssim"
	"github.com/ec2init/ec2init/agent/sys"
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
	if err := os.WriteFile(hook, []byte("#!/bin/sh\necho \"$EC2INIT_EVENT $(cat) $EC2_INSTANCE_ID\" >> \"$EC2INIT_ROOT/drained\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}

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
