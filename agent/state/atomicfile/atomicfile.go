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
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
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

func (w Writer) writeFile(path string, data []byte, perm os.FileMode) (err error) {
	if perm&^allowedMode != 0 {
		return fmt.Errorf("mode %v: only permission, setuid, setgid and sticky bits may be set", perm)
	}
	dir, base := filepath.Split(path)
	if base == "" || base == "." || base == ".." {
		return errors.New("not a file name")
	}
	if dir == "" {
		dir = "."
	}
	if fi, err := os.Lstat(path); err == nil && fi.IsDir() {
		return errors.New("is a directory")
	}

	f, tmp, err := createTemp(dir, base)
	if err != nil {
		return err
	}
	closed, renamed := false, false
	defer func() {
		if err == nil {
			return
		}
		if !closed {
			f.Close()
		}
		if !renamed {
			os.Remove(tmp)
		}
	}()

	if err := w.hook(BeforeWrite); err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		return err
	}
	// Owner before mode: chown clears setuid and setgid.
	if w.Chown != nil {
		if err := w.Chown(f); err != nil {
			return err
		}
	}
	if err := f.Chmod(perm); err != nil {
		return err
	}
	if err := w.hook(BeforeSync); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	closed = true
	if err := f.Close(); err != nil {
		return err
	}
	if err := w.hook(BeforeRename); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	renamed = true
	if err := w.hook(BeforeDirSync); err != nil {
		return err
	}
	return SyncDir(dir)
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

// createTemp creates a new file for writing in dir, named after base, with
// O_EXCL and mode 0600.
func createTemp(dir, base string) (*os.File, string, error) {
	if len(base) > maxTmpBase {
		base = base[:maxTmpBase]
	}
	var b [tmpRandBytes]byte
	for range 100 {
		if _, err := rand.Read(b[:]); err != nil {
			return nil, "", err
		}
		name := filepath.Join(dir, "."+base+tmpInfix+hex.EncodeToString(b[:]))
		f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err == nil {
			return f, name, nil
		}
		if !errors.Is(err, fs.ErrExist) {
			return nil, "", err
		}
	}
	return nil, "", errors.New("could not create a unique temporary file")
}

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
