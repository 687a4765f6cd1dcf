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

	"github.com/ec2init/ec2init/agent/state/atomicfile"
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
func installTarball(root *sys.Root, it *Item, art string, record bool) (InstalledPath, error) {
	dest, full, owner, err := prepareDest(root, it)
	fail := func(err error) (InstalledPath, error) {
		return InstalledPath{}, fmt.Errorf("install %s: %w", dest, err)
	}
	if err != nil {
		return fail(err)
	}
	if err := recoverSwitch(full); err != nil {
		return fail(err)
	}
	if fi, err := os.Lstat(full); err == nil && !fi.IsDir() {
		return fail(errors.New("exists and is not a directory"))
	}
	staging, err := os.MkdirTemp(filepath.Dir(full), "."+filepath.Base(full)+stagingMark)
	if err != nil {
		return fail(err)
	}
	switched := false
	defer func() {
		if !switched {
			os.RemoveAll(staging)
		}
	}()
	f, err := os.Open(art)
	if err != nil {
		return fail(err)
	}
	defer f.Close()
	if err := extract(f, staging, it.Install.StripComponents); err != nil {
		return fail(err)
	}
	mode := os.FileMode(it.Install.Mode)
	if mode == 0 {
		mode = 0o755
	}
	if owner != nil {
		if err := chownTree(staging, *owner); err != nil {
			return fail(err)
		}
	}
	if err := os.Chmod(staging, goMode(mode)); err != nil {
		return fail(err)
	}
	if err := switchDirs(staging, full); err != nil {
		return fail(err)
	}
	switched = true
	p := InstalledPath{Path: dest, Kind: KindTree}
	if record {
		t, err := hashTree(full, true)
		if err != nil {
			return fail(err)
		}
		p.Size, p.Files, p.SHA256, p.StatSHA256 = t.size, t.files, t.content, t.stat
	}
	return p, nil
}

// switchDirs puts the directory staging at full. With an existing full,
// RENAME_EXCHANGE swaps the two atomically; where the filesystem does not
// support it, full is renamed aside first and put back if the second
// rename fails. The old tree is removed afterwards.
func switchDirs(staging, full string) error {
	return switchDirsWith(staging, full, exchange)
}

// exchange swaps two paths atomically (renameat2 RENAME_EXCHANGE).
func exchange(a, b string) error {
	return unix.Renameat2(unix.AT_FDCWD, a, unix.AT_FDCWD, b, unix.RENAME_EXCHANGE)
}

// switchDirsWith is switchDirs with the exchange given (tests take the
// path of a filesystem without it).
func switchDirsWith(staging, full string, exchange func(a, b string) error) error {
	if _, err := os.Lstat(full); errors.Is(err, fs.ErrNotExist) {
		if err := os.Rename(staging, full); err != nil {
			return err
		}
		return atomicfile.SyncDir(filepath.Dir(full))
	}
	err := exchange(staging, full)
	switch {
	case err == nil:
		// staging now holds the old tree.
		if err := atomicfile.SyncDir(filepath.Dir(full)); err != nil {
			return err
		}
		return os.RemoveAll(staging)
	case errors.Is(err, syscall.EINVAL) || errors.Is(err, syscall.ENOSYS) || errors.Is(err, syscall.ENOTSUP):
	default:
		return fmt.Errorf("switching in the new tree: %w", err)
	}
	old := filepath.Join(filepath.Dir(full), "."+filepath.Base(full)+oldMark+randomSuffix())
	if err := os.Rename(full, old); err != nil {
		return fmt.Errorf("moving the old tree aside: %w", err)
	}
	if err := os.Rename(staging, full); err != nil {
		if rerr := os.Rename(old, full); rerr != nil {
			return fmt.Errorf("switching in the new tree: %w (and putting the old one back: %v; it is at %s)", err, rerr, old)
		}
		return fmt.Errorf("switching in the new tree: %w", err)
	}
	if err := atomicfile.SyncDir(filepath.Dir(full)); err != nil {
		return err
	}
	return os.RemoveAll(old)
}

