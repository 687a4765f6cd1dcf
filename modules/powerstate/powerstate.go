// Package powerstate implements cloud-init's power_state_change: reboot,
// power off or halt the instance once the boot is done, after a delay and
// only if a condition holds.
//
// The module decides (mode, delay, message, timeout, condition) and hands
// an Action to an Executor; it never powers anything off itself. The
// default executor, Schedule, asks systemd to do it after the boot; see
// there for why.
package powerstate

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strconv"
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

// Key is the cloud-config key read.
const Key = "power_state"

// DefaultTimeout is how long the change waits for the boot to finish
// before going ahead anyway, as cloud-init's default.
const DefaultTimeout = 30 * time.Second

// The modes, as cloud-init names them.
const (
	ModePoweroff = "poweroff"
	ModeReboot   = "reboot"
	ModeHalt     = "halt"
)

// FinalUnit is the unit whose start (READY=1, sent once the boot's records
// are written) the change waits for.
const FinalUnit = "ec2init-final.service"

// ScheduledUnit is the transient unit Schedule creates. A fixed name means a
// second scheduling fails instead of queueing a second reboot.
const ScheduledUnit = "ec2init-power-state"

// Action is a power change to carry out once the boot is done.
type Action struct {
	Mode string // ModePoweroff, ModeReboot or ModeHalt
	// Delay is how long after the boot to act; 0 is "now". cloud-init counts
	// it in whole minutes.
	Delay   time.Duration
	Message string
	// Timeout bounds the wait for the boot to finish; then the change goes
	// ahead anyway (as cloud-init's timeout).
	Timeout time.Duration
}

// Executor carries out a (decided) action.
type Executor func(ctx context.Context, env *modules.Env, a Action) error

// PowerState is the power_state module. The zero value schedules with
// systemd (Schedule); tests set Execute.
type PowerState struct {
	Execute Executor
}

var conditionType = config.OneOf(config.Bool(), config.String(),
	config.ListOf(config.OneOf(config.String(), config.Int(), config.Bool())))

// Name is cloud-init's module name (cc_power_state_change); the key is power_state.
func (PowerState) Name() string                 { return "power_state_change" }
func (PowerState) Stage() modules.Stage         { return modules.StageFinal }
func (PowerState) Frequency() modules.Frequency { return state.PerInstance }
func (PowerState) Schema() modules.Schema {
	return modules.Schema{
		Doc: "Reboot, power off or halt once the boot is done, after a delay, if a condition holds.",
		Keys: []config.Field{{Name: Key, Type: config.Object(
			config.Field{Name: "mode", Type: config.Enum(ModePoweroff, ModeReboot, ModeHalt), Required: true, Doc: "poweroff, reboot or halt."},
			config.Field{Name: "delay", Type: config.OneOf(config.Int(), config.String()), Default: "now", Doc: "Minutes to wait after the boot: now, an integer, or '+N'."},
			config.Field{Name: "message", Type: config.String(), Doc: "Message broadcast and logged with the change."},
			config.Field{Name: "timeout", Type: config.Int(), Default: "30", Doc: "Seconds to wait for the boot to finish before going ahead anyway."},
			config.Field{Name: "condition", Type: conditionType, Default: "true",
				Doc: "true, false, or a command (string: run by sh -c; list: argv); exit status 0 means go ahead."},
		), Doc: "The power change after the boot."}},
	}
}

// Wanted: a module may have requested a reboot (modules.RebootRequestFile)
// without any power_state key.
func (PowerState) Wanted(*config.CloudConfig) bool { return true }

func (p PowerState) Run(ctx context.Context, env *modules.Env, cfg *config.CloudConfig) error {
	execute := p.Execute
	if execute == nil {
		execute = Schedule
	}
	val, ok := cfg.Get(Key)
	if !ok {
		return rebootIfRequested(ctx, env, execute)
	}
	a, cond, err := parse(val)
	if err != nil {
		return err
	}
	// cloud-init checks the condition after it has finished; this module
	// runs last in the final stage, so the difference is the final message.
	proceed, err := checkCondition(ctx, env, cond)
	if err != nil {
		return err
	}
	if !proceed {
		return nil
	}
	if err := execute(ctx, env, a); err != nil {
		return fmt.Errorf("%s: %w", a.Mode, err)
	}
	return nil
}

