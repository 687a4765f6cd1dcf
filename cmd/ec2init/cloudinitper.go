package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/ec2init/ec2init/agent/civiews"
	"github.com/ec2init/ec2init/agent/state"
	"github.com/ec2init/ec2init/agent/sys"
)

// cloudInitPerUsage is cloud-init-per's usage, same synopsis and meaning.
const cloudInitPerUsage = `Usage: cloud-init-per frequency name cmd [ arg1 [ arg2 [ ... ] ]
   run cmd with the arguments given, at most once per frequency.

   Useful from boothooks and bootcmd. The frequency is one of:
      * once: run only once (not again for a new instance-id)
      * instance: run only on the first boot of an instance-id
      * always: run on every boot

`

func newCloudInitPerCommand(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "cloud-init-per once|instance|always NAME CMD [ARG...]",
		Short: "Run a command once, once per instance, or always; a drop-in for cloud-init-per",
		Long: "Run CMD unless its semaphore under /var/lib/cloud says it already ran for this\n" +
			"frequency, as cloud-init's cloud-init-per does (same semaphore files, so either\n" +
			"tool sees the other's runs). The exit status is CMD's.",
		// CMD's own flags are CMD's.
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			args = takeRootFlag(e, args)
			return runCloudInitPer(cmd.Context(), e, args, cmd.InOrStdin(), cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
}

// takeRootFlag applies a --root given before the frequency: with flag
// parsing off (CMD's flags are CMD's), cobra passes the global flags
// through as arguments.
func takeRootFlag(e *env, args []string) []string {
	for len(args) > 0 {
		switch {
		case args[0] == "--root" && len(args) > 1:
			e.root, args = args[1], args[2:]
		case strings.HasPrefix(args[0], "--root="):
			e.root, args = strings.TrimPrefix(args[0], "--root="), args[1:]
		default:
			return args
		}
	}
	return args
}

// runCloudInitPer parses cloud-init-per's arguments, checked in the
// script's order, and runs the command.
func runCloudInitPer(ctx context.Context, e *env, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) > 0 && (args[0] == "-h" || args[0] == "--help") {
		_, err := io.WriteString(stdout, cloudInitPerUsage)
		return err
	}
	if len(args) < 3 {
		_, _ = io.WriteString(stderr, cloudInitPerUsage)
		return &exitError{code: 1}
	}
	freq, name, argv := args[0], args[1], args[2:]
	if strings.Contains(civiews.PerName(name), "/") {
		return &exitError{code: 1, msg: civiews.ErrBadName.Error()}
	}
	root, err := sys.NewRoot(e.root)
	if err != nil {
		return err
	}
	if root.IsHost() && os.Geteuid() != 0 {
		return &exitError{code: 1, msg: "must be root"}
	}
	switch freq {
	case civiews.PerOnce, civiews.PerInstance, civiews.PerAlways:
	default:
		_, _ = io.WriteString(stderr, cloudInitPerUsage)
		return &exitError{code: 1, msg: "invalid frequency: " + freq}
	}
	opts := civiews.PerOptions{Root: root, Stdin: stdin, Stdout: stdout, Stderr: stderr}
	if freq == civiews.PerInstance {
		if opts.InstanceID, err = currentInstanceID(e.root, root); err != nil {
			return &exitError{code: 1, msg: "cloud-init-per: " + err.Error()}
		}
	}
	code, err := civiews.RunPer(ctx, opts, freq, name, argv)
	if err != nil {
		return &exitError{code: 1, msg: err.Error()}
	}
	if code != 0 {
		return &exitError{code: code}
	}
	return nil
}

// currentInstanceID is the instance ec2init last booted as (its own
// record is the truth), else what cloud-init recorded.
func currentInstanceID(prefix string, root *sys.Root) (string, error) {
	store, err := state.Open(state.Options{Root: prefix, ReadOnly: true})
	if err == nil {
		id, err := store.RecordedInstanceID()
		if err == nil && id != "" {
			return id, nil
		}
	}
	id, err := civiews.ReadInstanceID(root)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("instance id: %w", err)
	}
	if id == "" {
		return "", civiews.ErrNoInstance
	}
	return id, nil
}
