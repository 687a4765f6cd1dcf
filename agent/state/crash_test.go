package state

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ec2init/ec2init/agent/state/atomicfile"
)

// The crash tests run the test binary again as a child process that uses
// the store and is killed with SIGKILL: at random moments, or from the
// SyncHook at a chosen point of a write. These variables configure it.
const (
	crashModeEnv     = "EC2INIT_STATE_CRASH_MODE" // "loop", "status" or "module"
	crashRootEnv     = "EC2INIT_STATE_CRASH_ROOT"
	crashBootEnv     = "EC2INIT_STATE_CRASH_BOOT"
	crashInstanceEnv = "EC2INIT_STATE_CRASH_INSTANCE"
	crashPointEnv    = "EC2INIT_STATE_CRASH_POINT"
)

func TestMain(m *testing.M) {
	if mode := os.Getenv(crashModeEnv); mode != "" {
		if err := crashChild(mode); err != nil {
			fmt.Fprintln(os.Stderr, "crash child:", err)
			os.Exit(3)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func crashChild(mode string) error {
	root, boot, instance := os.Getenv(crashRootEnv), os.Getenv(crashBootEnv), os.Getenv(crashInstanceEnv)
	switch mode {
	case "loop":
		return crashLoop(root, boot, instance)
	case "status", "module":
		point := os.Getenv(crashPointEnv)
		armed := false
		s, err := Open(Options{Root: root, BootID: boot, SyncHook: func(p string) error {
			if armed && p == point {
				syscall.Kill(os.Getpid(), syscall.SIGKILL)
				select {} // the signal is on its way
			}
			return nil
		}})
		if err != nil {
			return err
		}
		if _, err := s.BeginInstance(instance); err != nil {
			return err
		}
		if mode == "status" {
			armed = true
			return s.WriteStatus(Status{State: StateRunning, Stage: "new"})
		}
		if err := s.MarkStarted("users", PerInstance); err != nil {
			return err
		}
		armed = true // the module ran; its semaphore is being written
		return s.MarkDone("users", PerInstance)
	}
	return fmt.Errorf("unknown mode %q", mode)
}

// crashLoop does what a boot does, over and over, until it is killed.
func crashLoop(root, boot, instance string) error {
	s, err := Open(Options{Root: root, BootID: boot})
	if err != nil {
		return err
	}
	if _, err := s.BeginInstance(instance); err != nil {
		return err
	}
	// Ready only once the state directories exist: a kill before that
	// would leave nothing to check, which is not what this test asks.
	fmt.Println("ready")
	started := time.Now()
	for i := 0; ; i++ {
		m, f := fmt.Sprintf("mod%d", i%7), allFrequencies[i%len(allFrequencies)]
		if _, _, err := s.ShouldRun(m, f); err != nil {
			return err
		}
		if _, _, err := s.Interrupted(m, f); err != nil {
			return err
		}
		if err := s.MarkStarted(m, f); err != nil {
			return err
		}
		if err := s.WriteInstanceFile(UserDataRaw, payload(i, 1<<(10+i%8))); err != nil {
			return err
		}
		if err := s.WriteInstanceFile(fmt.Sprintf("%s/part-%d", UserDataParts, i%3), payload(i, 1<<(8+i%5))); err != nil {
			return err
		}
		if err := s.MarkDone(m, f); err != nil {
			return err
		}
		if err := s.MarkFinished(m, f, OutcomeOK, nil); err != nil {
			return err
		}
		st := crashStatus(i, started)
		if err := s.WriteStatus(st); err != nil {
			return err
		}
		if i%4 == 3 {
			st.State, st.FinishedAt = StateDone, time.Now()
			if err := s.WriteResult(st); err != nil {
				return err
			}
			if err := s.MarkBootFinished("test"); err != nil {
				return err
			}
		}
	}
}

func crashStatus(i int, started time.Time) Status {
	st := Status{State: StateRunning, Stage: "final", StartedAt: started, PID: os.Getpid()}
	mods := make([]ModuleResult, i%50)
	for j := range mods {
		mods[j] = ModuleResult{Name: fmt.Sprintf("mod%d", j), Frequency: "per-instance", Outcome: "ok", Error: strings.Repeat("e", j*10)}
	}
	st.Stages = []StageResult{{Name: "final", Start: started, Modules: mods}}
	return st
}

// payload is self-checking content: a header with the body's length and
// hash, so a torn or mixed file is detected.
func payload(i, size int) []byte {
	tok := []byte(strconv.Itoa(i) + " ")
	body := bytes.Repeat(tok, size/len(tok)+1)[:size]
	sum := sha256.Sum256(body)
	return append([]byte(fmt.Sprintf("%d %s\n", len(body), hex.EncodeToString(sum[:]))), body...)
}

func checkPayload(b []byte) error {
	header, body, ok := bytes.Cut(b, []byte("\n"))
	if !ok {
		return errors.New("no header")
	}
	var n int
	var sum string
	if _, err := fmt.Sscanf(string(header), "%d %s", &n, &sum); err != nil {
		return fmt.Errorf("header %q: %v", header, err)
	}
	got := sha256.Sum256(body)
	if len(body) != n || hex.EncodeToString(got[:]) != sum {
		return fmt.Errorf("torn: %d bytes, header says %d", len(body), n)
	}
	return nil
}

// checkState parses every file in the state directory: each must be whole.
// It returns how many temporary files interrupted writes left.
func checkState(t *testing.T, dir string) (temps int) {
	t.Helper()
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		name := d.Name()
		parent := filepath.Base(filepath.Dir(p))
		var perr error
		switch {
		case atomicfile.IsTemp(name):
			temps++
		case strings.Contains(name, ".corrupt-"):
			perr = errors.New("a state file was found corrupt")
		case parent == "data":
			var v string
			if v, perr = readRealText(p); perr == nil && !validName(v) {
				perr = fmt.Errorf("holds %q", v)
			}
		case name == "transition.json":
			var tr Transition
			if tr, perr = readRealJSON[Transition](p); perr == nil && tr.InstanceID == "" {
				perr = errors.New("no instance id")
			}
		case parent == "sem":
			var si SemInfo
			if si, perr = readRealJSON[SemInfo](p); perr == nil && (si.Module == "" || !si.Frequency.Valid()) {
				perr = fmt.Errorf("%+v", si)
			}
		case parent == "records":
			var r Record
			if r, perr = readRealJSON[Record](p); perr == nil && r.State != RecordRunning && r.State != RecordFinished {
				perr = fmt.Errorf("%+v", r)
			}
		case rel == "status.json" || rel == "result.json":
			var st Status
			if st, perr = readRealJSON[Status](p); perr == nil && st.Version != StatusVersion {
				perr = fmt.Errorf("version %d", st.Version)
			}
		case name == "boot-finished":
			_, perr = readRealJSON[BootFinished](p)
		case name == UserDataRaw || parent == UserDataParts:
			var b []byte
			if b, perr = os.ReadFile(p); perr == nil {
				perr = checkPayload(b)
			}
		default:
			perr = errors.New("unexpected file")
		}
		if perr != nil {
			t.Errorf("%s: %v", rel, perr)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return temps
}

// TestCrashSafety kills a process using the store at random moments, again
// and again on the same disk; after each kill every state file must parse,
// and the next process must carry on.
func TestCrashSafety(t *testing.T) {
	kills := 50
	if testing.Short() {
		kills = 10
	}
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, seed))
	root := t.TempDir()
	dir := filepath.Join(root, StateDir)
	temps := 0
	for n := range kills {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(),
			crashModeEnv+"=loop",
			crashRootEnv+"="+root,
			crashBootEnv+"=boot-"+strconv.Itoa(n/2),     // pairs of runs share a boot
			crashInstanceEnv+"=i-"+strconv.Itoa(n/10%3), // and the instance changes now and then
		)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		if line, err := bufio.NewReader(out).ReadString('\n'); err != nil || line != "ready\n" {
			cmd.Wait()
			t.Fatalf("child %d: %q, %v; stderr:\n%s", n, line, err, stderr.String())
		}
		time.Sleep(time.Duration(rng.Int64N(int64(40 * time.Millisecond))))
		if err := cmd.Process.Kill(); err != nil {
			t.Fatal(err)
		}
		err = cmd.Wait()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
			t.Fatalf("child %d was not killed but ended: %v; stderr:\n%s", n, err, stderr.String())
		}
		temps = checkState(t, dir)
		if t.Failed() {
			t.Fatalf("after kill %d (seed %d)", n, seed)
		}
	}
	t.Logf("%d kills, %d temporary files left", kills, temps)

	// A later boot sweeps the leftovers and finds everything in order.
	later := time.Now().Add(time.Hour)
	s, err := Open(Options{Root: root, BootID: "boot-last", Now: func() time.Time { return later }})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.BeginInstance("i-0"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ReadStatus(); err != nil {
		t.Error(err)
	}
	if _, err := s.ListInterrupted(); err != nil {
		t.Error(err)
	}
	if left := checkState(t, dir); left != 0 {
		t.Errorf("%d temporary files left after Open", left)
	}
}

// runCrashChild runs a child in mode, killed by its own hook at point.
func runCrashChild(t *testing.T, mode, root, point string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(),
		crashModeEnv+"="+mode,
		crashRootEnv+"="+root,
		crashBootEnv+"=b1",
		crashInstanceEnv+"=i-1",
		crashPointEnv+"="+point,
	)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("child not killed at %s: %v\n%s", point, err, out)
	}
}

