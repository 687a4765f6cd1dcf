package agent

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/ec2init/ec2init/agent/config"
	"github.com/ec2init/ec2init/agent/state"
	"github.com/ec2init/ec2init/agent/sys"
	"github.com/ec2init/ec2init/modules"
)

// Session is one boot in one process: opened once, it runs the stages as
// they are asked for (Run), keeping the boot lock, the state, the status,
// the instance, the parsed user data and the merged cloud-config between
// them. Boot is a Session that runs the stages it was given and closes;
// `ec2init boot --serve` keeps one open for the whole boot, and the stage
// units ask it for their stage, so a boot pays one process's start and
// set-up instead of four.
type Session struct {
	b        *booter
	lock     *bootLock
	deadline time.Duration // opts.IdentifyDeadline as given
	prepared bool
	rotated  bool
	released bool
}

// OpenSession takes the boot lock (waiting up to opts.LockTimeout), opens
// the state and starts (or continues) this boot's status.
func OpenSession(ctx context.Context, opts Options) (*Session, error) {
	if opts.Registry == nil {
		return nil, ErrNoRegistry
	}
	opts = opts.withDefaults()
	root, err := sys.NewRoot(opts.Root)
	if err != nil {
		return nil, err
	}
	// One boot at a time, from before the state is read to after the last
	// record is written.
	lock, err := acquireBootLock(ctx, root, opts.LockTimeout, opts.Log)
	if err != nil {
		return nil, err
	}
	// Durability by stage, not by record: see booter.sync.
	store, err := state.Open(state.Options{Root: opts.Root, BootID: opts.BootID, Now: opts.Now, DeferSync: true})
	if err != nil {
		lock.release()
		return nil, fmt.Errorf("state: %w", err)
	}
	b := &booter{opts: opts, store: store, root: root, runRoot: root.NoSync(), log: opts.Log, registry: opts.Registry,
		cloudConfig: config.Merge()}
	b.views = newCloudInitViews(opts, b)
	b.beginStatus()
	return &Session{b: b, lock: lock, deadline: opts.IdentifyDeadline}, nil
}

// Run runs stages, in order, and returns the boot's status. The first call
// prepares the boot (identify, decide, read the user data); a local stage
// alone whose metadata is not reachable yet is deferred, as Boot defers
// it, and the next call prepares again. An error means the boot could not
// proceed at all; the next call tries again, as the next stage's process
// would.
func (s *Session) Run(ctx context.Context, stages []modules.Stage) (state.Status, error) {
	return s.run(ctx, stages, false)
}

// run is Run; last: no stage follows in this process, which gives up the
// status's ownership with the stages' last write.
func (s *Session) run(ctx context.Context, stages []modules.Stage, last bool) (state.Status, error) {
	b := s.b
	if len(stages) == 0 {
		return b.status, errors.New("no stage to run")
	}
	// Bounded by size, rotated between boots (never within one).
	if stages[0] == modules.StageLocal && !s.rotated {
		s.rotated = true
		if err := b.root.RotateLog(state.OutputLogFile, 10<<20); err != nil {
			b.log.Warn("rotate output log", zap.Error(err))
		}
	}
	if !s.prepared {
		if b.status.State == state.StateError {
			// A failed try, as a new stage process would find it: begin
			// again.
			b.beginStatus()
		}
		localOnly := len(stages) == 1 && stages[0] == modules.StageLocal
		b.opts.IdentifyDeadline = s.deadline
		if localOnly {
			b.opts.IdentifyDeadline = min(s.deadline, b.opts.LocalDeadline)
		}
		err := b.prepare(ctx)
		if localOnly && errors.Is(err, ErrNoMetadataSource) {
			// Normal on EC2: no address yet. The network stage runs this work.
			b.log.Info("metadata not reachable before the network; local stage deferred")
			now := b.opts.Now()
			b.status.Stages = append(b.status.Stages, state.StageResult{Name: string(modules.StageLocal), Start: now, End: now, Deferred: true})
			s.release(last)
			b.saveStatus()
			b.sync("deferred local stage")
			return b.status, nil
		}
		if err != nil {
			b.status.State = state.StateError
			b.status.Errors = append(b.status.Errors, err.Error())
			b.status.FinishedAt = b.opts.Now()
			b.saveStatus()
			b.sync("failed boot")
			return b.status, err
		}
		s.prepared = true
	}
	todo := b.stagesToRun(stages)
	for i, st := range todo {
		if err := ctx.Err(); err != nil {
			b.sync("interrupted boot")
			return b.status, err
		}
		b.runStage(ctx, st, i == len(todo)-1)
		if i < len(todo)-1 {
			b.sync("stage " + string(st))
		}
	}
	if containsStage(stages, modules.StageFinal) {
		b.finish()
	}
	s.release(last)
	b.saveStatus()
	b.sync("stage " + string(todo[len(todo)-1]))
	return b.status, nil
}

// release gives up the status's ownership when no stage follows in this
// process (status must not call the boot dead in the gap before the next
// stage's process).
func (s *Session) release(last bool) {
	if last && !s.released {
		s.released = true
		s.b.releaseStatus()
	}
}

// Close ends the session: the status no longer names this process, and
// the boot lock is released.
func (s *Session) Close() {
	if !s.released {
		s.released = true
		s.b.releaseStatus()
		s.b.saveStatus()
		s.b.sync("session closed")
	}
	s.lock.release()
}
