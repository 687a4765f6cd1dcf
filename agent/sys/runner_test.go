package sys

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/ec2init/ec2init/internal/testkit"
)

func newTestRunner(t *testing.T) (*Runner, *observer.ObservedLogs) {
	t.Helper()
	core, logs := observer.New(zapcore.DebugLevel)
	return &Runner{Root: newTestRoot(t), Log: zap.New(core)}, logs
}

// sh runs a shell snippet and returns its result and combined output.
func sh(t *testing.T, r *Runner, script string, mod func(*Cmd)) (Result, string, error) {
	t.Helper()
	var out testkit.SyncBuffer
	c := Cmd{Name: "test", Argv: []string{"sh", "-c", script}, Output: &out, Timeout: 30 * time.Second}
	if mod != nil {
		mod(&c)
	}
	res, err := r.Run(context.Background(), c)
	return res, out.String(), err
}

// alive reports whether pid is a live (not zombie) process.
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	i := bytes.LastIndexByte(b, ')')
	f := strings.Fields(string(b[i+1:]))
	return len(f) > 0 && f[0] != "Z" && f[0] != "X"
}

func TestRunExitCodes(t *testing.T) {
	r, _ := newTestRunner(t)
	for _, tc := range []struct {
		script string
		want   int
	}{
		{"true", 0},
		{"false", 1},
		{"exit 3", 3},
		{"exit 255", 255},
		{"sh -c 'exit 7'; exit $?", 7},
	} {
		res, _, err := sh(t, r, tc.script, nil)
		if err != nil {
			t.Errorf("%q: unexpected error %v (a non-zero exit is not an error)", tc.script, err)
			continue
		}
		if res.ExitCode != tc.want || res.Signal != "" || res.TimedOut {
			t.Errorf("%q: result %+v, want exit %d", tc.script, res, tc.want)
		}
		if res.Duration <= 0 || res.Ended.Before(res.Started) {
			t.Errorf("%q: times %v..%v, duration %v", tc.script, res.Started, res.Ended, res.Duration)
		}
	}
}

func TestRunCleanEnvironment(t *testing.T) {
	t.Setenv("EC2INIT_TEST_MARKER", "leaked-from-the-agent")
	t.Setenv("EC2INIT_ROOT", "/from-the-agent")
	r, _ := newTestRunner(t)
	r.Env = map[string]string{"EC2_INSTANCE_ID": "i-0123456789abcdef0", "EC2_REGION": "eu-west-1"}
	_, out, err := sh(t, r, "env", func(c *Cmd) {
		c.Env = map[string]string{"EC2_REGION": "us-east-1", "PART": "part-001", "EC2INIT_ROOT": "/nope"}
	})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out, "leaked-from-the-agent") || strings.Contains(out, "/from-the-agent") || strings.Contains(out, "/nope") {
		t.Errorf("the agent's environment leaked:\n%s", out)
	}
	for _, want := range []string{
		"PATH=" + DefaultPath,
		"HOME=/root",
		"LANG=C.UTF-8",
		"EC2INIT_ROOT=" + r.Root.Prefix(),
		"EC2_INSTANCE_ID=i-0123456789abcdef0",
		"EC2_REGION=us-east-1", // Cmd.Env wins over Runner.Env
		"PART=part-001",
	} {
		if !regexp.MustCompile("(?m)^" + regexp.QuoteMeta(want) + "$").MatchString(out) {
			t.Errorf("environment lacks %q:\n%s", want, out)
		}
	}

	// The host root sets no EC2INIT_ROOT.
	host, _ := NewRoot("/")
	_, out, err = sh(t, &Runner{Root: host}, "env", nil)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out, "EC2INIT_ROOT") {
		t.Errorf("EC2INIT_ROOT set for the host root:\n%s", out)
	}

	_, _, err = sh(t, r, "true", func(c *Cmd) { c.Env = map[string]string{"A=B": "x"} })
	if err == nil || !strings.Contains(err.Error(), "A=B") {
		t.Errorf("invalid variable name: error = %v", err)
	}
}

