package sys

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/ec2init/ec2init/agent/state/atomicfile"
)

// ErrEscapesRoot is wrapped by every error for a path that would leave the
// root prefix, lexically ("/../etc") or through a symlink inside the root.
var ErrEscapesRoot = errors.New("path escapes the root")

// maxSymlinks bounds symlink hops while resolving one path, as the kernel's
// ELOOP limit does.
const maxSymlinks = 40

// Root is the host's filesystem seen through one prefix: "/" in production,
// a temporary directory in tests, a mounted image when preparing one. Every
// path given to its methods is an absolute host path such as "/etc/hosts";
// it is resolved under the prefix with chroot semantics (see Path).
//
// Modes given to its methods are applied exactly, whatever the umask; the
// setuid, setgid and sticky bits may be given as os.ModeSetuid etc. or as
// the Unix octal 04000, 02000, 01000.
//
// Resolution and the operation that follows are not atomic: Root keeps the
// agent's own paths inside the prefix, it is not a sandbox against a hostile
// process changing the tree concurrently.
type Root struct {
	prefix string

	// writeHook, when set (tests only), runs at each step of an atomic
	// write (see atomicfile.Writer.Hook); an error aborts the write.
	writeHook func(point string) error
}

// NewRoot returns the host seen through prefix, which must be an existing
// directory. A relative prefix is made absolute and symlinks in the prefix
// itself are resolved once, here.
func NewRoot(prefix string) (*Root, error) {
	if prefix == "" {
		return nil, errors.New("root prefix is empty")
	}
	abs, err := filepath.Abs(prefix)
	if err != nil {
		return nil, fmt.Errorf("root prefix %q: %w", prefix, err)
	}
	real, err := filepath.EvalSymlinks(abs)
	if err != nil {
		return nil, fmt.Errorf("root prefix %q: %w", prefix, err)
	}
	fi, err := os.Stat(real)
	if err != nil {
		return nil, fmt.Errorf("root prefix %q: %w", prefix, err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("root prefix %q: not a directory", prefix)
	}
	return &Root{prefix: real}, nil
}

// Prefix is the absolute, symlink-free directory the root is seen through.
func (r *Root) Prefix() string { return r.prefix }

// IsHost reports whether the root is the running system's "/".
func (r *Root) IsHost() bool { return r.prefix == "/" }

// Path maps the absolute host path p to the real path under the prefix.
//
// p is cleaned lexically first and refused if its ".." components climb
// above "/". Then each existing component is resolved under the root: an
// absolute symlink target is taken relative to the root (as inside a
// chroot), and a relative target whose ".." climbs above the root is refused
// with ErrEscapesRoot (under the prefix "/" it stops at "/", as the kernel
// does). A final component that is a symlink is followed too. Components that
// do not exist yet are kept as they are.
func (r *Root) Path(p string) (string, error) {
	return r.resolve(p, true)
}

// resolve is Path; with followFinal false a symlink in the last component is
// left as it is (for Remove).
func (r *Root) resolve(p string, followFinal bool) (string, error) {
	if r == nil || r.prefix == "" {
		return "", fmt.Errorf("path %q: sys.Root not made by NewRoot", p)
	}
	comps, err := splitHostPath(p)
	if err != nil {
		return "", err
	}
	var (
		done    []string // resolved components, each an existing non-symlink unless missing
		pending = comps
		missing bool // a component did not exist: the rest cannot, skip Lstat
		hops    int
	)
	for len(pending) > 0 {
		c := pending[0]
		pending = pending[1:]
		switch c {
		case "", ".":
			continue
		case "..":
			if len(done) == 0 {
				if r.IsHost() {
					continue
				}
				return "", fmt.Errorf("path %q: a symlink leads outside the root %s: %w", p, r.prefix, ErrEscapesRoot)
			}
			done = done[:len(done)-1]
			continue
		}
		if missing || (!followFinal && len(pending) == 0) {
			done = append(done, c)
			continue
		}
		cand := r.join(append(done, c))
		fi, err := os.Lstat(cand)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
				missing = true
				done = append(done, c)
				continue
			}
			return "", fmt.Errorf("path %q: %w", p, err)
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			done = append(done, c)
			continue
		}
		if hops++; hops > maxSymlinks {
			return "", fmt.Errorf("path %q: too many levels of symbolic links", p)
		}
		target, err := os.Readlink(cand)
		if err != nil {
			return "", fmt.Errorf("path %q: %w", p, err)
		}
		if strings.HasPrefix(target, "/") {
			done = done[:0]
		}
		pending = append(strings.Split(target, "/"), pending...)
	}
	return r.join(done), nil
}

