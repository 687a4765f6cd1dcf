// Package disableimds implements cloud-init's disable_ec2_metadata module:
// once the boot is done, a prohibit route to 169.254.169.254 makes every
// connection to the instance metadata service fail (EACCES), as
// cloud-init's `ip route add prohibit` does.
package disableimds

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/ec2init/ec2init/agent/config"
	"github.com/ec2init/ec2init/agent/state"
	"github.com/ec2init/ec2init/agent/sys"
	"github.com/ec2init/ec2init/modules"
)

// IMDSAddress is the IPv4 address of the instance metadata service.
const IMDSAddress = "169.254.169.254"

const cmdTimeout = 30 * time.Second

// DisableEC2Metadata rejects traffic to IMDS at every boot (a route does
// not survive a reboot).
type DisableEC2Metadata struct{}

func (DisableEC2Metadata) Name() string { return "disable_ec2_metadata" }

// Stage is final: ec2init's own stages ask IMDS for the instance id, so
// the route is added once they are done (cloud-init adds it in its config
// stage, before runcmd).
func (DisableEC2Metadata) Stage() modules.Stage         { return modules.StageFinal }
func (DisableEC2Metadata) Frequency() modules.Frequency { return state.Always }
func (DisableEC2Metadata) Schema() modules.Schema {
	return modules.Schema{
		Doc: "Reject traffic to the instance metadata service (169.254.169.254) after the boot.",
		Keys: []config.Field{{Name: "disable_ec2_metadata", Type: config.Bool(), Default: "false",
			Doc: "true adds a prohibit route to 169.254.169.254 (ip, else route's reject) at every boot."}},
	}
}

// rejectCommands are tried in order, as cloud-init prefers ip over
// net-tools' route. ip's replace (cloud-init: add) keeps a second run in
// the same boot from failing on the existing route.
var rejectCommands = [][]string{
	{"ip", "route", "replace", "prohibit", IMDSAddress},
	{"route", "add", "-host", IMDSAddress, "reject"},
}

func (DisableEC2Metadata) Run(ctx context.Context, env *modules.Env, cfg *config.CloudConfig) error {
	var on bool
	if ok, err := cfg.Decode("disable_ec2_metadata", &on); err != nil || !ok {
		return err
	}
	log := env.Logger()
	if !on {
		log.Debug("disable_ec2_metadata is false; metadata service left reachable")
		return nil
	}
	if !env.Root.IsHost() {
		// The routing table is the running kernel's, not the root's.
		log.Warn("disable_ec2_metadata: not applied under a --root prefix: a route belongs to the running system, not to " + env.Root.Prefix())
		return nil
	}
	for _, argv := range rejectCommands {
		var out bytes.Buffer
		res, err := env.Runner.Run(ctx, sys.Cmd{Argv: argv, Output: &out, Timeout: cmdTimeout})
		if errors.Is(err, exec.ErrNotFound) {
			continue
		}
		if err != nil {
			return fmt.Errorf("reject %s: %w", IMDSAddress, err)
		}
		if res.ExitCode != 0 {
			return fmt.Errorf("reject %s: %s exited %d: %s", IMDSAddress, strings.Join(argv, " "), res.ExitCode, strings.TrimSpace(out.String()))
		}
		log.Info("metadata service disabled", zap.String("route", strings.Join(argv[1:], " ")))
		return nil
	}
	return fmt.Errorf("reject %s: neither ip nor route is installed", IMDSAddress)
}
