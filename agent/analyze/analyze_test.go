package analyze

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ec2init/ec2init/agent/state"
)

func sample() state.Status {
	t0 := time.Date(2026, 11, 29, 0, 0, 0, 0, time.UTC)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	return state.Status{
		StartedAt: t0, FinishedAt: at(900),
		Stages: []state.StageResult{
			{Name: "local", Deferred: true},
			{Name: "network", Start: at(10), DurationMS: 100, Modules: []state.ModuleResult{
				{Name: "bootcmd", Outcome: "ok", Start: at(20), DurationMS: 50},
				{Name: "ssh", Outcome: "skipped"},
			}},
			{Name: "final", Start: at(200), DurationMS: 600, Modules: []state.ModuleResult{
				{Name: "scripts_user:a.sh", Outcome: "failed", Start: at(210), DurationMS: 500},
			}},
		},
	}
}

func TestShowAndBlame(t *testing.T) {
	rows := Show(sample())
	want := []string{"network::10", "network:bootcmd:20", "final::200", "final:scripts_user:a.sh:210"}
	if len(rows) != len(want) {
		t.Fatalf("rows %+v", rows)
	}
	for i, r := range rows {
		if got := r.Stage + ":" + r.Module + ":" + strconv.FormatFloat(r.OffsetMS, 'f', -1, 64); got != want[i] {
			t.Errorf("row %d = %s, want %s", i, got, want[i])
		}
	}
	blame := Blame(sample())
	if len(blame) != 2 || blame[0].Module != "scripts_user:a.sh" || blame[1].Module != "bootcmd" {
		t.Errorf("blame %+v", blame)
	}
}

func TestBoot(t *testing.T) {
	st := sample()
	kernel := st.StartedAt.Add(-5 * time.Second)
	user := st.StartedAt.Add(-2 * time.Second)
	b := Boot(st, kernel, user)
	if b.KernelSeconds != 3 || b.ToEC2InitSeconds != 2 || b.EC2InitSeconds != 0.9 {
		t.Errorf("boot times %+v", b)
	}
	if got := Boot(st, time.Time{}, time.Time{}); got.KernelSeconds != 0 || got.EC2InitSeconds != 0.9 {
		t.Errorf("unknown marks: %+v", got)
	}
}

func TestParseBtime(t *testing.T) {
	got, err := parseBtime(strings.NewReader("cpu  1 2 3\nbtime 1795900000\nprocesses 5\n"))
	if err != nil || got.Unix() != 1795900000 {
		t.Errorf("btime %v %v", got, err)
	}
	if _, err := parseBtime(strings.NewReader("cpu 1\n")); err == nil {
		t.Error("missing btime accepted")
	}
	if _, err := KernelBootTime("/proc/stat"); err != nil {
		t.Errorf("this machine's /proc/stat: %v", err)
	}
}
