package command

import (
	"bytes"
	"context"
	"fmt"
	"strings"

	"github.com/ec2init/ec2init/agent/sys"
)

// Output runs c, capturing what it prints (stdout and stderr together, in
// place of c.Output), and returns that with the run's result. err is the
// runner's (the command could not run); an exit status is the caller's to
// judge, with ExitError.
func Output(ctx context.Context, r *sys.Runner, c sys.Cmd) (string, sys.Result, error) {
	var out bytes.Buffer
	c.Output = &out
	res, err := r.Run(ctx, c)
	return out.String(), res, err
}

// ExitError is the error of a run that exited with code: its status and
// the first line of output, which says why. Output that may hold a secret
// is redacted before it comes here.
func ExitError(code int, output string) error {
	return fmt.Errorf("exit status %d: %s", code, FirstLine(output))
}

// FirstLine is the first line of a tool's output once the white space
// around it all is trimmed, cut at 200 bytes: it goes into a message.
func FirstLine(output string) string {
	line, _, _ := strings.Cut(strings.TrimSpace(output), "\n")
	if len(line) > 200 {
		line = line[:200] + "..."
	}
	return line
}
