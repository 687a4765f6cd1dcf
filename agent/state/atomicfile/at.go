package atomicfile

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// WriteAt replaces the file name in the directory opened as dirfd (O_PATH
// is enough) with data and mode perm, in the steps of WriteFile, each
// relative to dirfd: the temporary file is created there with O_EXCL and
// O_NOFOLLOW and renamed within it, so a directory swapped for a symlink
// after dirfd was opened cannot redirect the write. dir names the
// directory in errors; Chown, when set, is applied before the mode.
func (w Writer) WriteAt(dirfd int, dir, name string, data []byte, perm os.FileMode) (err error) {
	if perm&^allowedMode != 0 {
		return fmt.Errorf("mode %v: only permission, setuid, setgid and sticky bits may be set", perm)
	}
	var st unix.Stat_t
	if err := unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err == nil && st.Mode&unix.S_IFMT == unix.S_IFDIR {
		return errors.New("is a directory")
	}
	fd, tmp, err := createTempAt(dirfd, name)
	if err != nil {
		return &fs.PathError{Op: "create temporary file in", Path: dir, Err: err}
	}
	f := os.NewFile(uintptr(fd), filepath.Join(dir, tmp))
	closed, renamed := false, false
	defer func() {
		if err == nil {
			return
		}
		if !closed {
			f.Close()
		}
		if !renamed {
			unix.Unlinkat(dirfd, tmp, 0)
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
	if !w.NoSync {
		if err := f.Sync(); err != nil {
			return err
		}
	}
	closed = true
	if err := f.Close(); err != nil {
		return err
	}
	if err := w.hook(BeforeRename); err != nil {
		return err
	}
	if err := unix.Renameat(dirfd, tmp, dirfd, name); err != nil {
		return &fs.PathError{Op: "rename", Path: filepath.Join(dir, name), Err: err}
	}
	renamed = true
	if err := w.hook(BeforeDirSync); err != nil {
		return err
	}
	if w.NoSync {
		return nil
	}
	return SyncDirAt(dirfd)
}

// createTempAt creates a new file named after base in dir, O_EXCL and
// O_NOFOLLOW, mode 0600, and returns it with its name.
func createTempAt(dir int, base string) (int, string, error) {
	if len(base) > maxTmpBase {
		base = base[:maxTmpBase]
	}
	var b [tmpRandBytes]byte
	for range 100 {
		if _, err := rand.Read(b[:]); err != nil {
			return -1, "", err
		}
		name := "." + base + tmpInfix + hex.EncodeToString(b[:])
		fd, err := unix.Openat(dir, name, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
		if err == nil {
			return fd, name, nil
		}
		if !errors.Is(err, unix.EEXIST) {
			return -1, "", err
		}
	}
	return -1, "", errors.New("could not create a unique temporary file")
}

// SyncDirAt fsyncs the directory opened (maybe O_PATH) as dirfd, making a
// rename in it durable; filesystems that cannot (EINVAL, ENOTSUP) are fine.
func SyncDirAt(dirfd int) error {
	fd, err := unix.Openat(dirfd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if err := unix.Fsync(fd); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOTSUP) {
		return err
	}
	return nil
}