func TestRunStdinCwd(t *testing.T) {
	r, _ := newTestRunner(t)
	for _, tc := range []struct {
		name   string
		script string
		mod    func(*Cmd)
		want   string
	}{
		{"read gets EOF", `if read line; then echo "got $line"; else echo eof; fi`, nil, "eof\n"},
		{"stdin is /dev/null", `readlink /proc/self/fd/0`, nil, "/dev/null\n"},
		{"cwd is /", `pwd`, nil, "/\n"},
		{"cwd as asked", `pwd`, func(c *Cmd) { c.Dir = r.Root.Prefix() }, r.Root.Prefix() + "\n"},
		{"stdin as given", `cat`, func(c *Cmd) { c.Stdin = strings.NewReader("fed\n") }, "fed\n"},
		{"stderr joins stdout", `echo out; echo err >&2`, nil, "out\nerr\n"},
	} {
		_, out, err := sh(t, r, tc.script, func(c *Cmd) {
			c.Timeout = 10 * time.Second // a read on a terminal would hang
			if tc.mod != nil {
				tc.mod(c)
			}
		})
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if out != tc.want {
			t.Errorf("%s: output %q, want %q", tc.name, out, tc.want)
		}
	}
}

var (
	headerRE = regexp.MustCompile(`^== ec2init: (.+) started (\S+) ==$`)
	footerRE = regexp.MustCompile(`^== ec2init: (.+) (exited \d+|killed by signal \S+) after \d[\w.µ]* ==$`)
)

func TestRunHeaderFooter(t *testing.T) {
	r, _ := newTestRunner(t)
	for _, tc := range []struct {
		script, footer string
	}{
		{"echo hello", "exited 0 after "},
		{"echo hello; exit 4", "exited 4 after "},
		{"echo hello; kill -KILL $$", "killed by signal SIGKILL after "},
	} {
		res, out, err := sh(t, r, tc.script, func(c *Cmd) {
			c.Name = "user-data part-001 (x-shellscript)"
			c.Header = true
		})
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
		if len(lines) != 3 || lines[1] != "hello" {
			t.Fatalf("%q: output %q, want header, hello, footer", tc.script, out)
		}
		m := headerRE.FindStringSubmatch(lines[0])
		if m == nil || m[1] != "user-data part-001 (x-shellscript)" {
			t.Errorf("header %q", lines[0])
		} else if ts, err := time.Parse(time.RFC3339, m[2]); err != nil || ts.Unix() != res.Started.Unix() {
			t.Errorf("header time %q: %v (started %v)", m[2], err, res.Started)
		}
		if !footerRE.MatchString(lines[2]) || !strings.Contains(lines[2], "(x-shellscript) "+tc.footer) {
			t.Errorf("footer %q, want one with %q", lines[2], tc.footer)
		}
	}
}

func TestRunSignal(t *testing.T) {
	r, _ := newTestRunner(t)
	for _, tc := range []struct {
		script, signal string
	}{
		{"kill -KILL $$", "killed"},
		{"kill -TERM $$", "terminated"},
		{"kill -SEGV $$", "segmentation fault"},
	} {
		res, _, err := sh(t, r, tc.script, nil)
		if err != nil {
			t.Fatal(err)
		}
		if res.Signal != tc.signal || res.ExitCode != -1 {
			t.Errorf("%q: result %+v, want signal %q and exit code -1", tc.script, res, tc.signal)
		}
	}
}

// spawner starts a background sleep, records its pid in pidFile, then waits
// in the foreground.
func spawner(pidFile, prelude string) string {
	return prelude + `sleep 100 & echo $! > ` + pidFile + `; sleep 100; echo not reached`
}

func readPid(t *testing.T, file string) int {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	return pid
}

