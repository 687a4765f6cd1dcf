// Package snap implements cloud-init's snap module: once snapd has loaded
// its seed, the cloud-config's assertions are acknowledged (snap ack of
// one file holding them all) and its commands run, each in turn, every
// failure reported.
package snap

import (
	"context"
	"fmt"
	"path"
	"sort"
	"strings"
	"time"

	"go.uber.org/zap"
	"gopkg.in/yaml.v3"

	"github.com/ec2init/ec2init/agent/config"
	"github.com/ec2init/ec2init/agent/state"
	"github.com/ec2init/ec2init/agent/sys"
	"github.com/ec2init/ec2init/modules"
	"github.com/ec2init/ec2init/modules/internal/command"
)

// AssertionsFile is the name of the file snap ack reads, in the
// instance's directory (as cloud-init keeps it in its own).
const AssertionsFile = "snapd.assertions"

// fallbackDir holds it outside a boot, where there is no instance.
const fallbackDir = "/run/ec2init"

// snapPaths are where snapd's command lives.
var snapPaths = []string{"/usr/bin/snap", "/snap/bin/snap"}

const cmdTimeout = 30 * time.Minute

// Snap applies the assertions and commands once per instance.
type Snap struct{}

func (Snap) Name() string                 { return "snap" }
func (Snap) Stage() modules.Stage         { return modules.StageConfig }
func (Snap) Frequency() modules.Frequency { return state.PerInstance }
func (Snap) Schema() modules.Schema {
	command := config.OneOf(config.String(), config.ListOf(config.OneOf(config.String(), config.Null())))
	return modules.Schema{
		Doc: "Acknowledge snap assertions (snap ack) and run snap commands, once snapd is seeded.",
		Keys: []config.Field{{Name: "snap", Type: config.Object(
			config.Field{Name: "assertions", Type: config.OneOf(config.ListOf(config.String()), config.MapOf(config.String())),
				Doc: "Signed assertions, acknowledged before the commands run (a mapping's values, in order)."},
			config.Field{Name: "commands", Type: config.OneOf(config.ListOf(command), config.MapOf(command)),
				Doc: "Commands, a mapping's sorted by key: a string is shell, a list is argv with snap put first when it is not (a null first word keeps it as given)."},
		), Doc: "snapd's assertions and commands."}},
	}
}

type settings struct {
	Assertions yaml.Node `yaml:"assertions"`
	Commands   yaml.Node `yaml:"commands"`
}

func (Snap) Run(ctx context.Context, env *modules.Env, cfg *config.CloudConfig) error {
	var s settings
	if ok, err := cfg.Decode("snap", &s); err != nil || !ok {
		return err
	}
	log := env.Logger()
	assertions, err := assertionsOf(&s.Assertions)
	if err != nil {
		return err
	}
	commands, err := commandsOf(&s.Commands)
	if err != nil {
		return err
	}
	if len(assertions) == 0 && len(commands) == 0 {
		log.Info("snap: no assertions nor commands; nothing to do")
		return nil
	}
	if err := waitSeeded(ctx, env); err != nil {
		return err
	}
	if len(assertions) > 0 {
		if err := ack(ctx, env, assertions); err != nil {
			return err
		}
		log.Info("snap: assertions acknowledged", zap.Int("assertions", len(assertions)))
	}
	var failures []error
	for i, c := range commands {
		if err := runCommand(ctx, env, c); err != nil {
			failures = append(failures, fmt.Errorf("commands %s: %w", c.label, err))
			continue
		}
		log.Info("snap: command ran", zap.Int("command", i+1), zap.String("key", c.label))
	}
	return modules.JoinItemErrors(failures)
}

// assertionsOf reads a list, or a mapping's values in the order given.
func assertionsOf(n *yaml.Node) ([]string, error) {
	var out []string
	switch n.Kind {
	case 0:
		return nil, nil
	case yaml.SequenceNode:
		for _, a := range n.Content {
			out = append(out, a.Value)
		}
	case yaml.MappingNode:
		for i := 1; i < len(n.Content); i += 2 {
			out = append(out, n.Content[i].Value)
		}
	case yaml.ScalarNode:
		if n.Tag == "!!null" {
			return nil, nil
		}
		fallthrough
	default:
		return nil, fmt.Errorf("snap.assertions: line %d: a list or mapping of assertions", n.Line)
	}
	return out, nil
}

// snapCommand is one command: argv, or shell.
type snapCommand struct {
	label string // [i] or the mapping's key
	argv  []string
	shell string
}

// commandsOf reads a list, or a mapping sorted by key, as cloud-init
// orders it; a list command gets snap as its first word unless it has it
// already or its first word is null (kept as given without it).
func commandsOf(n *yaml.Node) ([]snapCommand, error) {
	type item struct {
		label string
		n     *yaml.Node
	}
	var items []item
	switch n.Kind {
	case 0:
		return nil, nil
	case yaml.SequenceNode:
		for i, c := range n.Content {
			items = append(items, item{fmt.Sprintf("[%d]", i), c})
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			items = append(items, item{n.Content[i].Value, n.Content[i+1]})
		}
		sort.SliceStable(items, func(a, b int) bool { return items[a].label < items[b].label })
	case yaml.ScalarNode:
		if n.Tag == "!!null" {
			return nil, nil
		}
		fallthrough
	default:
		return nil, fmt.Errorf("snap.commands: line %d: a list or mapping of commands", n.Line)
	}
	var out []snapCommand
	for _, it := range items {
		c := snapCommand{label: it.label}
		switch it.n.Kind {
		case yaml.ScalarNode:
			if it.n.Tag == "!!null" || strings.TrimSpace(it.n.Value) == "" {
				return nil, fmt.Errorf("snap.commands %s: line %d: empty command", it.label, it.n.Line)
			}
			c.shell = it.n.Value
		case yaml.SequenceNode:
			for j, w := range it.n.Content {
				if w.Kind != yaml.ScalarNode || (w.Tag == "!!null" && j > 0) {
					return nil, fmt.Errorf("snap.commands %s: line %d: a command's words are strings", it.label, w.Line)
				}
				if w.Tag != "!!null" {
					c.argv = append(c.argv, w.Value)
				}
			}
			if len(it.n.Content) > 0 && it.n.Content[0].Tag != "!!null" && c.argv[0] != "snap" {
				c.argv = append([]string{"snap"}, c.argv...)
			}
			if len(c.argv) == 0 {
				return nil, fmt.Errorf("snap.commands %s: line %d: empty command", it.label, it.n.Line)
			}
		default:
			return nil, fmt.Errorf("snap.commands %s: line %d: a command is a string or a list of words", it.label, it.n.Line)
		}
		out = append(out, c)
	}
	return out, nil
}

