package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/ec2init/ec2init/agent/imds/imdssim"
)

func newDemoCommand(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "demo",
		Short: "Show ec2init at work against the built-in IMDS simulator (no AWS account needed)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			sim := imdssim.New(imdssim.Options{})
			url, err := sim.Start("127.0.0.1:0")
			if err != nil {
				return fmt.Errorf("demo: start the IMDS simulator: %w", err)
			}
			defer sim.Close()
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "== IMDS simulator on %s (built-in example instance)\n\n", url)
			demoEnv := *e
			demoEnv.endpoint = url
			for _, step := range []struct {
				title string
				args  []string
			}{
				{"ec2init metadata --facts", []string{"--facts"}},
				{"ec2init metadata --all   (same output as Amazon Linux's ec2-metadata)", []string{"--all"}},
			} {
				fmt.Fprintf(out, "== %s\n", step.title)
				if err := runMetadata(cmd.Context(), &demoEnv, step.args, out); err != nil {
					return err
				}
				fmt.Fprintln(out)
			}
			return nil
		},
	}
}
