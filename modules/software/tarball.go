package software

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/klauspost/compress/zstd"
	"golang.org/x/sys/unix"

	"github.com/ec2init/ec2init/agent/bounded"
	"github.com/ec2init/ec2init/agent/sys"
)

// ErrUnsafeEntry is wrapped by the error for a tarball entry that would
// write outside dest: an absolute path, a ".." component, or a link whose
// target leaves the tree.
var ErrUnsafeEntry = errors.New("unsafe tarball entry")

// Names of the directories next to dest during an install.
const (
	stagingMark = ".ec2init-new-"
	oldMark     = ".ec2init-old-"
)

// installTarball extracts art into a staging directory next to dest, then
// switches it into place: an exchange of the two directories in one
// rename(2) where the filesystem allows it, else old aside, new in, old
// removed. On any failure before the switch dest is untouched and the
// staging directory removed.
//
// Since the switch deletes whatever tree was at dest, dest must be exactly
// the directory the item names: every component from the root down is a
// real directory (never a symlink, which would move the switch and the
// deletion to its target), dest is no system directory (systemDirs) and no
// mount point, and the staging directory is created in dest's parent on
// the same filesystem. A symlink at dest itself is refused, not replaced:
// the operator may have meant its target, and deleting either silently is
// worse than a clear error. Every step after the checks is relative to the
// parent held open, and extraction goes through an os.Root of the staging
// directory, so nothing is written or deleted through a symlink.
func installTarball(root *sys.Root, it *Item, art string, record bool) (InstalledPath, error) {
	dest := path.Clean(it.Install.Dest)
	fail := func(err error) (InstalledPath, error) {
		return InstalledPath{}, fmt.Errorf("install %s: %w", dest, err)
	}
	owner, err := resolveOwner(root, it.Install.Owner)
	if err != nil {
		return fail(err)
	}
	// Lexical and real are one here: no symlink is followed.
	if msg := systemDirError(dest); msg != "" {
		return fail(fmt.Errorf("%s: %w", msg, ErrUnsafeDest))
	}
	d, err := openDest(root, dest, false)
	if err != nil {
		return fail(err)
	}
	defer d.Close()
	if err := recoverSwitch(d); err != nil {
		return fail(err)
	}
	fi, err := d.parent.Lstat(d.base)
	switch {
	case err == nil && fi.Mode()&fs.ModeSymlink != 0:
		target, _ := d.parent.Readlink(d.base)
		return fail(fmt.Errorf("is a symlink (to %q): refusing to replace the link or its target; remove the link or name the real directory: %w", target, ErrUnsafeDest))
	case err == nil && !fi.IsDir():
		return fail(errors.New("exists and is not a directory"))
	case err == nil:
		if err := d.sameFS(d.base); err != nil {
			return fail(err)
		}
	case !errors.Is(err, fs.ErrNotExist):
		return fail(err)
	}
	staging, err := d.mkdirTemp("." + d.base + stagingMark)
	if err != nil {
		return fail(err)
	}
	switched := false
	defer func() {
		if !switched {
			d.parent.RemoveAll(staging)
		}
	}()
	if err := d.sameFS(staging); err != nil {
		return fail(err)
	}
	st, err := d.parent.OpenRoot(staging)
	if err != nil {
		return fail(err)
	}
	defer st.Close()
	f, err := os.Open(art)
	if err != nil {
		return fail(err)
	}
	defer f.Close()
	if err := extract(f, st, it.Install.StripComponents, unpackLimits{bytes: unpackLimitOf(it), members: maxMembers}); err != nil {
		return fail(err)
	}
	mode := os.FileMode(it.Install.Mode)
	if mode == 0 {
		mode = 0o755
	}
	if owner != nil {
		if err := chownTree(st, *owner); err != nil {
			return fail(err)
		}
	}
	if err := d.parent.Chmod(staging, goMode(mode)); err != nil {
		return fail(err)
	}
	if err := switchDirs(d, staging); err != nil {
		return fail(err)
	}
	switched = true
	p := InstalledPath{Path: dest, Kind: KindTree}
	if record {
		// Every component of dest is a real directory (checked above).
		t, err := hashTree(filepath.Join(root.Prefix(), filepath.FromSlash(dest)), true)
		if err != nil {
			return fail(err)
		}
		p.Size, p.Files, p.SHA256, p.StatSHA256 = t.size, t.files, t.content, t.stat
	}
	return p, nil
}

