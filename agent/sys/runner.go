package sys

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"go.uber.org/zap"
)

// DefaultPath is the PATH every command starts with, whatever the agent's
// own environment holds.
const DefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// DefaultKillGrace is how long a timed-out command's process group has
// between SIGTERM and SIGKILL when Cmd.KillGrace is zero.
const DefaultKillGrace = 5 * time.Second

// EnvRoot names the variable that tells a command the root prefix it works
// on, when that is not "/" and the command is not chrooted into it.
const EnvRoot = "EC2INIT_ROOT"

// ErrNoInterpreter is wrapped by RunScript's error for a script that cannot
// be executed as it is (no "#!" line, or a format the kernel rejects). The
// agent never falls back to running such a file with sh.
var ErrNoInterpreter = errors.New("not executable: no #! interpreter line")

// outputDrain is how long Run keeps copying output after the command has
// exited, for the last bytes in flight. Background processes the command
// left running may hold the output open for longer; their output is then
// read and discarded, so they never block or die of SIGPIPE.
var outputDrain = 2 * time.Second

// Cmd is one command to run.
type Cmd struct {
	// Name identifies the command in logs and in the output header, e.g.
	// "user-data part-001 (x-shellscript)". Default: Argv[0].
	Name string
	// Argv is the command and its arguments. Argv[0] without a '/' is looked
	// up in the command's PATH (DefaultPath unless Env sets another); a
	// relative one with a '/' is taken from Dir. For RunScript, Argv holds
	// only the script's arguments.
	Argv []string
	// Env is added to the clean base environment (PATH, HOME=/root,
	// LANG=C.UTF-8, EC2INIT_ROOT when it applies) and to Runner.Env; its
	// values win, except over EC2INIT_ROOT, which is the runner's alone. The
	// agent's own environment is never passed on.
	Env map[string]string
	// Dir is the working directory, as the command sees it: a host path, or a
	// path inside the root when chrooted. Default "/".
	Dir string
	// Timeout bounds the run; 0 means none. When it expires the whole
	// process group gets SIGTERM, then SIGKILL after KillGrace.
	Timeout time.Duration
	// KillGrace is the time between SIGTERM and SIGKILL; 0 means
	// DefaultKillGrace.
	KillGrace time.Duration
	// Output receives stdout and stderr, combined. nil discards them.
	Output io.Writer
	// Header frames the output with a "== ec2init: <Name> started ... =="
	// line and a footer line telling how the command ended.
	Header bool
	// Stdin is the command's input; nil means /dev/null, so nothing ever
	// waits on a terminal.
	Stdin io.Reader
}

// Result is how a command that started ended. A command that exits non-zero,
// is killed by a signal or times out has a Result, not an error.
type Result struct {
	ExitCode int    // -1 when killed by a signal
	Signal   string // the signal that killed it, as Go names it ("killed", "terminated"); "" otherwise
	Duration time.Duration
	TimedOut bool
	Started  time.Time
	Ended    time.Time
}

// Runner runs commands on the host seen through Root: on the running system
// with EC2INIT_ROOT set (when the root is not "/"), or chrooted into the root
// when Chroot is set (which needs privileges).
type Runner struct {
	Root   *Root // nil means the host's "/"
	Chroot bool
	Log    *zap.Logger // nil means no logging
	// Env is given to every command, beneath Cmd.Env: the instance facts
	// (EC2_INSTANCE_ID, EC2_REGION, ...) go here.
	Env map[string]string
}

func (r *Runner) log() *zap.Logger {
	if r.Log == nil {
		return zap.NewNop()
	}
	return r.Log
}

func (r *Runner) root() (*Root, error) {
	if r.Root != nil {
		return r.Root, nil
	}
	return NewRoot("/")
}

// chrooted reports whether commands are run chrooted: Chroot is set and
// the root is not "/" already.
func (r *Runner) chrooted(root *Root) bool { return r.Chroot && !root.IsHost() }

