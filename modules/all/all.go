// Package all assembles every module ec2init ships, in run order: the one
// place that lists them, for the agent, `ec2init schema`, `ec2init
// modules` and the generated docs.
package all

import (
	"github.com/ec2init/ec2init/modules"
	"github.com/ec2init/ec2init/modules/runcmd"
)

// Registry returns a registry of every module.
func Registry() *modules.Registry {
	r, err := modules.NewRegistry(
		runcmd.Bootcmd{},
		runcmd.Runcmd{},
	)
	if err != nil {
		// The list above is fixed at build time and covered by tests.
		panic(err)
	}
	return r
}
