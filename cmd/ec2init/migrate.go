package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/ec2init/ec2init/agent"
	"github.com/ec2init/ec2init/modules/all"
)

// migrateOptions are the flags of `ec2init migrate`.
type migrateOptions struct {
	apply, asJSON bool
}

func newMigrateCommand(e *env) *cobra.Command {
	var o migrateOptions
	cmd := &cobra.Command{
		Use:   "migrate",
		Short: "Swap cloud-init for ec2init in an image: which /etc/cloud settings ec2init honours, and what changes",
		Long: "Read an image that has cloud-init (the running system, or --root DIR): each setting of\n" +
			"/etc/cloud/cloud.cfg and cloud.cfg.d, and whether ec2init honours it; then what the swap\n" +
			"changes: cloud-init's units masked, ec2init's enabled, cloud-init's unit and log names\n" +
			"linked to ec2init's (once the cloud-init package is removed). Nothing changes without --apply.\n" +
			"Exit 0 when every change was made (or none is needed), 1 when one failed.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runMigrate(cmd.Context(), e, o, cmd.OutOrStdout())
		},
	}
	cmd.Flags().BoolVar(&o.apply, "apply", false, "make the changes (default: only report them)")
	cmd.Flags().BoolVar(&o.asJSON, "json", false, "print the report as JSON")
	return cmd
}

func runMigrate(ctx context.Context, e *env, o migrateOptions, out io.Writer) error {
	rep, err := agent.Migrate(ctx, agent.MigrateOptions{Root: e.root, Apply: o.apply, Registry: all.Registry()})
	if err != nil {
		return err
	}
	failed := false
	for _, a := range rep.Actions {
		failed = failed || a.Err != ""
	}
	if o.asJSON {
		if err := writeJSON(out, rep); err != nil {
			return err
		}
	} else {
		printMigrate(out, rep)
	}
	if failed {
		return &exitError{code: 1}
	}
	return nil
}

func printMigrate(w io.Writer, rep *agent.MigrateReport) {
	if len(rep.CloudInitUnits) > 0 {
		fmt.Fprintf(w, "cloud-init: installed (%s)\n", strings.Join(rep.CloudInitUnits, ", "))
	} else {
		fmt.Fprintln(w, "cloud-init: not installed")
	}
	if rep.EC2InitInstalled {
		fmt.Fprintln(w, "ec2init: installed")
	} else {
		fmt.Fprintln(w, "ec2init: not installed")
	}
	if len(rep.Files) == 0 {
		fmt.Fprintln(w, "\nno cloud-init configuration (/etc/cloud/cloud.cfg, cloud.cfg.d/*.cfg)")
	} else {
		fmt.Fprintf(w, "\ncloud-init's configuration (%s):\n", strings.Join(rep.Files, ", "))
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "  HONOURED\tKEY\tSOURCE\tWHY")
		for _, k := range rep.Keys {
			yes := "no"
			if k.Honoured {
				yes = "yes"
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", yes, k.Key, k.Source, k.Why)
		}
		tw.Flush()
	}
	switch {
	case len(rep.Actions) == 0:
		fmt.Fprintln(w, "\nchanges: none needed")
	case rep.Applied:
		fmt.Fprintln(w, "\nchanges:")
	default:
		fmt.Fprintln(w, "\nchanges (made by --apply):")
	}
	for _, a := range rep.Actions {
		line := a.What + " " + a.Target
		if a.What == "link" {
			line += " -> " + a.Detail
		}
		switch {
		case a.Err != "":
			line += ": FAILED: " + a.Err
		case a.Done:
			line += ": done"
		}
		fmt.Fprintln(w, "  "+line)
	}
	if rep.Applied && len(rep.Actions) > 0 {
		fmt.Fprintln(w, "  (on a running system: systemctl daemon-reload)")
	}
	if len(rep.Notes) > 0 {
		fmt.Fprintln(w, "\nnotes:")
		for _, n := range rep.Notes {
			fmt.Fprintln(w, "  "+n)
		}
	}
}