// Run starts cmd, waits for it and returns how it ended. The error is for a
// command that could not be started (not found, not executable, bad working
// directory) or whose run was abandoned because ctx was done; it names the
// command's Name and Argv[0]. Argv is never logged beyond Argv[0], and output
// never reaches the log.
func (r *Runner) Run(ctx context.Context, cmd Cmd) (Result, error) {
	if len(cmd.Argv) == 0 || cmd.Argv[0] == "" {
		name := cmd.Name
		if name == "" {
			name = "command"
		}
		return Result{}, fmt.Errorf("%s: empty argv", name)
	}
	if cmd.Name == "" {
		cmd.Name = cmd.Argv[0]
	}
	root, err := r.root()
	if err != nil {
		return Result{}, fmt.Errorf("%s: %w", cmd.Name, err)
	}
	env, pathList, err := r.environ(root, cmd)
	if err != nil {
		return Result{}, err
	}
	dir := cmd.Dir
	if dir == "" {
		dir = "/"
	}
	execPath, err := r.lookPath(root, cmd, dir, pathList)
	if err != nil {
		return Result{}, err
	}
	res, err := r.run(ctx, root, cmd, execPath, cmd.Argv, env, dir)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) && errors.Is(err, syscall.ENOEXEC) {
			err = fmt.Errorf("%s: %s: not an executable format (a script without a #! line?): %w", cmd.Name, cmd.Argv[0], err)
		} else {
			err = fmt.Errorf("%s: %s: %w", cmd.Name, cmd.Argv[0], err)
		}
	}
	return res, err
}

// RunScript runs the executable file at path, a host path under the root
// (as given to Root.WriteFile), with cmd.Argv as its arguments. The file must
// start with a "#!" line: it is never handed to sh as a fallback. A missing
// "#!" line or a format the kernel rejects (ENOEXEC) yields an error wrapping
// ErrNoInterpreter: "<Name>: not executable: no #! interpreter line".
func (r *Runner) RunScript(ctx context.Context, path string, cmd Cmd) (Result, error) {
	if cmd.Name == "" {
		cmd.Name = path
	}
	root, err := r.root()
	if err != nil {
		return Result{}, fmt.Errorf("%s: %w", cmd.Name, err)
	}
	full, err := root.Path(path)
	if err != nil {
		return Result{}, fmt.Errorf("%s: %w", cmd.Name, err)
	}
	interp, err := readInterpreter(full)
	if err != nil {
		return Result{}, fmt.Errorf("%s: %s: %w", cmd.Name, path, err)
	}
	if interp == "" {
		return Result{}, fmt.Errorf("%s: %w", cmd.Name, ErrNoInterpreter)
	}
	execPath := full
	if r.chrooted(root) {
		execPath = "/" + strings.TrimPrefix(strings.TrimPrefix(full, root.Prefix()), "/")
	}
	env, _, err := r.environ(root, cmd)
	if err != nil {
		return Result{}, err
	}
	dir := cmd.Dir
	if dir == "" {
		dir = "/"
	}
	argv := append([]string{execPath}, cmd.Argv...)
	res, err := r.run(ctx, root, cmd, execPath, argv, env, dir)
	switch {
	case err == nil:
	case errors.Is(err, syscall.ENOEXEC):
		err = fmt.Errorf("%s: %w (the kernel rejected %s)", cmd.Name, ErrNoInterpreter, path)
	case errors.Is(err, syscall.ENOENT) && isExecError(err):
		err = fmt.Errorf("%s: %s: interpreter %q from its #! line not found: %w", cmd.Name, path, interp, err)
	case errors.Is(err, syscall.EACCES) && isExecError(err):
		mode := ""
		if fi, serr := os.Stat(full); serr == nil {
			mode = fmt.Sprintf(" (mode %04o)", fi.Mode().Perm())
		}
		err = fmt.Errorf("%s: %s: not executable: permission denied%s: %w", cmd.Name, path, mode, err)
	default:
		err = fmt.Errorf("%s: %s: %w", cmd.Name, path, err)
	}
	return res, err
}

// isExecError tells an exec failure from a working-directory one.
func isExecError(err error) bool {
	var pe *fs.PathError
	return errors.As(err, &pe) && pe.Op == "fork/exec"
}

// readInterpreter returns the interpreter named on the file's "#!" line, or
// "" when the file does not start with "#!".
func readInterpreter(full string) (string, error) {
	f, err := os.Open(full)
	if err != nil {
		return "", err
	}
	defer f.Close()
	buf := make([]byte, 256)
	n, err := io.ReadFull(f, buf)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return "", err
	}
	buf = buf[:n]
	if !bytes.HasPrefix(buf, []byte("#!")) {
		return "", nil
	}
	line, _, _ := bytes.Cut(buf[2:], []byte("\n"))
	fields := strings.Fields(string(line))
	if len(fields) == 0 {
		return "", nil
	}
	return fields[0], nil
}

