// Package agent runs a boot: it identifies the instance, decides what this
// boot is (first boot of a new instance, or a reboot), reads the user data
// and runs each stage's work gated by its frequency, recording every step
// so `ec2init status` and `ec2init analyze` can tell what happened.
package agent

import (
	"context"
	"errors"
	"io"
	"time"

	"go.uber.org/zap"

	"github.com/ec2init/ec2init/agent/civiews"
	"github.com/ec2init/ec2init/agent/config"
	"github.com/ec2init/ec2init/agent/fetch"
	"github.com/ec2init/ec2init/agent/imds"
	"github.com/ec2init/ec2init/agent/state"
	"github.com/ec2init/ec2init/agent/sys"
	"github.com/ec2init/ec2init/agent/userdata"
	"github.com/ec2init/ec2init/modules"
)

// Options configures a boot.
type Options struct {
	// Root prefixes every path the agent reads or writes ("/" in
	// production).
	Root string
	// Chroot runs scripts chrooted into Root instead of on the host.
	Chroot bool
	// Stages to run now; nil runs all of them.
	Stages []modules.Stage
	IMDS   *imds.Client
	Log    *zap.Logger
	// BootID overrides /proc/sys/kernel/random/boot_id (tests).
	BootID string
	Now    func() time.Time
	// RerunInterrupted runs again a script a crash interrupted; by default
	// it is reported and left alone, since it may not be idempotent.
	RerunInterrupted bool
	// ScriptTimeout bounds each script (0: none).
	ScriptTimeout time.Duration
	// IdentifyDeadline bounds waiting for IMDS (the network may still be
	// coming up). Default 2 minutes.
	IdentifyDeadline time.Duration
	// LocalDeadline bounds waiting for IMDS when only the local stage runs
	// (before the network, IMDS is usually unreachable: the local work is
	// then deferred to the network stage). Default 3 seconds.
	LocalDeadline time.Duration
	// Console receives script output besides the output log (the journal
	// or a terminal). Nil: the output log only.
	Console io.Writer
	// Fetch fetches #include URLs; nil refuses includes.
	Fetch userdata.Fetcher
	// Fetcher is the one fetcher, given to modules that download (the
	// software module shares its transport); nil: they build their own.
	Fetcher *fetch.Fetcher
	// AllowInsecureInclude permits http:// includes.
	AllowInsecureInclude bool
	// ScriptDirs is where per-boot/per-instance/per-once script directories
	// live (default /etc/ec2init/scripts).
	ScriptDirs string
	Version    string
	// Registry is the work a boot plans: the modules and where the
	// scripts run among them. Required by Boot: the caller chooses the
	// modules (cmd wires modules/all), the agent imports none.
	Registry *modules.Registry
	// LockTimeout bounds waiting for another boot's BootLockFile; 0 fails
	// at once. Negative: DefaultLockTimeout.
	LockTimeout time.Duration
	// Hook, when set (tests), is called at each step of every gated unit
	// of work: "start" once its run record says running, "ran" after it
	// returned, "done" after its semaphore was written. Crash tests kill
	// the process there.
	Hook func(point, name string)
	// NoCloudInitViews turns off cloud-init's files (agent/civiews).
	NoCloudInitViews bool
}