// TestCrashAtEachPoint kills a write of status.json at each of its steps:
// before the rename the old status remains, after it the new one; either
// way the file parses, and the next Open removes the leftover temporary file.
func TestCrashAtEachPoint(t *testing.T) {
	for _, point := range atomicfile.Points() {
		t.Run(point, func(t *testing.T) {
			root := t.TempDir()
			s := openStore(t, root, "b1", nil)
			if err := s.WriteStatus(Status{State: StateRunning, Stage: "old"}); err != nil {
				t.Fatal(err)
			}
			runCrashChild(t, "status", root, point)

			st, err := s.ReadStatus()
			if err != nil {
				t.Fatal(err)
			}
			want, wantTemps := "old", 1
			if point == atomicfile.BeforeDirSync {
				want, wantTemps = "new", 0
			}
			if st.Stage != want {
				t.Errorf("stage %q, want %q", st.Stage, want)
			}
			if temps := checkState(t, s.Dir()); temps != wantTemps {
				t.Errorf("%d temporary files, want %d", temps, wantTemps)
			}
			later := time.Now().Add(time.Hour)
			if _, err := Open(Options{Root: root, BootID: "b2", Now: func() time.Time { return later }}); err != nil {
				t.Fatal(err)
			}
			if temps := checkState(t, s.Dir()); temps != 0 {
				t.Errorf("%d temporary files after Open", temps)
			}
		})
	}
}

// TestCrashDuringModule kills the agent while it writes a module's
// semaphore: unless the rename happened the module is not done, and its
// record says it was interrupted, in the same boot and in the next.
func TestCrashDuringModule(t *testing.T) {
	for _, point := range atomicfile.Points() {
		t.Run(point, func(t *testing.T) {
			root := t.TempDir()
			runCrashChild(t, "module", root, point)
			done := point == atomicfile.BeforeDirSync
			for _, boot := range []string{"b1", "b2"} {
				s := openStore(t, root, boot, nil)
				begin(t, s, "i-1")
				run, _, err := s.ShouldRun("users", PerInstance)
				if err != nil || run == done {
					t.Errorf("boot %s: ShouldRun = %v, %v; want %v", boot, run, err, !done)
				}
				intr, rec, err := s.Interrupted("users", PerInstance)
				if err != nil || !intr || rec.BootID != "b1" || rec.State != RecordRunning {
					t.Errorf("boot %s: Interrupted = %v, %+v, %v", boot, intr, rec, err)
				}
			}
		})
	}
}
