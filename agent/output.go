package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/ec2init/ec2init/agent/config"
	"github.com/ec2init/ec2init/agent/state"
	"github.com/ec2init/ec2init/agent/sys"
	"github.com/ec2init/ec2init/modules"
)

// A stage's output: what its modules' commands and the user's scripts
// print. It always goes to ec2init's own output log (root-only, the record
// `status` and support rely on); cloud-config's `output` key then chooses
// the rest as cloud-init's does for its stage: by default the console; with
// "> file" / ">> file" that file instead; with "| command" that command's
// stdin, whose own output reaches the console. cloud-init's default
// "| tee -a FILE" is done in-process (FILE and the console), so the common
// case starts no process and its FILE goes through the root prefix.
//
// Differences from cloud-init, deliberate: stdout and stderr stay combined
// (one stream per command, as ec2init records them), so a separate stderr
// target is warned about and stderr follows stdout; files ec2init creates
// are 0600 (cloud-init's tee leaves 0640 root:adm): output may hold secrets.

// pipeWait bounds how long a stage waits, at its end, for an output
// command to drain its input and exit.
const pipeWait = 10 * time.Second

// stageOutput is one stage's output sink.
type stageOutput struct {
	w      io.Writer
	closes []func() error
}

// Close flushes and closes what the stage opened; the first error wins.
func (o *stageOutput) Close() error {
	var first error
	for i := len(o.closes) - 1; i >= 0; i-- {
		if err := o.closes[i](); err != nil && first == nil {
			first = err
		}
	}
	o.closes = nil
	return first
}

// outputMode is cloud-init's name for the stage in `output`.
func outputMode(st modules.Stage) string {
	switch st {
	case modules.StageConfig:
		return "config"
	case modules.StageFinal:
		return "final"
	}
	return "init" // local and network: cloud-init's init-local and init
}

// openStageOutput opens stage st's sink. A target that cannot be opened is
// reported (the boot degrades, naming it) and the console is used, so no
// output is lost.
func (b *booter) openStageOutput(ctx context.Context, st modules.Stage) (*stageOutput, error) {
	logFile, err := b.root.OpenLog(state.OutputLogFile)
	if err != nil {
		return nil, fmt.Errorf("open output log: %w", err)
	}
	o := &stageOutput{closes: []func() error{logFile.Close}}
	console := b.opts.Console
	var redirect config.Output
	var set bool
	if b.cloudConfig != nil {
		redirect, set = b.cloudConfig.Output(outputMode(st))
	}
	if !set {
		o.w = teeTo(logFile, console)
		return o, nil
	}
	target := redirect.Stdout
	if target == (config.OutputRedirect{}) {
		target = redirect.Stderr
	} else if redirect.Stderr != (config.OutputRedirect{}) && redirect.Stderr != target {
		b.log.Warn("output: ec2init keeps stdout and stderr together; stderr goes where stdout goes",
			zap.String("mode", outputMode(st)))
	}
	w, closeTarget, err := b.openOutputTarget(ctx, target, console, logFile)
	if err != nil {
		b.degrade(fmt.Sprintf("output (%s): %v; writing to the console instead", outputMode(st), err))
		w, closeTarget = console, nil
	}
	if closeTarget != nil {
		o.closes = append(o.closes, closeTarget)
	}
	o.w = teeTo(logFile, w)
	return o, nil
}

// teeTo writes to log and, when there is one, to also.
func teeTo(log io.Writer, also io.Writer) io.Writer {
	if also == nil {
		return log
	}
	return io.MultiWriter(log, also)
}

// openOutputTarget opens one redirection.
func (b *booter) openOutputTarget(ctx context.Context, t config.OutputRedirect, console io.Writer, ownLog *os.File) (io.Writer, func() error, error) {
	switch t.Op {
	case ">", ">>":
		return b.openOutputFile(t.Arg, t.Op == ">", ownLog)
	case "|":
		if files, appendMode, ok := parseTee(t.Arg); ok {
			var ws []io.Writer
			var closes []func() error
			for _, f := range files {
				w, c, err := b.openOutputFile(f, !appendMode, ownLog)
				if err != nil {
					for _, c := range closes {
						c()
					}
					return nil, nil, err
				}
				ws = append(ws, w)
				if c != nil {
					closes = append(closes, c)
				}
			}
			if console != nil {
				ws = append(ws, console)
			}
			return io.MultiWriter(ws...), func() error {
				var first error
				for _, c := range closes {
					if err := c(); err != nil && first == nil {
						first = err
					}
				}
				return first
			}, nil
		}
		return b.startOutputCommand(ctx, t.Arg, console)
	}
	return nil, nil, fmt.Errorf("unknown redirection %q", t.Op)
}

