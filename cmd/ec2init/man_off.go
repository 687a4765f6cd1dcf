//go:build !manpages

package main

import (
	"errors"

	"github.com/spf13/cobra"
)

// addManCommand adds a man command that only says how to get the real one:
// it is in builds with -tags manpages (see man.go).
func addManCommand(root *cobra.Command) {
	root.AddCommand(&cobra.Command{
		Use:    "man DIR",
		Short:  "Write the man pages into DIR (builds with -tags manpages only)",
		Hidden: true,
		Args:   cobra.ExactArgs(1),
		RunE: func(*cobra.Command, []string) error {
			return errors.New("this ec2init is built without the man pages: go run -tags manpages ./cmd/ec2init man DIR")
		},
	})
}
