package state

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ec2init/ec2init/agent/state/atomicfile"
	"github.com/ec2init/ec2init/agent/sys"
)

// Host paths (under the root prefix) of the agent's state, runtime directory
// and logs.
const (
	StateDir      = "/var/lib/ec2init"
	RunDirPath    = "/run/ec2init"
	LogFile       = "/var/log/ec2init.log"
	OutputLogFile = "/var/log/ec2init-output.log"
)

// Names inside an instance's directory.
const (
	UserDataRaw   = "user-data.raw"
	UserDataParts = "user-data.parts"
)

const (
	dirPerm    os.FileMode = 0o700
	filePerm   os.FileMode = 0o600
	runDirPerm os.FileMode = 0o755

	// staleTempAge is how old a temporary file left by an interrupted write
	// must be before Open removes it: a younger one may be another process's
	// write under way.
	staleTempAge = time.Minute
)

var (
	// ErrCorrupt is matched (errors.Is) by every error for a state file
	// whose content cannot be parsed; see CorruptError.
	ErrCorrupt = errors.New("corrupt state file")
	// ErrEscapesRoot is wrapped by errors for paths that would leave the
	// root prefix. It is sys.ErrEscapesRoot: every path of the store is
	// resolved by sys.Root.
	ErrEscapesRoot = sys.ErrEscapesRoot
	// ErrNoInstance is returned by per-instance operations before
	// BeginInstance.
	ErrNoInstance = errors.New("no current instance: BeginInstance first")
	// ErrReadOnly is returned by every change to a store opened ReadOnly.
	ErrReadOnly = errors.New("state store is read-only")
	// ErrInvalidName is wrapped by errors for a module, instance or boot id
	// that cannot name a file.
	ErrInvalidName = errors.New("invalid name")
)

// CorruptError is a state file that exists but does not parse. It matches
// ErrCorrupt with errors.Is.
type CorruptError struct {
	Path string // the real path, under the root prefix
	Err  error  // the parse error
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("%s: %v: %v", e.Path, ErrCorrupt, e.Err)
}

func (e *CorruptError) Unwrap() error { return e.Err }

// Is makes errors.Is(err, ErrCorrupt) true.
func (e *CorruptError) Is(target error) bool { return target == ErrCorrupt }

// Options configure Open.
type Options struct {
	// Root is the prefix every path lives under: "/" in production. It must
	// be an existing directory.
	Root string
	// BootID overrides the kernel's boot id (tests, image preparation).
	BootID string
	// Now is the clock; nil is time.Now.
	Now func() time.Time
	// SyncHook, when set, is called at each step of every file write (see
	// atomicfile.Writer.Hook); a non-nil error aborts the write. For
	// crash-safety tests.
	SyncHook func(point string) error
	// ReadOnly opens without creating or changing anything (for commands
	// that only read status); every change returns ErrReadOnly.
	ReadOnly bool
	// DeferSync makes writes atomic but not durable one by one: they are
	// made durable together by Sync (one syncfs), which the boot calls
	// where durability matters: before a user's script starts, after its
	// semaphore, and at the end of each stage. A process killed at any
	// point still leaves every file whole; only a power cut can lose the
	// writes since the last Sync, and those are ec2init's own records,
	// whose work is idempotent and is done again.
	DeferSync bool
}

// Store is ec2init's state under one root prefix. Its methods are safe for
// concurrent use; several processes may use the same directory one after
// another (each stage is one), and a crash of any of them leaves every file
// whole.
type Store struct {
	// r resolves every path the store reads, writes or removes: a symlink
	// under the root is followed as inside a chroot, never out of it.
	r        *sys.Root
	root     string // absolute, symlink-free: r.Prefix()
	state    string // StateDir: paths inside the store are host paths
	run      string // RunDirPath
	bootID   string
	now      func() time.Time
	w        atomicfile.Writer
	readOnly bool
	pid      int
	pidStart uint64 // 0 when /proc does not tell

	deferSync bool
	dirty     atomic.Bool // a deferred write since the last Sync

	// ensured are the directories ensureDir made or checked in this
	// process: every record write ensures its directories, and checking
	// each again (a walk, a stat, a chmod per component) was an eighth of a
	// boot's CPU time. Only `clean` removes them, under the boot lock.
	ensured sync.Map

	mu         sync.RWMutex
	instanceID string      // "" before BeginInstance
	transition *Transition // nil before BeginInstance
}

