// Package atomicfile replaces files atomically and durably: a reader sees
// the old content or the new one, never a mix, and after WriteFile returns the
// new content survives a crash or a power cut.
//
// A write goes: a temporary file is created in the target's directory
// (O_EXCL, random name, mode 0600), the data is written, the mode is set to
// perm exactly (the umask does not apply), the file is fsynced and closed,
// renamed over the target, and the directory is fsynced so the rename itself
// is durable. On any failure before the rename the temporary file is removed
// and the target keeps its old content.
//
// A process killed mid-write (SIGKILL, OOM) leaves its temporary file behind,
// named ".<target>.tmp-<16 hex digits>"; IsTemp recognises such names and
// RemoveStaleTemps sweeps them.
package atomicfile

import (
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// The points of a write at which Writer.Hook is called, in this order.
const (
	// BeforeWrite: the temporary file exists and is empty.
	BeforeWrite = "before-write"
	// BeforeSync: the data is written and the mode set, not yet fsynced.
	BeforeSync = "before-sync"
	// BeforeRename: the temporary file is fsynced and closed; the target
	// still has its old content.
	BeforeRename = "before-rename"
	// BeforeDirSync: the target has the new content; the rename is not yet
	// durable (the directory is not fsynced).
	BeforeDirSync = "before-dir-sync"
)

// Points returns the hook points in the order a write reaches them.
func Points() []string {
	return []string{BeforeWrite, BeforeSync, BeforeRename, BeforeDirSync}
}

// Writer writes files atomically. The zero value is ready to use.
type Writer struct {
	// Hook, when set, is called at each point of every write (BeforeWrite,
	// BeforeSync, BeforeRename, BeforeDirSync). A non-nil error aborts the
	// write, which returns it wrapped: before the rename the temporary file
	// is removed and the target keeps its old content; at BeforeDirSync the
	// target already has the new content. Tests use it to fail or to kill
	// the process at each step.
	Hook func(point string) error
	// Chown, when set, is applied to the temporary file before it is
	// renamed into place, so the file never exists with the wrong owner.
	Chown func(f *os.File) error
	// NoSync skips both fsyncs: the write is still atomic (a reader, or a
	// process killed at any point, sees the old content or the new), but
	// not durable until the caller syncs the filesystem (SyncFS). For files
	// on tmpfs, and for records made durable together at one point. The
	// hook points are reached all the same.
	NoSync bool
}

// WriteFileAtomic replaces the file at path with data and mode perm,
// atomically and durably, with the zero Writer.
func WriteFileAtomic(path string, data []byte, perm os.FileMode) error {
	return Writer{}.WriteFile(path, data, perm)
}

// allowedMode is what perm may hold: permission bits and setuid, setgid, sticky.
const allowedMode = fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky

// WriteFile replaces the file at path with data and mode perm (exactly,
// regardless of the umask), atomically and durably; see the package
// documentation. The directory must exist. A symlink at path is replaced by
// the file, not followed. A new file is owned by the calling process.
func (w Writer) WriteFile(path string, data []byte, perm os.FileMode) error {
	if err := w.writeFile(path, data, perm); err != nil {
		return fmt.Errorf("atomic write %s: %w", path, err)
	}
	return nil
}

func (w Writer) writeFile(path string, data []byte, perm os.FileMode) error {
	dir, base := filepath.Split(path)
	if base == "" || base == "." || base == ".." {
		return errors.New("not a file name")
	}
	if dir == "" {
		dir = "."
	}
	fd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return &fs.PathError{Op: "open", Path: dir, Err: err}
	}
	defer unix.Close(fd)
	return w.WriteAt(fd, filepath.Clean(dir), base, data, perm)
}

func (w Writer) hook(point string) error {
	if w.Hook == nil {
		return nil
	}
	if err := w.Hook(point); err != nil {
		return fmt.Errorf("aborted at %s: %w", point, err)
	}
	return nil
}

const (
	tmpInfix     = ".tmp-"
	tmpRandBytes = 8
	// maxTmpBase keeps ".<base>.tmp-<16 hex>" within NAME_MAX (255).
	maxTmpBase = 200
)

// IsTemp reports whether the file name (no directory) has the shape of a
// Writer's temporary file.
func IsTemp(name string) bool {
	if len(name) < 2 || name[0] != '.' {
		return false
	}
	i := strings.LastIndex(name, tmpInfix)
	if i < 1 {
		return false
	}
	suffix := name[i+len(tmpInfix):]
	if len(suffix) != 2*tmpRandBytes {
		return false
	}
	_, err := hex.DecodeString(suffix)
	return err == nil && strings.ToLower(suffix) == suffix
}

// SyncFS makes durable every write made on the filesystem that holds dir
// (syncfs(2)): one call for all the NoSync writes before it, data and
// renames alike.
func SyncFS(dir string) error {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return &fs.PathError{Op: "open", Path: dir, Err: err}
	}
	defer unix.Close(fd)
	if err := unix.Syncfs(fd); err != nil {
		return &fs.PathError{Op: "syncfs", Path: dir, Err: err}
	}
	return nil
}

// RemoveStaleTemps removes the temporary files that interrupted writes left
// in dir (not its subdirectories) and that were last modified before cutoff;
// a recent one may belong to a write still under way in another process. It
// returns the paths removed.
func RemoveStaleTemps(dir string, cutoff time.Time) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var removed []string
	var errs []error
	for _, e := range entries {
		if !e.Type().IsRegular() || !IsTemp(e.Name()) {
			continue
		}
		fi, err := e.Info()
		if err != nil {
			continue // gone meanwhile
		}
		if !fi.ModTime().Before(cutoff) {
			continue
		}
		p := filepath.Join(dir, e.Name())
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
			continue
		}
		removed = append(removed, p)
	}
	return removed, errors.Join(errs...)
}

// SyncDir fsyncs the directory dir, making the creation, removal or
// renaming of its entries durable. Filesystems that cannot sync a directory
// (EINVAL, ENOTSUP) are tolerated.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, syscall.EINVAL) && !errors.Is(err, syscall.ENOTSUP) {
		return err
	}
	return nil
}
