// Package all assembles every module ec2init ships, in run order: the one
// place that lists them, for the agent, `ec2init schema`, `ec2init
// modules` and the generated docs.
package all

import (
	"github.com/ec2init/ec2init/modules"
	"github.com/ec2init/ec2init/modules/finalmessage"
	"github.com/ec2init/ec2init/modules/powerstate"
	"github.com/ec2init/ec2init/modules/runcmd"
	"github.com/ec2init/ec2init/modules/ssh"
	"github.com/ec2init/ec2init/modules/users"
	"github.com/ec2init/ec2init/modules/writefiles"
)

// Registry returns a registry of every module.
func Registry() *modules.Registry {
	r, err := modules.NewRegistry(
		// network stage: users before files (an owner may be new), ssh
		// last as in cloud-init
		runcmd.Bootcmd{},
		users.UsersGroups{},
		writefiles.WriteFiles{},
		ssh.SSH{},
		// final stage: deferred files before the user's scripts (see
		// modules.BeforeScripts), then runcmd, the message, and the power
		// change last of all
		writefiles.WriteFilesDeferred{},
		runcmd.Runcmd{},
		finalmessage.FinalMessage{},
		powerstate.PowerState{},
	)
	if err != nil {
		// The list above is fixed at build time and covered by tests.
		panic(err)
	}
	return r
}
