package agent_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/ec2init/ec2init/agent"
	"github.com/ec2init/ec2init/agent/imds"
	"github.com/ec2init/ec2init/agent/imds/imdssim"
	"github.com/ec2init/ec2init/agent/state"
	"github.com/ec2init/ec2init/agent/state/atomicfile"
	"github.com/ec2init/ec2init/modules/all"
)

// killLoopUserData has user scripts of each frequency that is not per-boot
// (those may run once per boot id) and cloud-config for several built-in
// modules. Every user script and runcmd appends a line to its counter.
func killLoopUserData() string {
	cfg := `#cloud-config
ssh_genkeytypes: [ed25519, ecdsa]
users: [default]
write_files:
  - path: /etc/killloop/a.conf
    content: "a = 1\n"
  - path: /etc/killloop/b.conf
    content: "b = 2\n"
runcmd:
  - echo run >> "$EC2INIT_ROOT/out/runcmd"
final_message: killloop done
`
	return multipart(
		[3]string{"text/cloud-config", "config.yaml", cfg},
		[3]string{"text/x-shellscript", "s0.sh", counter("s0")},
		[3]string{"text/x-shellscript", "s 0.sh", counter("s0b")},
		[3]string{"text/x-shellscript-per-instance", "s1.sh", counter("s1")},
		[3]string{"text/x-shellscript-per-once", "once.sh", counter("once")},
		[3]string{"text/x-shellscript", "s2.sh", counter("s2")},
	)
}

// countedScripts are the counters of user code that must never run twice,
// and the names of their run records.
var countedScripts = []string{"s0", "s0b", "s1", "once", "s2", "runcmd"}

var scriptRecords = map[string]string{"s0": "scripts_user:s0.sh", "s0b": "scripts_user:s_0.sh", "s1": "scripts_user:s1.sh",
	"once": "scripts_user:once.sh", "s2": "scripts_user:s2.sh", "runcmd": "runcmd"}

// killLoopRoot prepares a fresh disk: accounts and sshd for the ssh and
// users modules, and out/ for the counters.
func killLoopRoot(t *testing.T) string {
	t.Helper()
	// On tmpfs when there is one: SIGKILL tests the process dying, not the
	// disk (the page cache survives), and the boot's fsyncs on a shared
	// disk would make a hundred boots take minutes.
	root, err := os.MkdirTemp("/dev/shm", "ec2init-killloop-")
	if err == nil {
		t.Cleanup(func() { os.RemoveAll(root) })
	} else {
		root = t.TempDir()
	}
	sshRoot(t, root)
	if err := os.MkdirAll(filepath.Join(root, "out"), 0o755); err != nil {
		t.Fatal(err)
	}
	return root
}

