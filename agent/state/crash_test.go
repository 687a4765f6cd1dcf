package state

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
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
// the store and is killed with SIGKILL: from the SyncHook at a chosen point
// of a write, or in the middle of a script it runs. These variables
// configure it.
const (
	crashModeEnv     = "EC2INIT_STATE_CRASH_MODE" // "boot", "status", "module" or "script"
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
	case "boot":
		// Killed by its own hook at the n-th write step (0: never).
		n, err := strconv.Atoi(os.Getenv(crashPointEnv))
		if err != nil {
			return err
		}
		step := 0
		return crashBoot(root, boot, instance, func(string) error {
			if step++; step == n {
				syscall.Kill(os.Getpid(), syscall.SIGKILL)
				select {} // the signal is on its way
			}
			return nil
		})
	case "script":
		return crashScript(root, boot, instance)
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

// crashModules are the modules crashBoot runs: one of each frequency.
var crashModules = []struct {
	name string
	freq Frequency
}{{"users", PerInstance}, {"mounts", PerBoot}, {"seed", Once}, {"runcmd", Always}}

// crashBoot does what a boot does, once, with hook at every write step:
// the instance decision, user data, for each module its run record,
// semaphore and status, then the result and boot-finished. Run again on the
// same disk after a crash it carries on, as a restarted agent does.
func crashBoot(root, boot, instance string, hook func(string) error) error {
	s, err := Open(Options{Root: root, BootID: boot, SyncHook: hook})
	if err != nil {
		return err
	}
	if _, err := s.BeginInstance(instance); err != nil {
		return err
	}
	if err := s.WriteInstanceFile(UserDataRaw, payload(1, 4<<10)); err != nil {
		return err
	}
	if err := s.WriteInstanceFile(UserDataParts+"/part-1", payload(2, 1<<10)); err != nil {
		return err
	}
	started := time.Now()
	for i, m := range crashModules {
		run, _, err := s.ShouldRun(m.name, m.freq)
		if err != nil {
			return err
		}
		if _, _, err := s.Interrupted(m.name, m.freq); err != nil {
			return err
		}
		if run {
			if err := s.MarkStarted(m.name, m.freq); err != nil {
				return err
			}
			if err := s.MarkDone(m.name, m.freq); err != nil {
				return err
			}
			if err := s.MarkFinished(m.name, m.freq, OutcomeOK, nil); err != nil {
				return err
			}
		}
		if err := s.WriteStatus(crashStatus(i, started)); err != nil {
			return err
		}
	}
	st := crashStatus(len(crashModules), started)
	st.State, st.FinishedAt = StateDone, time.Now()
	if err := s.WriteResult(st); err != nil {
		return err
	}
	if err := s.WriteStatus(st); err != nil {
		return err
	}
	return s.MarkBootFinished("test")
}

// crashScript marks a user script started, with a running status, and
// becomes the script (exec, so the pid the record names is the one the
// parent kills); the script says "ready" and sleeps until killed.
func crashScript(root, boot, instance string) error {
	s, err := Open(Options{Root: root, BootID: boot})
	if err != nil {
		return err
	}
	if _, err := s.BeginInstance(instance); err != nil {
		return err
	}
	pid, start := s.Owner()
	if err := s.WriteStatus(Status{State: StateRunning, BootID: boot, InstanceID: instance, Stage: "final", PID: pid, PIDStart: start}); err != nil {
		return err
	}
	if err := s.MarkStarted("scripts_user", PerInstance); err != nil {
		return err
	}
	sh, err := exec.LookPath("sh")
	if err != nil {
		return err
	}
	return syscall.Exec(sh, []string{"sh", "-c", "echo ready; exec sleep 30"}, os.Environ())
}

func crashStatus(i int, started time.Time) Status {
	st := Status{State: StateRunning, Stage: "final", StartedAt: started, PID: os.Getpid()}
	mods := make([]ModuleResult, i)
	for j := range mods {
		mods[j] = ModuleResult{Name: crashModules[j].name, Frequency: string(crashModules[j].freq), Outcome: "ok", Error: strings.Repeat("e", j*10)}
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

// countWrites is how many hook steps one whole crashBoot on a fresh disk
// goes through: every write point of every file it writes.
func countWrites(t *testing.T) int {
	t.Helper()
	n := 0
	if err := crashBoot(t.TempDir(), "b1", "i-1", func(string) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	return n
}

// runBootChild runs crashBoot in a child killed at write step n (0: not
// killed) and reports whether it was killed; any other end is fatal.
func runBootChild(t *testing.T, root string, n int) bool {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(),
		crashModeEnv+"=boot",
		crashRootEnv+"="+root,
		crashBootEnv+"=b1",
		crashInstanceEnv+"=i-1",
		crashPointEnv+"="+strconv.Itoa(n),
	)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	switch {
	case err == nil && n == 0:
		return false
	case errors.As(err, &ee) && ee.Sys().(syscall.WaitStatus).Signal() == syscall.SIGKILL && n > 0:
		return true
	}
	t.Fatalf("child (kill at step %d) ended with %v\n%s", n, err, out)
	return false
}

// TestCrashSafety kills a boot at each write step of each file it writes
// (the instance decision and data, user data, run records, semaphores,
// status, result, boot-finished), in turn, each on a fresh disk: after the
// kill every state file parses, and a boot run again on that disk finishes
// with everything recorded. The kill points come from SyncHook, so the test
// does not depend on timing. It takes about a second: one boot per write
// step (over 80), which is the point.
func TestCrashSafety(t *testing.T) {
	total := countWrites(t)
	if want := 4 * 20; total < want {
		t.Fatalf("a boot has %d write steps, want at least %d: the kill points miss writes", total, want)
	}
	_, fast := memDir(t)
	t.Run("points", func(t *testing.T) {
		for n := 1; n <= total; n++ {
			if testing.Short() && !fast && ((n-1)/4)%3 != 0 {
				// Without tmpfs every boot costs its fsyncs (about 70 ms
				// on a disk): -short kills at every point of one write
				// in three.
				continue
			}
			t.Run(strconv.Itoa(n), func(t *testing.T) {
				t.Parallel()
				crashAndRerun(t, n, total)
			})
		}
	})
	t.Logf("%d kill points", total)

	// A later Open sweeps what the kills left.
	root := t.TempDir()
	runBootChild(t, root, total/2)
	later := time.Now().Add(time.Hour)
	if _, err := Open(Options{Root: root, BootID: "b2", Now: func() time.Time { return later }}); err != nil {
		t.Fatal(err)
	}
	if left := checkState(t, filepath.Join(root, StateDir)); left != 0 {
		t.Errorf("%d temporary files left after Open", left)
	}
}

// memDir is a new directory on tmpfs (/dev/shm) when there is one, else
// t.TempDir(); fast says which. A SIGKILL loses nothing the page cache holds,
// so fsync is beside the point of these tests, and on tmpfs it costs
// nothing: two boots per kill point stay quick.
func memDir(t *testing.T) (dir string, fast bool) {
	t.Helper()
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		if dir, err := os.MkdirTemp("/dev/shm", "ec2init-crash-"); err == nil {
			t.Cleanup(func() { os.RemoveAll(dir) })
			return dir, true
		}
	}
	return t.TempDir(), false
}

// crashAndRerun kills a boot on a fresh disk at write step n of total,
// checks every state file, runs the boot again and checks it finished.
func crashAndRerun(t *testing.T, n, total int) {
	root, _ := memDir(t)
	dir := filepath.Join(root, StateDir)
	if !runBootChild(t, root, n) {
		t.Fatalf("step %d: not killed", n)
	}
	checkState(t, dir)
	if t.Failed() {
		t.Fatalf("after the kill at step %d of %d", n, total)
	}
	// The restarted agent carries on (in this process: it is not killed).
	if err := crashBoot(root, "b1", "i-1", nil); err != nil {
		t.Fatalf("step %d: rerun: %v", n, err)
	}
	checkState(t, dir)
	s := openStore(t, root, "b1", nil)
	begin(t, s, "i-1")
	st, err := s.ReadStatus()
	if err != nil || st.State != StateDone {
		t.Errorf("step %d: status after the rerun = %q, %v", n, st.State, err)
	}
	for _, m := range crashModules {
		if run, _, err := s.ShouldRun(m.name, m.freq); err != nil || (run != (m.freq == Always)) {
			t.Errorf("step %d: %s ShouldRun = %v, %v after the rerun", n, m.name, run, err)
		}
	}
	if _, err := s.ReadBootFinished(); err != nil {
		t.Errorf("step %d: boot-finished: %v", n, err)
	}
	if t.Failed() {
		t.Fatalf("after the kill at step %d of %d and a rerun", n, total)
	}
}

// TestCrashDuringScript SIGKILLs the agent while a user script runs: the
// script's record stays running and is reported interrupted, its semaphore
// is absent, and the running status reads as the agent having died.
func TestCrashDuringScript(t *testing.T) {
	root := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(),
		crashModeEnv+"=script",
		crashRootEnv+"="+root,
		crashBootEnv+"=b1",
		crashInstanceEnv+"=i-1",
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
	// "ready" comes from the script itself: the kill is mid-script.
	if line, err := bufio.NewReader(out).ReadString('\n'); err != nil || line != "ready\n" {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("child: %q, %v; stderr:\n%s", line, err, stderr.String())
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	err = cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("child not killed: %v; stderr:\n%s", err, stderr.String())
	}

	s := openStore(t, root, "b1", nil)
	begin(t, s, "i-1")
	checkState(t, s.Dir())
	intr, rec, err := s.Interrupted("scripts_user", PerInstance)
	if err != nil || !intr || rec.State != RecordRunning || rec.PID != cmd.Process.Pid {
		t.Errorf("Interrupted = %v, %+v, %v; want the killed pid %d's running record", intr, rec, err, cmd.Process.Pid)
	}
	if run, _, err := s.ShouldRun("scripts_user", PerInstance); err != nil || !run {
		t.Errorf("ShouldRun = %v, %v: a killed script has no semaphore", run, err)
	}
	st, err := s.ReadLiveStatus()
	if err != nil || st.State != StateError || len(st.Errors) == 0 || !strings.HasPrefix(st.Errors[0], AgentDied) {
		t.Errorf("status = %s %q, %v; want error %q", st.State, st.Errors, err, AgentDied)
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