// mkdirTemp creates a fresh 0700 directory prefix+random in d's parent.
func (d *destDir) mkdirTemp(prefix string) (string, error) {
	for range 10 {
		name := prefix + randomSuffix()
		err := d.parent.Mkdir(name, 0o700)
		if err == nil {
			return name, nil
		}
		if !errors.Is(err, fs.ErrExist) {
			return "", fmt.Errorf("staging directory in %s: %w", path.Dir(d.dest), err)
		}
	}
	return "", fmt.Errorf("staging directory in %s: no unused name", path.Dir(d.dest))
}

// switchDirs puts the directory staging (a name in d's parent) at dest.
// With an existing dest, RENAME_EXCHANGE swaps the two atomically; where
// the filesystem does not support it, dest is renamed aside first and put
// back if the second rename fails. The old tree is removed afterwards.
func switchDirs(d *destDir, staging string) error {
	return switchDirsWith(d, staging, exchange)
}

// exchange swaps two names in the directory dirfd atomically (renameat2
// RENAME_EXCHANGE).
func exchange(dirfd int, a, b string) error {
	return unix.Renameat2(dirfd, a, dirfd, b, unix.RENAME_EXCHANGE)
}

// switchDirsWith is switchDirs with the exchange given (tests take the
// path of a filesystem without it). Every rename and removal is of a name
// in the parent held open; none follows a symlink.
func switchDirsWith(d *destDir, staging string, exchange func(dirfd int, a, b string) error) error {
	if _, err := d.parent.Lstat(d.base); errors.Is(err, fs.ErrNotExist) {
		if err := d.parent.Rename(staging, d.base); err != nil {
			return err
		}
		return d.dir.Sync()
	}
	err := exchange(int(d.dir.Fd()), staging, d.base)
	switch {
	case err == nil:
		// staging now holds the old tree.
		if err := d.dir.Sync(); err != nil {
			return err
		}
		return d.parent.RemoveAll(staging)
	case errors.Is(err, syscall.EINVAL) || errors.Is(err, syscall.ENOSYS) || errors.Is(err, syscall.ENOTSUP):
	default:
		return fmt.Errorf("switching in the new tree: %w", err)
	}
	old := "." + d.base + oldMark + randomSuffix()
	if err := d.parent.Rename(d.base, old); err != nil {
		return fmt.Errorf("moving the old tree aside: %w", err)
	}
	if err := d.parent.Rename(staging, d.base); err != nil {
		if rerr := d.parent.Rename(old, d.base); rerr != nil {
			return fmt.Errorf("switching in the new tree: %w (and putting the old one back: %v; it is at %s)", err, rerr, path.Join(path.Dir(d.dest), old))
		}
		return fmt.Errorf("switching in the new tree: %w", err)
	}
	if err := d.dir.Sync(); err != nil {
		return err
	}
	return d.parent.RemoveAll(old)
}

// recoverSwitch cleans up after an install a crash interrupted: staging
// directories are removed, and an old tree left aside while dest is
// missing (a crash between the two renames) is put back; only a real
// directory is put back, never a symlink planted under that name.
func recoverSwitch(d *destDir) error {
	entries, err := fs.ReadDir(d.parent.FS(), ".")
	if err != nil {
		return fmt.Errorf("%s: %w", path.Dir(d.dest), err)
	}
	_, statErr := d.parent.Lstat(d.base)
	missing := errors.Is(statErr, fs.ErrNotExist)
	for _, e := range entries {
		n := e.Name()
		switch {
		case strings.HasPrefix(n, "."+d.base+stagingMark):
			if err := d.parent.RemoveAll(n); err != nil {
				return err
			}
		case strings.HasPrefix(n, "."+d.base+oldMark):
			if missing && e.IsDir() {
				if err := d.parent.Rename(n, d.base); err != nil {
					return err
				}
				missing = false
				continue
			}
			if err := d.parent.RemoveAll(n); err != nil {
				return err
			}
		}
	}
	return nil
}

