// Command ec2init-stage is what the local, network and config stage units
// run: it asks the boot's process (`ec2init boot --serve`,
// ec2init-main.service) to run its stage over /run/ec2init/boot.sock and
// waits for the answer, or, when no boot process listens (or it goes away
// before answering), becomes `ec2init boot --stage STAGE`, which runs the
// stage itself. It uses the standard library only and does nothing else:
// every stage unit pays its start, about a millisecond, where the agent's
// own binary takes five.
//
//	ec2init-stage [--socket PATH] [--agent PATH] STAGE
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
	"time"
)

func main() {
	socket := flag.String("socket", "/run/ec2init/boot.sock", "the boot process's socket")
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
	conn, err := net.DialTimeout("unix", socket, time.Second)
	if err != nil {
		return 0, false
	}
	defer conn.Close()
	if _, err := fmt.Fprintf(conn, "%s\n", stage); err != nil {
		return 0, false
	}
	var reply struct {
		State string `json:"state"`
		Error string `json:"error"`
	}
	if err := json.NewDecoder(io.LimitReader(conn, 1<<16)).Decode(&reply); err != nil {
		return 0, false
	}
	if reply.Error != "" {
		fmt.Fprintln(os.Stderr, "ec2init:", reply.Error)
		return 1, true
	}
	if reply.State == "error" {
		return 1, true
	}
	return 0, true
}
