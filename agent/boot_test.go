package agent_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/ec2init/ec2init/agent"
	"github.com/ec2init/ec2init/agent/imds"
	"github.com/ec2init/ec2init/agent/imds/imdssim"
	"github.com/ec2init/ec2init/agent/state"
	"github.com/ec2init/ec2init/internal/testnet"
	"github.com/ec2init/ec2init/modules"
	"github.com/ec2init/ec2init/modules/all"
)

// multipart builds MIME user data the way cloud-init's make-mime does.
func multipart(parts ...[3]string) string {
	var b strings.Builder
	b.WriteString("Content-Type: multipart/mixed; boundary=\"==BOUNDARY==\"\nMIME-Version: 1.0\n\n")
	for _, p := range parts {
		b.WriteString("--==BOUNDARY==\nContent-Type: " + p[0] + "; charset=\"us-ascii\"\nMIME-Version: 1.0\n")
		b.WriteString("Content-Transfer-Encoding: 7bit\nContent-Disposition: attachment; filename=\"" + p[1] + "\"\n\n")
		b.WriteString(p[2] + "\n")
	}
	b.WriteString("--==BOUNDARY==--\n")
	return b.String()
}

// counter is a script that appends one line per run to a file under the
// root, so tests can count runs.
func counter(name string) string {
	return "#!/bin/sh\necho run >> \"$EC2INIT_ROOT/out/" + name + "\"\n"
}

type fixture struct {
	t    *testing.T
	sim  *imdssim.Server
	url  string
	root string
	log  *bytes.Buffer
}

func newFixture(t *testing.T, userData string) *fixture {
	t.Helper()
	sim, url := imdssim.Start(t, imdssim.Options{})
	sim.SetUserData([]byte(userData))
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "out"), 0o755); err != nil {
		t.Fatal(err)
	}
	return &fixture{t: t, sim: sim, url: url, root: root, log: &bytes.Buffer{}}
}

func (f *fixture) options(bootID string) agent.Options {
	client, err := imds.New(imds.Config{Endpoint: f.url, MaxAttempts: 2, RequestTimeout: time.Second})
	if err != nil {
		f.t.Fatal(err)
	}
	core := zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), zapcore.AddSync(f.log), zap.DebugLevel)
	return agent.Options{
		Root:             f.root,
		IMDS:             client,
		Log:              zap.New(core),
		BootID:           bootID,
		IdentifyDeadline: 5 * time.Second,
		Console:          f.log,
		Registry:         all.Registry(),
	}
}

func (f *fixture) boot(bootID string) state.Status {
	f.t.Helper()
	st, err := agent.Boot(context.Background(), f.options(bootID))
	if err != nil {
		f.t.Fatalf("boot %s: %v", bootID, err)
	}
	return st
}

func (f *fixture) runs(name string) int {
	b, err := os.ReadFile(filepath.Join(f.root, "out", name))
	if errors.Is(err, os.ErrNotExist) {
		return 0
	}
	if err != nil {
		f.t.Fatal(err)
	}
	return strings.Count(string(b), "run\n")
}

func (f *fixture) wantRuns(step string, want map[string]int) {
	f.t.Helper()
	for name, n := range want {
		if got := f.runs(name); got != n {
			f.t.Errorf("%s: %s ran %d times, want %d", step, name, got, n)
		}
	}
}

const (
	boot1 = "00000000-0000-4000-8000-000000000001"
	boot2 = "00000000-0000-4000-8000-000000000002"
	boot3 = "00000000-0000-4000-8000-000000000003"
)

