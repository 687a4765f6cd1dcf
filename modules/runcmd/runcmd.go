// Package runcmd implements cloud-init's runcmd (final stage, once per
// instance) and bootcmd (every boot, before the other modules): lists of
// commands, each a string run by "sh -c" or a list run as argv with no
// shell.
package runcmd

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/ec2init/ec2init/agent/config"
	"github.com/ec2init/ec2init/agent/state"
	"github.com/ec2init/ec2init/agent/sys"
	"github.com/ec2init/ec2init/modules"
	"github.com/ec2init/ec2init/modules/internal/command"
)

// commandType is one runcmd/bootcmd item.
var commandType = config.OneOf(config.String(), config.ListOf(config.OneOf(config.String(), config.Int(), config.Bool())))

// Runcmd runs the runcmd list once per instance, in the final stage.
type Runcmd struct{}

func (Runcmd) Name() string                 { return "runcmd" }
func (Runcmd) Stage() modules.Stage         { return modules.StageFinal }
func (Runcmd) Frequency() modules.Frequency { return state.PerInstance }
func (Runcmd) Schema() modules.Schema {
	return modules.Schema{
		Doc: "Run commands once per instance, late in boot (after packages and files).",
		Keys: []config.Field{{Name: "runcmd", Type: config.ListOf(commandType),
			Doc: "Commands: a string runs with sh -c, a list runs as argv without a shell."}},
	}
}

func (Runcmd) Run(ctx context.Context, env *modules.Env, cfg *config.CloudConfig) error {
	return runList(ctx, env, cfg, "runcmd")
}

// Bootcmd runs the bootcmd list at every boot, early (network stage, before
// users and files).
type Bootcmd struct{}

func (Bootcmd) Name() string                 { return "bootcmd" }
func (Bootcmd) Stage() modules.Stage         { return modules.StageNetwork }
func (Bootcmd) Frequency() modules.Frequency { return state.Always }
func (Bootcmd) Schema() modules.Schema {
	return modules.Schema{
		Doc: "Run commands at every boot, before the other modules.",
		Keys: []config.Field{{Name: "bootcmd", Type: config.ListOf(commandType),
			Doc: "Commands: a string runs with sh -c, a list runs as argv without a shell."}},
	}
}

func (Bootcmd) Run(ctx context.Context, env *modules.Env, cfg *config.CloudConfig) error {
	return runList(ctx, env, cfg, "bootcmd")
}

// runList runs every command of key in order. Like cloud-init's runcmd
// script, a failing command does not stop the next; the error names the
// failing items by position, never by content (they may hold secrets).
func runList(ctx context.Context, env *modules.Env, cfg *config.CloudConfig, key string) error {
	val, ok := cfg.Get(key)
	if !ok {
		return nil
	}
	if val.Node.Kind != yaml.SequenceNode {
		return fmt.Errorf("%s:%d: %s: expected a list of commands", val.Source, val.KeyLine, key)
	}
	var failures []string
	for i, item := range val.Node.Content {
		argv, err := command.Argv(item)
		if err != nil {
			failures = append(failures, fmt.Sprintf("%s[%d]: %v", key, i, err))
			continue
		}
		res, err := env.Runner.Run(ctx, sys.Cmd{
			Name:   fmt.Sprintf("%s[%d]", key, i),
			Argv:   argv,
			Output: env.ConsoleWriter(),
			Header: true,
		})
		switch {
		case err != nil:
			failures = append(failures, fmt.Sprintf("%s[%d] (line %d): %v", key, i, item.Line, err))
		case res.ExitCode != 0:
			failures = append(failures, fmt.Sprintf("%s[%d] (line %d): exit status %d", key, i, item.Line, res.ExitCode))
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	if len(failures) > 0 {
		return errors.New(strings.Join(failures, "; "))
	}
	return nil
}