// Magic numbers of the compressions a tarball may have.
var (
	gzipMagic = []byte{0x1f, 0x8b}
	zstdMagic = []byte{0x28, 0xb5, 0x2f, 0xfd}
)

// Caps on what one tarball may unpack to.
const (
	// maxMembers bounds the entries of one tarball (an archive of
	// millions of empty files exhausts inodes as a large one does bytes).
	maxMembers = 1_000_000
	// zstdMaxWindow is zstd's own default limit (without --long): a
	// frame header asking for a larger window is refused rather than
	// allocated.
	zstdMaxWindow = 128 << 20
)

// unpackLimits caps one extraction: bytes (0: no cap) and members.
type unpackLimits struct {
	bytes   int64
	members int
}

// unpackLimitOf is the cap on an item's unpacked bytes (0: none): the
// configured install.max_unpacked_size, else bounded.MaxUnpacked for an
// artifact no checksum or signature pins; a pinned one is what its publisher
// meant.
func unpackLimitOf(it *Item) int64 {
	switch {
	case it.Install.MaxUnpackedSize > 0:
		return int64(it.Install.MaxUnpackedSize)
	case it.hasChecksum() || it.hasSignature():
		return 0
	}
	return bounded.MaxUnpacked
}

// decompress recognises gzip and zstd by their magic numbers (an S3 key or
// URL need not end in .tar.gz), and plain tar. With limit > 0, reading
// more than limit bytes of tar stream fails with a *bounded.TooLargeError.
func decompress(r io.Reader, limit int64) (io.Reader, func(), error) {
	br := bufio.NewReaderSize(r, 1<<20)
	head, err := br.Peek(512)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, nil, err
	}
	capped := func(r io.Reader) io.Reader {
		if limit <= 0 {
			return r
		}
		return bounded.NewReader(r, limit, "the unpacked tarball")
	}
	switch {
	case bytes.HasPrefix(head, gzipMagic):
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, nil, fmt.Errorf("gzip: %w", err)
		}
		return capped(zr), func() { zr.Close() }, nil
	case bytes.HasPrefix(head, zstdMagic):
		zr, err := zstd.NewReader(br, zstd.WithDecoderMaxWindow(zstdMaxWindow))
		if err != nil {
			return nil, nil, fmt.Errorf("zstd: %w", err)
		}
		return capped(zr), zr.Close, nil
	case len(head) >= 262 && string(head[257:262]) == "ustar":
		return capped(br), func() {}, nil
	}
	return nil, nil, errors.New("not a tarball: neither gzip nor zstd compressed, nor a plain tar")
}