// TestInstanceLifecycle is the seed's AMI story: first boot runs
// everything once, a reboot only per-boot work, and an instance launched
// from an AMI of this one (a new instance id) is a first boot again; once
// means once on this disk.
func TestInstanceLifecycle(t *testing.T) {
	f := newFixture(t, multipart(
		[3]string{"text/x-shellscript", "instance.sh", counter("instance")},
		[3]string{"text/x-shellscript-per-boot", "boot.sh", counter("boot")},
		[3]string{"text/x-shellscript-per-once", "once.sh", counter("once")},
		[3]string{"text/cloud-boothook", "hook.sh", counter("boothook")},
	))

	st := f.boot(boot1)
	if st.State != state.StateDone {
		t.Fatalf("first boot: %s %v %v", st.State, st.Errors, st.Degraded)
	}
	f.wantRuns("first boot", map[string]int{"instance": 1, "boot": 1, "once": 1, "boothook": 1})

	f.boot(boot1) // the same boot again: a stage re-run by systemd, say
	f.wantRuns("same boot again", map[string]int{"instance": 1, "boot": 1, "once": 1, "boothook": 2})

	f.sim.ResetStats()
	f.boot(boot2)
	f.wantRuns("reboot", map[string]int{"instance": 1, "boot": 2, "once": 1, "boothook": 3})
	// A reboot of a known instance asks for the instance id and the user
	// data, never the whole tree again.
	if st := f.sim.Stats(); st.Gets > 3 {
		t.Errorf("reboot made %d GETs (%v); want the instance id and user data only", st.Gets, st.ByPath)
	}

	f.sim.Set("meta-data/instance-id", "i-0aaaaaaaaaaaaaaaa")
	st = f.boot(boot3)
	f.wantRuns("new instance", map[string]int{"instance": 2, "boot": 3, "once": 1, "boothook": 4})
	if st.InstanceID != "i-0aaaaaaaaaaaaaaaa" {
		t.Errorf("status instance id %q", st.InstanceID)
	}
}

func TestScriptDirectories(t *testing.T) {
	f := newFixture(t, "")
	for _, s := range []struct {
		dir, name, body string
		mode            os.FileMode
	}{
		{"per-boot", "10-boot", counter("dir-boot"), 0o755},
		{"per-boot", "20-not-executable", counter("never"), 0o644},
		{"per-instance", "10-inst", counter("dir-instance"), 0o700},
		{"per-once", "10-once", counter("dir-once"), 0o700},
	} {
		p := filepath.Join(f.root, "etc/ec2init/scripts", s.dir, s.name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(s.body), s.mode); err != nil {
			t.Fatal(err)
		}
	}
	f.boot(boot1)
	f.boot(boot2)
	f.wantRuns("two boots", map[string]int{"dir-boot": 2, "dir-instance": 1, "dir-once": 1, "never": 0})
}

func TestFailingPartIsRecordedAndOthersRun(t *testing.T) {
	f := newFixture(t, multipart(
		[3]string{"text/x-shellscript", "fails.sh", "#!/bin/sh\necho failing\nexit 3\n"},
		[3]string{"text/x-shellscript", "after.sh", counter("after")},
	))
	st := f.boot(boot1)
	if st.State != state.StateDegraded || len(st.Degraded) != 1 || !strings.Contains(st.Degraded[0], "fails.sh: exit status 3") {
		t.Fatalf("status %s, degraded %q", st.State, st.Degraded)
	}
	f.wantRuns("first boot", map[string]int{"after": 1})
	var found bool
	for _, m := range st.Stages[len(st.Stages)-1].Modules {
		if m.Name == "scripts_user:fails.sh" {
			found = true
			if m.Outcome != "failed" || m.ExitCode == nil || *m.ExitCode != 3 {
				t.Errorf("fails.sh recorded as %+v", m)
			}
		}
	}
	if !found {
		t.Error("fails.sh not recorded")
	}
	// A script that ran to its end, even failing, is not run again.
	st = f.boot(boot2)
	if st.State != state.StateDone {
		t.Errorf("reboot after a failed script: %s %v", st.State, st.Errors)
	}
}