func killLoopOptions(t *testing.T, root, url, bootID string) agent.Options {
	client, err := imds.New(imds.Config{Endpoint: url, MaxAttempts: 3, RequestTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return agent.Options{Root: root, IMDS: client, Log: zap.NewNop(), BootID: bootID,
		IdentifyDeadline: 10 * time.Second, LockTimeout: 30 * time.Second, Registry: all.Registry()}
}

// TestKillLoopChild is the boot TestKillLoop kills. With EC2INIT_KILL_AT=N
// it kills itself with SIGKILL at the N-th step of gated work (see
// agent.Options.Hook), after writing which step that was.
func TestKillLoopChild(t *testing.T) {
	root := os.Getenv("EC2INIT_KILL_ROOT")
	if root == "" {
		t.Skip("only run as TestKillLoop's child")
	}
	opts := killLoopOptions(t, root, os.Getenv("EC2INIT_KILL_URL"), os.Getenv("EC2INIT_KILL_BOOT"))
	killAt, _ := strconv.Atoi(os.Getenv("EC2INIT_KILL_AT"))
	n := 0
	opts.Hook = func(point, name string) {
		n++
		if n == killAt {
			os.WriteFile(filepath.Join(root, "out", "killpoint"), []byte(point+":"+name), 0o644)
			syscall.Kill(os.Getpid(), syscall.SIGKILL)
			time.Sleep(time.Minute)
		}
	}
	agent.Boot(context.Background(), opts)
}

// TestKillLoop is the power failure at any moment of a first boot: a real
// boot in a child process is killed with SIGKILL at a random point (half
// the time at a random step of the gated work: each module's and script's
// start, end and semaphore; half the time after a random delay, which
// lands inside modules and scripts), then the disk boots again normally
// (the same boot id, as systemd restarting the unit, or a new one) until
// the boot is over. It counts user code that ran twice, ec2init modules
// left interrupted or never run again, and state files that do not parse:
// all must be zero.
func TestKillLoop(t *testing.T) {
	if testing.Short() {
		t.Skip("about a minute of child processes")
	}
	iterations := 100
	if v, err := strconv.Atoi(os.Getenv("EC2INIT_KILL_ITERATIONS")); err == nil && v > 0 {
		iterations = v
	}
	sim, url := imdssim.Start(t, imdssim.Options{})
	sim.SetUserData([]byte(killLoopUserData()))

	// Calibration: an undisturbed boot, in a child as the killed ones run,
	// says how long a boot takes, how many steps it has and which
	// ec2init modules it runs.
	calRoot := killLoopRoot(t)
	start := time.Now()
	if out, err := killLoopChild(calRoot, url, boot1, 0).CombinedOutput(); err != nil {
		t.Fatalf("calibration boot: %v\n%s", err, out)
	}
	full := time.Since(start)
	calStatus := readFinalStatus(t, calRoot)
	// The child's start (exec, IMDS) before the boot's own work, where a
	// delay would only land before anything happened.
	startup := max(0, full-calStatus.FinishedAt.Sub(calStatus.StartedAt)) * 3 / 4
	if calStatus.State != state.StateDone {
		t.Fatalf("calibration boot: %s %q %q %q", calStatus.State, calStatus.Errors, calStatus.Degraded, calStatus.Interrupted)
	}
	var builtins []state.ModuleResult
	steps := 0
	for _, sr := range calStatus.Stages {
		for _, m := range sr.Modules {
			steps += 3 // start, ran, done
			if !isUserWork(m.Name) && m.Frequency != string(state.Always) && m.Outcome == string(state.OutcomeOK) {
				builtins = append(builtins, m)
			}
		}
	}
	wantRuns(t, "calibration", calRoot, 1)
	t.Logf("calibration: boot %v, %d steps, ec2init modules %v", full.Round(time.Millisecond), steps, names(builtins))
	for _, sr := range calStatus.Stages {
		for _, m := range sr.Modules {
			t.Logf("  %s %s %.1fms", sr.Name, m.Name, m.DurationMS)
		}
	}

	var doubleRuns, neverRetried, corrupt, unreported int
	points := map[string]int{}
	for i := 0; i < iterations; i++ {
		root := killLoopRoot(t)
		var point string
		var child *exec.Cmd
		if i%2 == 0 {
			child = killLoopChild(root, url, boot1, 1+rand.IntN(steps))
			if err := child.Start(); err != nil {
				t.Fatal(err)
			}
		} else {
			child = killLoopChild(root, url, boot1, 0)
			if err := child.Start(); err != nil {
				t.Fatal(err)
			}
			time.Sleep(startup + time.Duration(rand.Int64N(int64(full-startup)+1)))
		}
		if i%2 == 0 {
			// It kills itself at its step; a boot with fewer steps than
			// drawn (a step's work may differ) is stopped after a while.
			waited := make(chan struct{})
			go func() {
				select {
				case <-waited:
				case <-time.After(3 * full):
					syscall.Kill(-child.Process.Pid, syscall.SIGKILL)
				}
			}()
			child.Wait()
			close(waited)
		}
		// Power loss: the agent and what runs in its process group die.
		syscall.Kill(-child.Process.Pid, syscall.SIGKILL)
		child.Wait()
		if b, err := os.ReadFile(filepath.Join(root, "out", "killpoint")); err == nil {
			point = "step " + string(b)
		} else {
			point = "delay " + runningRecord(root)
		}
		points[point]++

		bootID := boot1
		if i%4 >= 2 {
			bootID = boot2
		}
		st := bootUntilOver(t, root, url, bootID)

		for _, name := range countedScripts {
			switch n := runsIn(t, root, name); {
			case n > 1:
				doubleRuns++
				t.Errorf("iteration %d (killed at %s): %s ran %d times", i, point, name, n)
			case n == 0 && !reported(st, scriptRecords[name]):
				// Not run again after the kill is the rule for user
				// code, but never silently.
				unreported++
				t.Errorf("iteration %d (killed at %s): %s never ran and status does not say it was interrupted: %q", i, point, name, st.Interrupted)
			}
		}
		neverRetried += checkBuiltins(t, i, point, root, bootID, st, builtins)
		if bad := corruptStateFiles(root); len(bad) > 0 {
			corrupt += len(bad)
			t.Errorf("iteration %d (killed at %s): corrupt state files %v", i, point, bad)
		}
	}
	distinct := make([]string, 0, len(points))
	for p := range points {
		distinct = append(distinct, p)
	}
	sort.Strings(distinct)
	t.Logf("kill points: %s", strings.Join(distinct, "; "))
	fmt.Printf("kill loop: %d iterations, %d double runs, %d never-retried built-in modules, %d corrupt state files, %d unreported unrun scripts, kills spread over %d distinct points\n",
		iterations, doubleRuns, neverRetried, corrupt, unreported, len(points))
}

func reported(st state.Status, module string) bool {
	for _, msg := range st.Interrupted {
		if strings.HasPrefix(msg, module+": interrupted") {
			return true
		}
	}
	return false
}

func killLoopChild(root, url, bootID string, killAt int) *exec.Cmd {
	c := exec.Command(os.Args[0], "-test.run=^TestKillLoopChild$", "-test.count=1")
	c.Env = append(os.Environ(), "EC2INIT_KILL_ROOT="+root, "EC2INIT_KILL_URL="+url,
		"EC2INIT_KILL_BOOT="+bootID, "EC2INIT_KILL_AT="+strconv.Itoa(killAt))
	c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	return c
}

// bootUntilOver boots root until its status is no longer running (one
// normal boot should do; a few are allowed).
func bootUntilOver(t *testing.T, root, url, bootID string) state.Status {
	t.Helper()
	var st state.Status
	for attempt := 0; attempt < 3; attempt++ {
		var err error
		st, err = agent.Boot(context.Background(), killLoopOptions(t, root, url, bootID))
		if err != nil {
			t.Fatalf("boot after the kill: %v", err)
		}
		if st.State != state.StateRunning {
			return st
		}
	}
	t.Fatalf("boot after the kill still running: %+v", st)
	return st
}

func isUserWork(name string) bool {
	return strings.HasPrefix(name, "scripts_") || strings.HasPrefix(name, "boothook:") || name == "runcmd" || name == "bootcmd"
}

func names(ms []state.ModuleResult) []string {
	var out []string
	for _, m := range ms {
		out = append(out, m.Name)
	}
	return out
}

func runsIn(t *testing.T, root, name string) int {
	b, err := os.ReadFile(filepath.Join(root, "out", name))
	if err != nil {
		return 0
	}
	return strings.Count(string(b), "run\n")
}

func wantRuns(t *testing.T, step, root string, n int) {
	t.Helper()
	for _, name := range countedScripts {
		if got := runsIn(t, root, name); got != n {
			t.Errorf("%s: %s ran %d times, want %d", step, name, got, n)
		}
	}
}

func readFinalStatus(t *testing.T, root string) state.Status {
	t.Helper()
	store, err := state.Open(state.Options{Root: root, ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.ReadStatus()
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// runningRecord names the run record a kill left running, if any: where a
// delay landed.
func runningRecord(root string) string {
	found := "between modules"
	filepath.WalkDir(filepath.Join(root, state.StateDir), func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || filepath.Base(filepath.Dir(p)) != "records" {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return nil
		}
		var rec state.Record
		if json.Unmarshal(b, &rec) == nil && rec.State == state.RecordRunning {
			found = "in " + rec.Module
		}
		return nil
	})
	if _, err := os.Stat(filepath.Join(root, state.StateDir, "status.json")); err != nil {
		found = "before status"
	}
	return found
}

// checkBuiltins counts the ec2init modules the calibration boot ran that
// are, after the kill and the boots that followed, not done: reported
// interrupted, or without their semaphore. The ssh module's result is
// checked on disk too: every host key and the key pair installed.
func checkBuiltins(t *testing.T, i int, point, root, bootID string, st state.Status, builtins []state.ModuleResult) int {
	t.Helper()
	store, err := state.Open(state.Options{Root: root, BootID: bootID, ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := store.UseInstance(st.InstanceID); err != nil {
		t.Fatal(err)
	}
	bad := 0
	for _, m := range builtins {
		run, _, err := store.ShouldRun(m.Name, state.Frequency(m.Frequency))
		interrupted := false
		for _, msg := range st.Interrupted {
			if strings.HasPrefix(msg, m.Name+":") {
				interrupted = true
			}
		}
		if err != nil || run || interrupted {
			bad++
			t.Errorf("iteration %d (killed at %s): ec2init module %s not done (semaphore missing %v, interrupted %v, %v)", i, point, m.Name, run, interrupted, err)
		}
	}
	for _, p := range []string{"etc/ssh/ssh_host_ed25519_key", "etc/ssh/ssh_host_ed25519_key.pub", "etc/ssh/ssh_host_ecdsa_key",
		"etc/ssh/ssh_host_ecdsa_key.pub", "home/ec2-user/.ssh/authorized_keys", "etc/killloop/a.conf", "etc/killloop/b.conf"} {
		if fi, err := os.Stat(filepath.Join(root, p)); err != nil || fi.Size() == 0 {
			bad++
			t.Errorf("iteration %d (killed at %s): %s missing or empty after recovery: %v", i, point, p, err)
		}
	}
	for _, kt := range []string{"ed25519", "ecdsa"} {
		priv := filepath.Join(root, "etc/ssh/ssh_host_"+kt+"_key")
		pub, _ := os.ReadFile(priv + ".pub")
		derived, err := exec.Command("ssh-keygen", "-y", "-f", priv).Output()
		if f := strings.Fields(string(pub)); err != nil || len(f) < 2 || !strings.Contains(string(derived), f[1]) {
			bad++
			t.Errorf("iteration %d (killed at %s): %s host key pair does not match: %v", i, point, kt, err)
		}
	}
	return bad
}

// corruptStateFiles lists the JSON state files (records, semaphores,
// status, results, caches) that do not parse, and any file the store set
// aside as corrupt. Temporary files of writes a kill interrupted are not
// state (the store sweeps them).
func corruptStateFiles(root string) []string {
	var bad []string
	check := func(p string) {
		b, err := os.ReadFile(p)
		if err != nil || !json.Valid(b) {
			bad = append(bad, strings.TrimPrefix(p, root))
		}
	}
	filepath.WalkDir(filepath.Join(root, state.StateDir), func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || atomicfile.IsTemp(d.Name()) {
			return nil
		}
		dir := filepath.Base(filepath.Dir(p))
		switch {
		case strings.Contains(d.Name(), ".corrupt-"):
			bad = append(bad, strings.TrimPrefix(p, root))
		case strings.HasSuffix(d.Name(), ".json"), dir == "sem":
			check(p)
		}
		return nil
	})
	check(filepath.Join(root, agent.RunStatusFile))
	return bad
}
