//go:build !manpages

package main

import "github.com/spf13/cobra"

// addManCommand adds nothing: the man command is in builds with -tags
// manpages only (see man.go).
func addManCommand(*cobra.Command) {}