// environ builds the command's whole environment and returns the PATH to
// look Argv[0] up in.
func (r *Runner) environ(root *Root, cmd Cmd) ([]string, string, error) {
	m := map[string]string{
		"PATH": DefaultPath,
		"HOME": "/root",
		"LANG": "C.UTF-8",
	}
	for _, extra := range []map[string]string{r.Env, cmd.Env} {
		for k, v := range extra {
			if k == "" || strings.ContainsAny(k, "=\x00") || strings.IndexByte(v, 0) >= 0 {
				return nil, "", fmt.Errorf("%s: invalid environment variable %q", cmd.Name, k)
			}
			m[k] = v
		}
	}
	delete(m, EnvRoot) // the runner's to set
	if !root.IsHost() && !r.chrooted(root) {
		m[EnvRoot] = root.Prefix()
	}
	env := make([]string, 0, len(m))
	for k, v := range m {
		env = append(env, k+"="+v)
	}
	sort.Strings(env)
	return env, m["PATH"], nil
}

// lookPath finds Argv[0] as the command will see it: on the host, or under
// the root when chrooted. The path returned is the one to execute.
func (r *Runner) lookPath(root *Root, cmd Cmd, dir, pathList string) (string, error) {
	name := cmd.Argv[0]
	if strings.Contains(name, "/") {
		if !filepath.IsAbs(name) {
			name = filepath.Join(dir, name)
		}
		return name, nil
	}
	chrooted := r.chrooted(root)
	var notExec string
	for _, d := range filepath.SplitList(pathList) {
		if !filepath.IsAbs(d) {
			continue // "" and relative entries mean the cwd: never searched
		}
		cand := filepath.Join(d, name)
		real := cand
		if chrooted {
			var err error
			if real, err = root.Path(cand); err != nil {
				continue
			}
		}
		fi, err := os.Stat(real)
		if err != nil || !fi.Mode().IsRegular() {
			continue
		}
		if fi.Mode().Perm()&0o111 == 0 {
			if notExec == "" {
				notExec = cand
			}
			continue
		}
		return cand, nil
	}
	where := "PATH " + pathList
	if chrooted {
		where += " under " + root.Prefix()
	}
	if notExec != "" {
		return "", fmt.Errorf("%s: %s: found %s but it is not executable: %w", cmd.Name, name, notExec, exec.ErrNotFound)
	}
	return "", fmt.Errorf("%s: %s: command not found in %s: %w", cmd.Name, name, where, exec.ErrNotFound)
}