// Open opens the state under opts.Root, creating its directories (0700, and
// 0755 for the runtime directory) and setting their modes if they exist with
// others. Temporary files that crashed writes left more than a minute ago
// are removed.
func Open(opts Options) (*Store, error) {
	r, err := newRoot(opts.Root)
	if err != nil {
		return nil, err
	}
	s := &Store{
		r:         r,
		root:      r.Prefix(),
		state:     StateDir,
		run:       RunDirPath,
		bootID:    opts.BootID,
		now:       opts.Now,
		w:         atomicfile.Writer{Hook: opts.SyncHook, NoSync: opts.DeferSync},
		deferSync: opts.DeferSync,
		readOnly:  opts.ReadOnly,
		pid:       os.Getpid(),
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.bootID == "" {
		if s.bootID, err = readBootID(); err != nil {
			return nil, err
		}
	} else if !validName(s.bootID) {
		return nil, fmt.Errorf("boot id %q: %w", s.bootID, ErrInvalidName)
	}
	if start, err := procStartTime(s.pid); err == nil {
		s.pidStart = start
	}
	if s.readOnly {
		return s, nil
	}

	// Parents outside our own directories (/var/lib, /run) are created 0755
	// if missing, never changed.
	for _, p := range []string{filepath.Dir(StateDir), filepath.Dir(RunDirPath)} {
		ok, err := s.r.Exists(p)
		if err != nil {
			return nil, fmt.Errorf("state: %w", err)
		}
		if !ok {
			if err := s.r.MkdirAll(p, 0o755); err != nil {
				return nil, fmt.Errorf("state: %w", err)
			}
		}
	}
	for _, d := range []struct {
		path string
		perm os.FileMode
	}{{s.state, dirPerm}, {s.run, runDirPerm}} {
		if err := s.ensureDir(d.path, d.perm); err != nil {
			return nil, err
		}
	}
	for _, sub := range []string{"data", "instances", "sem", "records", "boots"} {
		if err := s.ensureDir(filepath.Join(s.state, sub), dirPerm); err != nil {
			return nil, err
		}
	}
	s.sweepTemps()
	return s, nil
}

func newRoot(root string) (*sys.Root, error) {
	if root == "" {
		return nil, errors.New("state: root prefix is empty")
	}
	r, err := sys.NewRoot(root)
	if err != nil {
		return nil, fmt.Errorf("state: %w", err)
	}
	return r, nil
}

// resolve is the real path of host path p, resolved under the root by
// sys.Root (symlinks followed as in a chroot, never out of the root).
func (s *Store) resolve(p string) (string, error) {
	full, err := s.r.Path(p)
	if err != nil {
		return "", fmt.Errorf("state: %w", err)
	}
	return full, nil
}

// resolveParent resolves p's directory but not its last component, for
// operations that act on the name itself: rename, remove, atomic replace.
func (s *Store) resolveParent(p string) (string, error) {
	dir, err := s.resolve(filepath.Dir(p))
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, filepath.Base(p)), nil
}

// lexical is the real path of host path p without resolving symlinks, for
// accessors and messages.
func (s *Store) lexical(p string) string { return filepath.Join(s.root, p) }

// sweepTemps removes, best effort, what crashed writes left in the state tree.
func (s *Store) sweepTemps() {
	cutoff := s.now().Add(-staleTempAge)
	dir, err := s.resolve(s.state)
	if err != nil {
		return
	}
	// WalkDir does not descend into symlinks: only the tree itself is swept.
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			atomicfile.RemoveStaleTemps(p, cutoff)
		}
		return nil
	})
}

// Root is the absolute, symlink-free root prefix.
func (s *Store) Root() string { return s.root }

