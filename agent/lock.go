package agent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"github.com/ec2init/ec2init/agent/sys"
)

// BootLockFile is held (flock, exclusive) by the process running a boot, for
// the whole of agent.Boot, and holds its pid: two boots on one root would
// both run the same per-instance script and both say done.
const BootLockFile = "/run/ec2init/boot.lock"

// DefaultLockTimeout is how long a boot waits for another one to finish.
const DefaultLockTimeout = 5 * time.Minute

// lockPoll is how often a waiting boot tries the lock again.
const lockPoll = 50 * time.Millisecond

// ErrBootLocked is matched by the error of a boot that gave up waiting for
// another boot's lock.
var ErrBootLocked = errors.New("another ec2init boot holds the boot lock")

// bootLock is a held BootLockFile; closing its descriptor releases it, as the
// kernel does when the holder dies, so a crash never leaves it held.
type bootLock struct{ f *os.File }

// acquireBootLock takes BootLockFile under root, waiting up to timeout (0:
// not at all) while another process holds it. The lock is taken on the
// file's descriptor, opened through root's path resolution without following
// a final symlink.
func acquireBootLock(ctx context.Context, root *sys.Root, timeout time.Duration, log *zap.Logger) (*bootLock, error) {
	if err := root.MkdirAll("/run/ec2init", 0o755); err != nil {
		return nil, fmt.Errorf("boot lock %s: %w", BootLockFile, err)
	}
	full, err := root.Path(BootLockFile)
	if err != nil {
		return nil, fmt.Errorf("boot lock: %w", err)
	}
	fd, err := unix.Open(full, unix.O_RDWR|unix.O_CREAT|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o644)
	if err != nil {
		return nil, fmt.Errorf("boot lock %s: %w", BootLockFile, err)
	}
	f := os.NewFile(uintptr(fd), full)
	deadline := time.Now().Add(timeout)
	warned := false
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			break
		}
		if !errors.Is(err, unix.EWOULDBLOCK) && !errors.Is(err, unix.EINTR) {
			f.Close()
			return nil, fmt.Errorf("boot lock %s: %w", BootLockFile, err)
		}
		holder := lockHolder(f)
		if time.Now().After(deadline) {
			f.Close()
			return nil, fmt.Errorf("%w: %s (pid %s); gave up after %s (--lock-timeout)", ErrBootLocked, BootLockFile, holder, timeout)
		}
		if !warned {
			log.Warn(fmt.Sprintf("another ec2init boot (pid %s) holds %s; waiting up to %s", holder, BootLockFile, timeout))
			warned = true
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("boot lock %s: %w", BootLockFile, ctx.Err())
		case <-time.After(lockPoll):
		}
	}
	// The pid is for `ec2init status`; the lock itself is the flock.
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return &bootLock{f: f}, nil
}

func (l *bootLock) release() {
	if l == nil {
		return
	}
	// Emptied first: a stale pid must not be shown for a lock no one holds.
	_ = l.f.Truncate(0)
	l.f.Close()
}

func lockHolder(f *os.File) string {
	b := make([]byte, 32)
	n, _ := f.ReadAt(b, 0)
	pid := strings.TrimSpace(string(b[:n]))
	if _, err := strconv.Atoi(pid); err != nil {
		return "unknown"
	}
	return pid
}

// BootLockHolder reports the pid of the process holding BootLockFile under
// root, if one does (for `ec2init status`). It only tests the lock: it never
// waits and never creates the file.
func BootLockHolder(root *sys.Root) (pid int, held bool, err error) {
	full, err := root.Path(BootLockFile)
	if err != nil {
		return 0, false, err
	}
	f, err := os.OpenFile(full, os.O_RDONLY|unix.O_NOFOLLOW, 0)
	if errors.Is(err, os.ErrNotExist) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("boot lock %s: %w", BootLockFile, err)
	}
	defer f.Close()
	// A shared lock is refused only while a boot holds the exclusive one.
	if err := unix.Flock(int(f.Fd()), unix.LOCK_SH|unix.LOCK_NB); err == nil {
		unix.Flock(int(f.Fd()), unix.LOCK_UN)
		return 0, false, nil
	} else if !errors.Is(err, unix.EWOULDBLOCK) {
		return 0, false, fmt.Errorf("boot lock %s: %w", BootLockFile, err)
	}
	pid, _ = strconv.Atoi(lockHolder(f))
	return pid, true, nil
}