// run starts the command, waits for it, enforces the timeout and writes the
// header and footer. Errors are bare (the callers add Name and argv[0]).
func (r *Runner) run(ctx context.Context, root *Root, cmd Cmd, execPath string, argv, env []string, dir string) (Result, error) {
	log := r.log().With(zap.String("command", cmd.Name), zap.String("argv0", argv[0]))
	chrooted := r.chrooted(root)

	if err := ctx.Err(); err != nil {
		return Result{}, fmt.Errorf("not started: %w", err)
	}
	realDir := dir
	if chrooted {
		var err error
		if realDir, err = root.Path(dir); err != nil {
			return Result{}, fmt.Errorf("working directory: %w", err)
		}
	}
	if fi, err := os.Stat(realDir); err != nil {
		return Result{}, fmt.Errorf("working directory: %w", err)
	} else if !fi.IsDir() {
		return Result{}, fmt.Errorf("working directory %s: not a directory", dir)
	}

	// Output: a file is handed to the command as it is; any other writer is
	// fed from a pipe that Run drains.
	var (
		childOut *os.File
		pr       *os.File
		sw       *switchWriter
	)
	switch w := cmd.Output.(type) {
	case nil:
	case *os.File:
		childOut = w
	default:
		var err error
		if pr, childOut, err = os.Pipe(); err != nil {
			return Result{}, fmt.Errorf("output pipe: %w", err)
		}
		sw = &switchWriter{w: w}
	}
	closePipe := func() {
		if pr != nil {
			pr.Close()
			childOut.Close()
		}
	}

	newCmd := func() *exec.Cmd {
		c := &exec.Cmd{
			Path:        execPath,
			Args:        argv,
			Env:         env,
			Dir:         dir,
			Stdin:       cmd.Stdin,
			SysProcAttr: &syscall.SysProcAttr{Setpgid: true},
			// Bounds the wait for copying a non-file Stdin once the
			// command has exited.
			WaitDelay: time.Second,
		}
		if childOut != nil {
			c.Stdout, c.Stderr = childOut, childOut
		}
		if chrooted {
			c.SysProcAttr.Chroot = root.Prefix()
		}
		return c
	}

	res := Result{Started: time.Now()}
	if cmd.Header && cmd.Output != nil {
		fmt.Fprintf(cmd.Output, "== ec2init: %s started %s ==\n", cmd.Name, res.Started.Format(time.RFC3339))
	}
	c, err := startRetry(newCmd)
	if err != nil {
		closePipe()
		if cmd.Header && cmd.Output != nil {
			fmt.Fprintf(cmd.Output, "== ec2init: %s could not start: %v ==\n", cmd.Name, err)
		}
		log.Error("command could not start", zap.Error(err))
		return Result{}, err
	}
	log.Debug("command started", zap.Int("pid", c.Process.Pid), zap.Bool("chroot", chrooted))

	copyDone := make(chan struct{})
	if pr != nil {
		childOut.Close() // the child has its copy
		go func() {
			defer close(copyDone)
			defer pr.Close()
			io.Copy(sw, pr)
		}()
	} else {
		close(copyDone)
	}

	waitCh := make(chan error, 1)
	go func() { waitCh <- c.Wait() }()

	var timeout <-chan time.Time
	if cmd.Timeout > 0 {
		t := time.NewTimer(cmd.Timeout)
		defer t.Stop()
		timeout = t.C
	}
	grace := cmd.KillGrace
	if grace <= 0 {
		grace = DefaultKillGrace
	}
	pgid := c.Process.Pid
	var canceled, waitErr error
	select {
	case waitErr = <-waitCh:
	case <-timeout:
		res.TimedOut = true
		log.Warn("command timed out; terminating its process group", zap.Duration("timeout", cmd.Timeout))
		waitErr = terminateGroup(pgid, grace, waitCh)
	case <-ctx.Done():
		canceled = ctx.Err()
		log.Warn("command abandoned; terminating its process group", zap.Error(canceled))
		waitErr = terminateGroup(pgid, grace, waitCh)
	}
	res.Ended = time.Now()
	res.Duration = res.Ended.Sub(res.Started)
	if c.ProcessState == nil { // not reaped: nothing is known of its end
		res.ExitCode = -1
		log.Error("waiting for the command failed", zap.Error(waitErr))
		return res, fmt.Errorf("wait: %w", waitErr)
	}
	if ws, ok := c.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		res.ExitCode = -1
		res.Signal = ws.Signal().String()
	} else {
		res.ExitCode = c.ProcessState.ExitCode()
	}

	// The last output in flight; then whatever still holds the pipe (a
	// daemon the command started) is read into the void.
	if pr != nil {
		select {
		case <-copyDone:
		case <-time.After(outputDrain):
			sw.detach()
			log.Warn("background processes of the command still hold its output; the rest of it is discarded")
		}
		if werr := sw.failure(); werr != nil {
			log.Warn("writing the command's output failed", zap.Error(werr))
		}
	}

	if cmd.Header && cmd.Output != nil {
		fmt.Fprintf(cmd.Output, "== ec2init: %s %s ==\n", cmd.Name, footer(res, cmd.Timeout, canceled != nil))
	}
	fields := []zap.Field{zap.Int("exit_code", res.ExitCode), zap.Duration("duration", res.Duration)}
	if res.Signal != "" {
		fields = append(fields, zap.String("signal", res.Signal))
	}
	if res.TimedOut {
		fields = append(fields, zap.Bool("timed_out", true))
	}
	if canceled != nil {
		log.Warn("command abandoned", fields...)
		return res, fmt.Errorf("abandoned: %w", canceled)
	}
	if res.ExitCode == 0 {
		log.Info("command finished", fields...)
	} else {
		log.Warn("command failed", fields...)
	}
	return res, nil
}

// startRetry starts a fresh command, retrying a few times on ETXTBSY: a file
// the agent just wrote may still be open in a child forked concurrently
// (before its exec closed the descriptor).
func startRetry(newCmd func() *exec.Cmd) (*exec.Cmd, error) {
	var err error
	for attempt := range 5 {
		c := newCmd()
		if err = c.Start(); err == nil {
			return c, nil
		}
		if !errors.Is(err, syscall.ETXTBSY) {
			return nil, err
		}
		time.Sleep(time.Duration(attempt+1) * 20 * time.Millisecond)
	}
	return nil, err
}