// extract writes the archive's entries under st (a fresh, empty
// directory). It refuses, before writing it, any entry with an absolute
// name or a ".." component, a symlink whose target is absolute or leads
// out of the tree, a hard link to anything but a file already extracted,
// and device nodes or FIFOs; nothing is ever written through a symlink
// (each parent is checked to be a real directory, and st, an os.Root,
// keeps every operation inside the tree regardless). The links are
// checked again once every entry is in place, resolved as the kernel will.
// Ownership is not taken from the archive (the files are the installer's,
// or install.owner's), nor setuid, setgid or sticky bits. With lim.bytes
// > 0 the tar stream and the members together may hold at most that many
// bytes: a member whose header claims more than is left is refused before
// it is written. At most lim.members entries are read.
func extract(r io.Reader, st *os.Root, strip int, lim unpackLimits) error {
	limit := lim.bytes
	dr, closeDec, err := decompress(r, limit)
	if err != nil {
		return err
	}
	defer closeDec()
	tr := tar.NewReader(dr)
	var links []string
	var written int64
	for members := 0; ; members++ {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			var tl *bounded.TooLargeError
			if errors.As(err, &tl) {
				return err
			}
			return fmt.Errorf("reading the tarball: %w", err)
		}
		if members >= lim.members {
			return fmt.Errorf("the tarball has more than %d entries: %w", lim.members, bounded.ErrTooLarge)
		}
		switch hdr.Typeflag {
		case tar.TypeXGlobalHeader, tar.TypeXHeader, tar.TypeGNULongName, tar.TypeGNULongLink:
			continue // metadata the reader has already applied
		}
		rel, skip, err := entryPath(hdr.Name, strip)
		if err != nil {
			return err
		}
		if skip {
			continue
		}
		if err := mkdirInside(st, path.Dir(rel)); err != nil {
			return fmt.Errorf("entry %q: %w", hdr.Name, err)
		}
		perm := os.FileMode(hdr.Mode) & fs.ModePerm
		switch hdr.Typeflag {
		case tar.TypeDir:
			fi, err := st.Lstat(rel)
			switch {
			case err == nil && fi.IsDir():
				err = st.Chmod(rel, perm|0o700)
			case err == nil:
				err = fmt.Errorf("entry %q: a directory where a file already is", hdr.Name)
			default:
				err = st.Mkdir(rel, perm|0o700)
			}
			if err != nil {
				return err
			}
			// Permissions of directories are final once their content is in:
			// an 0555 directory must stay writable while it is extracted.
			defer st.Chmod(rel, perm) //nolint:errcheck // best effort, like tar
		case tar.TypeReg:
			if limit > 0 && hdr.Size > limit-written {
				return fmt.Errorf("entry %q of %d bytes: %w", hdr.Name, hdr.Size,
					&bounded.TooLargeError{What: "the unpacked tarball", Limit: limit})
			}
			if err := replaceable(st, rel); err != nil {
				return fmt.Errorf("entry %q: %w", hdr.Name, err)
			}
			if err := writeEntry(st, rel, tr, perm, hdr); err != nil {
				var tl *bounded.TooLargeError
				if errors.As(err, &tl) {
					return err
				}
				return fmt.Errorf("entry %q: %w", hdr.Name, err)
			}
			written += hdr.Size
		case tar.TypeSymlink:
			if err := checkLinkTarget(rel, hdr.Linkname); err != nil {
				return fmt.Errorf("entry %q: %w", hdr.Name, err)
			}
			if err := replaceable(st, rel); err != nil {
				return fmt.Errorf("entry %q: %w", hdr.Name, err)
			}
			if err := st.Symlink(hdr.Linkname, rel); err != nil {
				return err
			}
			links = append(links, rel)
		case tar.TypeLink:
			src, skip, err := entryPath(hdr.Linkname, strip)
			if err != nil {
				return fmt.Errorf("entry %q: hard link: %w", hdr.Name, err)
			}
			if skip {
				return fmt.Errorf("entry %q: hard link to %q, which strip_components removes: %w", hdr.Name, hdr.Linkname, ErrUnsafeEntry)
			}
			// The target must be a regular file extracted already, reached
			// through real directories only.
			if err := realDirs(st, path.Dir(src)); err != nil {
				return fmt.Errorf("entry %q: hard link to %q: %w", hdr.Name, hdr.Linkname, err)
			}
			fi, err := st.Lstat(src)
			if err != nil || !fi.Mode().IsRegular() {
				return fmt.Errorf("entry %q: hard link to %q, not a file extracted before it: %w", hdr.Name, hdr.Linkname, ErrUnsafeEntry)
			}
			if err := replaceable(st, rel); err != nil {
				return fmt.Errorf("entry %q: %w", hdr.Name, err)
			}
			if err := st.Link(src, rel); err != nil {
				return err
			}
		default:
			return fmt.Errorf("entry %q: type %q (device, FIFO, sparse file) is not installed: %w", hdr.Name, string(hdr.Typeflag), ErrUnsafeEntry)
		}
	}
	for _, l := range links {
		if err := resolveInside(st, l); err != nil {
			return fmt.Errorf("symlink %q: %w", l, err)
		}
	}
	return nil
}

