package software

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/ec2init/ec2init/agent/sys"
)

// ErrUnsafeDest is wrapped by the error for an install.dest that would put
// the install, or the removal of the tree it replaces, somewhere other than
// the path the item names: through a symlink, onto the root or a system
// directory, or across a mount point.
var ErrUnsafeDest = errors.New("unsafe install.dest")

// systemDirs are the directories no item may be installed as: a tarball's
// dest is replaced whole and the previous tree deleted, so one of these as
// dest would delete the system (a file install there is a directory anyway).
// Every parent of an entry is an entry too, so no dest can hold one of them.
var systemDirs = map[string]bool{
	"/": true, "/bin": true, "/boot": true, "/dev": true, "/etc": true, "/home": true,
	"/lib": true, "/lib32": true, "/lib64": true, "/libx32": true, "/lost+found": true,
	"/media": true, "/mnt": true, "/opt": true, "/proc": true, "/root": true, "/run": true,
	"/sbin": true, "/srv": true, "/sys": true, "/tmp": true, "/usr": true, "/var": true,
	"/etc/ssh": true, "/etc/systemd": true, "/etc/systemd/system": true, "/etc/sudoers.d": true,
	"/etc/pam.d": true, "/etc/security": true, "/etc/ec2init": true, "/etc/cloud": true,
	"/usr/bin": true, "/usr/sbin": true, "/usr/lib": true, "/usr/lib32": true, "/usr/lib64": true,
	"/usr/libexec": true, "/usr/include": true, "/usr/share": true, "/usr/src": true,
	"/usr/lib/systemd": true, "/usr/lib/systemd/system": true,
	"/lib/systemd": true, "/lib/systemd/system": true,
	"/usr/local": true, "/usr/local/bin": true, "/usr/local/sbin": true, "/usr/local/lib": true,
	"/usr/local/lib64": true, "/usr/local/share": true, "/usr/local/etc": true, "/usr/local/include": true,
	"/var/lib": true, "/var/log": true, "/var/cache": true, "/var/tmp": true, "/var/run": true,
	"/var/spool": true, "/var/mail": true, "/var/opt": true, "/var/lib/ec2init": true,
	"/var/cache/ec2init": true, "/var/cache/ec2init/software": true, "/var/lib/cloud": true,
}

// systemDirError says why dest (a cleaned host path) may not be
// installed to, or "" if it may.
func systemDirError(dest string) string {
	if systemDirs[dest] {
		if dest == "/" {
			return "install.dest may not be /"
		}
		return fmt.Sprintf("install.dest %s is a system directory: installing there would replace it whole; name a directory of its own, such as %s/<app>", dest, dest)
	}
	return ""
}

// destDir is an install's dest reached inside the root: its parent
// directory held open (every operation on dest is relative to it, so a
// symlink swapped into the path after the checks cannot redirect one) and
// dest's name in it.
type destDir struct {
	dest   string   // the host path, cleaned, for messages
	real   string   // dest with its parents resolved (followParents), else dest
	parent *os.Root // dest's parent directory
	dir    *os.File // the same directory, for renameat2 and fsync
	base   string
	dev    uint64 // the parent's filesystem
}

func (d *destDir) Close() {
	d.dir.Close()
	d.parent.Close()
}

// openDest reaches dest's parent under root, creating missing directories
// (0755). With followParents (a file install), symlinks among the parents
// are resolved first as sys.Root resolves them, inside the root, so a
// merged-/usr alias such as /bin works; without it (a tarball, whose dest is
// swapped and the old tree deleted) every parent must be a real directory.
// Either way the parent chain is then walked without following any
// symlink, and dest's last component is never followed: what is at dest is
// checked by the caller with Lstat on the parent, and so is the system
// directory table (checkDest), after what a file install checks first.
func openDest(root *sys.Root, dest string, followParents bool) (*destDir, error) {
	dest = path.Clean(dest)
	if dest == "/" {
		return nil, fmt.Errorf("%s: %w", systemDirError(dest), ErrUnsafeDest)
	}
	parentPath, base := path.Dir(dest), path.Base(dest)
	if followParents {
		full, err := root.Path(parentPath)
		if err != nil {
			return nil, err
		}
		rel, err := filepath.Rel(root.Prefix(), full)
		if err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
			return nil, fmt.Errorf("%s: parent resolves outside the root: %w", dest, ErrUnsafeDest)
		}
		parentPath = path.Join("/", filepath.ToSlash(rel))
	}
	rt, err := os.OpenRoot(root.Prefix())
	if err != nil {
		return nil, err
	}
	at := "/"
	for _, c := range strings.Split(strings.TrimPrefix(parentPath, "/"), "/") {
		if c == "" {
			continue
		}
		at = path.Join(at, c)
		next, err := openChildDir(rt, c, at)
		rt.Close()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", dest, err)
		}
		rt = next
	}
	d := &destDir{dest: dest, real: path.Join(parentPath, base), parent: rt, base: base}
	fi, err := rt.Stat(".")
	if err == nil {
		d.dev = devOf(fi)
		d.dir, err = rt.Open(".")
	}
	if err != nil {
		rt.Close()
		return nil, fmt.Errorf("%s: %w", parentPath, err)
	}
	return d, nil
}

// openChildDir opens the directory c in rt, creating it when missing,
// refusing a symlink (at, its host path, names it in the error).
func openChildDir(rt *os.Root, c, at string) (*os.Root, error) {
	fi, err := rt.Lstat(c)
	if errors.Is(err, fs.ErrNotExist) {
		if err := rt.Mkdir(c, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
			return nil, fmt.Errorf("mkdir %s: %w", at, err)
		}
		fi, err = rt.Lstat(c)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", at, err)
	}
	if fi.Mode()&fs.ModeSymlink != 0 {
		target, _ := rt.Readlink(c)
		return nil, fmt.Errorf("%s is a symlink (to %q): a tarball's dest must be reached through real directories, since the tree there is replaced and the old one deleted; name the directory by its real path: %w", at, target, ErrUnsafeDest)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("%s is not a directory: %w", at, ErrUnsafeDest)
	}
	next, err := rt.OpenRoot(c)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", at, err)
	}
	// A symlink swapped in between the Lstat and the open would have been
	// followed (inside rt): what was opened must be what was checked.
	nfi, err := next.Stat(".")
	if err != nil || !os.SameFile(fi, nfi) {
		next.Close()
		return nil, fmt.Errorf("%s changed while it was opened: %w", at, ErrUnsafeDest)
	}
	return next, nil
}

// checkDest refuses a dest that is, or resolves to, a system directory.
func (d *destDir) checkDest() error {
	msg := systemDirError(d.real)
	switch {
	case msg == "":
		return nil
	case d.real != d.dest:
		return fmt.Errorf("resolves to %s: %s: %w", d.real, msg, ErrUnsafeDest)
	}
	return fmt.Errorf("%s: %w", msg, ErrUnsafeDest)
}

func devOf(fi fs.FileInfo) uint64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return uint64(st.Dev) //nolint:unconvert // Dev is int32 or uint64 by platform
	}
	return 0
}

// sameFS refuses name (in d's parent) on another filesystem than the
// parent: a mount point at dest, or a staging directory that is not next
// to dest, could not be switched with rename(2), and a fallback copy would
// not be atomic.
func (d *destDir) sameFS(name string) error {
	fi, err := d.parent.Lstat(name)
	if err != nil {
		return err
	}
	if devOf(fi) != d.dev {
		return fmt.Errorf("%s is on another filesystem than its parent (a mount point?): %w", path.Join(path.Dir(d.dest), name), ErrUnsafeDest)
	}
	return nil
}