// terminateGroup sends SIGTERM to the process group, then SIGKILL once the
// grace has passed with any member still alive. It returns the leader's
// Wait error once the leader has been reaped and the group is gone or killed.
func terminateGroup(pgid int, grace time.Duration, waitCh <-chan error) error {
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	deadline := time.NewTimer(grace)
	defer deadline.Stop()
	select {
	case err := <-waitCh:
		// The leader is gone; the rest of the group gets the rest of the grace.
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for groupAlive(pgid) {
			select {
			case <-deadline.C:
				killGroup(pgid)
				return err
			case <-tick.C:
			}
		}
		return err
	case <-deadline.C:
		// The leader too, should it have left its group: Wait must return.
		_ = syscall.Kill(pgid, syscall.SIGKILL)
		killGroup(pgid)
		return <-waitCh
	}
}

// killGroup sends SIGKILL to the group and waits a little for its members
// to be dead, so that when Run returns they are.
func killGroup(pgid int) {
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	for range 100 {
		if !groupAlive(pgid) {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// groupAlive reports whether a live (not zombie) process is in the group.
// kill(-pgid, 0) alone also counts zombies, which linger where PID 1 does not
// reap (containers), so /proc settles it.
func groupAlive(pgid int) bool {
	if err := syscall.Kill(-pgid, 0); errors.Is(err, syscall.ESRCH) {
		return false
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return true
	}
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// pid (comm) state ppid pgrp ...; comm may hold spaces and parens.
		i := bytes.LastIndexByte(b, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(b[i+1:]))
		if len(f) < 3 {
			continue
		}
		if pg, err := strconv.Atoi(f[2]); err == nil && pg == pgid && f[0] != "Z" && f[0] != "X" {
			return true
		}
	}
	return false
}

// footer says how the command ended, for the output log.
func footer(res Result, timeout time.Duration, canceled bool) string {
	var how string
	if res.Signal != "" {
		how = "killed by signal " + signalName(res.Signal)
	} else {
		how = fmt.Sprintf("exited %d", res.ExitCode)
	}
	switch {
	case res.TimedOut:
		return fmt.Sprintf("timed out after %s (%s)", roundDur(timeout), how)
	case canceled:
		return fmt.Sprintf("abandoned after %s (%s)", roundDur(res.Duration), how)
	default:
		return fmt.Sprintf("%s after %s", how, roundDur(res.Duration))
	}
}

func roundDur(d time.Duration) time.Duration {
	if d >= time.Millisecond {
		return d.Round(time.Millisecond)
	}
	return d.Round(time.Microsecond)
}

// signalName turns Go's description of a signal ("killed") into the name
// operators know ("SIGKILL").
func signalName(desc string) string {
	for sig := syscall.Signal(1); sig < 32; sig++ {
		if sig.String() == desc {
			if n, ok := signalNames[sig]; ok {
				return n
			}
			return "signal " + strconv.Itoa(int(sig))
		}
	}
	return desc
}

var signalNames = map[syscall.Signal]string{
	syscall.SIGHUP: "SIGHUP", syscall.SIGINT: "SIGINT", syscall.SIGQUIT: "SIGQUIT",
	syscall.SIGILL: "SIGILL", syscall.SIGTRAP: "SIGTRAP", syscall.SIGABRT: "SIGABRT",
	syscall.SIGBUS: "SIGBUS", syscall.SIGFPE: "SIGFPE", syscall.SIGKILL: "SIGKILL",
	syscall.SIGUSR1: "SIGUSR1", syscall.SIGSEGV: "SIGSEGV", syscall.SIGUSR2: "SIGUSR2",
	syscall.SIGPIPE: "SIGPIPE", syscall.SIGALRM: "SIGALRM", syscall.SIGTERM: "SIGTERM",
	syscall.SIGXCPU: "SIGXCPU", syscall.SIGXFSZ: "SIGXFSZ", syscall.SIGSYS: "SIGSYS",
}

// switchWriter feeds the caller's writer until detached, then discards. It
// never reports a write error to its reader, so the pipe keeps draining and
// the command never blocks on a broken console.
type switchWriter struct {
	mu       sync.Mutex
	w        io.Writer
	detached bool
	err      error
}

func (s *switchWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.detached && s.err == nil {
		if _, err := s.w.Write(p); err != nil {
			s.err = err
		}
	}
	return len(p), nil
}

func (s *switchWriter) detach() {
	s.mu.Lock()
	s.detached = true
	s.mu.Unlock()
}

func (s *switchWriter) failure() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}
