package growpart

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"

	"go.uber.org/zap"
	"gopkg.in/yaml.v3"

	"github.com/ec2init/ec2init/agent/config"
	"github.com/ec2init/ec2init/agent/state"
	"github.com/ec2init/ec2init/agent/sys"
	"github.com/ec2init/ec2init/modules"
	"github.com/ec2init/ec2init/modules/internal/disk"
)

// ResizeKey is resizefs's cloud-config key.
const ResizeKey = "resize_rootfs"

// Resizefs grows the root filesystem to fill its (just grown) partition,
// once per boot.
type Resizefs struct{}

func (Resizefs) Name() string                 { return "resizefs" }
func (Resizefs) Stage() modules.Stage         { return modules.StageNetwork }
func (Resizefs) Frequency() modules.Frequency { return state.PerBoot }
func (Resizefs) Schema() modules.Schema {
	return modules.Schema{
		Doc: "Grow the root filesystem (ext2/3/4, xfs, btrfs) to fill its partition, on every boot; on by default.",
		Keys: []config.Field{{Name: ResizeKey, Type: config.OneOf(config.Bool(), config.Enum("noblock")), Default: "true",
			Doc: "true resizes during the boot, noblock in the background, false not at all."}},
	}
}

// Wanted: on by default, as in cloud-init.
func (Resizefs) Wanted(*config.CloudConfig) bool { return true }

// resizeMode reads resize_rootfs: "on", "noblock" or "off".
func resizeMode(cfg *config.CloudConfig) (string, error) {
	val, ok := cfg.Get(ResizeKey)
	if !ok || (val.Node.Kind == yaml.ScalarNode && val.Node.Tag == "!!null") {
		return "on", nil
	}
	n := val.Node
	if n.Kind == yaml.ScalarNode {
		if n.Value == "noblock" {
			return "noblock", nil
		}
		if b, isBool := yamlBool(n); isBool {
			if b {
				return "on", nil
			}
			return "off", nil
		}
	}
	return "", fmt.Errorf("%s:%d: %s: expected true, false or noblock", val.Source, val.KeyLine, ResizeKey)
}

func (Resizefs) Run(ctx context.Context, env *modules.Env, cfg *config.CloudConfig) error {
	mode, err := resizeMode(cfg)
	if err != nil {
		return err
	}
	if mode == "off" {
		env.Logger().Info("resizefs: resize_rootfs is false; the root filesystem is left as it is")
		return nil
	}
	if disk.InContainer(env) {
		env.Logger().Info("resizefs: running in a container; its filesystem is the host's, left as it is")
		return nil
	}
	_, err = resize(ctx, env, "/", mode == "noblock")
	return err
}

// resize grows the filesystem mounted at target (a path in the mount
// namespace the root's mountinfo describes). With background it returns
// at once; the channel yields the command's outcome (tests wait on it; the
// boot does not). A nil channel means nothing was started.
func resize(ctx context.Context, env *modules.Env, target string, background bool) (<-chan error, error) {
	log := env.Logger().With(zap.String("module", "resizefs"))
	v := disk.NewView(env)
	argv, why, err := resizeCommand(v, target)
	if err != nil {
		return nil, err
	}
	if argv == nil {
		log.Info("resizefs: skipped", zap.String("mount", target), zap.String("why", why))
		return nil, nil
	}
	cmd := sys.Cmd{Name: "resizefs: " + argv[0], Argv: argv, Env: map[string]string{"LANG": "C"}, Header: true}
	if !background {
		cmd.Output = env.ConsoleWriter()
		res, err := env.Runner.Run(ctx, cmd)
		if err := resizeOutcome(argv, res, err); err != nil {
			return nil, err
		}
		log.Info("resizefs: filesystem grown", zap.String("mount", target), zap.String("tool", argv[0]))
		return nil, nil
	}
	// In the background the command may outlive this process (the unit
	// keeps it: RemainAfterExit): its output goes to a file it holds
	// itself, never to a pipe that would break when the agent exits.
	logFile, err := backgroundOutput(env)
	if err != nil {
		log.Warn("resizefs: no output log for the background resize; its output is discarded", zap.Error(err))
	} else {
		cmd.Output = logFile
	}
	done := make(chan error, 1)
	bg := context.WithoutCancel(ctx) // the stage ending must not stop it
	go func(f *os.File) {
		res, err := env.Runner.Run(bg, cmd)
		err = resizeOutcome(argv, res, err)
		if err != nil {
			log.Warn("resizefs: background resize failed", zap.String("mount", target), zap.Error(err))
		} else {
			log.Info("resizefs: filesystem grown (in the background)", zap.String("mount", target), zap.String("tool", argv[0]))
		}
		if f != nil {
			f.Close()
		}
		done <- err
	}(logFile)
	log.Info("resizefs: resizing in the background (resize_rootfs: noblock)", zap.String("mount", target), zap.String("tool", argv[0]))
	return done, nil
}