// TestRunTimeoutKillsProcessGroup takes about a second: real timeouts and
// a real kill grace, the signals' timing being what it checks.
func TestRunTimeoutKillsProcessGroup(t *testing.T) {
	r, _ := newTestRunner(t)
	for _, tc := range []struct {
		name     string
		prelude  string
		grace    time.Duration
		signal   string
		footer   string
		minTaken time.Duration
	}{
		{name: "SIGTERM suffices", grace: 5 * time.Second, signal: "terminated",
			footer: "timed out after 300ms (killed by signal SIGTERM)"},
		// An ignored SIGTERM is inherited by the background sleep too.
		{name: "SIGTERM ignored, SIGKILL after grace", prelude: `trap "" TERM; `, grace: 400 * time.Millisecond,
			signal: "killed", footer: "timed out after 300ms (killed by signal SIGKILL)", minTaken: 700 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pidFile := filepath.Join(t.TempDir(), "bg.pid")
			res, out, err := sh(t, r, spawner(pidFile, tc.prelude), func(c *Cmd) {
				c.Timeout = 300 * time.Millisecond
				c.KillGrace = tc.grace
				c.Header = true
			})
			if err != nil {
				t.Fatal(err)
			}
			if !res.TimedOut || res.Signal != tc.signal {
				t.Errorf("result %+v, want timed out by %q", res, tc.signal)
			}
			if res.Duration < tc.minTaken || res.Duration > 4*time.Second {
				t.Errorf("took %v", res.Duration)
			}
			if strings.Contains(out, "not reached") || !strings.Contains(out, tc.footer) {
				t.Errorf("output %q, want footer %q", out, tc.footer)
			}
			if pid := readPid(t, pidFile); alive(pid) {
				syscall.Kill(pid, syscall.SIGKILL)
				t.Errorf("background child %d survived the timeout", pid)
			}
		})
	}
}

func TestRunContextCanceled(t *testing.T) {
	r, _ := newTestRunner(t)
	pidFile := filepath.Join(t.TempDir(), "bg.pid")
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	var out testkit.SyncBuffer
	res, err := r.Run(ctx, Cmd{Name: "runcmd", Argv: []string{"sh", "-c", spawner(pidFile, "")}, Output: &out, Header: true})
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "runcmd") {
		t.Errorf("error = %v, want the context's, naming the command", err)
	}
	if res.TimedOut || res.Signal != "terminated" {
		t.Errorf("result %+v", res)
	}
	if !strings.Contains(out.String(), "abandoned after") {
		t.Errorf("output %q lacks the abandoned footer", out.String())
	}
	if pid := readPid(t, pidFile); alive(pid) {
		syscall.Kill(pid, syscall.SIGKILL)
		t.Errorf("background child %d survived", pid)
	}

	_, err = r.Run(ctx, Cmd{Name: "late", Argv: []string{"true"}})
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "not started") {
		t.Errorf("run on a done context: error = %v", err)
	}
}

// A daemon the command leaves behind holding the output does not hold up Run.
func TestRunBackgroundHoldsOutput(t *testing.T) {
	old := outputDrain
	outputDrain = 200 * time.Millisecond
	t.Cleanup(func() { outputDrain = old })

	r, logs := newTestRunner(t)
	start := time.Now()
	res, out, err := sh(t, r, `sleep 30 & echo $!; echo started`, func(c *Cmd) { c.Header = true })
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("Run waited %v for the background process", took)
	}
	pid, _ := strconv.Atoi(strings.Split(out, "\n")[1])
	if pid > 0 {
		defer syscall.Kill(pid, syscall.SIGKILL)
		if !alive(pid) {
			t.Errorf("the background process %d was killed; daemons must survive", pid)
		}
	}
	if res.ExitCode != 0 || !strings.Contains(out, "started\n== ec2init: test exited 0") {
		t.Errorf("result %+v, output %q", res, out)
	}
	if logs.FilterMessageSnippet("still hold its output").Len() != 1 {
		t.Errorf("no warning about the detached output: %v", logs.All())
	}
}

