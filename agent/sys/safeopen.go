package sys

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// ErrUntrustedSymlink is wrapped by every error for a symlink Root refused
// to follow because someone other than root could have planted it.
var ErrUntrustedSymlink = errors.New("symlink in an untrusted directory")

// UntrustedSymlinkError names a symlink found in a directory another user
// can change (owned by a non-root user, or writable by a group other than
// root's or by everyone, like /tmp): the boot runs as root, so following it
// would let that user point a root write at any file (~/app.conf ->
// /etc/shadow).
type UntrustedSymlinkError struct {
	Link string      // host path of the symlink
	UID  int         // owner of the directory holding it
	GID  int         // group of that directory
	Mode os.FileMode // that directory's permission bits
}

func (e *UntrustedSymlinkError) Error() string {
	if e.UID != 0 && e.UID != os.Geteuid() {
		return fmt.Sprintf("%s is a symlink in a directory owned by uid %d; refusing to follow it", e.Link, e.UID)
	}
	return fmt.Sprintf("%s is a symlink in a directory writable by others (mode %04o, gid %d); refusing to follow it", e.Link, uint32(e.Mode), e.GID)
}

// Is makes errors.Is(err, ErrUntrustedSymlink) true.
func (e *UntrustedSymlinkError) Is(target error) bool { return target == ErrUntrustedSymlink }

// walkOpts says how walk treats the path.
type walkOpts struct {
	// followFinal resolves a symlink in the last component (as open(2)
	// does); otherwise the last component is taken as it is (Remove).
	followFinal bool
	// create makes missing intermediate directories with dirPerm (exactly)
	// and, when owner is set, that owner; otherwise a missing intermediate
	// component ends the walk with missing set.
	create  bool
	dirPerm os.FileMode
	owner   *Owner
	// ownTree follows every symlink, whoever owns its directory: the
	// tree is one the agent itself wrote (see ResolveOwn).
	ownTree bool
}

// walked is a path resolved under the root: an open directory (the top of
// fds) and the final name in it. Operations on the final component are done
// relative to that directory with O_NOFOLLOW, so a component swapped for a
// symlink after the walk cannot redirect them.
type walked struct {
	prefix string
	fds    []int    // fds[0] is the prefix; fds[i] the directory done[i-1]
	done   []string // resolved components, each a real directory
	// name is the final component in dir(); "" when the path is the root
	// prefix itself.
	name string
	// missing: an intermediate component does not exist (or is no
	// directory) and create was off; rest holds it and what follows, and
	// missingErr says which.
	missing    bool
	missingErr error
	rest       []string
}

func (w *walked) dir() int { return w.fds[len(w.fds)-1] }

func (w *walked) push(fd int, name string) {
	w.fds = append(w.fds, fd)
	w.done = append(w.done, name)
}

func (w *walked) pop() {
	unix.Close(w.fds[len(w.fds)-1])
	w.fds = w.fds[:len(w.fds)-1]
	w.done = w.done[:len(w.done)-1]
}

func (w *walked) close() {
	for len(w.fds) > 0 {
		unix.Close(w.fds[len(w.fds)-1])
		w.fds = w.fds[:len(w.fds)-1]
	}
}

func (w *walked) comps() []string {
	c := append([]string(nil), w.done...)
	if w.name != "" {
		c = append(c, w.name)
	}
	return append(c, w.rest...)
}

// host is the resolved path as the host sees it ("/etc/shadow").
func (w *walked) host() string { return "/" + strings.Join(w.comps(), "/") }

// real is the resolved path under the prefix.
func (w *walked) real() string {
	return filepath.Join(append([]string{w.prefix}, w.comps()...)...)
}

// hostOf names component c of the current directory as a host path.
func (w *walked) hostOf(c string) string {
	return "/" + strings.Join(append(append([]string(nil), w.done...), c), "/")
}

// needExisting fails a walk that stopped at a missing component: the
// operation needs the directory to exist.
func (w *walked) needExisting() error {
	if !w.missing {
		return nil
	}
	return &fs.PathError{Op: "open", Path: w.real(), Err: w.missingErr}
}

// trustedDir reports whether a symlink in the directory fd may be followed:
// the directory is owned by root (or the agent itself, when it runs
// unprivileged in tests) and writable by no one else — not by everyone, not
// by a group other than root's. Otherwise whoever can write there could have
// planted the link.
func trustedDir(fd int, link string) error {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return fmt.Errorf("stat the directory of %s: %w", link, err)
	}
	uid, gid := int(st.Uid), int(st.Gid)
	ownerOK := uid == 0 || uid == os.Geteuid()
	writableByOthers := st.Mode&0o002 != 0 || (st.Mode&0o020 != 0 && gid != 0)
	if ownerOK && !writableByOthers {
		return nil
	}
	return &UntrustedSymlinkError{Link: link, UID: uid, GID: gid, Mode: os.FileMode(st.Mode & 0o7777)}
}

