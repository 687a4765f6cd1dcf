package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/ec2init/ec2init/agent"
	"github.com/ec2init/ec2init/agent/config"
	"github.com/ec2init/ec2init/agent/fetch"
	"github.com/ec2init/ec2init/agent/imds"
	"github.com/ec2init/ec2init/agent/logging"
	"github.com/ec2init/ec2init/agent/state"
	"github.com/ec2init/ec2init/agent/sys"
	"github.com/ec2init/ec2init/modules"
	"github.com/ec2init/ec2init/modules/all"
	"github.com/ec2init/ec2init/modules/software"
)

// bootOptions are the flags boot-related commands share.
type bootOptions struct {
	stage            string
	daemon           bool
	chroot           bool
	rerunInterrupted bool
	scriptTimeout    time.Duration
	identifyDeadline time.Duration
	// identifyDeadlineSet: the flag was given, and wins over the config's
	// imds.deadline (or /etc/cloud's datasource.Ec2.max_wait).
	identifyDeadlineSet bool
	lockTimeout         time.Duration
	// notify tells systemd the service's state (sdNotify).
	notify func(string)
	// serve: run the whole boot in this process, each stage when a stage
	// unit asks for it (bootserver.go).
	serve bool
}

func newBootCommand(e *env) *cobra.Command {
	o := bootOptions{notify: sdNotify}
	cmd := &cobra.Command{
		Use:   "boot",
		Short: "Run boot stages: what the systemd units call",
		Long: "Identify the instance, decide whether this is a new instance or a reboot, read the\n" +
			"user data, and run the requested stage's work, each piece gated by its frequency.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.identifyDeadlineSet = cmd.Flags().Changed("identify-deadline")
			return runBoot(cmd.Context(), e, o, cmd.ErrOrStderr())
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.stage, "stage", "all", "stages to run: local, network, config, final (comma-separated) or all")
	f.BoolVar(&o.daemon, "daemon", false, "after the stages, notify systemd and keep watching instance metadata events")
	f.BoolVar(&o.serve, "serve", false, "run the boot in this process, each stage when `boot --stage` asks for it over "+bootSocket+" (ec2init-main.service)")
	f.BoolVar(&o.chroot, "chroot", false, "run scripts chrooted into --root (preparing a mounted image)")
	f.BoolVar(&o.rerunInterrupted, "rerun-interrupted", false, "run again scripts a crash interrupted (default: report them, leave them)")
	f.DurationVar(&o.scriptTimeout, "script-timeout", 0, "bound on each user script (0: none)")
	f.DurationVar(&o.identifyDeadline, "identify-deadline", 2*time.Minute, "how long to wait for the metadata service")
	f.DurationVar(&o.lockTimeout, "lock-timeout", agent.DefaultLockTimeout, "how long to wait while another ec2init boot holds "+agent.BootLockFile+" (0: fail at once)")
	return cmd
}

// runBoot is `ec2init boot`: the stages, then, with --daemon, systemd
// told and the daemon run; exit 1 when the boot could not do its work.
func runBoot(ctx context.Context, e *env, o bootOptions, console io.Writer) error {
	if o.serve {
		return runBootServer(ctx, e, o, console)
	}
	st, err := runStagesOrAsk(ctx, e, o, console)
	if err != nil {
		return err
	}
	if o.daemon {
		notify := o.notify
		if notify == nil {
			notify = sdNotify
		}
		// The boot work is done: tell systemd (Type=notify), then
		// stay, watching for events.
		notify("READY=1\nSTATUS=boot " + st.State)
		return runDaemon(ctx, e, daemonOptions{notify: notify})
	}
	if st.State == state.StateError {
		return &exitError{code: 1}
	}
	return nil
}

// runStages runs the stages o names and returns the boot's status (the
// demo reports it).
func runStages(ctx context.Context, e *env, o bootOptions, console io.Writer) (state.Status, error) {
	stages, err := modules.ParseStages(o.stage)
	if err != nil {
		return state.Status{}, err
	}
	opts, closeLog, err := bootAgentOptions(e, o, console)
	if err != nil {
		return state.Status{}, err
	}
	defer closeLog()
	opts.Stages = stages
	return agent.Boot(ctx, opts)
}