func TestRunOutputFile(t *testing.T) {
	r, _ := newTestRunner(t)
	f, err := r.Root.OpenLog("/var/log/ec2init-output.log")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for range 2 {
		if _, err := r.Run(context.Background(), Cmd{Name: "greet", Argv: []string{"sh", "-c", "echo hi; echo oops >&2"}, Output: f, Header: true}); err != nil {
			t.Fatal(err)
		}
	}
	b, _ := r.Root.ReadFile("/var/log/ec2init-output.log")
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	if len(lines) != 8 || lines[1] != "hi" || lines[2] != "oops" || !headerRE.MatchString(lines[4]) || !footerRE.MatchString(lines[7]) {
		t.Errorf("log:\n%s", b)
	}
	// No output at all is fine too.
	if res, err := r.Run(context.Background(), Cmd{Argv: []string{"sh", "-c", "echo gone; exit 2"}}); err != nil || res.ExitCode != 2 {
		t.Errorf("without Output: %+v, %v", res, err)
	}
}

func TestRunStartErrors(t *testing.T) {
	r, _ := newTestRunner(t)
	put(t, r.Root, "/tool", "#!/bin/sh\n", 0o644)
	for _, tc := range []struct {
		name     string
		cmd      Cmd
		want     []string
		notFound bool
	}{
		{name: "not in PATH", cmd: Cmd{Name: "runcmd[2]", Argv: []string{"ec2init-no-such-command", "--secret=hunter2"}},
			want: []string{"runcmd[2]", "ec2init-no-such-command", "not found in PATH " + DefaultPath}, notFound: true},
		{name: "PATH from Env", cmd: Cmd{Name: "x", Argv: []string{"sh"}, Env: map[string]string{"PATH": "/nonexistent"}},
			want: []string{"x: sh: command not found in PATH /nonexistent"}, notFound: true},
		{name: "missing path", cmd: Cmd{Name: "runcmd[0]", Argv: []string{"/nonexistent/bin/tool"}},
			want: []string{"runcmd[0]", "/nonexistent/bin/tool", "no such file"}},
		{name: "not executable", cmd: Cmd{Name: "runcmd[1]", Argv: []string{r.Root.Prefix() + "/tool"}},
			want: []string{"runcmd[1]", r.Root.Prefix() + "/tool", "permission denied"}},
		{name: "relative to Dir", cmd: Cmd{Name: "rel", Argv: []string{"./tool"}, Dir: r.Root.Prefix()},
			want: []string{"rel", "./tool", "permission denied"}},
		{name: "bad dir", cmd: Cmd{Name: "runcmd[3]", Argv: []string{"true"}, Dir: "/nonexistent"},
			want: []string{"runcmd[3]", "true", "working directory", "/nonexistent"}},
		{name: "empty argv", cmd: Cmd{Name: "runcmd[4]"}, want: []string{"runcmd[4]: empty argv"}},
		{name: "default name", cmd: Cmd{Argv: []string{"ec2init-no-such-command"}},
			want: []string{"ec2init-no-such-command: ec2init-no-such-command: command not found"}, notFound: true},
	} {
		_, err := r.Run(context.Background(), tc.cmd)
		if err == nil {
			t.Errorf("%s: no error", tc.name)
			continue
		}
		for _, s := range tc.want {
			if !strings.Contains(err.Error(), s) {
				t.Errorf("%s: error %q lacks %q", tc.name, err, s)
			}
		}
		if strings.Contains(err.Error(), "hunter2") {
			t.Errorf("%s: error reveals an argument: %q", tc.name, err)
		}
		if tc.notFound != errors.Is(err, exec.ErrNotFound) {
			t.Errorf("%s: errors.Is(exec.ErrNotFound) = %v", tc.name, !tc.notFound)
		}
	}
}

