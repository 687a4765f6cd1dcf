// Package reliability breaks boots on purpose: processes killed at random
// moments, and a metadata service that fails the ways real ones do. Each
// test prints its counts (go test -v).
package reliability

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ec2init/ec2init/agent"
	"github.com/ec2init/ec2init/agent/imds"
	"github.com/ec2init/ec2init/agent/imds/imdssim"
	"github.com/ec2init/ec2init/agent/state"
	"github.com/ec2init/ec2init/internal/testkit"
	"github.com/ec2init/ec2init/modules/all"
)

const scripts = 3

// userData is three scripts, each recording its start and end around a
// short random sleep, so a kill can land before, inside or after each.
func userData() string {
	var b strings.Builder
	b.WriteString("Content-Type: multipart/mixed; boundary=\"XX\"\nMIME-Version: 1.0\n\n")
	for i := 0; i < scripts; i++ {
		fmt.Fprintf(&b, "--XX\nContent-Type: text/x-shellscript\nContent-Disposition: attachment; filename=\"s%d.sh\"\n\n", i)
		fmt.Fprintf(&b, "#!/bin/sh\necho start >> \"$EC2INIT_ROOT/runs-%d\"\nsleep 0.0$(( $$ %% 3 ))\necho end >> \"$EC2INIT_ROOT/runs-%d\"\n", i, i)
	}
	b.WriteString("--XX--\n")
	return b.String()
}