// bootAgentOptions are the agent's options for o: the agent's log (closed
// by the returned func), the IMDS client sharing the boot's session token,
// the deadline, the fetcher and every module.
func bootAgentOptions(e *env, o bootOptions, console io.Writer) (agent.Options, func(), error) {
	logFile, err := openAgentLog(e.root)
	if err != nil {
		return agent.Options{}, nil, err
	}
	log, err := logging.New(logging.Options{Level: e.logLevel, File: logFile})
	if err != nil {
		logFile.Close()
		return agent.Options{}, nil, err
	}
	// No log.Sync at the end: zap writes each entry through at once, so
	// Sync would only fsync the log and stderr, two flushes per stage
	// process that a crash-safe boot does not need (the boot's records are
	// made durable by stage: agent.Boot).
	// The client's warnings (IMDSv1 requests, refused keys) go to the
	// agent's log with the rest of the boot; its session token is shared
	// by the boot's stage processes.
	client, err := e.imdsClient(func(c *imds.Config) {
		c.Log = log
		*c = agent.IMDSConfig(e.root, *c)
	})
	if err != nil {
		logFile.Close()
		return agent.Options{}, nil, err
	}
	deadline := o.identifyDeadline
	if sysCfg, err := config.LoadSystem(e.root); err == nil && !o.identifyDeadlineSet && sysCfg.IMDS.Deadline > 0 {
		deadline = sysCfg.IMDS.Deadline.Std()
	}
	fetcher := fetch.New(fetch.Options{})
	return agent.Options{
		Root:             e.root,
		Chroot:           o.chroot,
		IMDS:             client,
		Log:              log,
		BootID:           e.bootID,
		RerunInterrupted: o.rerunInterrupted,
		ScriptTimeout:    o.scriptTimeout,
		IdentifyDeadline: deadline,
		LockTimeout:      o.lockTimeout,
		Console:          console,
		Fetch:            fetcher.Get,
		Fetcher:          fetcher,
		Version:          version,
		Registry:         all.Registry(),
	}, func() { logFile.Close() }, nil
}

// openAgentLog opens /var/log/ec2init.log under the root, 0600: it names
// parts and scripts, so it stays root's like the output log.
func openAgentLog(root string) (*os.File, error) {
	r, err := sys.NewRoot(root)
	if err != nil {
		return nil, err
	}
	// Create /var/log only when missing (a test root): never re-mode the
	// host's.
	dir, err := r.Path("/var/log")
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	// Rotated by size at the start of a run: one boot's log is never split.
	if err := r.RotateLog(state.LogFile, 10<<20); err != nil {
		return nil, err
	}
	return r.OpenLog(state.LogFile)
}

// Exit codes of `ec2init status`, relied on by scripts: keep them stable.
const (
	exitDone     = 0
	exitErr      = 1
	exitDegraded = 2
	exitRunning  = 3
)

// statusOptions are the flags of `ec2init status`.
type statusOptions struct {
	wait, asJSON, long bool
	timeout            time.Duration
}

func newStatusCommand(e *env) *cobra.Command {
	var o statusOptions
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Say whether the boot is done: exit 0 done, 1 error, 2 degraded, 3 running",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runStatus(cmd.Context(), e, o, cmd.OutOrStdout())
		},
	}
	f := cmd.Flags()
	f.BoolVar(&o.wait, "wait", false, "block until the boot is no longer running")
	f.DurationVar(&o.timeout, "timeout", 0, "with --wait, give up after this long (exit 3)")
	f.BoolVar(&o.asJSON, "json", false, "print the status record as JSON")
	f.BoolVar(&o.long, "long", false, "show every stage and script")
	return cmd
}

func runStatus(ctx context.Context, e *env, o statusOptions, out io.Writer) error {
	if o.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, o.timeout)
		defer cancel()
	}
	read := func() (agent.BootStatus, error) {
		return agent.ReadStatus(agent.Options{Root: e.root, BootID: e.bootID})
	}
	bs, err := read()
	if err == nil && !bs.Current {
		// Switched off (ec2init's or cloud-init's marker, the kernel
		// command line): no boot will come, so --wait must not wait, and
		// "disabled" is no failure, as cloud-init's status says.
		if root, rerr := sys.NewRoot(e.root); rerr == nil {
			if why := agent.HostDisabled(root); why != "" {
				fmt.Fprintf(out, "status: disabled (%s)\n", why)
				return nil
			}
		}
	}
	for o.wait && err == nil && (!bs.Current || bs.Status.State == state.StateRunning) {
		select {
		case <-ctx.Done():
			return &exitError{code: exitRunning, msg: fmt.Sprintf("ec2init: status: still running after %s", o.timeout)}
		case <-time.After(250 * time.Millisecond):
		}
		bs, err = read()
	}
	if err != nil {
		return err
	}
	st, current := bs.Status, bs.Current
	if o.asJSON {
		if err := writeJSON(out, st); err != nil {
			return err
		}
	} else {
		printStatus(out, st, current, o.long)
		if bs.LockHolder > 0 {
			fmt.Fprintf(out, "boot lock held by pid %d\n", bs.LockHolder)
		}
		if o.long && current {
			printSoftware(out, e, st.InstanceID)
		}
	}
	return &exitError{code: statusExitCode(st, current)}
}

func statusExitCode(st state.Status, current bool) int {
	switch {
	case !current || st.State == state.StateRunning:
		return exitRunning
	case st.State == state.StateError:
		return exitErr
	case st.State == state.StateDegraded:
		return exitDegraded
	}
	return exitDone
}