func TestRunScript(t *testing.T) {
	r, _ := newTestRunner(t)
	const dir = "/var/lib/ec2init/instances/i-0123/scripts"
	for _, tc := range []struct {
		name    string
		content string
		perm    os.FileMode
		args    []string
		want    string   // output
		wantErr []string // substrings of the error
		noInt   bool     // errors.Is(err, ErrNoInterpreter)
	}{
		{name: "part-001", content: "#!/bin/sh\necho \"$0 $1 $EC2INIT_ROOT\"\nexit 5\n", perm: 0o700, args: []string{"arg"},
			want: "{{prefix}}" + dir + "/part-001 arg {{prefix}}\n"},
		{name: "env-interp", content: "#!/usr/bin/env sh\necho via env\n", perm: 0o700, want: "via env\n"},
		{name: "no-shebang", content: "echo hi\n", perm: 0o700,
			wantErr: []string{"user-data no-shebang: not executable: no #! interpreter line"}, noInt: true},
		{name: "empty", content: "", perm: 0o700, wantErr: []string{"no #! interpreter line"}, noInt: true},
		{name: "bare-shebang", content: "#!\necho hi\n", perm: 0o700, wantErr: []string{"no #! interpreter line"}, noInt: true},
		{name: "elf-ish", content: "\x7fELF garbage", perm: 0o700, wantErr: []string{"no #! interpreter line"}, noInt: true},
		{name: "no-interp", content: "#!/usr/bin/ec2init-no-such-interpreter -e\necho hi\n", perm: 0o700,
			wantErr: []string{"user-data no-interp", `interpreter "/usr/bin/ec2init-no-such-interpreter"`, "not found"}},
		{name: "not-exec", content: "#!/bin/sh\necho hi\n", perm: 0o644,
			wantErr: []string{"user-data not-exec", "permission denied (mode 0644)"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := dir + "/" + tc.name
			if err := r.Root.WriteFile(path, []byte(tc.content), tc.perm, nil); err != nil {
				t.Fatal(err)
			}
			var out testkit.SyncBuffer
			res, err := r.RunScript(context.Background(), path, Cmd{Name: "user-data " + tc.name, Argv: tc.args, Output: &out})
			if len(tc.wantErr) > 0 {
				if err == nil {
					t.Fatalf("no error; output %q", out.String())
				}
				for _, s := range tc.wantErr {
					if !strings.Contains(err.Error(), s) {
						t.Errorf("error %q lacks %q", err, s)
					}
				}
				if errors.Is(err, ErrNoInterpreter) != tc.noInt {
					t.Errorf("errors.Is(ErrNoInterpreter) = %v, want %v", !tc.noInt, tc.noInt)
				}
				if out.String() != "" {
					t.Errorf("output %q from a script that did not run", out.String())
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if want := strings.ReplaceAll(tc.want, "{{prefix}}", r.Root.Prefix()); out.String() != want {
				t.Errorf("output %q, want %q", out.String(), want)
			}
			if tc.name == "part-001" && res.ExitCode != 5 {
				t.Errorf("exit code %d, want 5", res.ExitCode)
			}
		})
	}
	if _, err := r.RunScript(context.Background(), dir+"/missing", Cmd{}); err == nil || !strings.Contains(err.Error(), dir+"/missing") {
		t.Errorf("missing script: error = %v", err)
	}
}

// The log says which command ran and how it ended, never its arguments or
// its output.
func TestRunLogging(t *testing.T) {
	r, logs := newTestRunner(t)
	_, _, err := sh(t, r, "echo output-line-s3cr3t; exit 2", func(c *Cmd) {
		c.Argv = append(c.Argv, "argument-s3cr3t")
		c.Name = "runcmd[0]"
	})
	if err != nil {
		t.Fatal(err)
	}
	var finished bool
	for _, e := range logs.All() {
		fields := e.ContextMap()
		if strings.Contains(fmt.Sprint(e.Message, fields), "s3cr3t") {
			t.Errorf("log entry reveals arguments or output: %s %v", e.Message, fields)
		}
		if e.Message == "command failed" {
			finished = true
			if fields["command"] != "runcmd[0]" || fields["argv0"] != "sh" || fields["exit_code"] != int64(2) || fields["duration"] == nil {
				t.Errorf("fields %v", fields)
			}
			if e.Level != zapcore.WarnLevel {
				t.Errorf("level %v", e.Level)
			}
		}
	}
	if !finished {
		t.Errorf("no 'command failed' entry: %v", logs.All())
	}
}

// chrootHelper is a static program that reports what it sees.
const chrootHelper = `package main

import (
	"fmt"
	"io"
	"os"
)

func main() {
	wd, _ := os.Getwd()
	marker, err := os.ReadFile("/marker")
	in, _ := io.ReadAll(os.Stdin)
	fmt.Printf("args=%q wd=%s marker=%q err=%v stdin=%d root=%q path=%q\n",
		os.Args[1:], wd, marker, err != nil, len(in), os.Getenv("EC2INIT_ROOT"), os.Getenv("PATH"))
}
`

// buildChroot makes a root holding only a static helper at /bin/helper, or
// skips the test.
func buildChroot(t *testing.T) *Root {
	t.Helper()
	testkit.RequireRoot(t, "chroot needs root")
	if testing.Short() {
		t.Skip("builds a helper program")
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go tool to build a static helper for the chroot")
	}
	src := t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "main.go"), []byte(chrootHelper), 0o644); err != nil {
		t.Fatal(err)
	}
	r := newTestRoot(t)
	if err := r.MkdirAll("/bin", 0o755); err != nil {
		t.Fatal(err)
	}
	build := exec.Command(goTool, "build", "-o", filepath.Join(r.Prefix(), "bin/helper"), "main.go")
	build.Dir = src
	build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=", "GOTOOLCHAIN=local", "GO111MODULE=on")
	if out, err := build.CombinedOutput(); err != nil {
		t.Skipf("cannot build a static helper for the chroot: %v\n%s", err, out)
	}
	return r
}