// Dir is the state directory: Root + /var/lib/ec2init.
func (s *Store) Dir() string { return s.lexical(s.state) }

// RunDir is the runtime directory: Root + /run/ec2init.
func (s *Store) RunDir() string { return s.lexical(s.run) }

// BootID is the boot id the store works with.
func (s *Store) BootID() string { return s.bootID }

// Path maps a host path ("/var/log/ec2init.log"; a relative one is taken
// from "/") to the real path under the root. It is lexical: a path whose
// ".." components climb above "/" is refused with ErrEscapesRoot, as is a NUL
// byte; symlinks are not resolved.
func (s *Store) Path(hostPath string) (string, error) {
	if strings.IndexByte(hostPath, 0) >= 0 {
		return "", fmt.Errorf("path %q: contains a NUL byte", hostPath)
	}
	var comps []string
	for _, c := range strings.Split(hostPath, "/") {
		switch c {
		case "", ".":
		case "..":
			if len(comps) == 0 {
				return "", fmt.Errorf("path %q: %w", hostPath, ErrEscapesRoot)
			}
			comps = comps[:len(comps)-1]
		default:
			comps = append(comps, c)
		}
	}
	return filepath.Join(append([]string{s.root}, comps...)...), nil
}

// validName reports whether s can be a file name component: a module name,
// an instance id, a boot id. Letters, digits and "-_.:@+", not starting with
// a dot, at most 200 bytes.
func validName(s string) bool {
	if s == "" || len(s) > 200 || s[0] == '.' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("-_.:@+", c) >= 0:
		default:
			return false
		}
	}
	return true
}

func checkName(kind, s string) error {
	if !validName(s) {
		return fmt.Errorf("%s %q: %w", kind, s, ErrInvalidName)
	}
	return nil
}

// ensureDir creates directory p (a host path) with perm, or sets perm on it
// if it exists with another mode. A new directory is made durable in its
// parent.
func (s *Store) ensureDir(p string, perm os.FileMode) error {
	if s.readOnly {
		return ErrReadOnly
	}
	if m, ok := s.ensured.Load(p); ok && m.(os.FileMode) == perm {
		return nil
	}
	if err := s.makeDir(p, perm); err != nil {
		return err
	}
	s.ensured.Store(p, perm)
	return nil
}

func (s *Store) makeDir(p string, perm os.FileMode) error {
	full, err := s.resolve(p)
	if err != nil {
		return err
	}
	_, statErr := os.Lstat(full)
	if err := s.r.MkdirAll(p, perm); err != nil {
		return fmt.Errorf("state: %w", err)
	}
	if errors.Is(statErr, fs.ErrNotExist) {
		if s.deferSync {
			s.dirty.Store(true)
			return nil
		}
		if err := atomicfile.SyncDir(filepath.Dir(full)); err != nil {
			return fmt.Errorf("state: %w", err)
		}
	}
	return nil
}

// Sync makes durable every write of a DeferSync store since the last
// Sync, with one syncfs of the state's filesystem (which also holds what
// the boot wrote beside it, in /var/lib and /etc on most images). A no-op
// when nothing was written, and for a store that syncs each write.
func (s *Store) Sync() error {
	if !s.deferSync || !s.dirty.Swap(false) {
		return nil
	}
	if err := atomicfile.SyncFS(s.lexical(s.state)); err != nil {
		s.dirty.Store(true)
		return fmt.Errorf("state: %w", err)
	}
	return nil
}

// ensureDirs creates the directories from s.state down to dir (inside it),
// each with dirPerm.
func (s *Store) ensureDirs(dir string) error {
	rel, err := filepath.Rel(s.state, dir)
	if err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
		return fmt.Errorf("state: %s is outside %s", dir, s.state)
	}
	p := s.state
	for _, c := range strings.Split(rel, "/") {
		if c == "." {
			continue
		}
		p = filepath.Join(p, c)
		if err := s.ensureDir(p, dirPerm); err != nil {
			return err
		}
	}
	return nil
}

// writeFile writes a state file atomically with mode 0600, creating its
// directories.
func (s *Store) writeFile(p string, data []byte) error {
	return s.write(p, data, true)
}

