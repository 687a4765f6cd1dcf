package agent

import (
	"path/filepath"

	"github.com/ec2init/ec2init/agent/imds"
)

// IMDSTokenFile holds the IMDSv2 session token the stage processes of one
// boot share (root's alone, 0600, with its expiry; under /run, so gone at
// the next boot): the first stage asks for it, the later ones reuse it.
const IMDSTokenFile = "/run/ec2init/imds-token"

// IMDSConfig is cfg for the boot of the system under root: its session
// token is shared through IMDSTokenFile.
func IMDSConfig(root string, cfg imds.Config) imds.Config {
	if root == "" {
		root = "/"
	}
	cfg.TokenCache = filepath.Join(root, IMDSTokenFile)
	return cfg
}