// printSoftware lists the software module's items for the instance, when
// it ran: what each did (installed, verified, skipped, failed) and why.
// State is root's: without root, nothing is shown.
func printSoftware(w io.Writer, e *env, instanceID string) {
	root, err := sys.NewRoot(e.root)
	if err != nil || instanceID == "" {
		return
	}
	items, err := software.ReadResults(root, instanceID)
	if err != nil {
		if !errors.Is(err, fs.ErrPermission) {
			fmt.Fprintf(w, "software: %v\n", err)
		}
		return
	}
	if len(items) == 0 {
		return
	}
	// Versions `bake --pin` froze: the item's record has only the URL.
	pins, _ := agent.ReadPins(root)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SOFTWARE\tPOLICY\tACTION\tVERSION\tCHECKSUM\tBYTES\tSIGNER\tFROM\tERROR")
	for _, it := range items {
		sum := it.Checksum
		if alg, hex, ok := strings.Cut(sum, ":"); ok && len(hex) > 16 {
			sum = alg + ":" + hex[:16] + "…"
		}
		ver := it.Version
		if v, ok := pins[it.Name]; ok && ver == "" && strings.Contains(it.Source, v) {
			ver = v + " (pinned)"
		}
		// Where the bytes came from: a mirror, what version_from
		// resolved, or the source.
		from := it.FetchedFrom
		if from == "" {
			from = it.ResolvedURL
		}
		if from == "" {
			from = it.Source
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\n", it.Name, it.Policy, it.Action, dash(ver), dash(sum), it.Bytes,
			dash(it.Signer), dash(from), it.Error)
	}
	tw.Flush()
}

func printStatus(w io.Writer, st state.Status, current, long bool) {
	if !current {
		fmt.Fprintln(w, "status: not started (this boot)")
		if st.BootID != "" {
			fmt.Fprintf(w, "last boot: %s (%s)\n", st.State, st.BootID)
		}
		return
	}
	fmt.Fprintf(w, "status: %s\n", st.State)
	fmt.Fprintf(w, "instance: %s\n", st.InstanceID)
	if !st.FinishedAt.IsZero() {
		fmt.Fprintf(w, "boot: %s, took %.3fs\n", st.StartedAt.UTC().Format(time.RFC3339), st.FinishedAt.Sub(st.StartedAt).Seconds())
	} else {
		fmt.Fprintf(w, "boot: started %s, stage %s\n", st.StartedAt.UTC().Format(time.RFC3339), st.Stage)
	}
	for _, list := range []struct {
		title string
		items []string
	}{{"errors", st.Errors}, {"degraded", st.Degraded}, {"interrupted", st.Interrupted}} {
		if len(list.items) > 0 {
			fmt.Fprintf(w, "%s:\n  %s\n", list.title, strings.Join(list.items, "\n  "))
		}
	}
	if !long {
		return
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "STAGE\tMODULE\tFREQUENCY\tOUTCOME\tMS\tEXIT")
	for _, stage := range st.Stages {
		fmt.Fprintf(tw, "%s\t\t\t\t%.1f\t\n", stage.Name, stage.DurationMS)
		for _, m := range stage.Modules {
			exit := ""
			if m.ExitCode != nil {
				exit = fmt.Sprint(*m.ExitCode)
			}
			fmt.Fprintf(tw, "\t%s\t%s\t%s\t%.1f\t%s\n", m.Name, m.Frequency, m.Outcome, m.DurationMS, exit)
		}
	}
	tw.Flush()
}

func newCleanCommand(e *env) *cobra.Command {
	var what agent.CleanWhat
	cmd := &cobra.Command{
		Use:   "clean",
		Short: "Forget instance state so the next boot is a first boot (before making an AMI)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runClean(cmd.Context(), e, what, cmd.OutOrStdout())
		},
	}
	f := cmd.Flags()
	f.BoolVar(&what.Logs, "logs", false, "also remove /var/log/ec2init.log and /var/log/ec2init-output.log")
	f.BoolVar(&what.Seed, "seed", false, "also remove the local seed directory (/var/lib/ec2init/seed)")
	f.BoolVar(&what.BakeManifest, "bake-manifest", false, "also remove the bake manifest (/var/lib/ec2init/bake.json): baked items are then fetched at boot")
	f.BoolVar(&what.MachineID, "machine-id", false, "empty /etc/machine-id so the next boot gets a new one")
	f.BoolVar(&what.SSHHostKeys, "ssh-host-keys", false, "remove SSH host keys so a new instance makes its own")
	return cmd
}

func runClean(ctx context.Context, e *env, what agent.CleanWhat, out io.Writer) error {
	root, err := sys.NewRoot(e.root)
	if err != nil {
		return err
	}
	removed, err := agent.CleanImage(ctx, root, what)
	if err != nil {
		return err
	}
	for _, r := range removed {
		fmt.Fprintln(out, "removed", r)
	}
	return nil
}
