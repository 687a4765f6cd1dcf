package fetch

import (
	"context"
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"
)

// lockFile takes an exclusive lock on path, waiting while another
// goroutine or process holds it, and returns its release. The lock file is
// removed on release; a waiter that then holds a lock on the removed file
// notices (the path no longer names its inode) and locks again.
func lockFile(ctx context.Context, path string) (unlock func(), err error) {
	for {
		file, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
		if err != nil {
			return nil, fmt.Errorf("lock: %w", err)
		}
		if err := flockWait(ctx, file); err != nil {
			file.Close()
			return nil, err
		}
		held, err1 := file.Stat()
		now, err2 := os.Stat(path)
		if err1 == nil && err2 == nil && os.SameFile(held, now) {
			return func() {
				os.Remove(path)
				file.Close()
			}, nil
		}
		file.Close()
		if err1 != nil {
			return nil, fmt.Errorf("lock: %w", err1)
		}
	}
}

// flockWait polls, so that waiting ends with ctx.
func flockWait(ctx context.Context, file *os.File) error {
	for {
		err := syscall.Flock(int(file.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR) {
			return fmt.Errorf("lock %s: %w", file.Name(), err)
		}
		t := time.NewTimer(50 * time.Millisecond)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("waiting for another download of the same artifact: %w", ctx.Err())
		}
	}
}