func (r *Root) join(comps []string) string {
	return filepath.Join(append([]string{r.prefix}, comps...)...)
}

// splitHostPath checks that p is an absolute host path that stays under "/"
// lexically and returns its cleaned components.
func splitHostPath(p string) ([]string, error) {
	if !strings.HasPrefix(p, "/") {
		return nil, fmt.Errorf("path %q: not an absolute path", p)
	}
	if strings.IndexByte(p, 0) >= 0 {
		return nil, fmt.Errorf("path %q: contains a NUL byte", p)
	}
	var out []string
	for _, c := range strings.Split(p, "/") {
		switch c {
		case "", ".":
		case "..":
			if len(out) == 0 {
				return nil, fmt.Errorf("path %q: climbs above /: %w", p, ErrEscapesRoot)
			}
			out = out[:len(out)-1]
		default:
			out = append(out, c)
		}
	}
	return out, nil
}

// ReadFile reads the file at host path p.
func (r *Root) ReadFile(p string) ([]byte, error) {
	full, err := r.Path(p)
	if err != nil {
		return nil, err
	}
	b, err := os.ReadFile(full)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", p, err)
	}
	return b, nil
}

// Stat returns information on the file at p, following symlinks.
func (r *Root) Stat(p string) (fs.FileInfo, error) {
	full, err := r.Path(p)
	if err != nil {
		return nil, err
	}
	fi, err := os.Stat(full)
	if err != nil {
		return nil, fmt.Errorf("stat %s: %w", p, err)
	}
	return fi, nil
}

// Exists reports whether p exists (following symlinks). The error is for
// anything other than plain absence: an escaping path, a permission problem.
func (r *Root) Exists(p string) (bool, error) {
	_, err := r.Stat(p)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, fs.ErrNotExist):
		return false, nil
	default:
		return false, err
	}
}

// Remove removes the file or empty directory at p; a symlink in the last
// component is removed itself, not its target. Removing what does not exist
// is not an error.
func (r *Root) Remove(p string) error {
	full, err := r.resolve(p, false)
	if err != nil {
		return err
	}
	if full == r.prefix {
		return fmt.Errorf("remove %s: refusing to remove the root", p)
	}
	if err := os.Remove(full); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove %s: %w", p, err)
	}
	return nil
}

// MkdirAll creates the directory p and any missing parents. Parents it
// creates get 0755; p itself gets perm, which is applied even if p existed
// (and regardless of the umask).
func (r *Root) MkdirAll(p string, perm os.FileMode) error {
	perm = unixMode(perm)
	full, err := r.Path(p)
	if err != nil {
		return err
	}
	if err := mkdirParents(full); err != nil {
		return fmt.Errorf("mkdir %s: %w", p, err)
	}
	if err := os.Mkdir(full, perm); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("mkdir %s: %w", p, err)
	}
	fi, err := os.Stat(full)
	if err != nil {
		return fmt.Errorf("mkdir %s: %w", p, err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("mkdir %s: exists and is not a directory", p)
	}
	if err := os.Chmod(full, perm); err != nil {
		return fmt.Errorf("mkdir %s: %w", p, err)
	}
	return nil
}

// unixMode accepts the setuid, setgid and sticky bits either as Go spells
// them (os.ModeSetuid, ...) or as the Unix octal 04000, 02000, 01000 (as a
// mode parsed from "2755" carries them), and returns Go's spelling.
func unixMode(perm os.FileMode) os.FileMode {
	m := perm &^ 0o7000
	if perm&0o4000 != 0 {
		m |= os.ModeSetuid
	}
	if perm&0o2000 != 0 {
		m |= os.ModeSetgid
	}
	if perm&0o1000 != 0 {
		m |= os.ModeSticky
	}
	return m
}

// mkdirParents creates the missing parents of the real path full with 0755.
func mkdirParents(full string) error {
	return os.MkdirAll(filepath.Dir(full), 0o755)
}

