// Package growpart grows the root volume at boot, as cloud-init's growpart
// and resizefs do: growpart enlarges the partition under "/" (or other
// devices) to the end of its disk, resizefs then grows the filesystem on
// it. Both run on every boot: an EBS volume can be enlarged while the
// instance is stopped, or live, and the next boot picks the space up.
//
// Both are on by default, like cloud-init's. Devices are found through the
// root (its /proc/self/mountinfo and /sys), so under a temporary --root, as
// in tests and the demo, nothing resolves and nothing is grown: the
// modules log why and succeed.
package growpart

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"time"

	"go.uber.org/zap"
	"gopkg.in/yaml.v3"

	"github.com/ec2init/ec2init/agent/config"
	"github.com/ec2init/ec2init/agent/state"
	"github.com/ec2init/ec2init/agent/sys"
	"github.com/ec2init/ec2init/modules"
	"github.com/ec2init/ec2init/modules/internal/disk"
)

// Key is growpart's cloud-config key.
const Key = "growpart"

// DisabledFile stops growpart (and the initramfs growroot) when present,
// unless ignore_growroot_disabled is true.
const DisabledFile = "/etc/growroot-disabled"

// growTimeout bounds one growpart run (it rewrites a partition table).
const growTimeout = 5 * time.Minute

// Growpart grows partitions to fill their disks, once per boot.
type Growpart struct{}

func (Growpart) Name() string                 { return "growpart" }
func (Growpart) Stage() modules.Stage         { return modules.StageNetwork }
func (Growpart) Frequency() modules.Frequency { return state.PerBoot }
func (Growpart) Schema() modules.Schema {
	return modules.Schema{
		Doc: "Grow the partition under / (or other devices) to fill its disk, on every boot; on by default.",
		Keys: []config.Field{{Name: Key, Type: config.Object(
			config.Field{Name: "mode", Type: config.OneOf(config.Enum("auto", "growpart", "off"), config.Bool()), Default: "auto",
				Doc: "auto (growpart when installed), growpart (fail when it is not), or off (false) to do nothing."},
			config.Field{Name: "devices", Type: config.ListOf(config.String()), Default: `["/"]`,
				Doc: "Mount points or /dev paths whose partitions to grow."},
			config.Field{Name: "ignore_growroot_disabled", Type: config.Bool(), Default: "false",
				Doc: "Grow even when /etc/growroot-disabled exists."},
		), Doc: "Which partitions to grow, and how."}},
	}
}

// Wanted: on by default, as in cloud-init.
func (Growpart) Wanted(*config.CloudConfig) bool { return true }

// settings is the growpart key decoded.
type settings struct {
	mode          string // auto, growpart, off
	devices       []string
	ignoreDisable bool
}

func parse(cfg *config.CloudConfig) (settings, error) {
	s := settings{mode: "auto", devices: []string{"/"}}
	val, ok := cfg.Get(Key)
	if !ok || (val.Node.Kind == yaml.ScalarNode && val.Node.Tag == "!!null") {
		return s, nil
	}
	where := fmt.Sprintf("%s:%d: %s", val.Source, val.KeyLine, Key)
	n := val.Node
	if n.Kind != yaml.MappingNode {
		return s, fmt.Errorf("%s: expected a mapping", where)
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i].Value, n.Content[i+1]
		switch k {
		case "mode":
			if v.Kind != yaml.ScalarNode {
				return s, fmt.Errorf("%s.mode: expected auto, growpart or off", where)
			}
			// cloud-init reads a YAML false (PyYAML's unquoted off too) as off.
			if b, isBool := yamlBool(v); isBool {
				if b {
					return s, fmt.Errorf("%s.mode: true is not a mode (auto, growpart or off)", where)
				}
				s.mode = "off"
				continue
			}
			switch v.Value {
			case "auto", "growpart", "off":
				s.mode = v.Value
			case "gpart":
				return s, fmt.Errorf("%s.mode: gpart is FreeBSD's; ec2init uses growpart (auto, growpart or off)", where)
			default:
				return s, fmt.Errorf("%s.mode: %q: expected auto, growpart or off", where, v.Value)
			}
		case "devices":
			var d []string
			if err := v.Decode(&d); err != nil {
				return s, fmt.Errorf("%s.devices: expected a list of mount points or /dev paths", where)
			}
			s.devices = d
		case "ignore_growroot_disabled":
			b, err := config.ParseBool(v.Value)
			if v.Kind != yaml.ScalarNode || err != nil {
				return s, fmt.Errorf("%s.ignore_growroot_disabled: expected true or false", where)
			}
			s.ignoreDisable = b
		}
	}
	return s, nil
}

// yamlBool reads a boolean as PyYAML would: true/false, and unquoted
// yes/no/on/off/y/n.
func yamlBool(n *yaml.Node) (value, ok bool) {
	if n.Tag != "!!bool" && n.Style != 0 {
		return false, false
	}
	if n.Tag != "!!bool" {
		switch strings.ToLower(n.Value) {
		case "yes", "no", "on", "off", "y", "n":
		default:
			return false, false
		}
	}
	b, err := config.ParseBool(n.Value)
	return b, err == nil
}