// rebootIfRequested carries out a module's reboot request when the user
// configured no power change of their own (theirs wins: a poweroff after
// the boot serves the request too).
func rebootIfRequested(ctx context.Context, env *modules.Env, execute Executor) error {
	req, err := env.Root.ReadFile(modules.RebootRequestFile)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("reboot request: %w", err)
	}
	why := strings.TrimSpace(string(req))
	env.Logger().Info("power_state: a module requested a reboot", zap.String("request", why))
	a := Action{Mode: ModeReboot, Timeout: DefaultTimeout, Message: "ec2init: reboot requested: " + why}
	if err := execute(ctx, env, a); err != nil {
		return fmt.Errorf("requested reboot: %w", err)
	}
	return nil
}

// parse reads the power_state mapping into an action and its condition.
func parse(val config.Value) (Action, *yaml.Node, error) {
	fail := func(line int, format string, args ...any) (Action, *yaml.Node, error) {
		return Action{}, nil, fmt.Errorf("%s:%d: power_state: %w", val.Source, line, fmt.Errorf(format, args...))
	}
	n := val.Node
	if n.Kind != yaml.MappingNode {
		return fail(val.KeyLine, "expected a mapping with a mode")
	}
	a := Action{Timeout: DefaultTimeout}
	var cond *yaml.Node
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i].Value, n.Content[i+1]
		if v.Kind == yaml.AliasNode {
			v = v.Alias
		}
		seen[k] = true
		switch k {
		case "mode":
			switch v.Value {
			case ModePoweroff, ModeReboot, ModeHalt:
				a.Mode = v.Value
			default:
				return fail(v.Line, "mode: expected poweroff, reboot or halt")
			}
		case "delay":
			d, err := parseDelay(v)
			if err != nil {
				return fail(v.Line, "delay: %w", err)
			}
			a.Delay = d
		case "message":
			if v.Kind != yaml.ScalarNode {
				return fail(v.Line, "message: expected a string")
			}
			a.Message = v.Value
		case "timeout":
			secs, err := strconv.Atoi(v.Value)
			if v.Kind != yaml.ScalarNode || err != nil || secs < 0 {
				return fail(v.Line, "timeout: expected a number of seconds, 0 or more")
			}
			a.Timeout = time.Duration(secs) * time.Second
		case "condition":
			cond = v
		}
	}
	if !seen["mode"] {
		return fail(val.KeyLine, "mode is required (poweroff, reboot or halt)")
	}
	return a, cond, nil
}

// parseDelay reads cloud-init's delay: "now", or whole minutes as an
// integer or a string "N" / "+N".
func parseDelay(v *yaml.Node) (time.Duration, error) {
	if v.Kind != yaml.ScalarNode {
		return 0, errors.New(`expected "now" or a number of minutes`)
	}
	s := strings.TrimSpace(v.Value)
	if s == "now" {
		return 0, nil
	}
	digits := strings.TrimPrefix(s, "+")
	if digits == "" || strings.Trim(digits, "0123456789") != "" {
		return 0, fmt.Errorf(`%q: expected "now" or a number of minutes ("+5" or 5)`, s)
	}
	mins, err := strconv.Atoi(digits)
	if err != nil || mins > 60*24*365 {
		return 0, fmt.Errorf("%q: out of range", s)
	}
	return time.Duration(mins) * time.Minute, nil
}

