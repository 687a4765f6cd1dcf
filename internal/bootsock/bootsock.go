// Package bootsock is the one-process boot's protocol, shared by the
// server (`ec2init boot --serve`) and its clients (`ec2init boot --stage`
// and ec2init-stage): a client connects to the socket, writes the stages
// on one line, and reads one JSON line back. It uses the standard library
// only, so the small ec2init-stage stays small.
package bootsock

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"time"
)

// Path is the server's socket (a host path): root's alone (0600), in /run.
const Path = "/run/ec2init/boot.sock"

// Reply is the server's answer: the boot's state after the stages, and the
// error that kept them from running, if any.
type Reply struct {
	State string `json:"state"`
	Error string `json:"error,omitempty"`
}

// Ask asks the server at socket to run stages (as `boot --stage` names
// them) and waits for its reply. answered is false when no server listens
// or it went away before replying (killed mid-stage): the caller then runs
// the stages itself, and their records say what is done.
func Ask(ctx context.Context, socket, stages string) (reply Reply, answered bool) {
	d := net.Dialer{Timeout: time.Second}
	conn, err := d.DialContext(ctx, "unix", socket)
	if err != nil {
		return Reply{}, false
	}
	defer conn.Close()
	if _, err := fmt.Fprintf(conn, "%s\n", stages); err != nil {
		return Reply{}, false
	}
	if err := json.NewDecoder(io.LimitReader(conn, 1<<16)).Decode(&reply); err != nil {
		return Reply{}, false
	}
	return reply, true
}

// Send writes r as the reply on w.
func Send(w io.Writer, r Reply) error {
	return json.NewEncoder(w).Encode(r)
}