// WriteFile replaces the file at p with data, atomically: a temporary file
// in the same directory is written, synced, given perm (exactly, regardless
// of the umask) and owner (nil: the agent's own uid and gid), then renamed
// over p, and the directory is synced. Readers see the old content or the new
// one, never a mix; on failure the old content stays and no temporary file is
// left. Missing parent directories are created with 0755 (create them first
// with MkdirAll for another mode). A symlink at p is followed: its target is
// replaced, the link stays.
func (r *Root) WriteFile(p string, data []byte, perm os.FileMode, owner *Owner) error {
	perm = unixMode(perm)
	full, err := r.Path(p)
	if err != nil {
		return err
	}
	if err := r.writeAtomic(full, data, perm, owner); err != nil {
		return fmt.Errorf("write %s: %w", p, err)
	}
	return nil
}

func (r *Root) writeAtomic(full string, data []byte, perm os.FileMode, owner *Owner) error {
	if err := mkdirParents(full); err != nil {
		return err
	}
	w := atomicfile.Writer{Hook: r.writeHook}
	if owner != nil {
		w.Chown = func(f *os.File) error { return f.Chown(owner.UID, owner.GID) }
	}
	return w.WriteFile(full, data, perm)
}

// AppendFile appends data to the file at p, creating it (and missing parents,
// 0755) with perm if it does not exist. An existing file keeps its mode.
func (r *Root) AppendFile(p string, data []byte, perm os.FileMode) error {
	perm = unixMode(perm)
	full, err := r.Path(p)
	if err != nil {
		return err
	}
	if err := appendFile(full, data, perm); err != nil {
		return fmt.Errorf("append %s: %w", p, err)
	}
	return nil
}

func appendFile(full string, data []byte, perm os.FileMode) error {
	if err := mkdirParents(full); err != nil {
		return err
	}
	f, created, err := openAppend(full, perm)
	if err != nil {
		return err
	}
	if created {
		if err := f.Chmod(perm); err != nil {
			f.Close()
			return err
		}
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// openAppend opens full for appending, creating it with perm; created says
// whether this call created it.
func openAppend(full string, perm os.FileMode) (f *os.File, created bool, err error) {
	f, err = os.OpenFile(full, os.O_WRONLY|os.O_APPEND|os.O_CREATE|os.O_EXCL, perm)
	if err == nil {
		return f, true, nil
	}
	if !errors.Is(err, fs.ErrExist) {
		return nil, false, err
	}
	f, err = os.OpenFile(full, os.O_WRONLY|os.O_APPEND, 0)
	return f, false, err
}

// logPerm is the only mode a log file may have: logs hold script output,
// which may hold secrets.
const logPerm os.FileMode = 0o600

// OpenLog opens the log file at p for appending, creating it (and missing
// parents, 0755) with mode 0600. An existing log with any permission bit
// beyond 0600 (readable by its group, say) is set to 0600.
// RotateLog renames log p to p.1 (replacing an older p.1) when it has grown
// past max bytes, so a log written at every boot stays bounded: at most
// about twice max on disk. A missing log is fine.
func (r *Root) RotateLog(p string, max int64) error {
	full, err := r.Path(p)
	if err != nil {
		return err
	}
	fi, err := os.Stat(full)
	if errors.Is(err, fs.ErrNotExist) || (err == nil && fi.Size() <= max) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("rotate log %s: %w", p, err)
	}
	if err := os.Rename(full, full+".1"); err != nil {
		return fmt.Errorf("rotate log %s: %w", p, err)
	}
	return nil
}

func (r *Root) OpenLog(p string) (*os.File, error) {
	full, err := r.Path(p)
	if err != nil {
		return nil, err
	}
	if err := mkdirParents(full); err != nil {
		return nil, fmt.Errorf("open log %s: %w", p, err)
	}
	f, _, err := openAppend(full, logPerm)
	if err != nil {
		return nil, fmt.Errorf("open log %s: %w", p, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("open log %s: %w", p, err)
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("open log %s: not a regular file", p)
	}
	if fi.Mode()&(fs.ModePerm|fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky)&^logPerm != 0 {
		if err := f.Chmod(logPerm); err != nil {
			f.Close()
			return nil, fmt.Errorf("open log %s: %w", p, err)
		}
	}
	return f, nil
}