func (Growpart) Run(ctx context.Context, env *modules.Env, cfg *config.CloudConfig) error {
	s, err := parse(cfg)
	if err != nil {
		return err
	}
	log := env.Logger().With(zap.String("module", "growpart"))
	if s.mode == "off" {
		log.Info("growpart: mode is off; nothing grown")
		return nil
	}
	if !s.ignoreDisable {
		if ok, err := env.Root.Exists(DisabledFile); err != nil {
			return err
		} else if ok {
			log.Info("growpart: " + DisabledFile + " exists; nothing grown (ignore_growroot_disabled: true overrides)")
			return nil
		}
	}
	if disk.InContainer(env) {
		log.Info("growpart: running in a container; its disk is the host's, nothing grown")
		return nil
	}
	if len(s.devices) == 0 {
		log.Info("growpart: no devices listed")
		return nil
	}
	v := disk.NewView(env)
	var failures []string
	for _, dev := range s.devices {
		r := grow(ctx, v, dev)
		switch r.outcome {
		case changed:
			log.Info("growpart: partition grown", zap.String("device", dev), zap.String("partition", r.part), zap.String("growpart", r.msg))
		case nochange:
			log.Info("growpart: partition already fills its disk", zap.String("device", dev), zap.String("partition", r.part))
		case skipped:
			log.Info("growpart: skipped", zap.String("device", dev), zap.String("why", r.msg))
		case missingTool:
			if s.mode == "auto" {
				log.Info("growpart: the growpart tool is not installed (cloud-guest-utils, cloud-utils-growpart); nothing grown")
				return nil
			}
			return fmt.Errorf("mode growpart: %s", r.msg)
		case failed:
			failures = append(failures, fmt.Sprintf("%s: %s", dev, r.msg))
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	if len(failures) > 0 {
		return fmt.Errorf("%s", strings.Join(failures, "; "))
	}
	return nil
}

type outcome int

const (
	changed outcome = iota
	nochange
	skipped
	missingTool
	failed
)

type result struct {
	outcome outcome
	part    string // the partition, /dev/xvda1
	msg     string
}

// grow grows the partition behind dev, a mount point or a /dev path.
func grow(ctx context.Context, v disk.View, dev string) result {
	b, err := partitionOf(v, dev)
	if err != nil {
		if errors.Is(err, disk.ErrNotResolved) {
			return result{outcome: skipped, msg: err.Error()}
		}
		return result{outcome: failed, msg: err.Error()}
	}
	if b.Partition == 0 {
		return result{outcome: skipped, part: b.DevPath(),
			msg: b.DevPath() + " is not a partition (a whole disk, LVM or RAID device): nothing for growpart to grow"}
	}
	diskPath := "/dev/" + b.Disk
	if !v.IsBlockDevice(diskPath) {
		return result{outcome: skipped, part: b.DevPath(), msg: diskPath + " is not a block device under the root"}
	}
	hp, err := v.HostPath(diskPath)
	if err != nil {
		return result{outcome: failed, part: b.DevPath(), msg: err.Error()}
	}
	return runGrowpart(ctx, v.Env(), hp, b.Partition, b.DevPath())
}

// partitionOf finds the block device of dev: a /dev path's node, or the
// device mounted at (or holding) a path.
func partitionOf(v disk.View, dev string) (disk.Block, error) {
	if strings.HasPrefix(dev, "/dev/") {
		return v.DeviceOf(dev)
	}
	if !strings.HasPrefix(dev, "/") {
		return disk.Block{}, fmt.Errorf("%q is neither a mount point nor a /dev path: %w", dev, disk.ErrNotResolved)
	}
	mounts, err := v.Mounts()
	if err != nil {
		return disk.Block{}, err
	}
	m, ok := disk.MountOf(mounts, dev)
	if !ok {
		return disk.Block{}, fmt.Errorf("no mount holds %s: %w", dev, disk.ErrNotResolved)
	}
	return v.BlockOfMount(m)
}

// runGrowpart runs `growpart DISK N`. growpart exits 0 when it grew the
// partition, 1 with "NOCHANGE:" when there was nothing to grow (not an
// error), 2 on failure.
func runGrowpart(ctx context.Context, env *modules.Env, diskPath string, n int, part string) result {
	var out bytes.Buffer
	res, err := env.Runner.Run(ctx, sys.Cmd{
		Name:    "growpart",
		Argv:    []string{"growpart", diskPath, fmt.Sprint(n)},
		Env:     map[string]string{"LANG": "C"}, // growpart parses sfdisk's output
		Output:  &out,
		Timeout: growTimeout,
	})
	text := out.String()
	// The output reaches the console and output log, as other commands'.
	fmt.Fprint(env.ConsoleWriter(), text)
	switch {
	case errors.Is(err, exec.ErrNotFound):
		return result{outcome: missingTool, part: part, msg: err.Error()}
	case err != nil:
		return result{outcome: failed, part: part, msg: err.Error()}
	case res.ExitCode == 0:
		return result{outcome: changed, part: part, msg: disk.FirstLine(text)}
	case res.ExitCode == 1 && strings.Contains(text, "NOCHANGE"):
		return result{outcome: nochange, part: part, msg: disk.FirstLine(text)}
	case res.Signal != "":
		return result{outcome: failed, part: part, msg: fmt.Sprintf("growpart %s %d killed (%s)", diskPath, n, res.Signal)}
	default:
		return result{outcome: failed, part: part, msg: fmt.Sprintf("growpart %s %d exited %d: %s", diskPath, n, res.ExitCode, disk.FirstLine(text))}
	}
}