// checkCondition decides whether to go ahead: absent or true yes, false no;
// a command yes when it exits 0. As cloud-init, a command exiting 1 says
// no quietly, any other end says no with a warning. A command that cannot
// be started is an error: the change is skipped and the failure shows.
func checkCondition(ctx context.Context, env *modules.Env, cond *yaml.Node) (bool, error) {
	log := env.Logger()
	if cond == nil || cond.Tag == "!!null" {
		return true, nil
	}
	if cond.Kind == yaml.ScalarNode && cond.Tag == "!!bool" {
		b, err := config.ParseBool(cond.Value)
		if err != nil {
			return false, fmt.Errorf("condition (line %d): %w", cond.Line, err)
		}
		if !b {
			log.Info("power_state: condition is false; no change")
		}
		return b, nil
	}
	argv, err := command.Argv(cond)
	if err != nil {
		return false, fmt.Errorf("condition: %w", err)
	}
	res, err := env.Runner.Run(ctx, sys.Cmd{Name: "power_state condition", Argv: argv, Output: env.ConsoleWriter(), Header: true})
	if err != nil {
		return false, fmt.Errorf("condition (line %d): %w", cond.Line, err)
	}
	switch res.ExitCode {
	case 0:
		return true, nil
	case 1:
		log.Info("power_state: condition exited 1; no change")
	default:
		log.Warn("power_state: condition ended unexpectedly; no change",
			zap.Int("exit_code", res.ExitCode), zap.String("signal", res.Signal))
	}
	return false, nil
}

// Schedule is the default executor. It hands the change to systemd as a
// transient unit ordered after ec2init-final.service, rather than running
// shutdown(8) itself:
//
//   - "shutdown now" from inside the final stage would stop ec2init before
//     it records its results and this module's semaphore, so the next boot
//     would run power_state again: a reboot loop. After= makes systemd wait
//     for READY=1, which the final unit sends once the boot is recorded
//     (cloud-init forks and waits for its own exit for the same reason).
//   - cloud-init's timeout (go ahead anyway when the boot has not finished
//     in time) is JobTimeoutSec= with JobTimeoutAction= the same reboot or
//     poweroff. systemd has no halt action, so a halt waits for the boot
//     however long it takes.
//   - the delay is a timer (--on-active), so nothing of ec2init has to stay
//     alive for it, and systemctl list-timers shows what is coming.
//
// When the root is not the running system (--root, --chroot: preparing an
// image), nothing is scheduled: the image's config must not reboot the
// machine preparing it.
func Schedule(ctx context.Context, env *modules.Env, a Action) error {
	argv := SystemdRunArgv(a)
	if !env.Root.IsHost() || env.Runner.Chroot {
		fmt.Fprintf(env.ConsoleWriter(), "ec2init: power_state: not scheduling %s of this machine: the root is %s, not the running system\n",
			a.Mode, env.Root.Prefix())
		env.Logger().Warn("power_state: root is not the running system; nothing scheduled", zap.String("mode", a.Mode))
		return nil
	}
	res, err := env.Runner.Run(ctx, sys.Cmd{Name: "power_state", Argv: argv, Output: env.ConsoleWriter(), Timeout: time.Minute})
	if err != nil {
		return err
	}
	if res.ExitCode != 0 {
		return fmt.Errorf("systemd-run exited %d (signal %q)", res.ExitCode, res.Signal)
	}
	when := "once the boot is done"
	if a.Delay > 0 {
		when = fmt.Sprintf("in %s, once the boot is done", a.Delay)
	}
	fmt.Fprintf(env.ConsoleWriter(), "ec2init: power_state: %s scheduled %s (unit %s)\n", a.Mode, when, ScheduledUnit)
	return nil
}

// SystemdRunArgv is the command Schedule runs for a.
func SystemdRunArgv(a Action) []string {
	argv := []string{"systemd-run",
		"--unit=" + ScheduledUnit,
		"--description=ec2init power_state: " + a.Mode,
		"--collect", "--no-block",
		"--property=After=" + FinalUnit,
	}
	if a.Mode != ModeHalt {
		// JobTimeoutSec=0 would mean no timeout: one second is the least.
		secs := max(int64(a.Timeout/time.Second), 1)
		argv = append(argv, fmt.Sprintf("--property=JobTimeoutSec=%ds", secs), "--property=JobTimeoutAction="+a.Mode)
	}
	if a.Delay > 0 {
		argv = append(argv, fmt.Sprintf("--on-active=%dmin", int64(a.Delay/time.Minute)))
	}
	argv = append(argv, "--", "systemctl", a.Mode)
	if a.Message != "" {
		// systemd expands $VAR in a unit's command line; "$$" is a "$".
		argv = append(argv, "--message="+strings.ReplaceAll(a.Message, "$", "$$"))
	}
	return argv
}