func TestBadUserDataDoesNotStopTheRest(t *testing.T) {
	f := newFixture(t, multipart(
		[3]string{"text/cloud-config", "broken.yaml", "#cloud-config\npackages:\n  - a\n bad: [indent\n"},
		[3]string{"text/plain", "noheader.txt", "echo I forgot the shebang\n"},
		[3]string{"text/cloud-config", "fine.yaml", "#cloud-config\nfuture_module: {a: 1}\nruncmd:\n  - echo run >> \"$EC2INIT_ROOT/out/runcmd\"\n  - [sh, -c, 'exit 0']\nbootcmd: {not: a list}\n"},
		[3]string{"text/x-shellscript", "ok.sh", counter("ok")},
	))
	st := f.boot(boot1)
	f.wantRuns("boot", map[string]int{"ok": 1, "runcmd": 1})
	joined := strings.Join(st.Errors, "\n")
	if !strings.Contains(joined, `"broken.yaml":1:1: did not find expected key`) {
		t.Errorf("errors %q: want the cloud-config part and line named", st.Errors)
	}
	if !strings.Contains(strings.Join(st.Degraded, "\n"), "noheader.txt") {
		t.Errorf("degraded %q: want the header-less part named", st.Degraded)
	}
	if !strings.Contains(strings.Join(st.Degraded, "\n"), `"fine.yaml":2:1: warning: future_module: not supported by ec2init`) {
		t.Errorf("degraded %q: want the unsupported key named with its line", st.Degraded)
	}
	// At boot a schema problem is a warning, as in cloud-init; bootcmd
	// still gets its key and fails, named, on what it cannot interpret.
	degraded := strings.Join(st.Degraded, "\n")
	if !strings.Contains(degraded, `"fine.yaml":6:10: warning: bootcmd: expected list of`) || !strings.Contains(degraded, "bootcmd: ") {
		t.Errorf("degraded %q: want the bootcmd type problem with line and column, and bootcmd failed", st.Degraded)
	}
	if strings.Contains(joined+strings.Join(st.Degraded, ""), "forgot the shebang") {
		t.Error("user-data content in the status")
	}
}