// write is writeFile; durable: a record Sync must make durable (the
// store is dirty until it does). status.json is not: it is written
// atomically like every record, and made durable by the next Sync that
// has records to flush (syncfs flushes everything), so a stage that
// recorded nothing (a reboot's config stage) ends without one.
func (s *Store) write(p string, data []byte, durable bool) error {
	if s.readOnly {
		return ErrReadOnly
	}
	if err := s.ensureDirs(filepath.Dir(p)); err != nil {
		return err
	}
	// The directory is resolved under the root; the file itself is
	// replaced, never followed (atomicfile renames over a symlink).
	full, err := s.resolveParent(p)
	if err != nil {
		return err
	}
	if s.deferSync && durable {
		s.dirty.Store(true)
	}
	return s.w.WriteFile(full, data, filePerm)
}

// writeJSON writes v as indented JSON to p. If p holds content that does
// not parse as a T, it is kept as p.corrupt-<time> rather than lost.
func writeJSON[T any](s *Store, p string, v T) error {
	return writeJSONTo(s, p, v, true)
}

// writeJSONTo is writeJSON; durable as write has it.
func writeJSONTo[T any](s *Store, p string, v T, durable bool) error {
	if s.readOnly {
		return ErrReadOnly
	}
	if err := preserveCorrupt[T](s, p); err != nil {
		return err
	}
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("state: %s: %w", s.lexical(p), err)
	}
	return s.write(p, append(data, '\n'), durable)
}

func preserveCorrupt[T any](s *Store, p string) error {
	old, err := s.r.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("state: %w", err)
	}
	var v T
	if json.Unmarshal(old, &v) == nil {
		return nil
	}
	dst := p + ".corrupt-" + s.now().UTC().Format("20060102T150405.000000000Z")
	from, err := s.resolveParent(p)
	if err != nil {
		return err
	}
	to, err := s.resolveParent(dst)
	if err != nil {
		return err
	}
	if err := os.Rename(from, to); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil // another writer preserved it
		}
		return fmt.Errorf("state: keeping corrupt %s: %w", s.lexical(p), err)
	}
	if err := s.r.Chmod(dst, filePerm); err != nil {
		return fmt.Errorf("state: %w", err)
	}
	return nil
}

// readJSON reads host path p into a T. A missing file is an error matching
// fs.ErrNotExist; one that does not parse is a *CorruptError.
func readJSON[T any](s *Store, p string) (T, error) {
	var v T
	data, err := s.r.ReadFile(p)
	if err != nil {
		return v, fmt.Errorf("state: %w", err)
	}
	if err := json.Unmarshal(data, &v); err != nil {
		var zero T
		return zero, &CorruptError{Path: s.lexical(p), Err: err}
	}
	return v, nil
}

// readText reads a one-line text file; a missing file is "".
func (s *Store) readText(p string) (string, error) {
	b, err := s.r.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("state: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}

// readDir lists the directory at host path p.
func (s *Store) readDir(p string) ([]fs.DirEntry, error) {
	full, err := s.resolve(p)
	if err != nil {
		return nil, err
	}
	entries, err := os.ReadDir(full)
	if err != nil {
		return nil, fmt.Errorf("state: %w", err)
	}
	return entries, nil
}

// removeAll removes p and all it holds; a symlink at p is removed itself,
// and os.RemoveAll never follows the ones inside.
func (s *Store) removeAll(p string) error {
	full, err := s.resolveParent(p)
	if err != nil {
		return err
	}
	if s.deferSync {
		s.dirty.Store(true)
	}
	s.ensured.Range(func(k, _ any) bool {
		if d := k.(string); d == p || strings.HasPrefix(d, p+"/") {
			s.ensured.Delete(k) // made again by the next write in it
		}
		return true
	})
	if err := os.RemoveAll(full); err != nil {
		return fmt.Errorf("state: %w", err)
	}
	return nil
}

func (s *Store) writeText(p, v string) error {
	return s.writeFile(p, []byte(v+"\n"))
}