// walk resolves p under the root as Path documents, one component at a
// time through open directory file descriptors: each component is opened
// with O_NOFOLLOW relative to its parent's descriptor, so what is checked is
// what is used. A symlink is followed only if its directory passes
// trustedDir. The caller must call close on the result.
func (r *Root) walk(p string, o walkOpts) (_ *walked, err error) {
	if r == nil || r.prefix == "" {
		return nil, errors.New("sys.Root not made by NewRoot")
	}
	comps, err := splitHostPath(p)
	if err != nil {
		return nil, err
	}
	rootFD, err := unix.Open(r.prefix, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: r.prefix, Err: err}
	}
	if w, ok := fastWalk(r.prefix, rootFD, comps, o.followFinal); ok {
		return w, nil
	}
	w := &walked{prefix: r.prefix, fds: []int{rootFD}}
	defer func() {
		if err != nil {
			w.close()
		}
	}()
	pending := comps
	hops := 0
loop:
	for len(pending) > 0 {
		c := pending[0]
		pending = pending[1:]
		switch c {
		case "", ".":
			continue
		case "..":
			if w.missing {
				// Past a missing component the path is lexical: ".." takes
				// back the last missing one, and after the first, the walk
				// is in a real directory again.
				if w.rest = w.rest[:len(w.rest)-1]; len(w.rest) == 0 {
					w.missing, w.missingErr = false, nil
				}
				continue
			}
			if len(w.done) == 0 {
				if r.IsHost() {
					continue
				}
				return nil, fmt.Errorf("a symlink leads outside the root %s: %w", r.prefix, ErrEscapesRoot)
			}
			w.pop()
			continue
		}
		if w.missing {
			w.rest = append(w.rest, c)
			continue
		}
		last := len(pending) == 0
		if last && !o.followFinal {
			w.name = c
			break loop
		}
		fd, err := unix.Openat(w.dir(), c, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if errors.Is(err, unix.ENOENT) {
			if last {
				w.name = c
				break loop
			}
			if !o.create {
				w.missing, w.missingErr = true, unix.ENOENT
				w.rest = append(w.rest, c)
				continue
			}
			fd, err = mkdirAt(w.dir(), c, o.dirPerm, o.owner)
			if errors.Is(err, unix.EEXIST) {
				// Created meanwhile by someone else: look again.
				if hops++; hops > maxSymlinks {
					return nil, fmt.Errorf("%s: keeps changing", w.hostOf(c))
				}
				pending = append([]string{c}, pending...)
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("mkdir %s: %w", w.hostOf(c), err)
			}
			w.push(fd, c)
			continue
		}
		if err != nil {
			return nil, &fs.PathError{Op: "open", Path: filepath.Join(w.prefix, w.hostOf(c)), Err: err}
		}
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil {
			unix.Close(fd)
			return nil, &fs.PathError{Op: "stat", Path: filepath.Join(w.prefix, w.hostOf(c)), Err: err}
		}
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFLNK:
			target, err := readlinkFD(fd)
			unix.Close(fd)
			if err != nil {
				return nil, fmt.Errorf("readlink %s: %w", w.hostOf(c), err)
			}
			if !o.ownTree {
				if err := trustedDir(w.dir(), w.hostOf(c)); err != nil {
					return nil, err
				}
			}
			if hops++; hops > maxSymlinks {
				return nil, errors.New("too many levels of symbolic links")
			}
			if strings.HasPrefix(target, "/") {
				for len(w.done) > 0 {
					w.pop()
				}
			}
			pending = append(strings.Split(target, "/"), pending...)
		case unix.S_IFDIR:
			if last {
				unix.Close(fd)
				w.name = c
				break loop
			}
			w.push(fd, c)
		default:
			unix.Close(fd)
			if last {
				w.name = c
				break loop
			}
			if o.create {
				return nil, fmt.Errorf("%s: %w", w.hostOf(c), unix.ENOTDIR)
			}
			// ENOTDIR is the operation's to report.
			w.missing, w.missingErr = true, unix.ENOTDIR
			w.rest = append(w.rest, c)
		}
	}
	if w.name == "" && !w.missing && len(w.done) > 0 {
		// The path ended on a directory reached through ".." or a symlink:
		// name it in its parent like any other final component.
		c := w.done[len(w.done)-1]
		w.pop()
		w.name = c
	}
	return w, nil
}