func TestRunChroot(t *testing.T) {
	root := buildChroot(t)
	if err := root.WriteFile("/marker", []byte("inside"), 0o644, nil); err != nil {
		t.Fatal(err)
	}
	if err := root.MkdirAll("/work", 0o755); err != nil {
		t.Fatal(err)
	}
	if err := root.WriteFile("/scripts/s1", []byte("#!/bin/helper -x\n"), 0o700, nil); err != nil {
		t.Fatal(err)
	}
	r := &Runner{Root: root, Chroot: true}
	run := func(c Cmd, script string) (string, error) {
		var out testkit.SyncBuffer
		c.Output = &out
		c.Timeout = 30 * time.Second
		var err error
		if script != "" {
			_, err = r.RunScript(context.Background(), script, c)
		} else {
			_, err = r.Run(context.Background(), c)
		}
		return out.String(), err
	}

	out, err := run(Cmd{Name: "by PATH", Argv: []string{"helper", "a"}}, "")
	if err != nil {
		t.Fatal(err)
	}
	if want := `args=["a"] wd=/ marker="inside" err=false stdin=0 root="" path="` + DefaultPath + `"` + "\n"; out != want {
		t.Errorf("by PATH: output %q, want %q", out, want)
	}

	out, err = run(Cmd{Name: "in /work", Argv: []string{"/bin/helper"}, Dir: "/work"}, "")
	if err != nil || !strings.Contains(out, "wd=/work ") {
		t.Errorf("Dir inside the root: %q, %v", out, err)
	}

	out, err = run(Cmd{Name: "script", Argv: []string{"b"}}, "/scripts/s1")
	if err != nil || !strings.HasPrefix(out, `args=["-x" "/scripts/s1" "b"] wd=/ marker="inside"`) {
		t.Errorf("script in the chroot: %q, %v", out, err)
	}

	// The host's commands are not inside the root.
	_, err = run(Cmd{Name: "host sh", Argv: []string{"sh", "-c", "true"}}, "")
	if !errors.Is(err, exec.ErrNotFound) || !strings.Contains(err.Error(), "under "+root.Prefix()) {
		t.Errorf("sh in an empty chroot: error = %v", err)
	}
}
