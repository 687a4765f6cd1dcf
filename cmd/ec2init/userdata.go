package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/ec2init/ec2init/agent"
	"github.com/ec2init/ec2init/agent/state"
)

// userDataShowOptions are the flags of `ec2init userdata show`.
type userDataShowOptions struct {
	asJSON bool
}

// runScriptOptions are the argument and flags of `ec2init userdata run-script`.
type runScriptOptions struct {
	name    string // the part's filename or index
	timeout time.Duration
}

func newUserDataCommand(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "userdata",
		Short: "Inspect the instance's user data, or re-run one script on purpose",
	}
	var so userDataShowOptions
	show := &cobra.Command{
		Use:   "show",
		Short: "List the user data's parts: type, size, when each runs, whether it ran",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runUserDataShow(cmd.Context(), e, so, cmd.OutOrStdout())
		},
	}
	show.Flags().BoolVar(&so.asJSON, "json", false, "print as JSON")
	var ro runScriptOptions
	run := &cobra.Command{
		Use:   "run-script NAME",
		Short: "Run one script part again now (by filename or index), whatever its semaphore says",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ro.name = args[0]
			return runRunScript(cmd.Context(), e, ro, cmd.OutOrStdout())
		},
	}
	run.Flags().DurationVar(&ro.timeout, "timeout", 0, "bound on the script (0: none)")
	cmd.AddCommand(show, run)
	return cmd
}

// runUserDataShow lists the parts of this instance's user data.
func runUserDataShow(_ context.Context, e *env, o userDataShowOptions, out io.Writer) error {
	rep, err := agent.ShowUserData(agent.Options{Root: e.root, BootID: e.bootID})
	if err != nil {
		return err
	}
	if o.asJSON {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	fmt.Fprintf(out, "instance %s: %d bytes of user data, %d parts\n", rep.InstanceID, rep.Size, len(rep.Parts))
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	// NAME, not the raw filename: unique per part (the script file
	// and run record), and file-safe, so no terminal escapes.
	fmt.Fprintln(tw, "#\tNAME\tTYPE\tSIZE\tRUNS\tRAN")
	for _, p := range rep.Parts {
		runs, ran := "read by modules", "-"
		if p.Stage != "" {
			runs = p.Stage + ", " + p.Frequency
			ran = map[bool]string{true: "yes", false: "no"}[p.Ran]
			if p.Frequency == string(state.Always) {
				ran = "every boot"
			}
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%d\t%s\t%s\n", p.Index, p.Name, p.ContentType, p.Size, runs, ran)
	}
	tw.Flush()
	for _, w := range rep.Warnings {
		fmt.Fprintln(out, "warning:", w)
	}
	return nil
}

// runRunScript runs one script part again, its output to out; exit 1
// when it fails.
func runRunScript(ctx context.Context, e *env, o runScriptOptions, out io.Writer) error {
	log, err := e.logger()
	if err != nil {
		return err
	}
	res, err := agent.RunPart(ctx, agent.Options{
		Root: e.root, BootID: e.bootID, Log: log, Console: out, ScriptTimeout: o.timeout,
	}, o.name)
	if err != nil {
		return err
	}
	if res.Outcome != string(state.OutcomeOK) {
		return &exitError{code: 1, msg: fmt.Sprintf("ec2init: %s: %s", res.Name, res.Error)}
	}
	return nil
}
