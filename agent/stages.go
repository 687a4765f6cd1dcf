package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"runtime/debug"
	"sort"
	"strings"
	"sync"

	"go.uber.org/zap"

	"github.com/ec2init/ec2init/agent/config"
	"github.com/ec2init/ec2init/agent/state"
	"github.com/ec2init/ec2init/agent/sys"
	"github.com/ec2init/ec2init/agent/userdata"
	"github.com/ec2init/ec2init/modules"
)

// work is one gated unit of a stage: a module, or one script of a slot
// (see plan.go).
type work struct {
	name string // module name in state records, e.g. "scripts_user:part-001"
	freq state.Frequency
	// user is set for the user's own code (script parts, script
	// directories, runcmd, bootcmd): it may not be idempotent, so a run a
	// crash interrupted is not repeated. ec2init's own modules are.
	user bool
	// run does the work; a non-nil exit code is reported with the outcome.
	run func(ctx context.Context) (exitCode *int, err error)
	// start, when set, begins the module's slow work when the stage
	// starts (modules.Starter) and returns what waits for it.
	start func(ctx context.Context) (wait func())
}

// runStage runs stage st. The status is saved at its end, except after
// the last stage of this process: Boot saves it then, once, with this
// process released as its owner.
func (b *booter) runStage(ctx context.Context, st modules.Stage, last bool) {
	stage := state.StageResult{Name: string(st), Start: b.opts.Now()}
	b.status.Stage = string(st)
	b.status.Stages = append(b.status.Stages, stage)
	idx := len(b.status.Stages) - 1
	b.saveRunStatus()
	log := b.log.With(zap.String("stage", string(st)))
	log.Info("stage start")
	out, err := b.openStageOutput(ctx, st)
	if err != nil {
		b.degrade(fmt.Sprintf("stage %s: %v", st, err))
	}
	b.out = out
	defer func() {
		if b.out != nil {
			if err := b.out.Close(); err != nil {
				b.degrade(fmt.Sprintf("output (%s): %v", outputMode(st), err))
			}
			b.out = nil
		}
	}()

	works := b.startEarly(ctx, b.stageWork(st))
	defer works.wait()
	for _, w := range works.items {
		if ctx.Err() != nil {
			break
		}
		res := b.runGated(ctx, log, w)
		b.status.Stages[idx].Modules = append(b.status.Stages[idx].Modules, res)
		if res.Outcome != string(state.OutcomeSkipped) {
			// The live view follows the work done; a module skipped by
			// its frequency (most of them on a reboot) waits for the
			// next write, at the latest the stage's end.
			b.saveRunStatus()
		}
	}
	end := b.opts.Now()
	b.status.Stages[idx].End = end
	b.status.Stages[idx].DurationMS = state.Millis(b.status.Stages[idx].Start, end)
	if !last {
		b.saveStatus()
	}
	log.Info("stage done", zap.Float64("duration_ms", b.status.Stages[idx].DurationMS))
}

// stageWorks are a stage's work items, some started early.
type stageWorks struct {
	items []work
	waits []func()
}

// wait waits for every early start, those whose Run never came included.
func (s stageWorks) wait() {
	for _, w := range s.waits {
		w()
	}
}

// startEarly starts, before the stage's first module, the slow work of
// the modules that are due to run and can begin early (modules.Starter),
// and makes each one's run wait for its start to finish first.
func (b *booter) startEarly(ctx context.Context, items []work) stageWorks {
	out := stageWorks{items: items}
	for i, w := range items {
		if w.start == nil {
			continue
		}
		if due, _, err := b.store.ShouldRun(w.name, w.freq); err != nil || !due {
			continue
		}
		started := w.start(ctx)
		if started == nil {
			continue
		}
		wait := sync.OnceFunc(started)
		out.waits = append(out.waits, wait)
		run := w.run
		out.items[i].run = func(ctx context.Context) (*int, error) {
			wait()
			return run(ctx)
		}
	}
	return out
}

// runModule runs m. A panic in a module is that module's failure, with
// its stack in the log: one broken module must not end the boot and
// leave the stages after it unrun.
func runModule(ctx context.Context, m modules.Module, env *modules.Env, cfg *config.CloudConfig) (err error) {
	defer func() {
		if r := recover(); r != nil {
			env.Logger().Error("module panicked", zap.String("module", m.Name()),
				zap.String("panic", fmt.Sprint(r)), zap.ByteString("stack", debug.Stack()))
			err = fmt.Errorf("panicked: %v", r)
		}
	}()
	return m.Run(ctx, env, cfg)
}

// moduleEnv is what a module sees; its command output goes to the output
// log and the console like scripts'.
func (b *booter) moduleEnv() (*modules.Env, func(), error) {
	out, closeOut, err := b.output()
	if err != nil {
		return nil, nil, err
	}
	env, err := NewModuleEnv(ModuleEnvOptions{
		// A module's files are made durable with its records, at the
		// stage's end (booter.sync): a power cut before that leaves the
		// module due again, and it is idempotent.
		Root:               b.root.NoSync(),
		Chroot:             b.opts.Chroot,
		Instance:           b.instance,
		NewInstance:        b.trans.NewInstance,
		PreviousInstanceID: b.trans.PreviousInstanceID,
		IMDS:               b.opts.IMDS,
		Fetcher:            b.opts.Fetcher,
		Log:                b.log,
		Console:            out,
		Facts:              b.env,
		Version:            b.opts.Version,
	})
	if err != nil {
		closeOut()
		return nil, nil, err
	}
	return env, closeOut, nil
}

