// Command ec2init-stage is what the local, network and config stage units
// run: it asks the boot's process (`ec2init boot --serve`,
// ec2init-main.service) to run its stage over /run/ec2init/boot.sock and
// waits for the answer, or, when no boot process listens (or it goes away
// before answering), becomes `ec2init boot --stage STAGE`, which runs the
// stage itself. It uses the standard library (and internal/bootsock) only:
// every stage unit pays its start, about a millisecond, where the agent's
// own binary takes five.
//
//	ec2init-stage [--socket PATH] [--agent PATH] STAGE
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"syscall"

	"github.com/ec2init/ec2init/internal/bootsock"
)

func main() {
	socket := flag.String("socket", bootsock.Path, "the boot process's socket")
	agent := flag.String("agent", "/usr/bin/ec2init", "the agent, run when no boot process answers")
	flag.Parse()
	if flag.NArg() != 1 || !known(flag.Arg(0)) {
		fmt.Fprintln(os.Stderr, "usage: ec2init-stage [--socket PATH] [--agent PATH] local|network|config|final")
		os.Exit(2)
	}
	stage := flag.Arg(0)
	code, answered := ask(*socket, stage)
	if answered {
		os.Exit(code)
	}
	argv := []string{*agent, "boot", "--stage", stage}
	err := syscall.Exec(*agent, argv, os.Environ())
	fmt.Fprintf(os.Stderr, "ec2init-stage: %s: %v\n", *agent, err)
	os.Exit(1)
}

func known(stage string) bool {
	switch stage {
	case "local", "network", "config", "final":
		return true
	}
	return false
}

// ask has the boot process run stage: the exit code `ec2init boot` would
// have (1 when the stage could not run or the boot is in error), and
// whether it answered at all.
func ask(socket, stage string) (int, bool) {
	reply, answered := bootsock.Ask(context.Background(), socket, stage)
	switch {
	case !answered:
		return 0, false
	case reply.Error != "":
		fmt.Fprintln(os.Stderr, "ec2init:", reply.Error)
		return 1, true
	case reply.State == "error":
		return 1, true
	}
	return 0, true
}
