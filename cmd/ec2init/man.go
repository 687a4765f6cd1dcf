//go:build manpages

// The man command links cobra/doc, and with it a markdown parser
// (blackfriday) whose package init cost every start of every stage's
// process (214 KB, 0.25 ms; issue #15). Only packaging needs it: it builds
// with -tags manpages (see the Makefile's package target).

package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"
)

func addManCommand(root *cobra.Command) { root.AddCommand(newManCommand(root)) }

// newManCommand writes man pages for every command (packaging runs it; it
// is hidden from users, who read the pages instead).
func newManCommand(root *cobra.Command) *cobra.Command {
	return &cobra.Command{
		Use:    "man DIR",
		Short:  "Write the man pages into DIR",
		Hidden: true,
		Args:   cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := os.MkdirAll(args[0], 0o755); err != nil {
				return err
			}
			header := &doc.GenManHeader{Title: "EC2INIT", Section: "1", Source: "ec2init " + version, Manual: "ec2init manual"}
			if err := doc.GenManTree(root, header, args[0]); err != nil {
				return fmt.Errorf("man pages: %w", err)
			}
			return nil
		},
	}
}
