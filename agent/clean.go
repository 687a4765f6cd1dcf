package agent

import (
	"context"

	"github.com/ec2init/ec2init/agent/state"
	"github.com/ec2init/ec2init/agent/sys"
)

// CleanWhat says what CleanImage removes besides the instance state, which
// it always forgets.
type CleanWhat struct {
	// Logs: /var/log/ec2init.log and /var/log/ec2init-output.log.
	Logs bool
	// Seed: the local seed directory (/var/lib/ec2init/seed).
	Seed bool
	// BakeManifest: /var/lib/ec2init/bake.json (baked items are then
	// fetched at boot).
	BakeManifest bool
	// MachineID empties /etc/machine-id so the next boot gets a new one.
	MachineID bool
	// SSHHostKeys removes the SSH host keys so a new instance makes its own.
	SSHHostKeys bool
}

// CleanImage forgets the instance state under root so the next boot is a
// first boot (before making an AMI), and removes what else what names. It
// returns what it removed, in order. Every path goes through root's
// resolution (state.Clean): a symlink in the image cannot aim the removals
// outside it.
func CleanImage(ctx context.Context, root *sys.Root, what CleanWhat) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return state.Clean(state.CleanOptions{Root: root.Prefix(), Logs: what.Logs, Seed: what.Seed,
		BakeManifest: what.BakeManifest, MachineID: what.MachineID, SSHHostKeys: what.SSHHostKeys})
}
