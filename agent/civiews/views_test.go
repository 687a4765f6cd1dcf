package civiews

import (
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ec2init/ec2init/agent/state"
)

var boot = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func at(sec float64) time.Time { return boot.Add(time.Duration(sec * float64(time.Second))) }

// finished is a boot's public status after all four stages, one script
// failed (recorded in Degraded too, as the agent does) and one cloud-config
// warning.
func finished() state.Status {
	return state.Status{
		State: state.StateDegraded, InstanceID: "i-0abc", StartedAt: at(3), FinishedAt: at(12.5),
		Stages: []state.StageResult{
			{Name: "local", Start: at(3), End: at(4.25)},
			{Name: "network", Start: at(5.5), End: at(7)},
			{Name: "config", Start: at(8), End: at(9), Modules: []state.ModuleResult{{Name: "ntp", Outcome: "ok"}}},
			{Name: "final", Start: at(10), End: at(12.5), Modules: []state.ModuleResult{
				{Name: "scripts_user:part-001", Outcome: "failed", Error: "details need root"}}},
		},
		Errors:   []string{},
		Degraded: []string{"scripts_user:part-001: details need root", "cloud-config: details need root"},
	}
}

func running() state.Status {
	return state.Status{
		State: state.StateRunning, InstanceID: "i-0abc", StartedAt: at(3),
		Stages: []state.StageResult{
			{Name: "local", Start: at(3), End: at(3), Deferred: true},
			{Name: "network", Start: at(5.5)},
		},
	}
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	want, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(want) {
		t.Errorf("%s:\n%s\nwant (as cloud-init writes it):\n%s", name, got, want)
	}
}

func TestStatusShapeMatchesCloudInit(t *testing.T) {
	tests := []struct {
		file string
		st   state.Status
	}{
		{"status.json", finished()},
		{"running.json", running()},
	}
	for _, tt := range tests {
		got, err := MarshalJSON(map[string]any{"v1": StatusV1(tt.st, boot)})
		if err != nil {
			t.Fatal(err)
		}
		golden(t, tt.file, got)
	}
	res, err := MarshalJSON(map[string]any{"v1": ResultV1(StatusV1(finished(), boot))})
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "result.json", res)
}

func TestMarshalJSONIsASCII(t *testing.T) {
	got, err := MarshalJSON(map[string]any{"b": "é<😀>", "a": PyFloat(2)})
	if err != nil {
		t.Fatal(err)
	}
	want := "{\n \"a\": 2.0,\n \"b\": \"\\u00e9<\\ud83d\\ude00>\"\n}\n"
	if string(got) != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestWriterFiles(t *testing.T) {
	root, dir := newRoot(t)
	now := at(13)
	w := New(Options{Root: root, Now: func() time.Time { return now }, Uptime: 13 * time.Second, Version: "1.2.3"})
	in := Instance{ID: "i-0abc", UserData: func() ([]byte, error) { return []byte("#!/bin/sh\necho secret\n"), nil }}

	// A stale result and boot-finished from the last boot go at the start.
	for _, p := range []string{"var/lib/cloud/data/result.json", "var/lib/cloud/instances/i-0abc/boot-finished"} {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, p), []byte("old"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Update(running(), in); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"var/lib/cloud/data/result.json", "var/lib/cloud/instances/i-0abc/boot-finished", "run/cloud-init/result.json"} {
		if _, err := os.Lstat(filepath.Join(dir, p)); !os.IsNotExist(err) {
			t.Errorf("%s: %v, want removed", p, err)
		}
	}
	if err := w.Update(finished(), in); err != nil {
		t.Fatal(err)
	}

	read := func(p string) string {
		t.Helper()
		b, err := os.ReadFile(filepath.Join(dir, p))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	golden(t, "status.json", []byte(read("run/cloud-init/status.json")))
	golden(t, "result.json", []byte(read("run/cloud-init/result.json")))
	links := map[string]string{
		"run/cloud-init/status.json": "../../var/lib/cloud/data/status.json",
		"run/cloud-init/result.json": "../../var/lib/cloud/data/result.json",
		"var/lib/cloud/instance":     "/var/lib/cloud/instances/i-0abc",
	}
	for p, want := range links {
		if got, err := os.Readlink(filepath.Join(dir, p)); err != nil || got != want {
			t.Errorf("%s -> %q (%v), want %q", p, got, err, want)
		}
	}
	files := map[string]string{
		"var/lib/cloud/instances/i-0abc/boot-finished": "13.00 - Fri, 02 Jan 2026 03:04:18 +0000 - v. 1.2.3\n",
		"var/lib/cloud/data/instance-id":               "i-0abc\n",
		"var/lib/cloud/data/previous-instance-id":      "NO_PREVIOUS_INSTANCE_ID\n",
		"run/cloud-init/.instance-id":                  "i-0abc\n",
		"var/lib/cloud/instances/i-0abc/user-data.txt": "#!/bin/sh\necho secret\n",
	}
	for p, want := range files {
		if got := read(p); got != want {
			t.Errorf("%s = %q, want %q", p, got, want)
		}
	}
	// The absolute link resolves under the root as it would in the image.
	if b, err := root.ReadFile("/var/lib/cloud/instance/user-data.txt"); err != nil || string(b) != "#!/bin/sh\necho secret\n" {
		t.Errorf("user-data.txt through the instance link: %q, %v", b, err)
	}
	fi, err := os.Stat(filepath.Join(dir, "var/lib/cloud/instances/i-0abc/user-data.txt"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("user-data.txt mode: %v %v", fi, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "var/lib/cloud/instances/i-0abc/obj.pkl")); !os.IsNotExist(err) {
		t.Errorf("obj.pkl: %v", err)
	}
}

func TestWriterNewInstanceMovesLink(t *testing.T) {
	root, dir := newRoot(t)
	noUD := func() ([]byte, error) { return nil, fs.ErrNotExist }
	if err := New(Options{Root: root, Uptime: time.Second}).Update(running(), Instance{ID: "i-1", UserData: noUD}); err != nil {
		t.Fatal(err)
	}
	if err := New(Options{Root: root, Uptime: time.Second}).Update(running(), Instance{ID: "i-2", PreviousID: "i-1", UserData: noUD}); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.Readlink(filepath.Join(dir, "var/lib/cloud/instance")); got != "/var/lib/cloud/instances/i-2" {
		t.Errorf("instance -> %q", got)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "var/lib/cloud/data/previous-instance-id")); string(b) != "i-1\n" {
		t.Errorf("previous-instance-id %q", b)
	}
	if _, err := os.Stat(filepath.Join(dir, "var/lib/cloud/instances/i-2/user-data.txt")); !os.IsNotExist(err) {
		t.Errorf("user-data.txt before it was fetched: %v", err)
	}
}