// output is where a command's output goes: the stage's sink, or outside a
// stage the output log and the console.
func (b *booter) output() (io.Writer, func(), error) {
	if b.out != nil {
		return b.out.w, func() {}, nil
	}
	logFile, err := b.root.OpenLog(state.OutputLogFile)
	if err != nil {
		return nil, nil, fmt.Errorf("open output log: %w", err)
	}
	return teeTo(logFile, b.opts.Console), func() { logFile.Close() }, nil
}

func (b *booter) parts(kind userdata.Kind) []userdata.Part {
	if b.userData == nil {
		return nil
	}
	var out []userdata.Part
	for _, p := range b.userData.Parts {
		if p.Kind == kind {
			out = append(out, p)
		}
	}
	return out
}

// runGated runs w if its frequency says so and it was not interrupted by
// a crash, recording start and end so a crash mid-run is visible next boot.
func (b *booter) runGated(ctx context.Context, log *zap.Logger, w work) state.ModuleResult {
	res := state.ModuleResult{Name: w.name, Frequency: string(w.freq)}
	log = log.With(zap.String("module", w.name), zap.String("frequency", string(w.freq)))
	run, _, err := b.store.ShouldRun(w.name, w.freq)
	if err != nil {
		log.Warn("semaphore unreadable; not running", zap.Error(err))
		res.Outcome, res.Error = string(state.OutcomeSkipped), err.Error()
		res.Start = b.opts.Now()
		res.End = res.Start
		b.degrade(w.name + ": " + err.Error())
		return res
	}
	if !run {
		res.Outcome = string(state.OutcomeSkipped)
		res.Start = b.opts.Now()
		res.End = res.Start
		return res
	}
	if w.freq != state.Always {
		interrupted, rec, err := b.store.Interrupted(w.name, w.freq)
		if err != nil {
			log.Warn("run record unreadable", zap.Error(err))
		}
		switch {
		case !interrupted:
		case !w.user:
			// ec2init's own modules are written to be run again (the ssh
			// module finishes the host keys it had not made): leaving one
			// interrupted could leave the instance unreachable for good.
			log.Warn(fmt.Sprintf("interrupted during boot %s; ec2init's own module, running again", rec.BootID),
				zap.Time("interrupted_run_started", rec.StartedAt))
		case !b.opts.RerunInterrupted:
			when := ""
			if !rec.StartedAt.IsZero() {
				when = " (started " + rec.StartedAt.UTC().Format("2006-01-02T15:04:05Z") + ")"
			}
			msg := fmt.Sprintf("%s: interrupted during boot %s%s; not run again: it may not be idempotent (ec2init userdata run-script, or --rerun-interrupted)",
				w.name, rec.BootID, when)
			log.Warn("interrupted earlier; not re-run")
			b.status.Interrupted = appendOnce(b.status.Interrupted, msg)
			res.Outcome = string(state.OutcomeInterrupted)
			res.Start = b.opts.Now()
			res.End = res.Start
			// The record is left as the crash left it: rewriting it would
			// replace the boot and start time of the interrupted run with
			// this boot's, and every later boot would report those.
			return res
		}
	}
	if err := b.store.MarkStarted(w.name, w.freq); err != nil {
		b.fail(w.name + ": " + err.Error())
		res.Outcome, res.Error = string(state.OutcomeFailed), err.Error()
		return res
	}
	if w.user {
		// The user's code may not be idempotent: its running record (and
		// every semaphore before it) must survive a power cut before it
		// starts, or it could run twice.
		if err := b.store.Sync(); err != nil {
			b.fail(w.name + ": " + err.Error())
			res.Outcome, res.Error = string(state.OutcomeFailed), err.Error()
			return res
		}
	}
	b.hook("start", w.name)
	res.Start = b.opts.Now()
	exit, runErr := w.run(ctx)
	res.End = b.opts.Now()
	b.hook("ran", w.name)
	res.DurationMS = state.Millis(res.Start, res.End)
	res.ExitCode = exit
	res.Outcome = string(state.OutcomeOK)
	if runErr != nil {
		// The boot goes on after a failed script or module: a recoverable
		// error, so the boot is degraded (status exit 2); error (exit 1)
		// is kept for a boot that could not do its work at all.
		res.Outcome, res.Error = string(state.OutcomeFailed), runErr.Error()
		b.degrade(w.name + ": " + runErr.Error())
		log.Error("failed", zap.Error(runErr), zap.Float64("duration_ms", res.DurationMS))
	} else {
		log.Info("done", zap.Float64("duration_ms", res.DurationMS))
	}
	if ctx.Err() != nil {
		// Stopped from outside: leave the record open, as a crash would.
		return res
	}
	// A script that ran to its end, even failing, has had its one run: it
	// is not repeated on the next boot (status reports the failure). The
	// semaphore goes first: a crash between the two writes must leave it
	// done, never finished-without-semaphore, which would run it again.
	if err := b.store.MarkDone(w.name, w.freq); err != nil {
		log.Warn("semaphore", zap.Error(err))
	}
	if w.user {
		// Its semaphore durable now, not at the stage's end: a power cut
		// in between must not leave it due again.
		if err := b.store.Sync(); err != nil {
			log.Warn("semaphore", zap.Error(err))
		}
	}
	b.hook("done", w.name)
	if err := b.store.MarkFinished(w.name, w.freq, state.Outcome(res.Outcome), runErr); err != nil {
		log.Warn("record", zap.Error(err))
	}
	return res
}

