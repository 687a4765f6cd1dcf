package civiews

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/ec2init/ec2init/agent/sys"
)

// cloud-init's paths (host paths, under the root prefix).
const (
	CloudDir     = "/var/lib/cloud"
	SemDir       = CloudDir + "/sem"
	InstancesDir = CloudDir + "/instances"
	InstanceLink = CloudDir + "/instance"
	DataDir      = CloudDir + "/data"
	RunDir       = "/run/cloud-init"
)

// Frequencies of cloud-init-per.
const (
	PerOnce     = "once"
	PerInstance = "instance"
	PerAlways   = "always"
)

var (
	// ErrBadFrequency is returned for a frequency other than once,
	// instance and always.
	ErrBadFrequency = errors.New("invalid frequency")
	// ErrBadName is returned for a name holding a "/".
	ErrBadName = errors.New("name cannot contain a /")
	// ErrNoInstance is returned for frequency instance when no instance
	// id is known (ec2init never booted under this root).
	ErrNoInstance = errors.New("no current instance id (has ec2init booted?)")
)

// PerName is the name cloud-init-per keys its semaphore on: "-" becomes
// "_", as cloud-init has done since 19.x.
func PerName(name string) string { return strings.ReplaceAll(name, "-", "_") }

// SemaphorePath is the host path of cloud-init-per's semaphore for freq and
// name: /var/lib/cloud/sem/bootper.NAME.FREQ for once and always, and for
// instance the current instance's sem directory (cloud-init reaches it
// through the /var/lib/cloud/instance link; the id names it directly so it
// does not depend on the link).
func SemaphorePath(freq, name, instanceID string) (string, error) {
	name = PerName(name)
	if strings.Contains(name, "/") {
		return "", ErrBadName
	}
	file := "bootper." + name + "." + freq
	switch freq {
	case PerOnce, PerAlways:
		return path.Join(SemDir, file), nil
	case PerInstance:
		if instanceID == "" {
			return "", ErrNoInstance
		}
		if strings.Contains(instanceID, "/") || instanceID == "." || instanceID == ".." {
			return "", fmt.Errorf("instance id %q: %w", instanceID, ErrNoInstance)
		}
		return path.Join(InstancesDir, instanceID, "sem", file), nil
	default:
		return "", fmt.Errorf("%w: %s", ErrBadFrequency, freq)
	}
}

// PerOptions is what RunPer needs besides the frequency, name and command.
type PerOptions struct {
	Root *sys.Root
	// InstanceID is the current instance, for frequency instance.
	InstanceID string
	Stdin      io.Reader
	Stdout     io.Writer
	Stderr     io.Writer
	// Now stamps the semaphore (default time.Now).
	Now func() time.Time
}

// RunPer is cloud-init-per: it runs argv (exec, no shell) unless freq's
// semaphore says it already ran, then records the command's exit status
// and the time in the semaphore, and returns that exit status. As
// cloud-init does, the semaphore is written whatever the status: a once
// command that failed is not retried. A command that cannot be started
// exits 127 (not found) or 126, as from a shell. The error is for what
// stops cloud-init-per itself (bad arguments, unwritable semaphore).
func RunPer(ctx context.Context, opts PerOptions, freq, name string, argv []string) (int, error) {
	if len(argv) == 0 {
		return 1, errors.New("no command")
	}
	sem, err := SemaphorePath(freq, name, opts.InstanceID)
	if err != nil {
		return 1, err
	}
	if err := migrateLegacy(opts.Root, sem); err != nil {
		return 1, err
	}
	if freq != PerAlways {
		ok, err := opts.Root.Exists(sem)
		if err != nil {
			return 1, fmt.Errorf("semaphore %s: %w", sem, err)
		}
		if ok {
			return 0, nil
		}
	}
	code := runArgv(ctx, opts, argv)
	now := time.Now
	if opts.Now != nil {
		now = opts.Now
	}
	line := strconv.Itoa(code) + "\t" + strconv.FormatInt(now().Unix(), 10) + "\n"
	if err := opts.Root.WriteFile(sem, []byte(line), 0o644, nil); err != nil {
		return code, fmt.Errorf("failed to write to %s: %w", sem, err)
	}
	return code, nil
}

// migrateLegacy renames a semaphore named before cloud-init mapped "-" to
// "_" (bootper.my-name.once) to the current name, unless one by the
// current name exists (it may come from a call outside cloud-init).
func migrateLegacy(root *sys.Root, sem string) error {
	dir, file := path.Split(sem)
	legacy := dir + strings.ReplaceAll(file, "_", "-")
	if legacy == sem {
		return nil
	}
	have, err := root.Exists(legacy)
	if err != nil || !have {
		return err
	}
	if cur, err := root.Exists(sem); err != nil || cur {
		return err
	}
	from, err := root.Path(legacy)
	if err != nil {
		return err
	}
	to, err := root.Path(sem)
	if err != nil {
		return err
	}
	if err := os.Rename(from, to); err != nil {
		return fmt.Errorf("rename legacy semaphore: %w", err)
	}
	return nil
}

// runArgv runs argv and returns its exit status as a shell's $? would be.
func runArgv(ctx context.Context, opts PerOptions, argv []string) int {
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = opts.Stdin, opts.Stdout, opts.Stderr
	err := cmd.Run()
	if err == nil {
		return 0
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int(ws.Signal())
		}
		return ee.ExitCode()
	}
	if opts.Stderr != nil {
		fmt.Fprintf(opts.Stderr, "cloud-init-per: %s: %s\n", argv[0], startError(err))
	}
	if errors.Is(err, exec.ErrNotFound) || errors.Is(err, fs.ErrNotExist) {
		return 127
	}
	return 126
}

func startError(err error) string {
	if errors.Is(err, exec.ErrNotFound) || errors.Is(err, fs.ErrNotExist) {
		return "not found"
	}
	if errors.Is(err, fs.ErrPermission) {
		return "Permission denied"
	}
	return err.Error()
}

// ReadInstanceID reads /var/lib/cloud/data/instance-id ("" and an error
// matching fs.ErrNotExist when absent).
func ReadInstanceID(root *sys.Root) (string, error) {
	b, err := root.ReadFile(DataDir + "/instance-id")
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}