func (o Options) withDefaults() Options {
	if o.Root == "" {
		o.Root = "/"
	}
	if len(o.Stages) == 0 {
		o.Stages = modules.Stages()
	}
	if o.Log == nil {
		o.Log = zap.NewNop()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.IdentifyDeadline <= 0 {
		o.IdentifyDeadline = 2 * time.Minute
	}
	if o.LocalDeadline <= 0 {
		o.LocalDeadline = 3 * time.Second
	}
	if o.ScriptDirs == "" {
		o.ScriptDirs = "/etc/ec2init/scripts"
	}
	if o.LockTimeout < 0 {
		o.LockTimeout = DefaultLockTimeout
	}
	return o
}

// ErrNoMetadataSource means IMDS never answered within the deadline: this
// is not an EC2 instance, or its metadata service is off.
var ErrNoMetadataSource = errors.New("no metadata source")

// ErrNoRegistry means Boot was called without Options.Registry.
var ErrNoRegistry = errors.New("agent: Options.Registry is required (cmd passes modules/all's registry)")

// Boot runs the requested stages and returns the boot's status. An error
// means the boot could not proceed at all (no metadata source, unusable
// state); failures of single scripts are in the status, not the error.
func Boot(ctx context.Context, opts Options) (state.Status, error) {
	s, err := OpenSession(ctx, opts)
	if err != nil {
		return state.Status{}, err
	}
	defer s.Close()
	return s.run(ctx, s.b.opts.Stages, true)
}

// sync makes the boot's records durable (one syncfs: state.Store.Sync).
// The store defers the fsync of each record: a user's script has its run
// record made durable before it starts and its semaphore after it ends
// (runGated), so a power cut never runs it twice; everything else (ec2init's
// own modules, which are idempotent and run again after a crash, the
// status, cloud-init's views) is made durable here, once at the end of
// each stage. A process killed at any point loses nothing: every write is
// atomic and the page cache survives it.
func (b *booter) sync(what string) {
	if err := b.store.Sync(); err != nil {
		b.log.Warn("make records durable", zap.String("at", what), zap.Error(err))
	}
}

// releaseStatus drops this process as the owner of a boot still running
// when it returns (a stage done, the next one its own process): status
// must not call the boot dead in the gap (see state.Store.Live).
func (b *booter) releaseStatus() {
	if b.status.State == state.StateRunning {
		b.status.PID, b.status.PIDStart = 0, 0
	}
}

// stagesToRun adds the local stage before the first later one when this
// boot's local stage was deferred or never ran, so boothooks always run.
func (b *booter) stagesToRun(requested []modules.Stage) []modules.Stage {
	if len(requested) == 0 || requested[0] == modules.StageLocal {
		return requested
	}
	for _, st := range b.status.Stages {
		if st.Name == string(modules.StageLocal) && !st.Deferred {
			return requested
		}
	}
	return append([]modules.Stage{modules.StageLocal}, requested...)
}

// booter is one boot's working state.
type booter struct {
	opts  Options
	store *state.Store
	root  *sys.Root
	// runRoot writes what lives under /run (tmpfs): the same root, its
	// writes never fsynced.
	runRoot *sys.Root
	log     *zap.Logger
	status  state.Status
	// continued: an earlier stage of this boot wrote the status this
	// one continues (its instance id is known without asking IMDS).
	continued bool
	// crawled is the new instance's tree as cloud-init materializes it,
	// from the one crawl of loadInstance (nil: read from its cache).
	crawled map[string]any

	instance    *imds.Instance
	trans       state.Transition
	userData    *userdata.Result
	cloudConfig *config.CloudConfig
	// userDocs are the user data's valid cloud-config documents.
	userDocs []config.Doc
	registry *modules.Registry
	env      map[string]string
	views    *civiews.Writer // nil: off
	// out is the running stage's output sink (output.go); nil outside a
	// stage (userdata run-script), where output goes to the log and console.
	out *stageOutput
	// sysCfg is the image's and cloud-init's configuration, read once per
	// process (systemconfig.go): the boot asks for it several times.
	sysCfg systemConfigCache
}

// beginStatus continues this boot's status when an earlier stage of the
// same boot wrote one (each stage is its own process under systemd), and
// starts a new one otherwise.
func (b *booter) beginStatus() {
	prev, err := b.store.ReadStatus()
	if err == nil && prev.BootID == b.store.BootID() && prev.State == state.StateRunning {
		b.status = prev
		b.continued = true
	} else {
		b.status = state.Status{
			Version:   state.StatusVersion,
			BootID:    b.store.BootID(),
			StartedAt: b.opts.Now(),
		}
	}
	b.status.State = state.StateRunning
	b.status.PID, b.status.PIDStart = b.store.Owner()
	b.status.FinishedAt = time.Time{}
	b.saveStatus()
}

// saveStatus writes status.json, and a world-readable copy under /run so
// `ec2init status` works without root (it holds no secrets).
func (b *booter) saveStatus() {
	if err := b.store.WriteStatus(b.status); err != nil {
		b.log.Error("write status", zap.Error(err))
	}
	b.saveRunStatus()
}

// saveRunStatus writes only the /run copies: the live view after each
// module, which `status` reads first. The durable status.json is written
// at the start of a boot and the end of each stage; what a crash in
// between leaves undone is told by the run records and semaphores (each
// durable before and after its module), not by status.json. That keeps
// two fsyncs per module off the boot.
//
// RunStatusFile is world-readable, so it holds names and states only (see
// PublicStatus): error text can quote user data. The full live copy is
// RunStatusFullFile, root's alone.
func (b *booter) saveRunStatus() {
	if data, err := statusJSON(b.status); err == nil {
		if err := b.runRoot.WriteFile(RunStatusFullFile, data, 0o600, nil); err != nil {
			b.log.Warn("write runtime status", zap.Error(err))
		}
	}
	if data, err := statusJSON(PublicStatus(b.status)); err == nil {
		if err := b.runRoot.WriteFile(RunStatusFile, data, 0o644, nil); err != nil {
			b.log.Warn("write runtime status", zap.Error(err))
		}
	}
	b.saveCloudInitViews()
}

func (b *booter) degrade(msg string) {
	b.status.Degraded = appendOnce(b.status.Degraded, msg)
}

func (b *booter) fail(msg string) {
	b.status.Errors = appendOnce(b.status.Errors, msg)
}

// finish closes the boot: its final state, result.json, boot-finished.
func (b *booter) finish() {
	now := b.opts.Now()
	b.status.FinishedAt = now
	switch {
	case len(b.status.Errors) > 0:
		b.status.State = state.StateError
	case len(b.status.Degraded) > 0 || len(b.status.Interrupted) > 0:
		b.status.State = state.StateDegraded
	default:
		b.status.State = state.StateDone
	}
	if err := b.store.WriteResult(b.status); err != nil {
		b.log.Error("write result", zap.Error(err))
	}
	if err := b.store.MarkBootFinished(b.opts.Version); err != nil {
		b.log.Error("mark boot finished", zap.Error(err))
	}
	b.log.Info("boot finished", zap.String("state", b.status.State),
		zap.Duration("took", now.Sub(b.status.StartedAt)),
		zap.Int("errors", len(b.status.Errors)), zap.Int("degraded", len(b.status.Degraded)))
}

func containsStage(stages []modules.Stage, s modules.Stage) bool {
	for _, st := range stages {
		if st == s {
			return true
		}
	}
	return false
}

func appendOnce(list []string, s string) []string {
	for _, have := range list {
		if have == s {
			return list
		}
	}
	return append(list, s)
}
