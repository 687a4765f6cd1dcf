// Package runcmd implements cloud-init's runcmd (final stage, once per
// instance) and bootcmd (every boot, before the other modules). As in
// cloud-init, the whole list becomes ONE /bin/sh script (util.shellify):
// a string item is a line of shell as written, a list item its words
// shell-quoted. So `cd`, `export`, variables and functions carry over to
// the next items, a failing item does not stop the rest, and the result
// is the script's exit status.
package runcmd

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"path"

	"gopkg.in/yaml.v3"

	"github.com/ec2init/ec2init/agent/config"
	"github.com/ec2init/ec2init/agent/state"
	"github.com/ec2init/ec2init/agent/sys"
	"github.com/ec2init/ec2init/modules"
)

// commandType is one runcmd/bootcmd item: a line of shell, a list of
// words, or null (a YAML comment left as an item; skipped). A word may be
// any scalar: Check warns about those that are not strings, which run as
// Python's str() of them, as in cloud-init.
var commandType = config.OneOf(config.String(), config.ListOf(config.Any()), config.Null())

const keyDoc = "Commands, run as one /bin/sh script as cloud-init does: a string is a line of shell, a list is words shell-quoted into one line."

// Runcmd runs the runcmd list once per instance, in the final stage.
type Runcmd struct{}

func (Runcmd) Name() string                 { return "runcmd" }
func (Runcmd) Stage() modules.Stage         { return modules.StageFinal }
func (Runcmd) Frequency() modules.Frequency { return state.PerInstance }
func (Runcmd) Schema() modules.Schema {
	return modules.Schema{
		Doc:  "Run commands once per instance, late in boot (after packages and files).",
		Keys: []config.Field{{Name: "runcmd", Type: config.ListOf(commandType), Doc: keyDoc}},
	}
}

// Check warns about words that are not strings and refuses what the
// script cannot be made of, as Run would.
func (Runcmd) Check(source, key string, v *yaml.Node) []config.Diagnostic {
	return check(source, key, v)
}

// Run writes the script to the instance's scripts directory (where
// cloud-init keeps /var/lib/cloud/instance/scripts/runcmd), 0700, and runs it.
func (Runcmd) Run(ctx context.Context, env *modules.Env, cfg *config.CloudConfig) error {
	script, ok, err := build(cfg, "runcmd")
	if err != nil || !ok {
		return err
	}
	file := ""
	if env.Instance != nil && env.Instance.InstanceID != "" {
		file = ScriptPath(env.Instance.InstanceID)
	}
	return runScript(ctx, env, "runcmd", file, script, nil)
}

// ScriptPath is where the runcmd script of instance id is kept (under the
// root), for `userdata show`.
func ScriptPath(instanceID string) string {
	return path.Join(state.StateDir, "instances", instanceID, "scripts", "runcmd")
}

// Bootcmd runs the bootcmd list at every boot, early (network stage, before
// users and files).
type Bootcmd struct{}

func (Bootcmd) Name() string                 { return "bootcmd" }
func (Bootcmd) Stage() modules.Stage         { return modules.StageNetwork }
func (Bootcmd) Frequency() modules.Frequency { return state.Always }
func (Bootcmd) Schema() modules.Schema {
	return modules.Schema{
		Doc:  "Run commands at every boot, before the other modules.",
		Keys: []config.Field{{Name: "bootcmd", Type: config.ListOf(commandType), Doc: keyDoc}},
	}
}

// Check is as Runcmd's.
func (Bootcmd) Check(source, key string, v *yaml.Node) []config.Diagnostic {
	return check(source, key, v)
}

// Run writes the script to a temporary file, runs it and removes it, with
// INSTANCE_ID in its environment, as cloud-init's bootcmd does.
func (Bootcmd) Run(ctx context.Context, env *modules.Env, cfg *config.CloudConfig) error {
	script, ok, err := build(cfg, "bootcmd")
	if err != nil || !ok {
		return err
	}
	var extra map[string]string
	if env.Instance != nil && env.Instance.InstanceID != "" {
		extra = map[string]string{"INSTANCE_ID": env.Instance.InstanceID}
	}
	return runScript(ctx, env, "bootcmd", "", script, extra)
}

// build makes the script of key; ok is false when the key is not set.
func build(cfg *config.CloudConfig, key string) (string, bool, error) {
	val, ok := cfg.Get(key)
	if !ok {
		return "", false, nil
	}
	n := deref(val.Node)
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return "", false, nil
	}
	if n.Kind != yaml.SequenceNode {
		return "", false, fmt.Errorf("%s:%d: %s: expected a list of commands", val.Source, val.KeyLine, key)
	}
	script, err := shellify(key, n.Content)
	if err != nil {
		// Like cloud-init, nothing runs when the script cannot be made.
		return "", false, fmt.Errorf("%s: %w; no command run", val.Source, err)
	}
	return script, true, nil
}

// tempDir holds bootcmd's scripts (and runcmd's outside a boot), under the
// runtime directory as cloud-init's are under /run/cloud-init/tmp.
const tempDir = state.RunDirPath + "/tmp"

// runScript writes script to file (a temporary one when file is "") and
// runs it with the runner's environment (the instance facts), stdin on
// /dev/null and output to the console writer, as the agent runs scripts.
func runScript(ctx context.Context, env *modules.Env, key, file, script string, extra map[string]string) error {
	if file == "" {
		var b [8]byte
		if _, err := rand.Read(b[:]); err != nil {
			return fmt.Errorf("temporary script name: %w", err)
		}
		if err := env.Root.MkdirAll(tempDir, 0o700); err != nil {
			return err
		}
		file = path.Join(tempDir, key+"-"+hex.EncodeToString(b[:])+".sh")
		defer env.Root.Remove(file) //nolint:errcheck // a leftover in /run goes at the next boot
	} else if err := env.Root.MkdirAll(path.Dir(file), 0o700); err != nil {
		return err
	}
	if err := env.Root.WriteFile(file, []byte(script), 0o700, nil); err != nil {
		return fmt.Errorf("write script: %w", err)
	}
	// The script starts "#!/bin/sh": executing it is cloud-init's
	// "/bin/sh <file>" (bootcmd) and scripts_user's exec (runcmd).
	res, err := env.Runner.RunScript(ctx, file, sys.Cmd{
		Name:   key,
		Env:    extra,
		Output: env.ConsoleWriter(),
		Header: true,
	})
	switch {
	case err != nil:
		return err
	case res.TimedOut:
		return fmt.Errorf("script timed out")
	case res.Signal != "":
		return fmt.Errorf("script killed by signal: %s", res.Signal)
	case res.ExitCode != 0:
		return fmt.Errorf("script exit status %d", res.ExitCode)
	}
	return ctx.Err()
}