// waitSeeded waits for snapd to load its seed, as cloud-init does before
// anything else; without snap there is nothing to wait for (the commands
// then say what is missing).
func waitSeeded(ctx context.Context, env *modules.Env) error {
	found := false
	for _, p := range snapPaths {
		if ok, err := env.Root.Exists(p); ok && err == nil {
			found = true
		}
	}
	if !found {
		env.Logger().Debug("snap: no snap command; not waiting for the seed")
		return nil
	}
	return run(ctx, env.Runner, "snap wait", []string{"snap", "wait", "system", "seed.loaded"})
}

// ack writes the assertions, joined by newlines, to one file and has snap
// ack import them all.
func ack(ctx context.Context, env *modules.Env, assertions []string) error {
	dir := fallbackDir
	if env.State != nil {
		dir = path.Dir(env.State.For("snap").Path())
	}
	p := path.Join(dir, AssertionsFile)
	if err := env.Root.WriteFile(p, []byte(strings.Join(assertions, "\n")), 0o644, nil); err != nil {
		return fmt.Errorf("snap.assertions: %w", err)
	}
	arg, err := cmdPath(env, p)
	if err != nil {
		return err
	}
	if err := run(ctx, env.Runner, "snap ack", []string{"snap", "ack", arg}); err != nil {
		return fmt.Errorf("snap.assertions: %w", err)
	}
	return nil
}

// cmdPath is host path p as a command run by env's runner sees it.
func cmdPath(env *modules.Env, p string) (string, error) {
	if env.Root.IsHost() || env.Runner.Chroot {
		return p, nil
	}
	return env.Root.Path(p)
}

func runCommand(ctx context.Context, env *modules.Env, c snapCommand) error {
	if c.shell != "" {
		if !strings.HasPrefix(c.shell, "snap ") {
			env.Logger().Warn("snap: a command that is not snap's", zap.String("key", c.label))
		}
		return run(ctx, env.Runner, "snap command "+c.label, []string{"/bin/sh", "-c", c.shell})
	}
	return run(ctx, env.Runner, "snap command "+c.label, c.argv)
}

func run(ctx context.Context, r *sys.Runner, name string, argv []string) error {
	out, res, err := command.Output(ctx, r, sys.Cmd{Name: name, Argv: argv, Timeout: cmdTimeout})
	if err != nil {
		return err
	}
	if res.ExitCode != 0 {
		return fmt.Errorf("%s: %w", name, command.ExitError(res.ExitCode, out))
	}
	return nil
}

// Check is for the schema: what cloud-init's schema refuses beyond types
// (an empty snap, assertions or commands, a null word after the first)
// and what its runtime warns of (a shell command that is not snap's).
func (Snap) Check(source, key string, v *yaml.Node) []config.Diagnostic {
	if v.Kind != yaml.MappingNode {
		return nil
	}
	var out []config.Diagnostic
	add := func(n *yaml.Node, p string, sev config.Severity, msg string) {
		out = append(out, config.Diagnostic{Source: source, Line: n.Line, Column: n.Column, Path: p, Severity: sev, Message: msg})
	}
	if len(v.Content) == 0 {
		add(v, key, config.SeverityWarning, "empty: nothing to do")
	}
	for i := 0; i+1 < len(v.Content); i += 2 {
		k, val := v.Content[i], v.Content[i+1]
		p := key + "." + k.Value
		if (val.Kind == yaml.SequenceNode || val.Kind == yaml.MappingNode) && len(val.Content) == 0 {
			add(val, p, config.SeverityWarning, "empty: nothing to do")
		}
		if k.Value != "commands" {
			continue
		}
		step, first := 1, 0
		if val.Kind == yaml.MappingNode {
			step, first = 2, 1
		}
		if val.Kind != yaml.SequenceNode && val.Kind != yaml.MappingNode {
			continue
		}
		for j := first; j < len(val.Content); j += step {
			c := val.Content[j]
			cp := fmt.Sprintf("%s[%d]", p, j)
			if step == 2 {
				cp = p + "." + val.Content[j-1].Value
			}
			switch c.Kind {
			case yaml.ScalarNode:
				if c.Tag != "!!null" && !strings.HasPrefix(c.Value, "snap ") {
					add(c, cp, config.SeverityWarning, "not a snap command (it runs all the same)")
				}
			case yaml.SequenceNode:
				for w, word := range c.Content {
					if word.Tag == "!!null" && w > 0 {
						add(word, fmt.Sprintf("%s[%d]", cp, w), config.SeverityError, "only the first word may be null")
					}
				}
				if len(c.Content) == 0 || (len(c.Content) == 1 && c.Content[0].Tag == "!!null") {
					add(c, cp, config.SeverityError, "empty command")
				}
			}
		}
	}
	return out
}