// recoverSwitch cleans up after an install a crash interrupted: staging
// directories are removed, and an old tree left aside while dest is
// missing (a crash between the two renames) is put back.
func recoverSwitch(full string) error {
	dir, base := filepath.Dir(full), filepath.Base(full)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	_, statErr := os.Lstat(full)
	missing := errors.Is(statErr, fs.ErrNotExist)
	for _, e := range entries {
		n := e.Name()
		switch {
		case strings.HasPrefix(n, "."+base+stagingMark):
			if err := os.RemoveAll(filepath.Join(dir, n)); err != nil {
				return err
			}
		case strings.HasPrefix(n, "."+base+oldMark):
			if missing {
				if err := os.Rename(filepath.Join(dir, n), full); err != nil {
					return err
				}
				missing = false
				continue
			}
			if err := os.RemoveAll(filepath.Join(dir, n)); err != nil {
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

// decompress recognises gzip and zstd by their magic numbers (an S3 key or
// URL need not end in .tar.gz), and plain tar.
func decompress(r io.Reader) (io.Reader, func(), error) {
	br := bufio.NewReaderSize(r, 1<<20)
	head, err := br.Peek(512)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, nil, err
	}
	switch {
	case bytes.HasPrefix(head, gzipMagic):
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, nil, fmt.Errorf("gzip: %w", err)
		}
		return zr, func() { zr.Close() }, nil
	case bytes.HasPrefix(head, zstdMagic):
		zr, err := zstd.NewReader(br)
		if err != nil {
			return nil, nil, fmt.Errorf("zstd: %w", err)
		}
		return zr, zr.Close, nil
	case len(head) >= 262 && string(head[257:262]) == "ustar":
		return br, func() {}, nil
	}
	return nil, nil, errors.New("not a tarball: neither gzip nor zstd compressed, nor a plain tar")
}

// extract writes the archive's entries under dir (a fresh, empty
// directory). It refuses, before writing it, any entry with an absolute
// name or a ".." component, a symlink whose target is absolute or leads
// out of the tree, a hard link to anything but a file already extracted,
// and device nodes or FIFOs; nothing is ever written through a symlink. The
// links are checked again once every entry is in place, resolved as the
// kernel will. Ownership is not taken from the archive (the files are the
// installer's, or install.owner's), nor setuid, setgid or sticky bits.
func extract(r io.Reader, dir string, strip int) error {
	dr, closeDec, err := decompress(r)
	if err != nil {
		return err
	}
	defer closeDec()
	tr := tar.NewReader(dr)
	var links []string
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("reading the tarball: %w", err)
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
		target := filepath.Join(dir, filepath.FromSlash(rel))
		if err := mkdirInside(dir, path.Dir(rel)); err != nil {
			return fmt.Errorf("entry %q: %w", hdr.Name, err)
		}
		perm := os.FileMode(hdr.Mode) & fs.ModePerm
		switch hdr.Typeflag {
		case tar.TypeDir:
			fi, err := os.Lstat(target)
			switch {
			case err == nil && fi.IsDir():
				err = os.Chmod(target, perm|0o700)
			case err == nil:
				err = fmt.Errorf("entry %q: a directory where a file already is", hdr.Name)
			default:
				err = os.Mkdir(target, perm|0o700)
			}
			if err != nil {
				return err
			}
			// Permissions of directories are final once their content is in:
			// an 0555 directory must stay writable while it is extracted.
			defer os.Chmod(target, perm) //nolint:errcheck // best effort, like tar
		case tar.TypeReg:
			if err := replaceable(target); err != nil {
				return fmt.Errorf("entry %q: %w", hdr.Name, err)
			}
			if err := writeEntry(target, tr, perm, hdr); err != nil {
				return fmt.Errorf("entry %q: %w", hdr.Name, err)
			}
		case tar.TypeSymlink:
			if err := checkLinkTarget(rel, hdr.Linkname); err != nil {
				return fmt.Errorf("entry %q: %w", hdr.Name, err)
			}
			if err := replaceable(target); err != nil {
				return fmt.Errorf("entry %q: %w", hdr.Name, err)
			}
			if err := os.Symlink(hdr.Linkname, target); err != nil {
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
			if err := realDirs(dir, path.Dir(src)); err != nil {
				return fmt.Errorf("entry %q: hard link to %q: %w", hdr.Name, hdr.Linkname, err)
			}
			srcFull := filepath.Join(dir, filepath.FromSlash(src))
			fi, err := os.Lstat(srcFull)
			if err != nil || !fi.Mode().IsRegular() {
				return fmt.Errorf("entry %q: hard link to %q, not a file extracted before it: %w", hdr.Name, hdr.Linkname, ErrUnsafeEntry)
			}
			if err := replaceable(target); err != nil {
				return fmt.Errorf("entry %q: %w", hdr.Name, err)
			}
			if err := os.Link(srcFull, target); err != nil {
				return err
			}
		default:
			return fmt.Errorf("entry %q: type %q (device, FIFO, sparse file) is not installed: %w", hdr.Name, string(hdr.Typeflag), ErrUnsafeEntry)
		}
	}
	for _, l := range links {
		if err := resolveInside(dir, l); err != nil {
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
// under dir, each a real directory: a component that is a symlink or a
// file is refused, so no entry is written through a link.
func mkdirInside(dir, rel string) error {
	cur := dir
	for _, c := range strings.Split(rel, "/") {
		if c == "" || c == "." {
			continue
		}
		cur = filepath.Join(cur, c)
		fi, err := os.Lstat(cur)
		if errors.Is(err, fs.ErrNotExist) {
			if err := os.Mkdir(cur, 0o755); err != nil {
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

// realDirs checks that every component of rel under dir is an existing
// directory, not a symlink.
func realDirs(dir, rel string) error {
	cur := dir
	for _, c := range strings.Split(rel, "/") {
		if c == "" || c == "." {
			continue
		}
		cur = filepath.Join(cur, c)
		fi, err := os.Lstat(cur)
		if err != nil || !fi.IsDir() {
			return fmt.Errorf("%q is not a directory extracted before it: %w", c, ErrUnsafeEntry)
		}
	}
	return nil
}

// replaceable makes way for an entry that repeats an earlier one (the
// later wins, as with tar), unless that is a directory.
func replaceable(target string) error {
	fi, err := os.Lstat(target)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if fi.IsDir() {
		return errors.New("a file where a directory already is")
	}
	return os.Remove(target)
}

func writeEntry(target string, r io.Reader, perm os.FileMode, hdr *tar.Header) error {
	f, err := os.OpenFile(target, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, 0o600)
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
		return os.Chtimes(target, hdr.ModTime, hdr.ModTime)
	}
	return nil
}

// maxLinkHops bounds symlink resolution, as the kernel's ELOOP does.
const maxLinkHops = 40

// resolveInside follows the symlink at rel under top as the kernel will,
// component by component, ".." taken after each link is followed; it
// refuses a step above top and an absolute target anywhere on the way. A
// missing component ends the physical walk (the rest is lexical).
func resolveInside(top, rel string) error {
	var stack []string
	pending := strings.Split(rel, "/")
	hops := 0
	for len(pending) > 0 {
		c := pending[0]
		pending = pending[1:]
		switch c {
		case "", ".":
			continue
		case "..":
			if len(stack) == 0 {
				return fmt.Errorf("leads outside the tree: %w", ErrUnsafeEntry)
			}
			stack = stack[:len(stack)-1]
			continue
		}
		cand := filepath.Join(append([]string{top}, append(stack, c)...)...)
		fi, err := os.Lstat(cand)
		if err != nil || fi.Mode()&fs.ModeSymlink == 0 {
			stack = append(stack, c)
			continue
		}
		if hops++; hops > maxLinkHops {
			return fmt.Errorf("too many levels of symbolic links: %w", ErrUnsafeEntry)
		}
		t, err := os.Readlink(cand)
		if err != nil {
			return err
		}
		if strings.HasPrefix(t, "/") {
			return fmt.Errorf("leads to the absolute path %q: %w", t, ErrUnsafeEntry)
		}
		pending = append(strings.Split(t, "/"), pending...)
	}
	return nil
}

// chownTree gives every entry under dir (links themselves, not their
// targets) to owner.
func chownTree(dir string, owner sys.Owner) error {
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := os.Lchown(p, owner.UID, owner.GID); err != nil {
			return fmt.Errorf("chown %s: %w", p, err)
		}
		return nil
	})
}
