package state

import (
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ec2init/ec2init/agent/state/atomicfile"
)

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// openStore opens the store under root as boot bootID would.
func openStore(t *testing.T, root, bootID string, c *clock) *Store {
	t.Helper()
	opts := Options{Root: root, BootID: bootID}
	if c != nil {
		opts.Now = c.Now
	}
	s, err := Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func begin(t *testing.T, s *Store, instanceID string) Transition {
	t.Helper()
	tr, err := s.BeginInstance(instanceID)
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

func perm(t *testing.T, p string) os.FileMode {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

var allFrequencies = []Frequency{PerInstance, PerBoot, Once, Always}

func TestParseFrequency(t *testing.T) {
	tests := []struct {
		in   string
		want Frequency
		err  bool
	}{
		{in: "per-instance", want: PerInstance},
		{in: "instance", want: PerInstance},
		{in: "once-per-instance", want: PerInstance},
		{in: "per-boot", want: PerBoot},
		{in: "boot", want: PerBoot},
		{in: "once", want: Once},
		{in: "always", want: Always},
		{in: "", err: true},
		{in: "Always", err: true},
		{in: " once", err: true},
		{in: "per_instance", err: true},
		{in: "weekly", err: true},
	}
	for _, tt := range tests {
		got, err := ParseFrequency(tt.in)
		if (err != nil) != tt.err || got != tt.want {
			t.Errorf("ParseFrequency(%q) = %q, %v; want %q, error %v", tt.in, got, err, tt.want, tt.err)
		}
		var f Frequency
		if err := json.Unmarshal([]byte(`"`+tt.in+`"`), &f); (err != nil) != tt.err || f != tt.want {
			t.Errorf("json %q = %q, %v", tt.in, f, err)
		}
	}
	for _, f := range allFrequencies {
		if !f.Valid() {
			t.Errorf("%s not valid", f)
		}
	}
	if Frequency("instance").Valid() {
		t.Error("an alias is not a canonical frequency")
	}
}

func TestOpenModes(t *testing.T) {
	tests := []struct {
		name     string
		umask    int
		existing map[string]os.FileMode // host path -> mode of a directory made before Open
	}{
		{name: "fresh, umask 022", umask: 0o022},
		{name: "fresh, umask 077", umask: 0o077},
		{name: "fresh, umask 0", umask: 0},
		{name: "existing with wide modes", umask: 0o022, existing: map[string]os.FileMode{
			StateDir: 0o755, StateDir + "/data": 0o777, StateDir + "/sem": 0o711, RunDirPath: 0o700,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			old := syscall.Umask(tt.umask)
			defer syscall.Umask(old)
			root := t.TempDir()
			for p, m := range tt.existing {
				full := filepath.Join(root, p)
				if err := os.MkdirAll(full, 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.Chmod(full, m); err != nil {
					t.Fatal(err)
				}
			}
			s := openStore(t, root, "b1", nil)
			begin(t, s, "i-1")
			if err := s.WriteInstanceFile("user-data.parts/001", []byte("x")); err != nil {
				t.Fatal(err)
			}
			if err := s.WriteStatus(Status{State: StateRunning}); err != nil {
				t.Fatal(err)
			}
			for _, f := range allFrequencies {
				if err := s.MarkStarted("m", f); err != nil {
					t.Fatal(err)
				}
				if err := s.MarkDone("m", f); err != nil {
					t.Fatal(err)
				}
			}
			if got := perm(t, s.RunDir()); got != 0o755 {
				t.Errorf("%s: mode %v, want 0755", s.RunDir(), got)
			}
			n := 0
			err := filepath.WalkDir(s.Dir(), func(p string, d fs.DirEntry, err error) error {
				if err != nil {
					return err
				}
				n++
				want := os.FileMode(0o600)
				if d.IsDir() {
					want = 0o700
				}
				if got := perm(t, p); got != want {
					t.Errorf("%s: mode %v, want %v", p, got, want)
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if n < 20 {
				t.Errorf("only %d paths checked", n)
			}
		})
	}
}

func TestOpenErrors(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		opts Options
		want string
	}{
		{name: "no root", opts: Options{BootID: "b"}, want: "root prefix is empty"},
		{name: "missing root", opts: Options{Root: "/nonexistent/x", BootID: "b"}, want: "no such file"},
		{name: "root is a file", opts: Options{Root: file, BootID: "b"}, want: "not a directory"},
		{name: "bad boot id", opts: Options{Root: t.TempDir(), BootID: "../b"}, want: "invalid name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Open(tt.opts)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
		})
	}
}

func TestKernelBootID(t *testing.T) {
	if _, err := os.Stat(bootIDFile); err != nil {
		t.Skip("no kernel boot id here:", err)
	}
	s, err := Open(Options{Root: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	want := strings.TrimSpace(readFile(t, bootIDFile))
	if s.BootID() != want {
		t.Errorf("BootID = %q, want %q", s.BootID(), want)
	}
}

func TestTransitions(t *testing.T) {
	root := t.TempDir()
	// One disk through a life of boots; each step is a new process (Open).
	steps := []struct {
		name     string
		boot     string
		instance string
		want     Transition
		due      map[Frequency]bool // module "m" at each frequency
		data     map[string]string  // data/ files after the step; "" absent
	}{
		{
			name: "first boot ever", boot: "b1", instance: "i-1",
			want: Transition{InstanceID: "i-1", NewInstance: true, FirstBootEver: true, BootID: "b1", NewBoot: true},
			due:  map[Frequency]bool{PerInstance: true, PerBoot: true, Once: true, Always: true},
			data: map[string]string{"instance-id": "i-1", "previous-instance-id": "", "last-boot-id": "b1", "previous-boot-id": ""},
		},
		{
			name: "next stage of the same boot", boot: "b1", instance: "i-1",
			want: Transition{InstanceID: "i-1", NewInstance: true, FirstBootEver: true, BootID: "b1", NewBoot: true, Resumed: true},
			due:  map[Frequency]bool{PerInstance: false, PerBoot: false, Once: false, Always: true},
			data: map[string]string{"instance-id": "i-1", "previous-instance-id": "", "last-boot-id": "b1", "previous-boot-id": ""},
		},
		{
			name: "reboot", boot: "b2", instance: "i-1",
			want: Transition{InstanceID: "i-1", PreviousInstanceID: "i-1", BootID: "b2", PreviousBootID: "b1", NewBoot: true},
			due:  map[Frequency]bool{PerInstance: false, PerBoot: true, Once: false, Always: true},
			data: map[string]string{"instance-id": "i-1", "previous-instance-id": "", "last-boot-id": "b2", "previous-boot-id": "b1"},
		},
		{
			name: "same boot again", boot: "b2", instance: "i-1",
			want: Transition{InstanceID: "i-1", PreviousInstanceID: "i-1", BootID: "b2", PreviousBootID: "b1", NewBoot: true, Resumed: true},
			due:  map[Frequency]bool{PerInstance: false, PerBoot: false, Once: false, Always: true},
			data: map[string]string{"instance-id": "i-1", "previous-instance-id": "", "last-boot-id": "b2", "previous-boot-id": "b1"},
		},
		{
			name: "new instance from this disk", boot: "b3", instance: "i-2",
			want: Transition{InstanceID: "i-2", PreviousInstanceID: "i-1", NewInstance: true, BootID: "b3", PreviousBootID: "b2", NewBoot: true},
			due:  map[Frequency]bool{PerInstance: true, PerBoot: true, Once: false, Always: true},
			data: map[string]string{"instance-id": "i-2", "previous-instance-id": "i-1", "last-boot-id": "b3", "previous-boot-id": "b2"},
		},
		{
			name: "new instance, next stage", boot: "b3", instance: "i-2",
			want: Transition{InstanceID: "i-2", PreviousInstanceID: "i-1", NewInstance: true, BootID: "b3", PreviousBootID: "b2", NewBoot: true, Resumed: true},
			due:  map[Frequency]bool{PerInstance: false, PerBoot: false, Once: false, Always: true},
			data: map[string]string{"instance-id": "i-2", "previous-instance-id": "i-1", "last-boot-id": "b3", "previous-boot-id": "b2"},
		},
		{
			name: "a third instance: once still never again", boot: "b4", instance: "i-3",
			want: Transition{InstanceID: "i-3", PreviousInstanceID: "i-2", NewInstance: true, BootID: "b4", PreviousBootID: "b3", NewBoot: true},
			due:  map[Frequency]bool{PerInstance: true, PerBoot: true, Once: false, Always: true},
			data: map[string]string{"instance-id": "i-3", "previous-instance-id": "i-2", "last-boot-id": "b4", "previous-boot-id": "b3"},
		},
		{
			name: "back to the first instance: its semaphores still count", boot: "b5", instance: "i-1",
			want: Transition{InstanceID: "i-1", PreviousInstanceID: "i-3", NewInstance: true, BootID: "b5", PreviousBootID: "b4", NewBoot: true},
			due:  map[Frequency]bool{PerInstance: false, PerBoot: true, Once: false, Always: true},
			data: map[string]string{"instance-id": "i-1", "previous-instance-id": "i-3", "last-boot-id": "b5", "previous-boot-id": "b4"},
		},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			s := openStore(t, root, st.boot, nil)
			got := begin(t, s, st.instance)
			got.DecidedAt = time.Time{}
			if got != st.want {
				t.Errorf("transition\n got  %+v\n want %+v", got, st.want)
			}
			if tr, ok := s.Transition(); !ok || tr.InstanceID != st.instance {
				t.Errorf("Transition() = %+v, %v", tr, ok)
			}
			for _, f := range allFrequencies {
				run, info, err := s.ShouldRun("m", f)
				if err != nil {
					t.Fatal(err)
				}
				if run != st.due[f] {
					t.Errorf("ShouldRun(m, %s) = %v, want %v", f, run, st.due[f])
				}
				if !run && (info.Module != "m" || info.Frequency != f || info.At.IsZero() || info.BootID == "") {
					t.Errorf("ShouldRun(m, %s): info %+v", f, info)
				}
				if run {
					if err := s.MarkDone("m", f); err != nil {
						t.Fatal(err)
					}
				}
			}
			for name, want := range st.data {
				got, err := readRealText(filepath.Join(s.Dir(), "data", name))
				if err != nil {
					t.Fatal(err)
				}
				if got != want {
					t.Errorf("data/%s = %q, want %q", name, got, want)
				}
			}
			// Only this boot's and the previous boot's directories are kept.
			entries, err := os.ReadDir(filepath.Join(s.Dir(), "boots"))
			if err != nil {
				t.Fatal(err)
			}
			var boots []string
			for _, e := range entries {
				boots = append(boots, e.Name())
			}
			want := []string{st.boot}
			if st.want.PreviousBootID != "" {
				want = append(want, st.want.PreviousBootID)
			}
			slices.Sort(want)
			if !slices.Equal(boots, want) {
				t.Errorf("boots/ holds %v, want %v", boots, want)
			}
		})
	}
}

// A crash after the decision was recorded but before data/ was updated is
// mended by the next stage, with the same decision.
func TestBeginInstanceMendsHalfApplied(t *testing.T) {
	root := t.TempDir()
	begin(t, openStore(t, root, "b1", nil), "i-1")

	// The decision of boot b2 (new instance i-2) is written, then a crash:
	// the hook fails the first data/ write.
	writes := 0
	s, err := Open(Options{Root: root, BootID: "b2", SyncHook: func(point string) error {
		if point == atomicfile.BeforeRename {
			if writes++; writes == 2 {
				return errors.New("crash")
			}
		}
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.BeginInstance("i-2"); err == nil {
		t.Fatal("BeginInstance succeeded through the failed write")
	}
	if got, _ := readRealText(filepath.Join(s.Dir(), "data", "instance-id")); got != "i-1" {
		t.Fatalf("data/instance-id = %q, the failed write should have left i-1", got)
	}

	tr := begin(t, openStore(t, root, "b2", nil), "i-2")
	want := Transition{InstanceID: "i-2", PreviousInstanceID: "i-1", NewInstance: true, BootID: "b2", PreviousBootID: "b1", NewBoot: true, Resumed: true}
	tr.DecidedAt = time.Time{}
	if tr != want {
		t.Errorf("transition\n got  %+v\n want %+v", tr, want)
	}
	for name, want := range map[string]string{"instance-id": "i-2", "previous-instance-id": "i-1", "last-boot-id": "b2", "previous-boot-id": "b1"} {
		if got, _ := readRealText(filepath.Join(s.Dir(), "data", name)); got != want {
			t.Errorf("data/%s = %q, want %q", name, got, want)
		}
	}
}

func TestNamesAndScopes(t *testing.T) {
	s := openStore(t, t.TempDir(), "b1", nil)
	if _, _, err := s.ShouldRun("m", PerInstance); !errors.Is(err, ErrNoInstance) {
		t.Errorf("per-instance before BeginInstance: %v, want ErrNoInstance", err)
	}
	if err := s.MarkDone("m", PerInstance); !errors.Is(err, ErrNoInstance) {
		t.Errorf("MarkDone per-instance before BeginInstance: %v", err)
	}
	if err := s.WriteInstanceFile(UserDataRaw, nil); !errors.Is(err, ErrNoInstance) {
		t.Errorf("WriteInstanceFile before BeginInstance: %v", err)
	}
	if run, _, err := s.ShouldRun("m", PerBoot); err != nil || !run {
		t.Errorf("per-boot before BeginInstance: %v, %v", run, err)
	}
	for _, bad := range []string{"", ".", "..", "../m", "a/b", ".hidden", "a b", "m\x00", strings.Repeat("m", 201)} {
		if _, _, err := s.ShouldRun(bad, PerBoot); !errors.Is(err, ErrInvalidName) {
			t.Errorf("ShouldRun(%q): %v, want ErrInvalidName", bad, err)
		}
		if err := s.MarkStarted(bad, Once); !errors.Is(err, ErrInvalidName) {
			t.Errorf("MarkStarted(%q): %v, want ErrInvalidName", bad, err)
		}
		if _, err := s.BeginInstance(bad); !errors.Is(err, ErrInvalidName) {
			t.Errorf("BeginInstance(%q): %v, want ErrInvalidName", bad, err)
		}
	}
	for _, good := range []string{"write_files", "scripts-user", "part:001.sh", "cc@v2+x"} {
		if err := s.MarkDone(good, Once); err != nil {
			t.Errorf("MarkDone(%q): %v", good, err)
		}
	}
	if _, _, err := s.ShouldRun("m", Frequency("instance")); err == nil {
		t.Error("ShouldRun with an alias, not a canonical frequency: no error")
	}
	if err := s.MarkFinished("m", Once, Outcome("meh"), nil); err == nil {
		t.Error("MarkFinished with an unknown outcome: no error")
	}
}

func TestSemaphoreFiles(t *testing.T) {
	c := newClock()
	s := openStore(t, t.TempDir(), "b1", c)
	begin(t, s, "i-1")
	paths := map[Frequency]string{
		PerInstance: "instances/i-1/sem/m.per-instance",
		PerBoot:     "boots/b1/sem/m.per-boot",
		Once:        "sem/m.once",
	}
	for f, rel := range paths {
		if err := s.MarkDone("m", f); err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(s.Dir(), rel)
		var got map[string]any
		if err := json.Unmarshal([]byte(readFile(t, p)), &got); err != nil {
			t.Fatal(err)
		}
		want := map[string]any{"module": "m", "frequency": string(f), "at": "2025-06-01T12:00:00Z", "boot_id": "b1", "instance_id": "i-1"}
		if !mapsEqual(got, want) {
			t.Errorf("%s = %v, want %v", rel, got, want)
		}
		if perm(t, p) != 0o600 {
			t.Errorf("%s: mode %v", rel, perm(t, p))
		}
	}
	if err := s.MarkDone("m", Always); err != nil {
		t.Fatal(err)
	}
	matches, _ := filepath.Glob(filepath.Join(s.Dir(), "*", "*", "sem", "m.always"))
	if len(matches) != 0 {
		t.Errorf("always wrote a semaphore: %v", matches)
	}
	// ClearDone makes a module due again.
	if err := s.ClearDone("m", Once); err != nil {
		t.Fatal(err)
	}
	if run, _, _ := s.ShouldRun("m", Once); !run {
		t.Error("not due after ClearDone")
	}
	if err := s.ClearDone("m", Once); err != nil {
		t.Errorf("ClearDone of an absent semaphore: %v", err)
	}
}

func mapsEqual(a, b map[string]any) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func TestCorruptSemaphoreStillCounts(t *testing.T) {
	s := openStore(t, t.TempDir(), "b1", nil)
	p := filepath.Join(s.Dir(), "sem", "m.once")
	if err := os.WriteFile(p, []byte("{trunc"), 0o600); err != nil {
		t.Fatal(err)
	}
	run, info, err := s.ShouldRun("m", Once)
	if run || !errors.Is(err, ErrCorrupt) || info.Module != "m" {
		t.Errorf("ShouldRun = %v, %+v, %v; want false and ErrCorrupt", run, info, err)
	}
}

// writeRecord writes a run record by hand, as some earlier process left it.
func writeRecord(t *testing.T, s *Store, rel string, rec Record) {
	t.Helper()
	b, err := json.Marshal(rec)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(s.Dir(), rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// deadPID returns the pid of a process that has exited.
func deadPID(t *testing.T) int {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	return cmd.Process.Pid
}

func TestInterrupted(t *testing.T) {
	self := os.Getpid()
	selfStart, err := procStartTime(self)
	if err != nil {
		t.Skip("no /proc:", err)
	}
	dead := deadPID(t)
	tests := []struct {
		name  string
		f     Frequency
		setup func(t *testing.T, root string, s *Store) // s: this boot's store, instance i-1 begun
		want  bool
		err   error
	}{
		{name: "no record", f: PerInstance, setup: func(*testing.T, string, *Store) {}},
		{
			name: "running in an earlier boot (per-instance)", f: PerInstance, want: true,
			setup: func(t *testing.T, root string, _ *Store) {
				old := openStore(t, root, "b0", nil)
				begin(t, old, "i-1")
				if err := old.MarkStarted("m", PerInstance); err != nil {
					t.Fatal(err)
				}
			},
		},
		{
			name: "running in an earlier boot (once)", f: Once, want: true,
			setup: func(t *testing.T, root string, _ *Store) {
				if err := openStore(t, root, "b0", nil).MarkStarted("m", Once); err != nil {
					t.Fatal(err)
				}
			},
		},
		{
			name: "per-boot record of an earlier boot is out of scope", f: PerBoot,
			setup: func(t *testing.T, root string, _ *Store) {
				if err := openStore(t, root, "b0", nil).MarkStarted("m", PerBoot); err != nil {
					t.Fatal(err)
				}
			},
		},
		{
			name: "running in this boot, process exited", f: PerInstance, want: true,
			setup: func(t *testing.T, _ string, s *Store) {
				writeRecord(t, s, "instances/i-1/records/m.per-instance.json",
					Record{Module: "m", Frequency: PerInstance, State: RecordRunning, BootID: "b1", PID: dead})
			},
		},
		{
			name: "running in this boot, pid reused by another process", f: PerBoot, want: true,
			setup: func(t *testing.T, _ string, s *Store) {
				writeRecord(t, s, "boots/b1/records/m.per-boot.json",
					Record{Module: "m", Frequency: PerBoot, State: RecordRunning, BootID: "b1", PID: self, PIDStart: selfStart + 1})
			},
		},
		{
			name: "running now, in this process", f: PerInstance,
			setup: func(t *testing.T, _ string, s *Store) {
				if err := s.MarkStarted("m", PerInstance); err != nil {
					t.Fatal(err)
				}
			},
		},
		{
			name: "finished ok", f: Always,
			setup: func(t *testing.T, _ string, s *Store) {
				if err := s.MarkStarted("m", Always); err != nil {
					t.Fatal(err)
				}
				if err := s.MarkFinished("m", Always, OutcomeOK, nil); err != nil {
					t.Fatal(err)
				}
			},
		},
		{
			name: "finished failed is not interrupted", f: Once,
			setup: func(t *testing.T, _ string, s *Store) {
				if err := s.MarkFinished("m", Once, OutcomeFailed, errors.New("boom")); err != nil {
					t.Fatal(err)
				}
			},
		},
		{
			name: "acknowledged as interrupted in an earlier boot stays interrupted", f: PerInstance, want: true,
			setup: func(t *testing.T, root string, _ *Store) {
				old := openStore(t, root, "b0", nil)
				begin(t, old, "i-1")
				if err := old.MarkFinished("m", PerInstance, OutcomeInterrupted, nil); err != nil {
					t.Fatal(err)
				}
			},
		},
		{
			name: "started again after an interruption", f: PerInstance,
			setup: func(t *testing.T, root string, s *Store) {
				writeRecord(t, s, "instances/i-1/records/m.per-instance.json",
					Record{Module: "m", Frequency: PerInstance, State: RecordRunning, BootID: "b0", PID: 1})
				if err := s.MarkStarted("m", PerInstance); err != nil {
					t.Fatal(err)
				}
			},
		},
		{
			name: "corrupt record", f: Once, err: ErrCorrupt,
			setup: func(t *testing.T, _ string, s *Store) {
				if err := os.WriteFile(filepath.Join(s.Dir(), "records", "m.once.json"), []byte(`{"state":`), 0o600); err != nil {
					t.Fatal(err)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			s := openStore(t, root, "b1", nil)
			begin(t, s, "i-1")
			tt.setup(t, root, s)
			got, rec, err := s.Interrupted("m", tt.f)
			if !errors.Is(err, tt.err) {
				t.Fatalf("err = %v, want %v", err, tt.err)
			}
			if got != tt.want {
				t.Errorf("Interrupted = %v (record %+v), want %v", got, rec, tt.want)
			}
			if got && rec.Module != "m" {
				t.Errorf("record %+v", rec)
			}
		})
	}
}

func TestRunRecord(t *testing.T) {
	c := newClock()
	s := openStore(t, t.TempDir(), "b1", c)
	begin(t, s, "i-1")
	start := c.Now()
	if err := s.MarkStarted("runcmd", PerInstance); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(s.Dir(), "instances", "i-1", "records", "runcmd.per-instance.json")
	var running map[string]any
	if err := json.Unmarshal([]byte(readFile(t, p)), &running); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"module", "frequency", "state", "instance_id", "boot_id", "pid", "started_at"} {
		if _, ok := running[k]; !ok {
			t.Errorf("running record lacks %q: %v", k, running)
		}
	}
	if running["state"] != "running" {
		t.Errorf("state = %v", running["state"])
	}
	c.Add(1500 * time.Millisecond)
	if err := s.MarkFinished("runcmd", PerInstance, OutcomeFailed, errors.New("exit status 3")); err != nil {
		t.Fatal(err)
	}
	_, rec, err := s.Interrupted("runcmd", PerInstance)
	if err != nil {
		t.Fatal(err)
	}
	want := Record{
		Module: "runcmd", Frequency: PerInstance, State: RecordFinished, Outcome: OutcomeFailed,
		Error: "exit status 3", InstanceID: "i-1", BootID: "b1", PID: s.pid, PIDStart: s.pidStart,
		StartedAt: start, FinishedAt: start.Add(1500 * time.Millisecond), DurationMS: 1500,
	}
	if rec != want {
		t.Errorf("record\n got  %+v\n want %+v", rec, want)
	}
}

func TestListInterrupted(t *testing.T) {
	root := t.TempDir()
	old := openStore(t, root, "b0", nil)
	begin(t, old, "i-1")
	for _, m := range []struct {
		name string
		f    Frequency
	}{{"users", PerInstance}, {"seed", Once}, {"ntp", PerBoot}, {"hostname", PerBoot}, {"runcmd", PerInstance}} {
		if err := old.MarkStarted(m.name, m.f); err != nil {
			t.Fatal(err)
		}
	}
	if err := old.MarkFinished("runcmd", PerInstance, OutcomeOK, nil); err != nil {
		t.Fatal(err)
	}

	s := openStore(t, root, "b1", nil)
	begin(t, s, "i-1")
	// hostname runs again in this boot, so its interruption in b0 is over.
	if err := s.MarkStarted("hostname", PerBoot); err != nil {
		t.Fatal(err)
	}
	if err := s.MarkFinished("hostname", PerBoot, OutcomeOK, nil); err != nil {
		t.Fatal(err)
	}
	// An unreadable record is reported, the others still listed.
	if err := os.WriteFile(filepath.Join(s.Dir(), "records", "bad.once.json"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	recs, err := s.ListInterrupted()
	if !errors.Is(err, ErrCorrupt) {
		t.Errorf("err = %v, want ErrCorrupt for bad.once.json", err)
	}
	var got []string
	for _, r := range recs {
		got = append(got, r.Module+"."+string(r.Frequency))
	}
	want := []string{"ntp.per-boot", "seed.once", "users.per-instance"}
	if !slices.Equal(got, want) {
		t.Errorf("ListInterrupted = %v, want %v", got, want)
	}
}

func TestStatus(t *testing.T) {
	s := openStore(t, t.TempDir(), "b1", nil)
	if _, err := s.ReadStatus(); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("ReadStatus before any: %v, want fs.ErrNotExist", err)
	}
	if _, err := s.ReadResult(); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("ReadResult before any: %v, want fs.ErrNotExist", err)
	}
	t0 := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	code := 3
	st := Status{
		State: StateDegraded, InstanceID: "i-1", BootID: "b1", Stage: "final", StartedAt: t0, PID: 42,
		Stages: []StageResult{{
			Name: "init", Start: t0, End: t0.Add(250 * time.Millisecond),
			Modules: []ModuleResult{
				{Name: "users", Frequency: "per-instance", Outcome: "ok", Start: t0, End: t0.Add(20 * time.Millisecond)},
				{Name: "runcmd", Frequency: "per-instance", Outcome: "failed", Error: "exit status 3", ExitCode: &code},
			},
		}},
		Degraded: []string{"user data has no recognised header"},
	}
	if err := s.WriteStatus(st); err != nil {
		t.Fatal(err)
	}
	if st.Version != 0 || st.Errors != nil || st.Stages[0].DurationMS != 0 {
		t.Error("WriteStatus changed its argument")
	}
	got, err := s.ReadStatus()
	if err != nil {
		t.Fatal(err)
	}
	if got.Version != StatusVersion || got.Stages[0].DurationMS != 250 || got.Stages[0].Modules[0].DurationMS != 20 ||
		*got.Stages[0].Modules[1].ExitCode != 3 || got.Errors == nil || len(got.Errors) != 0 || got.Degraded[0] != st.Degraded[0] {
		t.Errorf("read back %+v", got)
	}

	// The file is plain JSON with stable snake_case names, and [] not null.
	raw := readFile(t, filepath.Join(s.Dir(), "status.json"))
	var m map[string]any
	if err := json.Unmarshal([]byte(raw), &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"version", "state", "instance_id", "boot_id", "stage", "started_at", "stages", "errors", "degraded", "interrupted", "pid"} {
		if _, ok := m[k]; !ok {
			t.Errorf("status.json lacks %q", k)
		}
	}
	if _, ok := m["finished_at"]; ok {
		t.Error("status.json has a zero finished_at")
	}
	if !strings.Contains(raw, `"errors": []`) || !strings.Contains(raw, `"exit_code": 3`) || !strings.Contains(raw, `"duration_ms": 250`) {
		t.Errorf("status.json:\n%s", raw)
	}

	st.State, st.FinishedAt = StateDone, t0.Add(time.Second)
	if err := s.WriteResult(st); err != nil {
		t.Fatal(err)
	}
	res, err := s.ReadResult()
	if err != nil || res.State != StateDone || !res.FinishedAt.Equal(t0.Add(time.Second)) {
		t.Errorf("ReadResult = %+v, %v", res, err)
	}
}

func TestCorruptStatusPreserved(t *testing.T) {
	for _, file := range []string{"status.json", "result.json"} {
		t.Run(file, func(t *testing.T) {
			c := newClock()
			s := openStore(t, t.TempDir(), "b1", c)
			p := filepath.Join(s.Dir(), file)
			read, write := s.ReadStatus, s.WriteStatus
			if file == "result.json" {
				read, write = s.ReadResult, s.WriteResult
			}
			for i, garbage := range []string{`{"state": "runn`, ``, `[1,2]`} {
				if err := os.WriteFile(p, []byte(garbage), 0o644); err != nil {
					t.Fatal(err)
				}
				_, err := read()
				var ce *CorruptError
				if !errors.Is(err, ErrCorrupt) || !errors.As(err, &ce) || ce.Path != p {
					t.Fatalf("read %q: %v, want a CorruptError for %s", garbage, err, p)
				}
				if !strings.Contains(err.Error(), p) {
					t.Errorf("error %q does not name the file", err)
				}
				c.Add(time.Second)
				if err := write(Status{State: StateRunning}); err != nil {
					t.Fatal(err)
				}
				if st, err := read(); err != nil || st.State != StateRunning {
					t.Errorf("after rewrite: %+v, %v", st, err)
				}
				kept, _ := filepath.Glob(p + ".corrupt-*")
				if len(kept) != i+1 {
					t.Fatalf("corrupt copies %v, want %d", kept, i+1)
				}
				slices.Sort(kept)
				if got := readFile(t, kept[i]); got != garbage {
					t.Errorf("kept %s = %q, want %q", kept[i], got, garbage)
				}
				if perm(t, kept[i]) != 0o600 {
					t.Errorf("%s: mode %v", kept[i], perm(t, kept[i]))
				}
			}
			// A good file is simply replaced.
			if err := write(Status{State: StateDone}); err != nil {
				t.Fatal(err)
			}
			if kept, _ := filepath.Glob(p + ".corrupt-*"); len(kept) != 3 {
				t.Errorf("corrupt copies %v after a good rewrite", kept)
			}
		})
	}
}

func TestWriteAbortKeepsOldStatus(t *testing.T) {
	for _, point := range atomicfile.Points() {
		t.Run(point, func(t *testing.T) {
			fail := false
			s, err := Open(Options{Root: t.TempDir(), BootID: "b1", SyncHook: func(p string) error {
				if fail && p == point {
					return errors.New("injected")
				}
				return nil
			}})
			if err != nil {
				t.Fatal(err)
			}
			if err := s.WriteStatus(Status{State: StateRunning}); err != nil {
				t.Fatal(err)
			}
			fail = true
			if err := s.WriteStatus(Status{State: StateDone}); err == nil {
				t.Fatal("write succeeded through the hook's error")
			}
			st, err := s.ReadStatus()
			want := StateRunning
			if point == atomicfile.BeforeDirSync {
				want = StateDone
			}
			if err != nil || st.State != want {
				t.Errorf("status %q, %v; want %q", st.State, err, want)
			}
			if left := tempFiles(t, s.Dir()); len(left) != 0 {
				t.Errorf("temporary files left: %v", left)
			}
		})
	}
}

// tempFiles lists the temporary files of atomic writes under dir.
func tempFiles(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if atomicfile.IsTemp(d.Name()) {
			out = append(out, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestInstanceFiles(t *testing.T) {
	s := openStore(t, t.TempDir(), "b1", nil)
	begin(t, s, "i-1")
	tests := []struct {
		name string
		err  error
	}{
		{name: UserDataRaw},
		{name: UserDataParts + "/001-script.sh"},
		{name: UserDataParts + "/sub/002.yaml"},
		{name: "", err: ErrInvalidName},
		{name: "/etc/passwd", err: ErrInvalidName},
		{name: "../i-2/user-data.raw", err: ErrInvalidName}, // not clean... and escaping
		{name: "..", err: ErrEscapesRoot},
		{name: "a/../b", err: ErrInvalidName},
		{name: "./a", err: ErrInvalidName},
		{name: "a//b", err: ErrInvalidName},
		{name: "a/", err: ErrInvalidName},
		{name: "sem/m.per-instance", err: ErrInvalidName},
		{name: "records", err: ErrInvalidName},
		{name: "boot-finished", err: ErrInvalidName},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data := []byte("content of " + tt.name)
			err := s.WriteInstanceFile(tt.name, data)
			if tt.err != nil {
				if err == nil {
					t.Fatalf("WriteInstanceFile(%q) succeeded", tt.name)
				}
				if !errors.Is(err, tt.err) && !errors.Is(err, ErrEscapesRoot) && !errors.Is(err, ErrInvalidName) {
					t.Errorf("err = %v, want %v", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got, err := s.ReadInstanceFile(tt.name)
			if err != nil || string(got) != string(data) {
				t.Errorf("read back %q, %v", got, err)
			}
			p := filepath.Join(s.Dir(), "instances", "i-1", tt.name)
			if perm(t, p) != 0o600 {
				t.Errorf("mode %v", perm(t, p))
			}
			for d := filepath.Dir(p); d != s.Dir(); d = filepath.Dir(d) {
				if perm(t, d) != 0o700 {
					t.Errorf("%s: mode %v", d, perm(t, d))
				}
			}
		})
	}
	if err := s.RemoveInstanceFile(UserDataParts); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ReadInstanceFile(UserDataParts + "/001-script.sh"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("after remove: %v", err)
	}
	if err := s.RemoveInstanceFile(UserDataParts); err != nil {
		t.Errorf("removing again: %v", err)
	}
	if err := s.RemoveInstanceFile("sem"); err == nil {
		t.Error("removed the store's sem directory")
	}

	if _, err := s.ReadBootFinished(); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("ReadBootFinished before: %v", err)
	}
	if err := s.MarkBootFinished("1.2.3"); err != nil {
		t.Fatal(err)
	}
	bf, err := s.ReadBootFinished()
	if err != nil || bf.BootID != "b1" || bf.Version != "1.2.3" || bf.At.IsZero() {
		t.Errorf("boot-finished = %+v, %v", bf, err)
	}
}

func TestPath(t *testing.T) {
	s := openStore(t, t.TempDir(), "b1", nil)
	root := s.Root()
	tests := []struct {
		in   string
		want string
		err  bool
	}{
		{in: "/var/log/ec2init.log", want: root + "/var/log/ec2init.log"},
		{in: "var/lib/ec2init", want: root + "/var/lib/ec2init"},
		{in: "/", want: root},
		{in: "", want: root},
		{in: "/a/../b/./c//", want: root + "/b/c"},
		{in: "/..", err: true},
		{in: "/../etc/passwd", err: true},
		{in: "a/../../b", err: true},
		{in: "/var/../../etc", err: true},
		{in: "/a\x00b", err: true},
	}
	for _, tt := range tests {
		got, err := s.Path(tt.in)
		if (err != nil) != tt.err || got != tt.want {
			t.Errorf("Path(%q) = %q, %v; want %q, error %v", tt.in, got, err, tt.want, tt.err)
		}
		if tt.err && !strings.Contains(tt.in, "\x00") && !errors.Is(err, ErrEscapesRoot) {
			t.Errorf("Path(%q): %v, want ErrEscapesRoot", tt.in, err)
		}
	}
}

// TestSymlinkOutOfRootRefused: a symlink under the root that climbs out of
// it ("../../../outside") is refused by Open and Clean with ErrEscapesRoot,
// and one with an absolute target is taken inside the root, as in a chroot;
// either way nothing outside the root is touched.
func TestSymlinkOutOfRootRefused(t *testing.T) {
	for _, link := range []string{StateDir, "/var/lib", RunDirPath} {
		for _, kind := range []string{"relative", "absolute"} {
			t.Run(link+"/"+kind, func(t *testing.T) {
				base := t.TempDir()
				root, outside := filepath.Join(base, "root"), filepath.Join(base, "outside")
				for _, d := range []string{root, outside} {
					if err := os.Mkdir(d, 0o755); err != nil {
						t.Fatal(err)
					}
				}
				p := filepath.Join(root, link)
				if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
					t.Fatal(err)
				}
				target := outside
				if kind == "relative" {
					rel, err := filepath.Rel(filepath.Dir(p), outside)
					if err != nil {
						t.Fatal(err)
					}
					target = rel
				}
				if err := os.Symlink(target, p); err != nil {
					t.Fatal(err)
				}
				_, err := Open(Options{Root: root, BootID: "b1"})
				if kind == "relative" && !errors.Is(err, ErrEscapesRoot) {
					t.Errorf("Open: %v, want ErrEscapesRoot", err)
				}
				if kind == "absolute" {
					if err != nil {
						t.Errorf("Open: %v", err)
					}
					// Inside the root: root + the link's target.
					inside := filepath.Join(root, outside)
					if link == "/var/lib" {
						inside = filepath.Join(inside, "ec2init")
					}
					if _, err := os.Stat(filepath.Join(inside, "data")); link != RunDirPath && err != nil {
						t.Errorf("state not made inside the root: %v", err)
					}
				}
				if entries, _ := os.ReadDir(outside); len(entries) != 0 || perm(t, outside) != 0o755 {
					t.Errorf("Open touched %s: %v entries, mode %v", outside, len(entries), perm(t, outside))
				}
				// What Clean would remove if it followed the link.
				precious := filepath.Join(outside, "precious")
				if link == "/var/lib" {
					precious = filepath.Join(outside, "ec2init", "data", "precious")
				}
				if err := os.MkdirAll(filepath.Dir(precious), 0o700); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(precious, nil, 0o600); err != nil {
					t.Fatal(err)
				}
				_, err = Clean(CleanOptions{Root: root, Logs: true, Seed: true})
				switch {
				case link == RunDirPath || kind == "absolute":
					if err != nil {
						t.Errorf("Clean: %v", err)
					}
				case !errors.Is(err, ErrEscapesRoot):
					t.Errorf("Clean: %v, want ErrEscapesRoot", err)
				}
				if link == RunDirPath {
					// The link itself is removed, not followed.
					if _, err := os.Lstat(p); !errors.Is(err, fs.ErrNotExist) {
						t.Errorf("link %s not removed: %v", link, err)
					}
				}
				if _, err := os.Stat(precious); err != nil {
					t.Errorf("Clean removed a file outside the root: %v", err)
				}
			})
		}
	}
}

func TestSymlinkInsideRootFollowed(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "data", "ec2init"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(root, "var", "lib"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../../data/ec2init", filepath.Join(root, StateDir)); err != nil {
		t.Fatal(err)
	}
	s := openStore(t, root, "b1", nil)
	begin(t, s, "i-1")
	if got, _ := readRealText(filepath.Join(root, "data", "ec2init", "data", "instance-id")); got != "i-1" {
		t.Errorf("instance id through the symlink = %q", got)
	}
	if perm(t, filepath.Join(root, "data", "ec2init")) != 0o700 {
		t.Error("symlinked state directory not set to 0700")
	}
}

func TestStaleTempsSwept(t *testing.T) {
	root := t.TempDir()
	c := newClock()
	s := openStore(t, root, "b1", c)
	mk := func(rel string, mtime time.Time) string {
		p := filepath.Join(s.Dir(), rel)
		if err := os.WriteFile(p, []byte("half"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, mtime, mtime); err != nil {
			t.Fatal(err)
		}
		return p
	}
	stale := mk("data/.instance-id.tmp-0123456789abcdef", c.Now().Add(-time.Hour))
	fresh := mk(".status.json.tmp-0123456789abcdef", c.Now())
	openStore(t, root, "b1", c)
	if _, err := os.Stat(stale); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("stale temporary file kept: %v", err)
	}
	if _, err := os.Stat(fresh); err != nil {
		t.Errorf("fresh temporary file removed: %v", err)
	}
}

func TestReadOnly(t *testing.T) {
	root := t.TempDir()
	ro, err := Open(Options{Root: root, BootID: "b1", ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if entries, _ := os.ReadDir(root); len(entries) != 0 {
		t.Errorf("read-only Open created %d entries", len(entries))
	}
	if _, err := ro.BeginInstance("i-1"); !errors.Is(err, ErrReadOnly) {
		t.Errorf("BeginInstance: %v", err)
	}
	if err := ro.WriteStatus(Status{}); !errors.Is(err, ErrReadOnly) {
		t.Errorf("WriteStatus: %v", err)
	}
	if err := ro.MarkDone("m", Once); !errors.Is(err, ErrReadOnly) {
		t.Errorf("MarkDone: %v", err)
	}
	if _, err := ro.ReadStatus(); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("ReadStatus: %v", err)
	}

	rw := openStore(t, root, "b1", nil)
	begin(t, rw, "i-1")
	if err := rw.WriteStatus(Status{State: StateDone}); err != nil {
		t.Fatal(err)
	}
	if st, err := ro.ReadStatus(); err != nil || st.State != StateDone {
		t.Errorf("ReadStatus = %+v, %v", st, err)
	}
	if id, err := ro.RecordedInstanceID(); err != nil || id != "i-1" {
		t.Errorf("RecordedInstanceID = %q, %v", id, err)
	}
}

func TestClean(t *testing.T) {
	tests := []struct {
		name    string
		opts    CleanOptions
		kept    []string // host paths that must remain
		removed []string // host paths that must be gone
	}{
		{
			name:    "default",
			kept:    []string{StateDir + "/seed/user-data", StateDir + "/" + BakeManifestName, LogFile, OutputLogFile, "/etc/keep"},
			removed: []string{StateDir + "/data", StateDir + "/instances", StateDir + "/sem", StateDir + "/status.json", RunDirPath},
		},
		{
			name:    "logs",
			opts:    CleanOptions{Logs: true},
			kept:    []string{StateDir + "/seed/user-data", "/etc/keep"},
			removed: []string{StateDir + "/instances", RunDirPath, LogFile, OutputLogFile},
		},
		{
			name:    "seed",
			opts:    CleanOptions{Seed: true},
			kept:    []string{StateDir + "/" + BakeManifestName, LogFile, "/etc/keep"},
			removed: []string{StateDir + "/seed", RunDirPath},
		},
		{
			name:    "seed and bake manifest",
			opts:    CleanOptions{Seed: true, BakeManifest: true},
			kept:    []string{LogFile, "/etc/keep"},
			removed: []string{StateDir, RunDirPath},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			s := openStore(t, root, "b1", nil)
			begin(t, s, "i-1")
			for _, f := range allFrequencies {
				if err := s.MarkDone("m", f); err != nil {
					t.Fatal(err)
				}
			}
			if err := s.WriteStatus(Status{State: StateDone}); err != nil {
				t.Fatal(err)
			}
			for _, p := range []string{StateDir + "/seed/user-data", StateDir + "/" + BakeManifestName, LogFile, OutputLogFile, RunDirPath + "/instance.env", "/etc/keep"} {
				full := filepath.Join(root, p)
				if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(full, []byte("x"), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			opts := tt.opts
			opts.Root = root
			removed, err := Clean(opts)
			if err != nil {
				t.Fatal(err)
			}
			if removed[0] != StateDir+"/data" {
				t.Errorf("removed %v; data/ must go first", removed)
			}
			for _, p := range tt.kept {
				if _, err := os.Lstat(filepath.Join(root, p)); err != nil {
					t.Errorf("%s: %v", p, err)
				}
			}
			for _, p := range tt.removed {
				if _, err := os.Lstat(filepath.Join(root, p)); !errors.Is(err, fs.ErrNotExist) {
					t.Errorf("%s not removed: %v", p, err)
				}
			}
			// After a clean, the disk is new: first boot, and once runs again.
			s = openStore(t, root, "b1", nil)
			tr := begin(t, s, "i-1")
			if !tr.FirstBootEver || !tr.NewInstance || tr.Resumed {
				t.Errorf("after clean: %+v", tr)
			}
			if run, _, _ := s.ShouldRun("m", Once); !run {
				t.Error("once module not due after clean")
			}
			// Cleaning twice is fine.
			if _, err := Clean(opts); err != nil {
				t.Errorf("second clean: %v", err)
			}
		})
	}
	if _, err := Clean(CleanOptions{Root: t.TempDir()}); err != nil {
		t.Errorf("clean of an empty root: %v", err)
	}
}

// Modules of one stage may run in parallel goroutines on one Store.
func TestConcurrentUse(t *testing.T) {
	s := openStore(t, t.TempDir(), "b1", nil)
	begin(t, s, "i-1")
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			m := "m" + string(rune('a'+i))
			for _, f := range allFrequencies {
				if err := s.MarkStarted(m, f); err != nil {
					t.Error(err)
				}
				if _, _, err := s.ShouldRun(m, f); err != nil {
					t.Error(err)
				}
				if err := s.MarkDone(m, f); err != nil {
					t.Error(err)
				}
				if err := s.MarkFinished(m, f, OutcomeOK, nil); err != nil {
					t.Error(err)
				}
			}
			if err := s.WriteStatus(Status{State: StateRunning, Stage: m}); err != nil {
				t.Error(err)
			}
			if _, err := s.ListInterrupted(); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if _, err := s.ReadStatus(); err != nil {
		t.Error(err)
	}
}

// BenchmarkModuleCycle is the state work the agent does around one module:
// the semaphore check, the record before and after, the semaphore.
func BenchmarkModuleCycle(b *testing.B) {
	s, err := Open(Options{Root: b.TempDir(), BootID: "b1"})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := s.BeginInstance("i-1"); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, _, err := s.ShouldRun("m", PerInstance); err != nil {
			b.Fatal(err)
		}
		if err := s.MarkStarted("m", PerInstance); err != nil {
			b.Fatal(err)
		}
		if err := s.MarkDone("m", PerInstance); err != nil {
			b.Fatal(err)
		}
		if err := s.MarkFinished("m", PerInstance, OutcomeOK, nil); err != nil {
			b.Fatal(err)
		}
	}
}

// readRealText reads a one-line text file at a real path, as the store
// writes them; a missing file is "".
func readRealText(p string) (string, error) {
	b, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	return strings.TrimSpace(string(b)), err
}

// readRealJSON parses the JSON file at a real path into a T.
func readRealJSON[T any](p string) (T, error) {
	var v T
	b, err := os.ReadFile(p)
	if err != nil {
		return v, err
	}
	err = json.Unmarshal(b, &v)
	return v, err
}

// TestDirectoriesMadeAgainAfterRemoval: the store checks a directory once
// per process; one it removed itself is made again by the next write.
func TestDirectoriesMadeAgainAfterRemoval(t *testing.T) {
	s := openStore(t, t.TempDir(), "b1", nil)
	begin(t, s, "i-1")
	for round := 1; round <= 2; round++ {
		if err := s.WriteInstanceFile("user-data.parts/001", []byte("x")); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		if b, err := s.ReadInstanceFile("user-data.parts/001"); err != nil || string(b) != "x" {
			t.Fatalf("round %d: read %q, %v", round, b, err)
		}
		if err := s.RemoveInstanceFile("user-data.parts"); err != nil {
			t.Fatal(err)
		}
	}
}