func TestNoMetadataSource(t *testing.T) {
	root := t.TempDir()
	client, err := imds.New(imds.Config{Endpoint: testnet.ClosedPort(t), MaxAttempts: 1})
	if err != nil {
		t.Fatal(err)
	}
	st, err := agent.Boot(context.Background(), agent.Options{
		Root: root, IMDS: client, BootID: boot1, IdentifyDeadline: 300 * time.Millisecond,
		Registry: all.Registry(),
	})
	if !errors.Is(err, agent.ErrNoMetadataSource) {
		t.Fatalf("err = %v", err)
	}
	if st.State != state.StateError || len(st.Errors) == 0 {
		t.Errorf("status %+v", st)
	}
	store, err := state.Open(state.Options{Root: root, BootID: boot1, ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if saved, err := store.ReadStatus(); err != nil || saved.State != state.StateError {
		t.Errorf("saved status %+v, %v", saved, err)
	}
}

func TestInstanceEnvAndSecurity(t *testing.T) {
	const secret = "hunter2-SECRET-in-user-data"
	f := newFixture(t, "#!/bin/sh\n# password="+secret+"\necho \"$EC2_SUBNET_ID $EC2_VPC_ID $EC2_REGION\" > \"$EC2INIT_ROOT/out/facts\"\n")
	f.boot(boot1)
	facts, err := os.ReadFile(filepath.Join(f.root, "out/facts"))
	if err != nil || string(facts) != "subnet-0a1b2c3d4e5f60001 vpc-0a1b2c3d4e5f60001 us-east-1\n" {
		t.Errorf("script facts %q, %v", facts, err)
	}
	env, err := os.ReadFile(filepath.Join(f.root, agent.InstanceEnvFile))
	if err != nil || !strings.Contains(string(env), `EC2_LOCAL_IPV4="10.0.1.23"`) || !strings.Contains(string(env), `EC2_AVAILABILITY_ZONE="us-east-1a"`) {
		t.Errorf("instance.env %q, %v", env, err)
	}
	if strings.Contains(f.log.String(), secret) {
		t.Error("the log holds a user-data secret")
	}
	for _, p := range []string{"var/lib/ec2init/status.json", "var/lib/ec2init/result.json", "run/ec2init/status.json"} {
		if b, _ := os.ReadFile(filepath.Join(f.root, p)); strings.Contains(string(b), secret) {
			t.Errorf("%s holds a user-data secret", p)
		}
	}
	modes := map[string]os.FileMode{
		"var/lib/ec2init": 0o700,
		"var/lib/ec2init/instances/i-0123456789abcdef0":               0o700,
		"var/lib/ec2init/instances/i-0123456789abcdef0/user-data.raw": 0o600,
		"var/log/ec2init-output.log":                                  0o600,
	}
	for p, want := range modes {
		fi, err := os.Stat(filepath.Join(f.root, p))
		if err != nil {
			t.Errorf("%s: %v", p, err)
			continue
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s: mode %v, want %v", p, fi.Mode().Perm(), want)
		}
	}
}

// TestKilledMidScript kills a boot with SIGKILL while a script runs, then
// boots again: the state is readable, the script is reported interrupted
// and not run again unless asked.
func TestKilledMidScript(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a child process")
	}
	f := newFixture(t, multipart(
		[3]string{"text/x-shellscript", "slow.sh", "#!/bin/sh\necho run >> \"$EC2INIT_ROOT/out/slow\"\nsleep 30\n"},
		[3]string{"text/x-shellscript", "later.sh", counter("later")},
	))
	child := exec.Command(os.Args[0], "-test.run=^TestBootChild$")
	child.Env = append(os.Environ(), "EC2INIT_CHILD_ROOT="+f.root, "EC2INIT_CHILD_URL="+f.url)
	child.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for f.runs("slow") == 0 {
		if time.Now().After(deadline) {
			child.Process.Kill()
			t.Fatal("the script never started")
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Power loss: the agent and its script die at once.
	syscall.Kill(-child.Process.Pid, syscall.SIGKILL)
	child.Wait()

	st := f.boot(boot2)
	if len(st.Interrupted) != 1 || !strings.Contains(st.Interrupted[0], "scripts_user:slow.sh") {
		t.Fatalf("interrupted = %q", st.Interrupted)
	}
	if st.State != state.StateDegraded {
		t.Errorf("state %s, want degraded", st.State)
	}
	f.wantRuns("after the crash", map[string]int{"slow": 1, "later": 1})

	opts := f.options(boot3)
	opts.RerunInterrupted = true
	opts.ScriptTimeout = 100 * time.Millisecond
	opts.Stages = []modules.Stage{modules.StageFinal}
	if _, err := agent.Boot(context.Background(), opts); err != nil {
		t.Fatal(err)
	}
	f.wantRuns("rerun on request", map[string]int{"slow": 2, "later": 1})
}

// TestBootChild is the process TestKilledMidScript kills.
func TestBootChild(t *testing.T) {
	root := os.Getenv("EC2INIT_CHILD_ROOT")
	if root == "" {
		t.Skip("only run as TestKilledMidScript's child")
	}
	client, err := imds.New(imds.Config{Endpoint: os.Getenv("EC2INIT_CHILD_URL")})
	if err != nil {
		t.Fatal(err)
	}
	agent.Boot(context.Background(), agent.Options{Root: root, IMDS: client, BootID: boot1, Registry: all.Registry()})
}

func TestStagesAcrossProcesses(t *testing.T) {
	f := newFixture(t, multipart(
		[3]string{"text/cloud-boothook", "hook.sh", counter("boothook")},
		[3]string{"text/x-shellscript", "instance.sh", counter("instance")},
	))
	for _, st := range modules.Stages() {
		opts := f.options(boot1)
		opts.Stages = []modules.Stage{st}
		status, err := agent.Boot(context.Background(), opts)
		if err != nil {
			t.Fatal(err)
		}
		want := state.StateRunning
		if st == modules.StageFinal {
			want = state.StateDone
		}
		if status.State != want {
			t.Errorf("after stage %s: state %s, want %s", st, status.State, want)
		}
	}
	store, err := state.Open(state.Options{Root: f.root, BootID: boot1, ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	res, err := store.ReadResult()
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Stages) != 4 {
		t.Errorf("result has %d stages, want the 4 of this boot", len(res.Stages))
	}
	f.wantRuns("stages", map[string]int{"boothook": 1, "instance": 1})
}

// TestLocalStageDeferred: before the network, IMDS is unreachable; the
// local stage gives up quickly and the network stage runs its boothooks.
func TestLocalStageDeferred(t *testing.T) {
	f := newFixture(t, multipart([3]string{"text/cloud-boothook", "hook.sh", counter("boothook")}))
	unreachable, err := imds.New(imds.Config{Endpoint: testnet.ClosedPort(t), MaxAttempts: 1})
	if err != nil {
		t.Fatal(err)
	}
	opts := f.options(boot1)
	opts.IMDS = unreachable
	opts.LocalDeadline = 200 * time.Millisecond
	opts.Stages = []modules.Stage{modules.StageLocal}
	st, err := agent.Boot(context.Background(), opts)
	if err != nil || st.State != state.StateRunning || len(st.Stages) != 1 || !st.Stages[0].Deferred {
		t.Fatalf("local stage without IMDS: %+v, %v", st, err)
	}
	f.wantRuns("local deferred", map[string]int{"boothook": 0})

	opts = f.options(boot1)
	opts.Stages = []modules.Stage{modules.StageNetwork}
	if _, err := agent.Boot(context.Background(), opts); err != nil {
		t.Fatal(err)
	}
	f.wantRuns("network stage", map[string]int{"boothook": 1})
}

// TestImageCloudConfig: cloud-config in the image (ImageConfigDir, as a
// bake leaves it) applies at every new instance, under the user data's: a
// key the user data sets replaces the image's; a bad file is named.
func TestImageCloudConfig(t *testing.T) {
	tests := []struct {
		name     string
		userData string
		files    map[string]string
		want     map[string]int
		wantErr  string
	}{
		{name: "image only", userData: "",
			files: map[string]string{"50-image.cfg": "runcmd:\n  - echo run >> \"$EC2INIT_ROOT/out/image\"\n"},
			want:  map[string]int{"image": 1}},
		{name: "user data's key wins", userData: "#cloud-config\nruncmd:\n  - echo run >> \"$EC2INIT_ROOT/out/user\"\n",
			files: map[string]string{"50-image.cfg": "runcmd:\n  - echo run >> \"$EC2INIT_ROOT/out/image\"\n"},
			want:  map[string]int{"image": 0, "user": 1}},
		{name: "lexical order, other suffixes ignored", userData: "",
			files: map[string]string{
				"10-a.yaml":  "runcmd:\n  - echo run >> \"$EC2INIT_ROOT/out/a\"\n",
				"20-b.cfg":   "runcmd:\n  - echo run >> \"$EC2INIT_ROOT/out/b\"\n",
				"30-c.txt":   "runcmd:\n  - echo run >> \"$EC2INIT_ROOT/out/c\"\n",
				".99-d.yaml": "runcmd:\n  - echo run >> \"$EC2INIT_ROOT/out/d\"\n",
			},
			want: map[string]int{"a": 0, "b": 1, "c": 0, "d": 0}},
		{name: "a bad file is named, the user data still applies", userData: "#cloud-config\nruncmd:\n  - echo run >> \"$EC2INIT_ROOT/out/user\"\n",
			files:   map[string]string{"50-bad.cfg": "bootcmd: {not: a list}\n"},
			want:    map[string]int{"user": 1},
			wantErr: agent.ImageConfigDir + "/50-bad.cfg:1:10: warning: bootcmd: expected list of"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, tt.userData)
			dir := filepath.Join(f.root, agent.ImageConfigDir)
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			for name, body := range tt.files {
				if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			st := f.boot(boot1)
			f.wantRuns("boot", tt.want)
			joined := strings.Join(append(st.Errors, st.Degraded...), "\n")
			if tt.wantErr == "" && joined != "" || !strings.Contains(joined, tt.wantErr) {
				t.Errorf("problems %q %q, want %q", st.Errors, st.Degraded, tt.wantErr)
			}
		})
	}
}