// entryPath cleans an archive name: absolute names and ".." components
// are refused (before stripping, as tar does); skip is true for an entry
// strip_components removes entirely (a leading directory).
func entryPath(name string, strip int) (rel string, skip bool, err error) {
	if strings.HasPrefix(name, "/") {
		return "", false, fmt.Errorf("%q is an absolute path: %w", name, ErrUnsafeEntry)
	}
	var comps []string
	for _, c := range strings.Split(name, "/") {
		switch c {
		case "", ".":
		case "..":
			return "", false, fmt.Errorf("%q has a \"..\" component: %w", name, ErrUnsafeEntry)
		default:
			if strings.IndexByte(c, 0) >= 0 {
				return "", false, fmt.Errorf("%q has a NUL byte: %w", name, ErrUnsafeEntry)
			}
			comps = append(comps, c)
		}
	}
	if len(comps) <= strip {
		return "", true, nil
	}
	return strings.Join(comps[strip:], "/"), false, nil
}

// checkLinkTarget refuses a symlink target that is absolute or that,
// taken from the link's directory, climbs out of the tree.
func checkLinkTarget(rel, target string) error {
	if target == "" {
		return fmt.Errorf("symlink with an empty target: %w", ErrUnsafeEntry)
	}
	if strings.HasPrefix(target, "/") {
		return fmt.Errorf("symlink to the absolute path %q: %w", target, ErrUnsafeEntry)
	}
	p := path.Join(path.Dir(rel), target)
	if p == ".." || strings.HasPrefix(p, "../") {
		return fmt.Errorf("symlink to %q leads outside the tree: %w", target, ErrUnsafeEntry)
	}
	return nil
}

// mkdirInside creates the directories of rel (slash-separated, relative)
// under st, each a real directory: a component that is a symlink or a
// file is refused, so no entry is written through a link.
func mkdirInside(st *os.Root, rel string) error {
	cur := ""
	for _, c := range strings.Split(rel, "/") {
		if c == "" || c == "." {
			continue
		}
		cur = path.Join(cur, c)
		fi, err := st.Lstat(cur)
		if errors.Is(err, fs.ErrNotExist) {
			if err := st.Mkdir(cur, 0o755); err != nil {
				return err
			}
			continue
		}
		if err != nil {
			return err
		}
		if !fi.IsDir() {
			return fmt.Errorf("%q is not a directory (a symlink?): %w", c, ErrUnsafeEntry)
		}
	}
	return nil
}

// realDirs checks that every component of rel under st is an existing
// directory, not a symlink.
func realDirs(st *os.Root, rel string) error {
	cur := ""
	for _, c := range strings.Split(rel, "/") {
		if c == "" || c == "." {
			continue
		}
		cur = path.Join(cur, c)
		fi, err := st.Lstat(cur)
		if err != nil || !fi.IsDir() {
			return fmt.Errorf("%q is not a directory extracted before it: %w", c, ErrUnsafeEntry)
		}
	}
	return nil
}

// replaceable makes way for an entry that repeats an earlier one (the
// later wins, as with tar), unless that is a directory.
func replaceable(st *os.Root, target string) error {
	fi, err := st.Lstat(target)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if fi.IsDir() {
		return errors.New("a file where a directory already is")
	}
	return st.Remove(target)
}

func writeEntry(st *os.Root, target string, r io.Reader, perm os.FileMode, hdr *tar.Header) error {
	f, err := st.OpenFile(target, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return err
	}
	// Durable before the switch makes the tree live.
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if !hdr.ModTime.IsZero() {
		return st.Chtimes(target, hdr.ModTime, hdr.ModTime)
	}
	return nil
}

// resolveInside follows the symlink at rel under st as the kernel will
// (sys.Root's walk, on the tree extraction wrote) and refuses it if it
// leads above st, dangling or not.
func resolveInside(st *os.Root, rel string) error {
	tree, err := sys.NewRoot(st.Name())
	if err != nil {
		return err
	}
	if _, err := tree.ResolveOwn("/" + rel); err != nil {
		if errors.Is(err, sys.ErrEscapesRoot) {
			return fmt.Errorf("leads outside the tree: %w", ErrUnsafeEntry)
		}
		return fmt.Errorf("%w: %w", err, ErrUnsafeEntry)
	}
	return nil
}

// chownTree gives every entry under st (links themselves, not their
// targets) to owner.
func chownTree(st *os.Root, owner sys.Owner) error {
	return fs.WalkDir(st.FS(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := st.Lchown(p, owner.UID, owner.GID); err != nil {
			return fmt.Errorf("chown %s: %w", p, err)
		}
		return nil
	})
}