// openOutputFile opens a file target through the root. The terminal
// devices cloud-init users name go to ec2init's console; /dev/null drops.
// A target that is ec2init's own output log (cloud-init's
// /var/log/cloud-init-output.log is a link to it where the package made
// one) is not written twice, nor truncated.
func (b *booter) openOutputFile(p string, truncate bool, ownLog *os.File) (io.Writer, func() error, error) {
	switch {
	case p == "":
		return nil, nil, errors.New("no file named")
	case p == "/dev/null":
		return io.Discard, nil, nil
	case p == "/dev/console" || strings.HasPrefix(p, "/dev/tty"):
		if b.opts.Console == nil {
			return io.Discard, nil, nil
		}
		return b.opts.Console, nil, nil
	case !strings.HasPrefix(p, "/"):
		return nil, nil, fmt.Errorf("%s: not an absolute path", p)
	}
	f, err := b.root.OpenLog(p)
	if err != nil {
		return nil, nil, err
	}
	if sameFile(f, ownLog) {
		f.Close()
		return io.Discard, nil, nil
	}
	if truncate {
		if err := f.Truncate(0); err != nil {
			f.Close()
			return nil, nil, fmt.Errorf("truncate %s: %w", p, err)
		}
	}
	return f, f.Close, nil
}

func sameFile(a, b *os.File) bool {
	if a == nil || b == nil {
		return false
	}
	ai, err1 := a.Stat()
	bi, err2 := b.Stat()
	return err1 == nil && err2 == nil && os.SameFile(ai, bi)
}

// parseTee recognises "tee [-a|--append] FILE..." with plain words only:
// anything a shell would interpret is left to the shell.
func parseTee(cmd string) (files []string, appendMode, ok bool) {
	if strings.ContainsAny(cmd, "|&;<>()$`\\\"'*?[]#~=%{}\n") {
		return nil, false, false
	}
	words := strings.Fields(cmd)
	if len(words) < 2 || words[0] != "tee" && words[0] != "/usr/bin/tee" && words[0] != "/bin/tee" {
		return nil, false, false
	}
	for _, w := range words[1:] {
		switch {
		case w == "-a" || w == "--append":
			appendMode = true
		case strings.HasPrefix(w, "-"):
			return nil, false, false // -i, -p...: the real tee
		default:
			files = append(files, w)
		}
	}
	return files, appendMode, len(files) > 0
}

// startOutputCommand runs cmd with /bin/sh for the stage's length, its stdin
// fed with the stage's output and its own output on the console, as
// cloud-init's "| command" does.
func (b *booter) startOutputCommand(ctx context.Context, cmd string, console io.Writer) (io.Writer, func() error, error) {
	pr, pw := io.Pipe()
	if console != nil {
		// The command writes from its own goroutine while the agent may too.
		console = &lockedWriter{w: console}
	}
	runner := &sys.Runner{Root: b.root, Chroot: b.opts.Chroot, Log: b.log, Env: b.env}
	done := make(chan error, 1)
	go func() {
		res, err := runner.Run(context.WithoutCancel(ctx), sys.Cmd{
			Name: "output command", Argv: []string{"/bin/sh", "-c", cmd},
			Stdin: pr, Output: console, Timeout: 0,
		})
		pr.CloseWithError(errOutputCommandGone) // a writer must not block on a dead reader
		switch {
		case err != nil:
			done <- err
		case res.ExitCode != 0:
			done <- fmt.Errorf("output command exited with status %d", res.ExitCode)
		default:
			done <- nil
		}
	}()
	w := &tolerantWriter{w: pw}
	return w, func() error {
		pw.Close()
		select {
		case err := <-done:
			return err
		case <-time.After(pipeWait):
			return fmt.Errorf("output command still running %s after the stage", pipeWait)
		}
	}, nil
}

var errOutputCommandGone = errors.New("output command exited")

// lockedWriter serialises writes to a writer shared between goroutines.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// tolerantWriter drops writes once its command is gone: a dead output
// command must not fail the scripts whose output it was reading.
type tolerantWriter struct {
	mu   sync.Mutex
	w    io.Writer
	dead bool
}

func (t *tolerantWriter) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.dead {
		if _, err := t.w.Write(p); err != nil {
			t.dead = true
		}
	}
	return len(p), nil
}
