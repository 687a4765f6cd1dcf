package sys

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

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
// Root's methods resolve a path one component at a time through open
// directory descriptors and then act relative to the directory that holds
// the file, never following a symlink another user could have planted (see
// Path): a user who swaps a component while the boot writes cannot redirect
// the write. Path, which only returns a name, cannot give that guarantee to
// whatever its caller does next.
type Root struct {
	prefix string

	// writeHook, when set (tests only), runs at each step of an atomic
	// write (see atomicfile.Writer.Hook); an error aborts the write.
	writeHook func(point string) error
	// noSync: writes are atomic but not fsynced (see NoSync).
	noSync bool
}

// NoSync returns the same root whose writes and appends are never
// fsynced: still atomic, not durable by themselves. For what lives on
// tmpfs (/run), and for files the caller makes durable together later
// (atomicfile.SyncFS), so a boot does not pay a disk flush per file.
func (r *Root) NoSync() *Root {
	c := *r
	c.noSync = true
	return &c
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

// ReadDir lists the directory p under the root, sorted by name; a
// missing directory is empty, as image config and host keys may be.
func (r *Root) ReadDir(p string) ([]fs.DirEntry, error) {
	host, err := r.Path(p)
	if err != nil {
		return nil, err
	}
	entries, err := os.ReadDir(host)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	return entries, err
}

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
//
// A symlink is followed only if the directory holding it is owned by root
// and writable by no one else (see UntrustedSymlinkError): one found in a
// home directory, in /opt/<app> owned by a service user or in /tmp is
// refused with ErrUntrustedSymlink, since its owner may have planted it to
// aim a root write at /etc/shadow. Symlinks the image made in root's own
// directories (/etc/alternatives, /lib -> usr/lib, /var/run -> /run) work.
//
// Path only names the file; Root's own methods also do the operation
// through the directories they resolved (openat with O_NOFOLLOW), so that a
// component swapped after the check cannot redirect them. Prefer them.
func (r *Root) Path(p string) (string, error) {
	w, err := r.walk(p, walkOpts{followFinal: true})
	if err != nil {
		return "", fmt.Errorf("path %q: %w", p, err)
	}
	defer w.close()
	return w.real(), nil
}

// ResolveOwn is Path for a tree the agent itself wrote and no one else
// may write to yet (an archive's staging directory): every symlink is
// followed, whoever owns its directory. As with Path, a symlink that leads
// out of the root, dangling or not, is refused with ErrEscapesRoot.
func (r *Root) ResolveOwn(p string) (string, error) {
	w, err := r.walk(p, walkOpts{followFinal: true, ownTree: true})
	if err != nil {
		return "", fmt.Errorf("path %q: %w", p, err)
	}
	defer w.close()
	return w.real(), nil
}

// splitHostPath checks that p is an absolute host path that stays under "/"
// lexically and returns its cleaned components.
func splitHostPath(p string) ([]string, error) {
	if !strings.HasPrefix(p, "/") {
		return nil, errors.New("not an absolute path")
	}
	if strings.IndexByte(p, 0) >= 0 {
		return nil, errors.New("contains a NUL byte")
	}
	var out []string
	for _, c := range strings.Split(p, "/") {
		switch c {
		case "", ".":
		case "..":
			if len(out) == 0 {
				return nil, fmt.Errorf("climbs above /: %w", ErrEscapesRoot)
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
	w, err := r.walk(p, walkOpts{followFinal: true})
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", p, err)
	}
	defer w.close()
	if err := w.needExisting(); err != nil {
		return nil, fmt.Errorf("read %s: %w", p, err)
	}
	fd, err := w.openFinal(unix.O_RDONLY|unix.O_NONBLOCK|unix.O_NOCTTY, 0)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", p, err)
	}
	f := os.NewFile(uintptr(fd), w.real())
	defer f.Close()
	b, err := io.ReadAll(f)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", p, err)
	}
	return b, nil
}

// Stat returns information on the file at p, following symlinks.
func (r *Root) Stat(p string) (fs.FileInfo, error) {
	w, err := r.walk(p, walkOpts{followFinal: true})
	if err != nil {
		return nil, fmt.Errorf("stat %s: %w", p, err)
	}
	defer w.close()
	if err := w.needExisting(); err != nil {
		return nil, fmt.Errorf("stat %s: %w", p, err)
	}
	fd, err := w.openFinal(unix.O_PATH, 0)
	if err != nil {
		return nil, fmt.Errorf("stat %s: %w", p, err)
	}
	f := os.NewFile(uintptr(fd), w.real())
	defer f.Close()
	fi, err := f.Stat()
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
	w, err := r.walk(p, walkOpts{})
	if err != nil {
		return fmt.Errorf("remove %s: %w", p, err)
	}
	defer w.close()
	if w.name == "" && !w.missing {
		return fmt.Errorf("remove %s: refusing to remove the root", p)
	}
	if w.missing {
		return nil
	}
	err = unix.Unlinkat(w.dir(), w.name, 0)
	if errors.Is(err, unix.EISDIR) {
		err = unix.Unlinkat(w.dir(), w.name, unix.AT_REMOVEDIR)
	}
	if err != nil && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("remove %s: %w", p, &fs.PathError{Op: "remove", Path: w.real(), Err: err})
	}
	return nil
}