// fastWalk resolves comps the way walk does in one openat2(2) call when
// no component is a symlink and every directory exists: the kernel then
// checks what walk checks one openat at a time (RESOLVE_NO_SYMLINKS), so
// no trust decision is skipped. Anything else (a symlink, a missing
// directory to create or report, a kernel before 5.6 without openat2)
// returns false, and walk takes its component-by-component path from the
// start. rootFD stays open in the result, as walk's fds[0].
func fastWalk(prefix string, rootFD int, comps []string, followFinal bool) (*walked, bool) {
	if len(comps) == 0 {
		return nil, false
	}
	parent, last := comps[:len(comps)-1], comps[len(comps)-1]
	w := &walked{prefix: prefix, fds: []int{rootFD}}
	if len(parent) > 0 {
		fd, err := unix.Openat2(rootFD, strings.Join(parent, "/"), &unix.OpenHow{
			Flags:   unix.O_PATH | unix.O_DIRECTORY | unix.O_CLOEXEC,
			Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS,
		})
		if err != nil {
			return nil, false
		}
		// One descriptor for all of parent: walk pops fds only while
		// resolving, which is over.
		w.fds = append(w.fds, fd)
		w.done = parent
	}
	if followFinal {
		fd, err := unix.Openat(w.dir(), last, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err == nil {
			var st unix.Stat_t
			err = unix.Fstat(fd, &st)
			unix.Close(fd)
			if err == nil && st.Mode&unix.S_IFMT == unix.S_IFLNK {
				err = unix.ELOOP // walk decides whether to follow it
			}
		}
		if err != nil && !errors.Is(err, unix.ENOENT) {
			if len(w.fds) > 1 {
				unix.Close(w.fds[1])
			}
			return nil, false
		}
	}
	w.name = last
	return w, true
}

// readlinkFD reads the symlink opened (O_PATH|O_NOFOLLOW) as fd.
func readlinkFD(fd int) (string, error) {
	for size := 256; size <= 1<<16; size *= 4 {
		buf := make([]byte, size)
		n, err := unix.Readlinkat(fd, "", buf)
		if err != nil {
			return "", err
		}
		if n < size {
			return string(buf[:n]), nil
		}
	}
	return "", unix.ENAMETOOLONG
}

// mkdirAt creates the directory name in dir with perm exactly (and owner,
// when set) and returns it opened. EEXIST is returned as it is.
func mkdirAt(dir int, name string, perm os.FileMode, owner *Owner) (int, error) {
	if err := unix.Mkdirat(dir, name, 0o700); err != nil {
		return -1, err
	}
	fd, err := unix.Openat(dir, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	if err := fchownMode(fd, owner, perm); err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

// fchownMode gives the open file fd owner (when set), then mode exactly:
// owner first, as chown(2) clears setuid and setgid.
func fchownMode(fd int, owner *Owner, perm os.FileMode) error {
	if owner != nil {
		if err := unix.Fchown(fd, owner.UID, owner.GID); err != nil {
			return fmt.Errorf("chown to %s: %w", owner, err)
		}
	}
	if err := unix.Fchmod(fd, modeBits(perm)); err != nil {
		return fmt.Errorf("chmod %04o: %w", modeBits(perm), err)
	}
	return nil
}

// modeBits is the chmod(2) mode of a Go file mode (as unixMode returns it).
func modeBits(m os.FileMode) uint32 {
	b := uint32(m.Perm())
	if m&os.ModeSetuid != 0 {
		b |= unix.S_ISUID
	}
	if m&os.ModeSetgid != 0 {
		b |= unix.S_ISGID
	}
	if m&os.ModeSticky != 0 {
		b |= unix.S_ISVTX
	}
	return b
}

// openFinal opens the walk's final component with flags and O_NOFOLLOW (a
// symlink that appeared after the walk fails with ELOOP instead of being
// followed); the root prefix itself when the name is empty.
func (w *walked) openFinal(flags int, perm uint32) (int, error) {
	name := w.name
	if name == "" {
		name = "."
	}
	fd, err := unix.Openat(w.dir(), name, flags|unix.O_NOFOLLOW|unix.O_CLOEXEC, perm)
	if err != nil {
		return -1, &fs.PathError{Op: "open", Path: w.real(), Err: err}
	}
	return fd, nil
}

// chmodPath sets the mode of the file opened O_PATH as fd. fchmod(2) refuses
// O_PATH descriptors; fchmodat2 (Linux 6.6) takes one with AT_EMPTY_PATH, and
// on older kernels the descriptor's /proc/self/fd link names the same file
// without any symlink left to follow (what glibc does too).
func chmodPath(fd int, mode uint32) error {
	err := unix.Fchmodat(fd, "", mode, unix.AT_EMPTY_PATH)
	if !errors.Is(err, unix.EOPNOTSUPP) && !errors.Is(err, unix.ENOSYS) && !errors.Is(err, unix.EINVAL) {
		return err
	}
	return unix.Chmod("/proc/self/fd/"+strconv.Itoa(fd), mode)
}
