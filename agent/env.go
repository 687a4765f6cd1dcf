package agent

import (
	"io"

	"go.uber.org/zap"

	"github.com/ec2init/ec2init/agent/config"
	"github.com/ec2init/ec2init/agent/fetch"
	"github.com/ec2init/ec2init/agent/imds"
	"github.com/ec2init/ec2init/agent/state"
	"github.com/ec2init/ec2init/agent/sys"
	"github.com/ec2init/ec2init/modules"
)

// ModuleEnvOptions is what a module's Env is made of; boot fills every
// field, bake (no instance of its own yet) the host's and the clients.
type ModuleEnvOptions struct {
	Root   *sys.Root
	Chroot bool
	// Instance and the instance transition are unset outside a boot.
	Instance           *imds.Instance
	NewInstance        bool
	PreviousInstanceID string
	IMDS               *imds.Client
	Fetcher            *fetch.Fetcher
	Log                *zap.Logger
	Console            io.Writer
	// Facts are the EC2_* variables of the commands modules run.
	Facts   map[string]string
	Version string
}

// NewModuleEnv is the one constructor of the Env modules run with, for
// boot and bake alike, so a module sees the same helpers either way. It
// reads ec2init's system config under the root.
func NewModuleEnv(o ModuleEnvOptions) (*modules.Env, error) {
	sysCfg, err := config.LoadSystem(o.Root.Prefix())
	if err != nil {
		return nil, err
	}
	var st *state.ModuleStates
	if o.Instance != nil && o.Instance.InstanceID != "" {
		st = state.NewModuleStates(o.Root, o.Instance.InstanceID)
	}
	return &modules.Env{
		Instance:           o.Instance,
		State:              st,
		IMDS:               o.IMDS,
		Fetcher:            o.Fetcher,
		NewInstance:        o.NewInstance,
		PreviousInstanceID: o.PreviousInstanceID,
		Root:               o.Root,
		Runner:             &sys.Runner{Root: o.Root, Chroot: o.Chroot, Log: o.Log, Env: o.Facts},
		Log:                o.Log,
		Console:            o.Console,
		System:             sysCfg,
		Facts:              o.Facts,
		Version:            o.Version,
	}, nil
}