// MkdirAll creates the directory p and any missing parents. Parents it
// creates get 0755; p itself gets perm, which is applied even if p existed
// (and regardless of the umask).
func (r *Root) MkdirAll(p string, perm os.FileMode) error {
	if err := r.mkdirAll(p, unixMode(perm), nil, true); err != nil {
		return fmt.Errorf("mkdir %s: %w", p, err)
	}
	return nil
}

// MkdirAllOwned creates the directory p and any missing parents, each with
// perm (exactly) and owner, as write_files makes the parents of a file it
// writes. Directories that exist, p included, are left as they are.
func (r *Root) MkdirAllOwned(p string, perm os.FileMode, owner Owner) error {
	if err := r.mkdirAll(p, unixMode(perm), &owner, false); err != nil {
		return fmt.Errorf("mkdir %s: %w", p, err)
	}
	return nil
}

func (r *Root) mkdirAll(p string, perm os.FileMode, owner *Owner, chmodExisting bool) error {
	parentPerm := os.FileMode(0o755)
	if owner != nil {
		parentPerm = perm
	}
	w, err := r.walk(p, walkOpts{followFinal: true, create: true, dirPerm: parentPerm, owner: owner})
	if err != nil {
		return err
	}
	defer w.close()
	if w.name != "" {
		fd, err := mkdirAt(w.dir(), w.name, perm, owner)
		if err == nil {
			unix.Close(fd)
			return nil
		}
		if !errors.Is(err, unix.EEXIST) {
			return &fs.PathError{Op: "mkdir", Path: w.real(), Err: err}
		}
	}
	fd, err := w.openFinal(unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if errors.Is(err, unix.ENOTDIR) || errors.Is(err, unix.ELOOP) {
		return errors.New("exists and is not a directory")
	}
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if chmodExisting {
		if err := unix.Fchmod(fd, modeBits(perm)); err != nil {
			return &fs.PathError{Op: "chmod", Path: w.real(), Err: err}
		}
	}
	return nil
}

// Chown gives the file at p owner. A symlink in p's last component is
// refused rather than followed (a trusted one, in root's own directories,
// is resolved first as Path does).
func (r *Root) Chown(p string, owner Owner) error {
	err := r.onFinalPath(p, func(fd int) error {
		return unix.Fchownat(fd, "", owner.UID, owner.GID, unix.AT_EMPTY_PATH)
	})
	if err != nil {
		return fmt.Errorf("chown %s to %s: %w", p, owner, err)
	}
	return nil
}

// Chmod sets the mode of the file at p exactly (setuid, setgid and sticky
// as unixMode reads them), never through a symlink, as Chown.
func (r *Root) Chmod(p string, perm os.FileMode) error {
	bits := modeBits(unixMode(perm))
	if err := r.onFinalPath(p, func(fd int) error { return chmodPath(fd, bits) }); err != nil {
		return fmt.Errorf("chmod %s: %w", p, err)
	}
	return nil
}

// onFinalPath runs op on p's final component opened O_PATH|O_NOFOLLOW,
// refusing a symlink there.
func (r *Root) onFinalPath(p string, op func(fd int) error) error {
	w, err := r.walk(p, walkOpts{followFinal: true})
	if err != nil {
		return err
	}
	defer w.close()
	if err := w.needExisting(); err != nil {
		return err
	}
	fd, err := w.openFinal(unix.O_PATH, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT == unix.S_IFLNK {
		// Only a link that appeared after the walk gets here.
		return fmt.Errorf("%s is a symlink; refusing to follow it", w.host())
	}
	return op(fd)
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

// parentWalk resolves p for writing: missing parents are created with
// 0755, the final component is named in its opened directory.
func (r *Root) parentWalk(p string) (*walked, error) {
	w, err := r.walk(p, walkOpts{followFinal: true, create: true, dirPerm: 0o755})
	if err != nil {
		return nil, err
	}
	if w.name == "" {
		w.close()
		return nil, errors.New("is a directory")
	}
	return w, nil
}

// WriteFile replaces the file at p with data, atomically: a temporary file
// in the same directory is written, synced, given perm (exactly, regardless
// of the umask) and owner (nil: the agent's own uid and gid), then renamed
// over p, and the directory is synced. Readers see the old content or the new
// one, never a mix; on failure the old content stays and no temporary file is
// left. Missing parent directories are created with 0755 (create them first
// with MkdirAll for another mode). A symlink at p is followed if Path would
// follow it: its target is replaced, the link stays.
//
// Every step after resolving p is done relative to the opened directory
// that holds the file: the temporary file is created there with
// O_EXCL|O_NOFOLLOW and renamed within it, so no symlink swapped in after
// the check is ever written through.
func (r *Root) WriteFile(p string, data []byte, perm os.FileMode, owner *Owner) error {
	return r.writeFile(p, data, perm, owner, false)
}

// WriteFileIfChanged is WriteFile, except that a regular file at p that
// already holds data, with perm and owner (nil: the agent's own uid and
// gid), is left as it is. Views rewritten by every stage of a boot (each
// its own process) then cost one read instead of a new file and a rename.
func (r *Root) WriteFileIfChanged(p string, data []byte, perm os.FileMode, owner *Owner) error {
	return r.writeFile(p, data, perm, owner, true)
}

// writeFile is WriteFile; keepSame leaves a file that already holds data,
// perm and owner as it is (WriteFileIfChanged).
func (r *Root) writeFile(p string, data []byte, perm os.FileMode, owner *Owner, keepSame bool) error {
	perm = unixMode(perm)
	if perm&^(fs.ModePerm|fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky) != 0 {
		return fmt.Errorf("write %s: mode %v: only permission, setuid, setgid and sticky bits may be set", p, perm)
	}
	w, err := r.parentWalk(p)
	if err != nil {
		return fmt.Errorf("write %s: %w", p, err)
	}
	defer w.close()
	if keepSame && w.holds(data, modeBits(perm), owner) {
		return nil
	}
	if err := r.writeAt(w, data, perm, owner); err != nil {
		return fmt.Errorf("write %s: %w", p, err)
	}
	return nil
}

// holds reports whether the walk's final component is a regular file
// (not followed if a symlink) with exactly data, mode and owner.
func (w *walked) holds(data []byte, mode uint32, owner *Owner) bool {
	// O_NONBLOCK: a FIFO planted at p must not hang the boot.
	fd, err := w.openFinal(unix.O_RDONLY|unix.O_NONBLOCK, 0)
	if err != nil {
		return false
	}
	f := os.NewFile(uintptr(fd), w.real())
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFREG ||
		st.Size != int64(len(data)) || st.Mode&0o7777 != mode {
		return false
	}
	uid, gid := os.Geteuid(), os.Getegid()
	if owner != nil {
		uid, gid = owner.UID, owner.GID
	}
	if int(st.Uid) != uid || int(st.Gid) != gid {
		return false
	}
	have := make([]byte, len(data)+1) // one more: a file grown since fstat
	n, err := io.ReadFull(f, have)
	return errors.Is(err, io.ErrUnexpectedEOF) && n == len(data) && bytes.Equal(have[:n], data) ||
		len(data) == 0 && errors.Is(err, io.EOF)
}

// writeAt is atomicfile's write (its temporary file names, so
// atomicfile.IsTemp and RemoveStaleTemps know them) in the walk's directory.
func (r *Root) writeAt(w *walked, data []byte, perm os.FileMode, owner *Owner) error {
	aw := atomicfile.Writer{Hook: r.writeHook, NoSync: r.noSync}
	if owner != nil {
		aw.Chown = func(f *os.File) error {
			if err := f.Chown(owner.UID, owner.GID); err != nil {
				return fmt.Errorf("chown to %s: %w", owner, err)
			}
			return nil
		}
	}
	return aw.WriteAt(w.dir(), filepath.Dir(w.real()), w.name, data, perm)
}

// AppendFile appends data to the file at p, creating it (and missing parents,
// 0755) with perm if it does not exist. An existing file keeps its mode.
func (r *Root) AppendFile(p string, data []byte, perm os.FileMode) error {
	if err := r.appendFile(p, data, unixMode(perm), nil, false); err != nil {
		return fmt.Errorf("append %s: %w", p, err)
	}
	return nil
}

// AppendFileOwned is AppendFile that also gives the file owner and perm
// when it existed already (as write_files' append does). The owner and mode
// are set on the opened file, never through a path.
func (r *Root) AppendFileOwned(p string, data []byte, perm os.FileMode, owner Owner) error {
	if err := r.appendFile(p, data, unixMode(perm), &owner, true); err != nil {
		return fmt.Errorf("append %s: %w", p, err)
	}
	return nil
}

func (r *Root) appendFile(p string, data []byte, perm os.FileMode, owner *Owner, always bool) error {
	w, err := r.parentWalk(p)
	if err != nil {
		return err
	}
	defer w.close()
	f, created, err := w.openAppend(perm)
	if err != nil {
		return err
	}
	if created || always {
		if err := fchownMode(int(f.Fd()), owner, perm); err != nil {
			f.Close()
			return err
		}
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if !r.noSync {
		if err := f.Sync(); err != nil {
			f.Close()
			return err
		}
	}
	return f.Close()
}

// openAppend opens the walk's final component for appending, creating it
// with perm; created says whether this call created it. O_NONBLOCK: a FIFO
// planted there fails instead of hanging the boot.
func (w *walked) openAppend(perm os.FileMode) (f *os.File, created bool, err error) {
	fd, err := w.openFinal(unix.O_WRONLY|unix.O_APPEND|unix.O_CREAT|unix.O_EXCL, modeBits(perm)&0o777)
	if err == nil {
		return os.NewFile(uintptr(fd), w.real()), true, nil
	}
	if !errors.Is(err, unix.EEXIST) {
		return nil, false, err
	}
	fd, err = w.openFinal(unix.O_WRONLY|unix.O_APPEND|unix.O_NONBLOCK|unix.O_NOCTTY, 0)
	if err != nil {
		return nil, false, err
	}
	return os.NewFile(uintptr(fd), w.real()), false, nil
}

// logPerm is the only mode a log file may have: logs hold script output,
// which may hold secrets.
const logPerm os.FileMode = 0o600

// RotateLog renames log p to p.1 (replacing an older p.1) when it has grown
// past max bytes, so a log written at every boot stays bounded: at most
// about twice max on disk. A missing log is fine.
func (r *Root) RotateLog(p string, max int64) error {
	w, err := r.walk(p, walkOpts{followFinal: true})
	if err != nil {
		return fmt.Errorf("rotate log %s: %w", p, err)
	}
	defer w.close()
	if w.missing {
		return nil
	}
	var st unix.Stat_t
	err = unix.Fstatat(w.dir(), w.name, &st, unix.AT_SYMLINK_NOFOLLOW)
	if errors.Is(err, unix.ENOENT) || (err == nil && st.Size <= max) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("rotate log %s: %w", p, err)
	}
	if err := unix.Renameat(w.dir(), w.name, w.dir(), w.name+".1"); err != nil {
		return fmt.Errorf("rotate log %s: %w", p, &fs.PathError{Op: "rename", Path: w.real(), Err: err})
	}
	return nil
}

// OpenLog opens the log file at p for appending, creating it (and missing
// parents, 0755) with mode 0600. An existing log with any permission bit
// beyond 0600 (readable by its group, say) is set to 0600.
func (r *Root) OpenLog(p string) (*os.File, error) {
	w, err := r.parentWalk(p)
	if err != nil {
		return nil, fmt.Errorf("open log %s: %w", p, err)
	}
	defer w.close()
	f, created, err := w.openAppend(logPerm)
	if err != nil {
		return nil, fmt.Errorf("open log %s: %w", p, err)
	}
	if created {
		if err := f.Chmod(logPerm); err != nil {
			f.Close()
			return nil, fmt.Errorf("open log %s: %w", p, err)
		}
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