func client(t testing.TB, url string, attempts int) *imds.Client {
	t.Helper()
	c, err := imds.New(imds.Config{Endpoint: url, MaxAttempts: attempts, RequestTimeout: time.Second,
		BaseBackoff: 5 * time.Millisecond, MaxBackoff: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestCrashSafety kills a first boot with SIGKILL at a random moment, then
// boots again (a power loss and the next boot), and checks every promise:
// state parses, no script ran twice, an interrupted script is reported and
// not re-run, status says what happened.
func TestCrashSafety(t *testing.T) {
	iterations := 200
	if testing.Short() {
		iterations = 20
	}
	sim, url := imdssim.Start(t, imdssim.Options{})
	sim.SetUserData([]byte(userData()))
	var killedMidway, interruptedReported, completedBeforeKill, notStarted int
	for i := 0; i < iterations; i++ {
		root := t.TempDir()
		child := exec.Command(os.Args[0], "-test.run=^TestBootChild$")
		child.Env = append(os.Environ(), "EC2INIT_CHILD_ROOT="+root, "EC2INIT_CHILD_URL="+url)
		child.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := child.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(rand.IntN(250)) * time.Millisecond)
		// Power loss: the agent, and the script it runs (in a process group
		// of its own, found by its path under the root).
		syscall.Kill(-child.Process.Pid, syscall.SIGKILL)
		exec.Command("pkill", "-KILL", "-f", root).Run()
		if err := child.Wait(); err == nil {
			completedBeforeKill++
		}
		before := runs(t, root)

		// The lock may outlive the kill by an instant: a script the agent
		// was forking still holds it (inherited) until its exec closes it.
		// A real power loss leaves no process; here the recovery waits.
		st, err := agent.Boot(context.Background(), agent.Options{Registry: all.Registry(),
			Root: root, IMDS: client(t, url, 3), BootID: fmt.Sprintf("00000000-0000-4000-8000-%012d", i+1),
			LockTimeout: 10 * time.Second,
		})
		if err != nil {
			t.Fatalf("iteration %d: recovery boot: %v", i, err)
		}
		store, err := state.Open(state.Options{Root: root, ReadOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := store.ReadStatus(); err != nil {
			t.Fatalf("iteration %d: status.json unreadable after a crash: %v", i, err)
		}
		after := runs(t, root)
		for s := 0; s < scripts; s++ {
			name := fmt.Sprintf("scripts_user:s%d.sh", s)
			reported := contains(st.Interrupted, name)
			switch {
			case after[s].starts > 1:
				t.Fatalf("iteration %d: %s ran %d times", i, name, after[s].starts)
			case after[s].starts == 0:
				// Killed between its run record and its start: reported
				// interrupted, left to the operator like any other.
				if !reported {
					t.Fatalf("iteration %d: %s never ran and status does not say why: %q", i, name, st.Interrupted)
				}
				notStarted++
			case before[s].starts == 1 && before[s].ends == 0:
				killedMidway++
				if !reported {
					t.Fatalf("iteration %d: %s was killed midway and status does not say so: %q", i, name, st.Interrupted)
				}
			}
			if reported {
				interruptedReported++
				if st.State != state.StateDegraded {
					t.Fatalf("iteration %d: interrupted scripts but state %s", i, st.State)
				}
			}
		}
	}
	t.Logf("%d kills: %d scripts killed midway, %d interruptions reported (none re-run; %d of them had not started), %d boots finished before the kill",
		iterations, killedMidway, interruptedReported, notStarted, completedBeforeKill)
}

type count struct{ starts, ends int }

func runs(t *testing.T, root string) [scripts]count {
	var out [scripts]count
	for s := 0; s < scripts; s++ {
		b, err := os.ReadFile(filepath.Join(root, fmt.Sprintf("runs-%d", s)))
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
		out[s] = count{strings.Count(string(b), "start"), strings.Count(string(b), "end")}
	}
	return out
}

func contains(list []string, prefix string) bool {
	for _, s := range list {
		if strings.HasPrefix(s, prefix+":") {
			return true
		}
	}
	return false
}

// TestBootChild is the boot TestCrashSafety kills.
func TestBootChild(t *testing.T) {
	root := os.Getenv("EC2INIT_CHILD_ROOT")
	if root == "" {
		t.Skip("only run as TestCrashSafety's child")
	}
	agent.Boot(context.Background(), agent.Options{Registry: all.Registry(),
		Root: root, IMDS: client(t, os.Getenv("EC2INIT_CHILD_URL"), 3), BootID: "00000000-0000-4000-8000-000000000000",
	})
}

// TestIMDSFaults boots against a metadata service failing in each way a
// real one does: the boot succeeds, or fails with a clear status, within
// its deadline.
func TestIMDSFaults(t *testing.T) {
	tests := []struct {
		name     string
		setup    func(sim *imdssim.Server)
		late     time.Duration // IMDS reachable only after this long
		deadline time.Duration
		wantErr  string
	}{
		{name: "503 burst", setup: func(s *imdssim.Server) { s.FailNext(20, 503) }},
		{name: "429 burst", setup: func(s *imdssim.Server) { s.FailNext(20, 429) }},
		{name: "500 burst", setup: func(s *imdssim.Server) { s.FailNext(8, 500) }},
		{name: "latency spike to 5 s", setup: func(s *imdssim.Server) {
			// Longer than the client's per-request timeout (1 s here):
			// every request in the spike times out and is retried.
			s.SetLatency(5 * time.Second)
			go func() { time.Sleep(5 * time.Second); s.SetLatency(0) }()
		}},
		{name: "token expiry mid-boot", setup: func(s *imdssim.Server) {
			// Tokens expire a few times while the crawl is in flight, as a
			// TTL running out does (each expiry costs one 401 and a new
			// token per client).
			go func() {
				for i := 0; i < 4; i++ {
					time.Sleep(15 * time.Millisecond)
					s.ExpireTokens()
				}
			}()
		}},
		{name: "unreachable for 30 s, then back", late: 30 * time.Second, deadline: 60 * time.Second},
		{name: "IMDSv1 only, v1 not allowed", setup: func(s *imdssim.Server) { s.FailTokenNext(1<<20, 403) },
			deadline: 2 * time.Second, wantErr: "no metadata source"},
		{name: "10 MiB user data", setup: func(s *imdssim.Server) { s.SetUserData([]byte(strings.Repeat("#", 10<<20))) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if testing.Short() && tt.late >= 10*time.Second {
				// Waiting out a real outage takes its length in wall time.
				t.Skipf("-short: the IMDS outage takes %v", tt.late)
			}
			t.Parallel() // each its own simulator and root; the 30 s outage overlaps the rest
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			addr := l.Addr().String()
			l.Close()
			sim := imdssim.New(imdssim.Options{})
			t.Cleanup(func() { sim.Close() })
			sim.SetUserData([]byte("#!/bin/sh\necho ok\n"))
			if tt.setup != nil {
				tt.setup(sim)
			}
			start := func() {
				if _, err := sim.Start(addr); err != nil {
					t.Errorf("start: %v", err)
				}
			}
			if tt.late > 0 {
				go func() { time.Sleep(tt.late); start() }()
			} else {
				start()
			}
			deadline := tt.deadline
			if deadline == 0 {
				deadline = 30 * time.Second
			}
			begin := time.Now()
			st, err := agent.Boot(context.Background(), agent.Options{Registry: all.Registry(),
				Root: t.TempDir(), IMDS: client(t, "http://"+addr, 5), BootID: "00000000-0000-4000-8000-000000000001",
				IdentifyDeadline: deadline,
			})
			took := time.Since(begin)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || st.State != state.StateError {
					t.Fatalf("err %v, state %s; want %q", err, st.State, tt.wantErr)
				}
			} else if err != nil {
				t.Fatalf("boot: %v", err)
			}
			if took > deadline+10*time.Second {
				t.Errorf("took %v, deadline %v", took, deadline)
			}
			t.Logf("state %s after %v; errors %q", st.State, took.Round(time.Millisecond), st.Errors)
		})
	}
}

// TestDiskFaults: a corrupt status.json from before, a state directory on
// a tiny tmpfs that fills up, a read-only root. Previous state is never
// lost and the error says what happened.
func TestDiskFaults(t *testing.T) {
	sim, url := imdssim.Start(t, imdssim.Options{})
	sim.SetUserData([]byte("#!/bin/sh\necho ok\n"))
	boot := func(root string) (state.Status, error) {
		return agent.Boot(context.Background(), agent.Options{Registry: all.Registry(), Root: root, IMDS: client(t, url, 3), BootID: "00000000-0000-4000-8000-000000000001"})
	}

	t.Run("corrupt status.json", func(t *testing.T) {
		root := t.TempDir()
		dir := filepath.Join(root, "var/lib/ec2init")
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "status.json"), []byte(`{"state": "do`), 0o600); err != nil {
			t.Fatal(err)
		}
		st, err := boot(root)
		if err != nil || st.State != state.StateDone {
			t.Fatalf("boot over a corrupt status: %s, %v", st.State, err)
		}
		kept, _ := filepath.Glob(filepath.Join(dir, "status.json.corrupt-*"))
		if len(kept) != 1 {
			t.Errorf("the corrupt status.json was not kept aside: %v", kept)
		}
	})

	t.Run("read-only root", func(t *testing.T) {
		testkit.RequireRoot(t, "needs root to mount")
		root := t.TempDir()
		if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", root).CombinedOutput(); err != nil {
			t.Skipf("mount tmpfs: %v %s", err, out)
		}
		defer exec.Command("umount", root).Run()
		_, err := boot(root)
		if err == nil || !strings.Contains(err.Error(), "read-only file system") {
			t.Fatalf("boot on a read-only root: %v", err)
		}
	})

	t.Run("state filesystem fills up", func(t *testing.T) {
		testkit.RequireRoot(t, "needs root to mount")
		root := t.TempDir()
		// A first boot on a roomy disk, then the disk fills up.
		if st, err := boot(root); err != nil || st.State != state.StateDone {
			t.Fatalf("first boot: %s %v", st.State, err)
		}
		good, err := os.ReadFile(filepath.Join(root, "var/lib/ec2init/result.json"))
		if err != nil {
			t.Fatal(err)
		}
		lib := filepath.Join(root, "var/lib/ec2init")
		saved := t.TempDir()
		exec.Command("cp", "-a", lib+"/.", saved).Run()
		// Room for the state (a page per file on tmpfs), then a filler
		// takes the rest: the disk is full when the boot starts.
		if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", lib).CombinedOutput(); err != nil {
			t.Skipf("mount tmpfs: %v %s", err, out)
		}
		defer exec.Command("umount", lib).Run()
		if out, err := exec.Command("cp", "-a", saved+"/.", lib).CombinedOutput(); err != nil {
			t.Fatalf("copy the state onto the small filesystem: %v %s", err, out)
		}
		filler, _ := os.Create(filepath.Join(lib, "filler"))
		filler.Write(make([]byte, 2<<20)) // stops at the tmpfs size
		filler.Close()

		_, err = agent.Boot(context.Background(), agent.Options{Registry: all.Registry(), Root: root, IMDS: client(t, url, 3), BootID: "00000000-0000-4000-8000-000000000002"})
		t.Logf("boot on a full disk: %v", err)
		after, rerr := os.ReadFile(filepath.Join(lib, "result.json"))
		if rerr != nil || string(after) != string(good) {
			t.Errorf("the previous result was lost on a full disk: %v (%d bytes, was %d)", rerr, len(after), len(good))
		}
		if leftovers, _ := filepath.Glob(filepath.Join(lib, ".*tmp*")); len(leftovers) > 0 {
			t.Errorf("temporary files left behind: %v", leftovers)
		}
	})
}
