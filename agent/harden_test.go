package agent_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/ec2init/ec2init/agent"
	"github.com/ec2init/ec2init/agent/config"
	"github.com/ec2init/ec2init/agent/state"
	"github.com/ec2init/ec2init/agent/sys"
	"github.com/ec2init/ec2init/internal/testkit"
	"github.com/ec2init/ec2init/modules"
	"github.com/ec2init/ec2init/modules/ssh"
)

// syncBuffer is a log two concurrent boots can share.
type syncBuffer = testkit.SyncBuffer

// quietOptions are f.options with their own log (nil: none), safe for
// concurrent boots.
func (f *fixture) quietOptions(bootID string, log *syncBuffer) agent.Options {
	o := f.options(bootID)
	o.Log, o.Console = zap.NewNop(), nil
	if log != nil {
		o.Log = zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), zapcore.AddSync(log), zap.DebugLevel))
		o.Console = log
	}
	return o
}

// TestOneBootAtATime: a second boot on the same root while the first runs a
// per-instance script either waits for it and then finds the script done,
// or, with no time to wait, fails naming the lock and its holder. The
// script runs once either way.
func TestOneBootAtATime(t *testing.T) {
	for _, tc := range []struct {
		name    string
		timeout time.Duration
	}{{"waits", 20 * time.Second}, {"no wait", 0}} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, multipart([3]string{"text/x-shellscript", "once.sh", counter("once")}))
			inScript, release := make(chan struct{}), make(chan struct{})
			first := f.quietOptions(boot1, nil)
			first.Hook = func(point, name string) {
				if point == "start" && strings.HasPrefix(name, "scripts_user:") {
					close(inScript)
					<-release
				}
			}
			done := make(chan error, 1)
			go func() {
				_, err := agent.Boot(context.Background(), first)
				done <- err
			}()
			<-inScript

			log := &syncBuffer{}
			second := f.quietOptions(boot1, log)
			second.LockTimeout = tc.timeout
			type result struct {
				st  state.Status
				err error
			}
			secondDone := make(chan result, 1)
			go func() {
				st, err := agent.Boot(context.Background(), second)
				secondDone <- result{st, err}
			}()
			if tc.timeout > 0 {
				// Let it find the lock taken and say so, then let the first go.
				deadline := time.Now().Add(10 * time.Second)
				for !strings.Contains(log.String(), "holds /run/ec2init/boot.lock; waiting up to 20s") {
					if time.Now().After(deadline) {
						t.Fatalf("the second boot never said it waits:\n%s", log.String())
					}
					time.Sleep(10 * time.Millisecond)
				}
				if !strings.Contains(log.String(), "another ec2init boot (pid "+strconv.Itoa(os.Getpid())+")") {
					t.Errorf("the wait message does not name the holder's pid:\n%s", log.String())
				}
				close(release)
			}
			r := <-secondDone
			if tc.timeout == 0 {
				if !errors.Is(r.err, agent.ErrBootLocked) || !strings.Contains(r.err.Error(), "/run/ec2init/boot.lock (pid "+strconv.Itoa(os.Getpid())+")") {
					t.Errorf("second boot: %v, want the lock's error naming its holder", r.err)
				}
				root, _ := sys.NewRoot(f.root)
				if pid, held, err := agent.BootLockHolder(root); err != nil || !held || pid != os.Getpid() {
					t.Errorf("BootLockHolder = %d, %v, %v; want %d held", pid, held, err, os.Getpid())
				}
				close(release)
			}
			if err := <-done; err != nil {
				t.Fatalf("first boot: %v", err)
			}
			if tc.timeout > 0 {
				if r.err != nil || r.st.State != state.StateDone {
					t.Fatalf("second boot: %v %s %q", r.err, r.st.State, r.st.Interrupted)
				}
			}
			f.wantRuns("two boots", map[string]int{"once": 1})
			root, _ := sys.NewRoot(f.root)
			if _, held, err := agent.BootLockHolder(root); err != nil || held {
				t.Errorf("after both boots: held %v, %v", held, err)
			}
		})
	}
}

// fakeModule counts its runs in out/<name> under the root and fails with
// err when set.
type fakeModule struct {
	name  string
	stage modules.Stage
	err   error
}