// backgroundOutput is a file of its own for a background command's output:
// the console itself when it is a file, else the output log opened anew
// (the console may be a pipe or closed with the module's Env).
func backgroundOutput(env *modules.Env) (*os.File, error) {
	if f, ok := env.Console.(*os.File); ok {
		dup, err := syscall.Dup(int(f.Fd()))
		if err != nil {
			return nil, err
		}
		return os.NewFile(uintptr(dup), f.Name()), nil
	}
	return env.Root.OpenLog(state.OutputLogFile)
}

func resizeOutcome(argv []string, res sys.Result, err error) error {
	switch {
	case err != nil:
		return err
	case res.Signal != "":
		return fmt.Errorf("%s killed (%s)", argv[0], res.Signal)
	case res.ExitCode != 0:
		return fmt.Errorf("%s exited %d (its output is in the output log)", argv[0], res.ExitCode)
	}
	return nil
}

// resizeCommand picks the command that grows the filesystem at target; a
// nil argv comes with why nothing is to be done.
func resizeCommand(v disk.View, target string) (argv []string, why string, err error) {
	mounts, err := v.Mounts()
	if errors.Is(err, disk.ErrNotResolved) {
		return nil, err.Error(), nil
	}
	if err != nil {
		return nil, "", err
	}
	m, ok := disk.MountOf(mounts, target)
	if !ok || m.MountPoint != target {
		return nil, "nothing is mounted at " + target, nil
	}
	b, err := v.BlockOfMount(m)
	if errors.Is(err, disk.ErrNotResolved) {
		// A container's overlay, a tmpfs: nothing to grow.
		return nil, err.Error(), nil
	}
	if err != nil {
		return nil, "", err
	}
	if opt, _, _ := strings.Cut(m.Options, ","); opt == "ro" {
		return nil, fmt.Sprintf("%s is mounted read-only", target), nil
	}
	if strings.HasPrefix(m.FSType, "ext") && !v.IsBlockDevice(b.DevPath()) {
		return nil, fmt.Sprintf("%s holds %s but %s is not a block device under the root", target, b.Name, b.DevPath()), nil
	}
	dev, err := v.HostPath(b.DevPath())
	if err != nil {
		return nil, "", err
	}
	mp, err := v.HostPath(m.MountPoint)
	if err != nil {
		return nil, "", err
	}
	argv = Command(m.FSType, dev, mp)
	if argv == nil {
		return nil, fmt.Sprintf("no resizer for %s filesystems (ext2/3/4, xfs and btrfs are grown)", m.FSType), nil
	}
	return argv, "", nil
}

// Command is the argv growing a filesystem of type fstype on device dev
// mounted at mountPoint (both as the command sees them): resize2fs takes
// the device, xfs_growfs and btrfs the mount point. nil for other types.
func Command(fstype, dev, mountPoint string) []string {
	switch fstype {
	case "ext2", "ext3", "ext4":
		return []string{"resize2fs", dev}
	case "xfs":
		return []string{"xfs_growfs", mountPoint}
	case "btrfs":
		return []string{"btrfs", "filesystem", "resize", "max", mountPoint}
	}
	return nil
}
