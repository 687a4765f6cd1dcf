// Command ec2init takes an EC2 instance from booted to configured, keeps
// watching its metadata, and answers operators' questions about both.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args)
	stop()
	os.Exit(exitCode(err))
}

func run(ctx context.Context, argv []string) error {
	// Installed under another name (a symlink), the binary is a drop-in
	// for that command: Amazon Linux's ec2-metadata, cloud-init's tools.
	switch filepath.Base(argv[0]) {
	case "ec2-metadata":
		return runMetadata(ctx, newEnv("/"), argv[1:], os.Stdout)
	case "cloud-init-per":
		return runCloudInitPer(ctx, newEnv("/"), argv[1:], os.Stdin, os.Stdout, os.Stderr)
	case "cloud-init":
		return runCloudInit(ctx, newEnv("/"), argv, os.Stdin, os.Stdout, os.Stderr)
	case "cloud-id":
		return runCloudID(newEnv("/"), argv, os.Stdout, os.Stderr)
	}
	root := newRootCommand()
	root.SetArgs(argv[1:])
	return root.ExecuteContext(ctx)
}

// exitError carries a process exit code and an optional message for stderr.
type exitError struct {
	code int
	msg  string
}

func (e *exitError) Error() string { return e.msg }

// exitCode prints err the one way the CLI prints errors: one line, no
// stack, and maps it to the exit status.
func exitCode(err error) int {
	if err == nil {
		return 0
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.msg != "" {
			fmt.Fprintln(os.Stderr, ee.msg)
		}
		return ee.code
	}
	fmt.Fprintln(os.Stderr, "ec2init: "+err.Error())
	return 1
}