func (b *booter) hook(point, name string) {
	if b.opts.Hook != nil {
		b.opts.Hook(point, name)
	}
}

// partWork runs one user-data script part.
func (b *booter) partWork(prefix string, p userdata.Part, freq state.Frequency) work {
	name := partModule(prefix, p)
	return work{name: name, freq: freq, user: true, run: func(ctx context.Context) (*int, error) {
		dir, err := b.store.InstanceDir()
		if err != nil {
			return nil, err
		}
		rel, err := b.relToRoot(path.Join(dir, "scripts", p.Name))
		if err != nil {
			return nil, err
		}
		// Not fsynced: it runs now, and only this run needs it.
		if err := b.root.NoSync().WriteFile(rel, p.Executable(), 0o700, nil); err != nil {
			return nil, fmt.Errorf("write script: %w", err)
		}
		return b.runScript(ctx, name, rel)
	}}
}

// dirWork runs the executables of one /etc/ec2init/scripts directory in
// lexical order, each gated by the directory's frequency and named
// "<prefix>:<file>".
func (b *booter) dirWork(base, prefix, sub string, freq state.Frequency) []work {
	dir := path.Join(base, sub)
	host, err := b.root.Path(dir)
	if err != nil {
		return nil
	}
	entries, err := os.ReadDir(host)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			b.degrade(fmt.Sprintf("%s: %v", dir, err))
		}
		return nil
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].Name() < entries[j].Name() })
	var out []work
	used := map[string]bool{}
	for _, e := range entries {
		info, err := e.Info()
		if err != nil || !info.Mode().IsRegular() || info.Mode().Perm()&0o111 == 0 {
			continue // cloud-init runs only executable files
		}
		file := path.Join(dir, e.Name())
		// "a b" and "a_b" are both file-safe as "a_b": the later one gets a
		// "+N" suffix rather than sharing (and skipping on) the first's
		// semaphore.
		safe := userdata.FileSafe(e.Name())
		for n := 2; used[safe]; n++ {
			safe = fmt.Sprintf("%s+%d", userdata.FileSafe(e.Name()), n)
		}
		used[safe] = true
		name := prefix + ":" + safe
		out = append(out, work{name: name, freq: freq, user: true, run: func(ctx context.Context) (*int, error) {
			return b.runScript(ctx, name, file)
		}})
	}
	return out
}

// runScript runs an executable (a path under the root) as root with the
// instance facts, stdin on /dev/null, its output appended to the output
// log and mirrored to the console.
func (b *booter) runScript(ctx context.Context, name, file string) (*int, error) {
	out, closeOut, err := b.output()
	if err != nil {
		return nil, err
	}
	defer closeOut()
	runner := &sys.Runner{Root: b.root, Chroot: b.opts.Chroot, Log: b.log, Env: b.env}
	res, err := runner.RunScript(ctx, file, sys.Cmd{
		Name:    name,
		Timeout: b.opts.ScriptTimeout,
		Output:  out,
		Header:  true,
	})
	if err != nil {
		return nil, err
	}
	code := res.ExitCode
	switch {
	case res.TimedOut:
		return &code, fmt.Errorf("timed out after %s", b.opts.ScriptTimeout)
	case res.Signal != "":
		return &code, fmt.Errorf("killed by signal: %s", res.Signal)
	case code != 0:
		return &code, fmt.Errorf("exit status %d", code)
	}
	return &code, nil
}

// relToRoot turns a host path inside the root (as the state store returns
// them) back into the root-relative path the sys layer takes.
func (b *booter) relToRoot(hostPath string) (string, error) {
	prefix := b.root.Prefix()
	if prefix == "/" {
		return hostPath, nil
	}
	rel := strings.TrimPrefix(hostPath, prefix)
	if rel == hostPath || !strings.HasPrefix(rel, "/") {
		return "", fmt.Errorf("%s is outside the root %s", hostPath, prefix)
	}
	return rel, nil
}

// partModule is the state record name of a user-data part: the part's
// Name (unique among parts run the same way) after its slot's name.
func partModule(prefix string, p userdata.Part) string {
	return prefix + ":" + p.Name
}

func statusJSON(st state.Status) ([]byte, error) {
	return json.MarshalIndent(st, "", "  ")
}