func (m fakeModule) Name() string                    { return m.name }
func (m fakeModule) Stage() modules.Stage            { return m.stage }
func (m fakeModule) Frequency() modules.Frequency    { return state.PerInstance }
func (m fakeModule) Schema() modules.Schema          { return modules.Schema{Doc: "test"} }
func (m fakeModule) Wanted(*config.CloudConfig) bool { return true }
func (m fakeModule) Run(_ context.Context, env *modules.Env, _ *config.CloudConfig) error {
	if err := env.Root.AppendFile("/out/"+m.name, []byte("run\n"), 0o644); err != nil {
		return err
	}
	return m.err
}

// bootWith is a boot of f with reg and the options opts makes for a boot id.
func (f *fixture) bootWith(reg *modules.Registry, opts func(bootID string) agent.Options) func(bootID string) state.Status {
	return func(bootID string) state.Status {
		f.t.Helper()
		o := opts(bootID)
		o.Registry = reg
		st, err := agent.Boot(context.Background(), o)
		if err != nil {
			f.t.Fatalf("boot %s: %v", bootID, err)
		}
		return st
	}
}

func registry(t *testing.T, ms ...modules.Module) *modules.Registry {
	t.Helper()
	r, err := modules.NewRegistry(ms...)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// crashDuring leaves module's record as a crash in boot bootID leaves it:
// started, never finished, no semaphore.
func crashDuring(t *testing.T, root, bootID, instanceID, module string, f state.Frequency) {
	t.Helper()
	store, err := state.Open(state.Options{Root: root, BootID: bootID})
	if err != nil {
		t.Fatal(err)
	}
	if err := store.UseInstance(instanceID); err != nil {
		t.Fatal(err)
	}
	if err := store.ClearDone(module, f); err != nil {
		t.Fatal(err)
	}
	if err := store.MarkStarted(module, f); err != nil {
		t.Fatal(err)
	}
}

func moduleResult(st state.Status, name string) (state.ModuleResult, bool) {
	for _, sr := range st.Stages {
		for _, m := range sr.Modules {
			if m.Name == name {
				return m, true
			}
		}
	}
	return state.ModuleResult{}, false
}

// TestInterruptedBuiltinModuleRunsAgain: after a crash in the middle of an
// ec2init module, the next boot runs it again (it is idempotent) with a
// warning; a user script interrupted the same way is still left alone, and
// every later boot still names the boot it was interrupted in and when it
// started, never a zero time.
func TestInterruptedBuiltinModuleRunsAgain(t *testing.T) {
	f := newFixture(t, multipart([3]string{"text/x-shellscript", "user.sh", counter("user")}))
	reg := registry(t, fakeModule{name: "fake_builtin", stage: modules.StageNetwork},
		fakeModule{name: "runcmd", stage: modules.StageFinal})
	boot := f.bootWith(reg, f.options)
	st := boot(boot1)
	if st.State != state.StateDone {
		t.Fatalf("first boot: %s %q %q", st.State, st.Errors, st.Degraded)
	}
	before := time.Now().UTC().Add(-time.Second)
	for _, m := range []string{"fake_builtin", "runcmd", "scripts_user:user.sh"} {
		crashDuring(t, f.root, boot1, st.InstanceID, m, state.PerInstance)
	}

	f.log.Reset()
	st = boot(boot2)
	f.wantRuns("after the crash", map[string]int{"fake_builtin": 2, "runcmd": 1, "user": 1})
	if !strings.Contains(f.log.String(), "interrupted during boot "+boot1+"; ec2init's own module, running again") {
		t.Errorf("no warning that the module runs again:\n%s", f.log.String())
	}
	if len(st.Interrupted) != 2 {
		t.Fatalf("interrupted = %q, want runcmd and the user script", st.Interrupted)
	}
	if m, _ := moduleResult(st, "fake_builtin"); m.Outcome != string(state.OutcomeOK) {
		t.Errorf("fake_builtin: %+v", m)
	}
	for _, name := range []string{"runcmd", "scripts_user:user.sh"} {
		m, ok := moduleResult(st, name)
		if !ok || m.Outcome != string(state.OutcomeInterrupted) || m.Start.IsZero() || m.End.IsZero() {
			t.Errorf("%s: %+v, want interrupted with real times", name, m)
		}
	}

	// A later boot still reports the boot and the start of the run the
	// crash cut short.
	st = boot(boot3)
	f.wantRuns("a later boot", map[string]int{"fake_builtin": 2, "runcmd": 1, "user": 1})
	for _, msg := range st.Interrupted {
		if !strings.Contains(msg, "interrupted during boot "+boot1+" (started ") || strings.Contains(msg, "0001-01-01") {
			t.Errorf("boot 3 reports %q, want boot %s and its start time", msg, boot1)
			continue
		}
		at := msg[strings.Index(msg, "(started ")+len("(started "):]
		at = at[:strings.IndexByte(at, ')')]
		if ts, err := time.Parse(time.RFC3339, at); err != nil || ts.Before(before) {
			t.Errorf("start time %q in %q: %v", at, msg, err)
		}
	}
	for _, sr := range st.Stages {
		if sr.Start.IsZero() || sr.End.IsZero() {
			t.Errorf("stage %s has a zero time: %+v", sr.Name, sr)
		}
		for _, m := range sr.Modules {
			if m.Start.IsZero() {
				t.Errorf("%s: zero start time in boot 3: %+v", m.Name, m)
			}
		}
	}
}

// sshRoot makes a root the real ssh module works on: accounts, sshd's
// config and home directories owned by the test's user.
func sshRoot(t *testing.T, root string) {
	t.Helper()
	uid, gid := strconv.Itoa(os.Getuid()), strconv.Itoa(os.Getgid())
	files := map[string]string{
		"etc/passwd": "root:x:" + uid + ":" + gid + ":root:/root:/bin/bash\n" +
			"ec2-user:x:" + uid + ":" + gid + ":EC2 Default User:/home/ec2-user:/bin/bash\n",
		"etc/group":           "root:x:" + gid + ":\n",
		"etc/ssh/sshd_config": "Include /etc/ssh/sshd_config.d/*.conf\n",
	}
	for p, c := range files {
		if err := os.MkdirAll(filepath.Join(root, filepath.Dir(p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, p), []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{"root", "home/ec2-user"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
}

// TestSSHInterruptedAfterDeletingHostKeys is the unreachable instance: the
// ssh module was cut short after some host keys were gone and before the
// key pair was installed. The next boot (same instance) makes every
// missing host key and installs authorized_keys.
func TestSSHInterruptedAfterDeletingHostKeys(t *testing.T) {
	if _, err := exec.LookPath("ssh-keygen"); err != nil {
		t.Skipf("ssh-keygen not installed: %v", err)
	}
	f := newFixture(t, "#cloud-config\nssh_genkeytypes: [ed25519, ecdsa]\n")
	sshRoot(t, f.root)
	reg := registry(t, ssh.SSH{})
	// ssh-keygen runs in parallel: a log safe for that.
	boot := f.bootWith(reg, func(bootID string) agent.Options { return f.quietOptions(bootID, &syncBuffer{}) })
	st := boot(boot1)
	if st.State != state.StateDone {
		t.Fatalf("first boot: %s %q %q", st.State, st.Errors, st.Degraded)
	}
	keys := []string{"etc/ssh/ssh_host_ed25519_key", "etc/ssh/ssh_host_ed25519_key.pub", "etc/ssh/ssh_host_ecdsa_key", "etc/ssh/ssh_host_ecdsa_key.pub"}
	authorized := "home/ec2-user/.ssh/authorized_keys"
	// The crash: one key pair gone, one public key half-written (empty),
	// no authorized_keys yet, the module's record left running.
	for _, p := range []string{keys[2], keys[3], authorized} {
		if err := os.Remove(filepath.Join(f.root, p)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(f.root, keys[1]), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	crashDuring(t, f.root, boot1, st.InstanceID, "ssh", state.PerInstance)

	st = boot(boot2)
	if st.State != state.StateDone || len(st.Interrupted) != 0 {
		t.Fatalf("boot after the crash: %s %q %q %q", st.State, st.Errors, st.Degraded, st.Interrupted)
	}
	for _, p := range keys {
		if fi, err := os.Stat(filepath.Join(f.root, p)); err != nil || fi.Size() == 0 {
			t.Errorf("%s: %v (missing or empty after the retry)", p, err)
		}
	}
	if b, err := os.ReadFile(filepath.Join(f.root, authorized)); err != nil || !strings.Contains(string(b), "my-key") {
		t.Errorf("authorized_keys after the retry: %q, %v", b, err)
	}
	if m, _ := moduleResult(st, "ssh"); m.Outcome != string(state.OutcomeOK) || m.Start.IsZero() {
		t.Errorf("ssh: %+v", m)
	}
}

// TestScriptNamesDoNotCollide: parts whose names were one script file and
// one state record each get their own name; all run once, status lists
// each, `userdata show` tells them apart, and a reboot runs none again.
func TestScriptNamesDoNotCollide(t *testing.T) {
	names := []string{"setup a.sh", "setup_a.sh", "setup?a.sh", "setup_a.sh"}
	var parts [][3]string
	for i, n := range names {
		parts = append(parts, [3]string{"text/x-shellscript", n, counter("s" + strconv.Itoa(i))})
	}
	f := newFixture(t, multipart(parts...))
	st := f.boot(boot1)
	if st.State != state.StateDone {
		t.Fatalf("first boot: %s %q %q", st.State, st.Errors, st.Degraded)
	}
	f.wantRuns("first boot", map[string]int{"s0": 1, "s1": 1, "s2": 1, "s3": 1})
	records := map[string]bool{}
	for _, sr := range st.Stages {
		for _, m := range sr.Modules {
			if strings.HasPrefix(m.Name, "scripts_user:") && m.Outcome == string(state.OutcomeOK) {
				records[m.Name] = true
			}
		}
	}
	if len(records) != 4 {
		t.Errorf("status lists %d script records, want 4: %v", len(records), records)
	}

	rep, err := agent.ShowUserData(agent.Options{Root: f.root, BootID: boot1})
	if err != nil {
		t.Fatal(err)
	}
	shown := map[string]bool{}
	for _, p := range rep.Parts {
		if !p.Ran || !records[p.Module] {
			t.Errorf("userdata show: part %d %q: module %q ran %v", p.Index, p.Filename, p.Module, p.Ran)
		}
		shown[p.Module] = true
	}
	if len(shown) != 4 {
		t.Errorf("userdata show names %d modules, want 4: %v", len(shown), shown)
	}

	f.boot(boot2)
	f.wantRuns("reboot", map[string]int{"s0": 1, "s1": 1, "s2": 1, "s3": 1})
}

// TestRunStatusHoldsNoErrorText: the world-readable /run copy of the status
// says which module failed, never what its error said (it can quote user
// data); root's copies keep the whole message.
func TestRunStatusHoldsNoErrorText(t *testing.T) {
	const secret = "31415926535"
	f := newFixture(t, "#cloud-config\nfinal_message: hi\n")
	o := f.options(boot1)
	o.Registry = registry(t, fakeModule{name: "leaky", stage: modules.StageConfig, err: errors.New("user ec2-user: passwd: " + secret + " is not a string")})
	st, err := agent.Boot(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Degraded) == 0 {
		t.Fatalf("the failing module is not reported: %+v", st)
	}
	public, err := os.ReadFile(filepath.Join(f.root, agent.RunStatusFile))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(public, []byte(secret)) || bytes.Contains(public, []byte("passwd")) {
		t.Errorf("%s holds the error text:\n%s", agent.RunStatusFile, public)
	}
	if fi, _ := os.Stat(filepath.Join(f.root, agent.RunStatusFile)); fi.Mode().Perm() != 0o644 {
		t.Errorf("%s mode %v", agent.RunStatusFile, fi.Mode().Perm())
	}
	for _, want := range []string{`"leaky: details need root"`, `"name": "leaky"`, `"outcome": "failed"`} {
		if !bytes.Contains(public, []byte(want)) {
			t.Errorf("%s lacks %s:\n%s", agent.RunStatusFile, want, public)
		}
	}
	for _, p := range []string{agent.RunStatusFullFile, state.StateDir + "/status.json"} {
		full, err := os.ReadFile(filepath.Join(f.root, p))
		if err != nil || !bytes.Contains(full, []byte(secret)) {
			t.Errorf("%s should keep the full message for root: %v\n%s", p, err, full)
		}
		if fi, _ := os.Stat(filepath.Join(f.root, p)); fi.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %v, want 0600", p, fi.Mode().Perm())
		}
	}
	root, _ := sys.NewRoot(f.root)
	got, full, err := agent.ReadRunStatus(root)
	if err != nil || !full || !strings.Contains(strings.Join(got.Degraded, "\n"), secret) {
		t.Errorf("ReadRunStatus as the owner: full %v, %q, %v", full, got.Degraded, err)
	}
}
