package main

import (
	"context"
	"strings"

	sddaemon "github.com/coreos/go-systemd/v22/daemon"
	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/ec2init/ec2init/agent"
	"github.com/ec2init/ec2init/agent/config"
	"github.com/ec2init/ec2init/agent/daemon"
	"github.com/ec2init/ec2init/agent/imds"
	"github.com/ec2init/ec2init/agent/sys"
)

// daemonOptions are what `ec2init daemon` runs with.
type daemonOptions struct {
	// notify tells systemd the service's state (sdNotify).
	notify func(string)
}

func newDaemonCommand(e *env) *cobra.Command {
	o := daemonOptions{notify: sdNotify}
	return &cobra.Command{
		Use:   "daemon",
		Short: "Watch instance metadata for Spot interruptions, rebalance recommendations and maintenance",
		Long: "Poll IMDS (daemon.interval, default 5s, with jitter) and when an event appears run\n" +
			"the commands of daemon.hooks.<event> and the executables in /etc/ec2init/hooks.d/<event>/\n" +
			"(spot-interruption, rebalance-recommendation, scheduled-maintenance, autoscaling-lifecycle,\n" +
			"tags-changed, network-interfaces-changed), once per event, with the event's JSON on\n" +
			"stdin and in EC2INIT_EVENT_DETAIL, EC2INIT_EVENT and the EC2_* facts. Events are also\n" +
			"written to /run/ec2init/events/.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.notify("READY=1")
			return runDaemon(cmd.Context(), e, o)
		},
	}
}

// runDaemon watches IMDS until ctx ends, running the hooks of each event.
func runDaemon(ctx context.Context, e *env, o daemonOptions) error {
	log, err := e.logger()
	if err != nil {
		return err
	}
	client, err := e.imdsClient(nil)
	if err != nil {
		return err
	}
	root, err := sys.NewRoot(e.root)
	if err != nil {
		return err
	}
	facts, err := daemonFacts(ctx, root, client)
	if err != nil {
		log.Warn("instance facts for hooks", zap.Error(err))
	}
	sysCfg, err := config.LoadSystem(e.root)
	if err != nil {
		return err
	}
	hooks := map[string][][]string{}
	for event, cmds := range sysCfg.Daemon.Hooks {
		for _, c := range cmds {
			// Config names events with underscores, like cloud-config keys.
			kind := strings.ReplaceAll(event, "_", "-")
			hooks[kind] = append(hooks[kind], c)
		}
	}
	notify := o.notify
	if notify == nil {
		notify = sdNotify
	}
	return daemon.Run(ctx, daemon.Options{IMDS: client, Root: root, Log: log, Facts: facts, Notify: notify,
		Interval: sysCfg.Daemon.Interval.Std(), Hooks: hooks, MaxEvents: sysCfg.Daemon.MaxEvents})
}

// daemonFacts are the EC2_* variables hooks get: the instance.env this
// boot wrote, or, without one (the daemon started by hand), a crawl of
// IMDS. Started right after a boot, the daemon would otherwise crawl again
// what the boot just read (a hundred requests).
func daemonFacts(ctx context.Context, root *sys.Root, client *imds.Client) (map[string]string, error) {
	if b, err := root.ReadFile(agent.InstanceEnvFile); err == nil {
		if facts, err := agent.ParseEnvFile(b); err == nil {
			return facts, nil
		}
	}
	in, err := client.Instance(ctx)
	if err != nil {
		return nil, err
	}
	return agent.FactsEnv(in), nil
}

// sdNotify tells systemd about the service's state; outside systemd
// (no NOTIFY_SOCKET) it does nothing.
func sdNotify(state string) {
	_, _ = sddaemon.SdNotify(false, state)
}
