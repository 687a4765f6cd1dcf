package sys

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/ec2init/ec2init/agent/state/atomicfile"
	"github.com/ec2init/ec2init/internal/testkit"
)

// newTestRoot returns a Root on a fresh temporary directory.
func newTestRoot(t *testing.T) *Root {
	t.Helper()
	r, err := NewRoot(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// put writes a file under the root's real prefix, bypassing Root.
func put(t *testing.T, r *Root, p, content string, perm os.FileMode) {
	t.Helper()
	full := filepath.Join(r.Prefix(), p)
	if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(full, []byte(content), perm); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(full, perm); err != nil {
		t.Fatal(err)
	}
}

func symlink(t *testing.T, r *Root, p, target string) {
	t.Helper()
	full := filepath.Join(r.Prefix(), p)
	if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, full); err != nil {
		t.Fatal(err)
	}
}

func TestNewRoot(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "f")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link")
	if err := os.Symlink(dir, link); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		prefix, want, wantErr string
	}{
		{prefix: dir, want: dir},
		{prefix: link, want: dir},
		{prefix: dir + "/./", want: dir},
		{prefix: "/", want: "/"},
		{prefix: "", wantErr: "empty"},
		{prefix: file, wantErr: "not a directory"},
		{prefix: filepath.Join(dir, "missing"), wantErr: "no such file"},
	} {
		r, err := NewRoot(tc.prefix)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("NewRoot(%q) error = %v, want one containing %q", tc.prefix, err, tc.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("NewRoot(%q): %v", tc.prefix, err)
			continue
		}
		if r.Prefix() != tc.want {
			t.Errorf("NewRoot(%q).Prefix() = %q, want %q", tc.prefix, r.Prefix(), tc.want)
		}
	}
}

func TestPath(t *testing.T) {
	r := newTestRoot(t)
	outside := t.TempDir() // a host directory next to the root, never to be reached
	put(t, r, "/etc/passwd", "root:x:0:0::/root:/bin/sh\n", 0o644)
	put(t, r, "/a/b/file", "x", 0o644)
	symlink(t, r, "/abs-etc", "/etc")                        // absolute: the root's /etc
	symlink(t, r, "/abs-outside", outside)                   // absolute host path: read inside the root
	symlink(t, r, "/a/rel-etc", "../etc")                    // relative, stays inside
	symlink(t, r, "/a/climb", "../../../../../../../../etc") // relative, climbs out
	symlink(t, r, "/a/b/up2", "../..")                       // relative, lands on the root itself
	symlink(t, r, "/a/b/up3", "../../..")                    // one level too far
	symlink(t, r, "/var/run", "/run")                        // as on every distribution
	symlink(t, r, "/loop1", "loop2")
	symlink(t, r, "/loop2", "/loop1")
	symlink(t, r, "/chain", "abs-etc/passwd")
	symlink(t, r, "/a/dangle", "nope/../../etc") // dangling on the way, lands inside
	p := r.Prefix()

	for _, tc := range []struct {
		in, want string
		escape   bool   // wantErr wraps ErrEscapesRoot
		wantErr  string // substring of the error
	}{
		{in: "/", want: p},
		{in: "/etc/passwd", want: p + "/etc/passwd"},
		{in: "/etc//./passwd", want: p + "/etc/passwd"},
		{in: "/a/b/../b/file", want: p + "/a/b/file"},
		{in: "/not/yet/there", want: p + "/not/yet/there"},
		{in: "/a/nope/../b/file", want: p + "/a/b/file"}, // past a missing component, ".." is lexical
		{in: "/a/dangle/passwd", want: p + "/etc/passwd"},
		{in: "/abs-etc/passwd", want: p + "/etc/passwd"},
		{in: "/abs-etc", want: p + "/etc"},
		{in: "/abs-outside/secret", want: p + outside + "/secret"},
		{in: "/a/rel-etc/passwd", want: p + "/etc/passwd"},
		{in: "/a/b/up2/etc/passwd", want: p + "/etc/passwd"},
		{in: "/var/run/ec2init/status.json", want: p + "/run/ec2init/status.json"},
		{in: "/chain", want: p + "/etc/passwd"},
		{in: "/a/b/file/below", want: p + "/a/b/file/below"}, // ENOTDIR is the operation's to report
		{in: "/../etc/passwd", escape: true, wantErr: `"/../etc/passwd"`},
		{in: "/etc/../../etc/passwd", escape: true, wantErr: `"/etc/../../etc/passwd"`},
		{in: "/a/climb/passwd", escape: true, wantErr: `"/a/climb/passwd"`},
		{in: "/a/climb", escape: true, wantErr: `"/a/climb"`},
		{in: "/a/b/up3/etc", escape: true, wantErr: "outside the root"},
		{in: "/loop1", wantErr: "too many levels"},
		{in: "etc/passwd", wantErr: `"etc/passwd": not an absolute path`},
		{in: "", wantErr: "not an absolute path"},
		{in: "/etc/pass\x00wd", wantErr: "NUL"},
	} {
		got, err := r.Path(tc.in)
		if tc.wantErr != "" {
			if err == nil {
				t.Errorf("Path(%q) = %q, want an error", tc.in, got)
				continue
			}
			if !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("Path(%q) error = %q, want it to contain %q", tc.in, err, tc.wantErr)
			}
			if errors.Is(err, ErrEscapesRoot) != tc.escape {
				t.Errorf("Path(%q) error = %v; errors.Is(ErrEscapesRoot) = %v, want %v", tc.in, err, !tc.escape, tc.escape)
			}
			continue
		}
		if err != nil {
			t.Errorf("Path(%q): %v", tc.in, err)
			continue
		}
		if got != tc.want {
			t.Errorf("Path(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// On the host root, ".." past "/" in a symlink stops at "/" as the kernel's
// does: there is nothing to escape to.
func TestPathHostRootClampsSymlinks(t *testing.T) {
	dir := t.TempDir()
	link := filepath.Join(dir, "up")
	depth := strings.Count(dir, "/")
	if err := os.Symlink(strings.Repeat("../", depth+3)+strings.TrimPrefix(dir, "/"), link); err != nil {
		t.Fatal(err)
	}
	r, err := NewRoot("/")
	if err != nil {
		t.Fatal(err)
	}
	realDir, _ := filepath.EvalSymlinks(dir)
	got, err := r.Path(link + "/x")
	if err != nil {
		t.Fatal(err)
	}
	if got != filepath.Join(realDir, "x") {
		t.Errorf("Path = %q, want %q", got, filepath.Join(realDir, "x"))
	}
	if _, err := r.Path("/../etc"); !errors.Is(err, ErrEscapesRoot) {
		t.Errorf(`Path("/../etc") error = %v, want ErrEscapesRoot`, err)
	}
}

// Writes through symlinks land inside the root, never on the host.
func TestWriteThroughSymlinksStaysInside(t *testing.T) {
	r := newTestRoot(t)
	outside := t.TempDir()
	symlink(t, r, "/abs-outside", outside)
	symlink(t, r, "/climb", "../../../../../../../../.."+outside)

	if err := r.WriteFile("/abs-outside/f", []byte("in"), 0o644, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(outside, "f")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("file appeared outside the root (stat error %v)", err)
	}
	if b, err := os.ReadFile(filepath.Join(r.Prefix(), outside, "f")); err != nil || string(b) != "in" {
		t.Errorf("file inside the root: %q, %v", b, err)
	}

	for name, op := range map[string]func() error{
		"WriteFile":  func() error { return r.WriteFile("/climb/g", []byte("x"), 0o644, nil) },
		"AppendFile": func() error { return r.AppendFile("/climb/g", []byte("x"), 0o644) },
		"MkdirAll":   func() error { return r.MkdirAll("/climb/d", 0o755) },
		"OpenLog": func() error {
			f, err := r.OpenLog("/climb/log")
			if f != nil {
				f.Close()
			}
			return err
		},
		"ReadFile": func() error { _, err := r.ReadFile("/climb/g"); return err },
		"Remove":   func() error { return r.Remove("/climb/g") },
		"Stat":     func() error { _, err := r.Stat("/climb/g"); return err },
		"Exists":   func() error { _, err := r.Exists("/climb/g"); return err },
	} {
		err := op()
		if !errors.Is(err, ErrEscapesRoot) || !strings.Contains(err.Error(), "/climb/") {
			t.Errorf("%s through a climbing symlink: error = %v, want ErrEscapesRoot naming the path", name, err)
		}
	}
	entries, _ := os.ReadDir(outside)
	if len(entries) != 0 {
		t.Errorf("the directory outside the root was touched: %v", entries)
	}
}

func mode(t *testing.T, full string) os.FileMode {
	t.Helper()
	fi, err := os.Lstat(full)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode() & (fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky)
}

func listDir(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

func TestWriteFile(t *testing.T) {
	for _, tc := range []struct {
		name    string
		perm    os.FileMode
		want    os.FileMode // 0: perm
		prior   string      // existing content, "" for none
		content string
	}{
		{name: "new, private", perm: 0o600, content: "secret"},
		{name: "new, wider than the umask allows", perm: 0o666, content: "open"},
		{name: "new, executable", perm: 0o700, content: "#!/bin/sh\n"},
		{name: "setgid as Go spells it", perm: os.ModeSetgid | 0o755, content: "x"},
		{name: "setuid as octal", perm: 0o4755, want: os.ModeSetuid | 0o755, content: "x"},
		{name: "replace, narrower", perm: 0o640, prior: "old", content: "new"},
		{name: "replace with empty", perm: 0o644, prior: "old", content: ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newTestRoot(t)
			if tc.prior != "" {
				put(t, r, "/etc/app/conf", tc.prior, 0o644)
			}
			if err := r.WriteFile("/etc/app/conf", []byte(tc.content), tc.perm, nil); err != nil {
				t.Fatal(err)
			}
			full := filepath.Join(r.Prefix(), "etc/app/conf")
			b, err := os.ReadFile(full)
			if err != nil || string(b) != tc.content {
				t.Errorf("content = %q, %v; want %q", b, err, tc.content)
			}
			want := tc.want
			if want == 0 {
				want = tc.perm
			}
			if got := mode(t, full); got != want {
				t.Errorf("mode = %v, want %v", got, want)
			}
			if tc.prior == "" {
				if got := mode(t, filepath.Dir(full)); got != 0o755 {
					t.Errorf("created parent mode = %04o, want 0755", got)
				}
			}
			if names := listDir(t, filepath.Dir(full)); len(names) != 1 {
				t.Errorf("directory holds %v, want only conf", names)
			}
		})
	}
}

func TestWriteFileFailureKeepsOldContent(t *testing.T) {
	r := newTestRoot(t)
	put(t, r, "/etc/hosts", "old content\n", 0o644)
	r.writeHook = func(point string) error {
		if point == atomicfile.BeforeRename {
			return errors.New("injected failure")
		}
		return nil
	}
	err := r.WriteFile("/etc/hosts", []byte("new content\n"), 0o600, nil)
	if err == nil || !strings.Contains(err.Error(), "/etc/hosts") || !strings.Contains(err.Error(), "injected") {
		t.Fatalf("WriteFile error = %v, want the injected failure naming /etc/hosts", err)
	}
	dir := filepath.Join(r.Prefix(), "etc")
	if b, _ := os.ReadFile(filepath.Join(dir, "hosts")); string(b) != "old content\n" {
		t.Errorf("content after a failed write = %q, want the old one", b)
	}
	if got := mode(t, filepath.Join(dir, "hosts")); got != 0o644 {
		t.Errorf("mode after a failed write = %04o, want 0644", got)
	}
	if names := listDir(t, dir); len(names) != 1 {
		t.Errorf("directory holds %v after a failed write, want only hosts", names)
	}
}

func TestWriteFileReadOnlyDir(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root ignores directory permissions")
	}
	r := newTestRoot(t)
	put(t, r, "/etc/hosts", "old", 0o644)
	dir := filepath.Join(r.Prefix(), "etc")
	if err := os.Chmod(dir, 0o555); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod(dir, 0o755) })
	if err := r.WriteFile("/etc/hosts", []byte("new"), 0o644, nil); err == nil {
		t.Fatal("WriteFile into a read-only directory succeeded")
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "hosts")); string(b) != "old" {
		t.Errorf("content = %q, want the old one", b)
	}
	if names := listDir(t, dir); len(names) != 1 {
		t.Errorf("directory holds %v, want only hosts", names)
	}
}

func TestWriteFileEdgeCases(t *testing.T) {
	r := newTestRoot(t)
	if err := os.MkdirAll(filepath.Join(r.Prefix(), "etc/dir"), 0o755); err != nil {
		t.Fatal(err)
	}
	long := "/etc/" + strings.Repeat("n", 250)
	if err := r.WriteFile(long, []byte("x"), 0o644, nil); err != nil {
		t.Errorf("WriteFile with a 250-byte name: %v", err)
	}
	if _, err := (&Root{}).ReadFile("/etc/hosts"); err == nil {
		t.Error("a zero Root resolved a path")
	}
	if err := r.WriteFile("/etc/dir", []byte("x"), 0o644, nil); err == nil || !strings.Contains(err.Error(), "is a directory") {
		t.Errorf("WriteFile onto a directory: error = %v", err)
	}

	// A symlink at the target: its target is replaced, the link stays.
	put(t, r, "/run/systemd/resolve/stub-resolv.conf", "old", 0o644)
	symlink(t, r, "/etc/resolv.conf", "/run/systemd/resolve/stub-resolv.conf")
	if err := r.WriteFile("/etc/resolv.conf", []byte("nameserver 169.254.169.253\n"), 0o644, nil); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Lstat(filepath.Join(r.Prefix(), "etc/resolv.conf")); err != nil || fi.Mode()&fs.ModeSymlink == 0 {
		t.Errorf("the symlink was replaced: %v, %v", fi, err)
	}
	if b, _ := r.ReadFile("/etc/resolv.conf"); !strings.HasPrefix(string(b), "nameserver") {
		t.Errorf("content through the link = %q", b)
	}
}

func TestWriteFileOwner(t *testing.T) {
	testkit.RequireRoot(t, "chown needs root")
	r := newTestRoot(t)
	if err := r.WriteFile("/home/ec2-user/.ssh/authorized_keys", []byte("ssh-ed25519 AAAA\n"), 0o600, &Owner{UID: 1000, GID: 1001}); err != nil {
		t.Fatal(err)
	}
	fi, err := r.Stat("/home/ec2-user/.ssh/authorized_keys")
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	if st.Uid != 1000 || st.Gid != 1001 {
		t.Errorf("owner = %d:%d, want 1000:1001", st.Uid, st.Gid)
	}
	// -1 leaves that id alone.
	if err := r.WriteFile("/etc/x", nil, 0o644, &Owner{UID: 1000, GID: -1}); err != nil {
		t.Fatal(err)
	}
	fi, _ = r.Stat("/etc/x")
	if st := fi.Sys().(*syscall.Stat_t); st.Uid != 1000 || int(st.Gid) != os.Getegid() {
		t.Errorf("owner = %d:%d, want 1000:%d", st.Uid, st.Gid, os.Getegid())
	}
}

func TestMkdirAll(t *testing.T) {
	r := newTestRoot(t)
	if err := r.MkdirAll("/var/lib/ec2init", 0o700); err != nil {
		t.Fatal(err)
	}
	p := r.Prefix()
	if got := mode(t, p+"/var/lib/ec2init"); got != 0o700 {
		t.Errorf("mode = %04o, want 0700", got)
	}
	if got := mode(t, p+"/var/lib"); got != 0o755 {
		t.Errorf("parent mode = %04o, want 0755", got)
	}
	// An existing directory gets the mode asked for.
	if err := os.Chmod(p+"/var/lib/ec2init", 0o777); err != nil {
		t.Fatal(err)
	}
	if err := r.MkdirAll("/var/lib/ec2init", 0o700); err != nil {
		t.Fatal(err)
	}
	if got := mode(t, p+"/var/lib/ec2init"); got != 0o700 {
		t.Errorf("mode of an existing dir = %04o, want 0700", got)
	}
	if err := r.MkdirAll("/tmp", 0o1777); err != nil {
		t.Fatal(err)
	}
	if got := mode(t, p+"/tmp"); got != os.ModeSticky|0o777 {
		t.Errorf("sticky mode = %v, want dtrwxrwxrwx", got)
	}
	put(t, r, "/etc/file", "", 0o644)
	if err := r.MkdirAll("/etc/file", 0o755); err == nil || !strings.Contains(err.Error(), "/etc/file") {
		t.Errorf("MkdirAll over a file: error = %v, want one naming /etc/file", err)
	}
}

func TestAppendFile(t *testing.T) {
	r := newTestRoot(t)
	for _, s := range []string{"one\n", "two\n"} {
		if err := r.AppendFile("/etc/profile.d/ec2.sh", []byte(s), 0o640); err != nil {
			t.Fatal(err)
		}
	}
	if b, _ := r.ReadFile("/etc/profile.d/ec2.sh"); string(b) != "one\ntwo\n" {
		t.Errorf("content = %q", b)
	}
	if got := mode(t, r.Prefix()+"/etc/profile.d/ec2.sh"); got != 0o640 {
		t.Errorf("mode = %04o, want 0640", got)
	}
	put(t, r, "/etc/hosts", "127.0.0.1 localhost\n", 0o644)
	if err := r.AppendFile("/etc/hosts", []byte("10.0.0.5 db\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got := mode(t, r.Prefix()+"/etc/hosts"); got != 0o644 {
		t.Errorf("an existing file's mode changed to %04o", got)
	}
}

func TestOpenLog(t *testing.T) {
	for _, tc := range []struct {
		name  string
		prior os.FileMode // 0: no existing file
		want  os.FileMode
	}{
		{name: "new", want: 0o600},
		{name: "world readable", prior: 0o644, want: 0o600},
		{name: "group writable", prior: 0o620, want: 0o600},
		{name: "already 0600", prior: 0o600, want: 0o600},
		{name: "narrower stays", prior: 0o400, want: 0o400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newTestRoot(t)
			if tc.prior != 0 {
				put(t, r, "/var/log/ec2init-output.log", "before\n", tc.prior)
			}
			if tc.prior == 0o400 {
				testkit.RequireRoot(t, "opening a 0400 file for writing needs root")
			}
			f, err := r.OpenLog("/var/log/ec2init-output.log")
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.WriteString("after\n"); err != nil {
				t.Fatal(err)
			}
			f.Close()
			full := r.Prefix() + "/var/log/ec2init-output.log"
			if got := mode(t, full); got != tc.want {
				t.Errorf("mode = %04o, want %04o", got, tc.want)
			}
			want := "after\n"
			if tc.prior != 0 {
				want = "before\nafter\n"
			}
			if b, _ := os.ReadFile(full); string(b) != want {
				t.Errorf("content = %q, want %q (append)", b, want)
			}
		})
	}
}

func TestRemoveStatExists(t *testing.T) {
	r := newTestRoot(t)
	put(t, r, "/etc/target", "keep", 0o644)
	symlink(t, r, "/etc/link", "/etc/target")
	if ok, err := r.Exists("/etc/link"); !ok || err != nil {
		t.Errorf("Exists(link) = %v, %v", ok, err)
	}
	if err := r.Remove("/etc/link"); err != nil {
		t.Fatal(err)
	}
	if ok, _ := r.Exists("/etc/link"); ok {
		t.Error("the link survived Remove")
	}
	if b, _ := r.ReadFile("/etc/target"); string(b) != "keep" {
		t.Error("Remove of a link touched its target")
	}
	if err := r.Remove("/etc/never-was"); err != nil {
		t.Errorf("Remove of a missing file: %v", err)
	}
	if err := r.Remove("/"); err == nil {
		t.Error("Remove(/) succeeded")
	}
	if ok, err := r.Exists("/etc/never-was"); ok || err != nil {
		t.Errorf("Exists(missing) = %v, %v; want false, nil", ok, err)
	}
	if _, err := r.Stat("/etc/never-was"); !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "/etc/never-was") {
		t.Errorf("Stat(missing) error = %v", err)
	}
	if _, err := r.ReadFile("/etc/never-was"); !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "/etc/never-was") {
		t.Errorf("ReadFile(missing) error = %v", err)
	}
}

func TestRotateLog(t *testing.T) {
	dir := t.TempDir()
	r, err := NewRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.RotateLog("/var/log/x.log", 10); err != nil {
		t.Fatalf("missing log: %v", err)
	}
	if err := r.AppendFile("/var/log/x.log", []byte("0123456789"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := r.RotateLog("/var/log/x.log", 10); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "var/log/x.log")); err != nil {
		t.Errorf("a log at the limit was rotated: %v", err)
	}
	if err := r.AppendFile("/var/log/x.log", []byte("!"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := r.RotateLog("/var/log/x.log", 10); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "var/log/x.log.1")); err != nil || string(b) != "0123456789!" {
		t.Errorf("rotated: %q %v", b, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "var/log/x.log")); !os.IsNotExist(err) {
		t.Errorf("log still there after rotation: %v", err)
	}
}

// hostileHome makes, under a fresh root, /etc/shadow (root's, 0640) and
// /home/ec2-user owned by uid 1000 as a user's home is, and returns the root
// and shadow's real path.
func hostileHome(t *testing.T) (*Root, string) {
	t.Helper()
	testkit.RequireRoot(t, "a directory owned by another user needs root")
	r := newTestRoot(t)
	put(t, r, "/etc/shadow", "root:$6$secret:19000::::::\n", 0o640)
	testkit.UserDir(t, filepath.Join(r.Prefix(), "home/ec2-user"), 0o700)
	testkit.StickyDir(t, filepath.Join(r.Prefix(), "tmp"))
	return r, filepath.Join(r.Prefix(), "etc/shadow")
}

// plant makes the symlink p -> target owned by uid 1000, as the user would.
func plant(t *testing.T, r *Root, p, target string) {
	t.Helper()
	testkit.Plant(t, filepath.Join(r.Prefix(), p), target)
}

// A symlink in a directory another user owns, or in a world-writable one
// like /tmp, is refused by every Root method, whatever it points at; the
// file it points at keeps its content, mode and owner.
func TestPlantedSymlinksRefused(t *testing.T) {
	r, shadow := hostileHome(t)
	plant(t, r, "/home/ec2-user/app.conf", "/etc/shadow")                  // absolute, read inside the root
	plant(t, r, "/home/ec2-user/rel.conf", "../../etc/shadow")             // relative, stays inside
	plant(t, r, "/home/ec2-user/climb.conf", "../../../../../../../../..") // relative, climbs out of the root
	plant(t, r, "/home/ec2-user/conf", "/etc")                             // a symlinked parent
	plant(t, r, "/tmp/app.conf", "/etc/shadow")                            // sticky, world-writable
	before := testkit.FileState(t, shadow)
	owner := &Owner{UID: 1000, GID: 1000}

	for _, tc := range []struct {
		path, link, why string
	}{
		{"/home/ec2-user/app.conf", "/home/ec2-user/app.conf", "owned by uid 1000"},
		{"/home/ec2-user/rel.conf", "/home/ec2-user/rel.conf", "owned by uid 1000"},
		{"/home/ec2-user/climb.conf/etc/shadow", "/home/ec2-user/climb.conf", "owned by uid 1000"},
		{"/home/ec2-user/conf/shadow", "/home/ec2-user/conf", "owned by uid 1000"},
		{"/home/ec2-user/conf/new/x", "/home/ec2-user/conf", "owned by uid 1000"},
		{"/tmp/app.conf", "/tmp/app.conf", "writable by others (mode 1777, gid 0)"},
	} {
		for name, op := range map[string]func() error{
			"WriteFile":       func() error { return r.WriteFile(tc.path, []byte("pwned\n"), 0o644, owner) },
			"AppendFile":      func() error { return r.AppendFile(tc.path, []byte("pwned\n"), 0o644) },
			"AppendFileOwned": func() error { return r.AppendFileOwned(tc.path, []byte("pwned\n"), 0o644, *owner) },
			"MkdirAll":        func() error { return r.MkdirAll(tc.path, 0o777) },
			"MkdirAllOwned":   func() error { return r.MkdirAllOwned(tc.path, 0o777, *owner) },
			"Chown":           func() error { return r.Chown(tc.path, *owner) },
			"Chmod":           func() error { return r.Chmod(tc.path, 0o666) },
			"ReadFile":        func() error { _, err := r.ReadFile(tc.path); return err },
			"Stat":            func() error { _, err := r.Stat(tc.path); return err },
			"Path":            func() error { _, err := r.Path(tc.path); return err },
			"OpenLog": func() error {
				f, err := r.OpenLog(tc.path)
				if f != nil {
					f.Close()
				}
				return err
			},
		} {
			err := op()
			want := tc.link + " is a symlink in a directory " + tc.why + "; refusing to follow it"
			if !errors.Is(err, ErrUntrustedSymlink) || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), tc.path) {
				t.Errorf("%s(%s): error = %v, want ErrUntrustedSymlink naming the path and %q", name, tc.path, err, want)
			}
			if after := testkit.FileState(t, shadow); after != before {
				t.Fatalf("%s(%s) changed /etc/shadow: %s, was %s", name, tc.path, after, before)
			}
		}
	}
	// Remove takes the link itself, never its target: that stays allowed.
	if err := r.Remove("/home/ec2-user/app.conf"); err != nil {
		t.Errorf("Remove of a planted link: %v", err)
	}
	if entries := listDir(t, filepath.Join(r.Prefix(), "etc")); len(entries) != 1 {
		t.Errorf("/etc holds %v, want only shadow", entries)
	}
}

// Symlinks the image made in root's own directories keep working: the
// alternatives system, /var/run -> /run, a root-owned directory group-owned
// by root and group-writable.
func TestTrustedSymlinksFollowed(t *testing.T) {
	testkit.RequireRoot(t, "ownership checks need root")
	r := newTestRoot(t)
	put(t, r, "/usr/share/app/app.conf", "old\n", 0o644)
	symlink(t, r, "/etc/alternatives/app.conf", "/usr/share/app/app.conf")
	symlink(t, r, "/etc/app.conf", "/etc/alternatives/app.conf")
	symlink(t, r, "/var/run", "/run")
	symlink(t, r, "/lib", "usr/lib")
	if err := os.MkdirAll(filepath.Join(r.Prefix(), "srv/shared"), 0o775); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(r.Prefix(), "srv/shared"), 0o775); err != nil {
		t.Fatal(err)
	}
	symlink(t, r, "/srv/shared/cur", "/usr/share/app")

	if err := r.WriteFile("/etc/app.conf", []byte("new\n"), 0o644, nil); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(r.Prefix(), "usr/share/app/app.conf")); string(b) != "new\n" {
		t.Errorf("write through /etc/alternatives: target holds %q", b)
	}
	if err := r.AppendFile("/srv/shared/cur/app.conf", []byte("more\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := r.WriteFile("/var/run/ec2init/status.json", []byte("{}"), 0o644, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(r.Prefix(), "run/ec2init/status.json")); err != nil {
		t.Errorf("write through /var/run: %v", err)
	}
	if err := r.MkdirAll("/lib/modules", 0o755); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(filepath.Join(r.Prefix(), "usr/lib/modules")); err != nil || !fi.IsDir() {
		t.Errorf("mkdir through /lib: %v", err)
	}
	if err := r.Chmod("/etc/app.conf", 0o600); err != nil {
		t.Fatal(err)
	}
	if got := mode(t, filepath.Join(r.Prefix(), "usr/share/app/app.conf")); got != 0o600 {
		t.Errorf("chmod through trusted links: mode %04o, want 0600", got)
	}
	if err := r.Chown("/etc/app.conf", Owner{UID: 1000, GID: 1000}); err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Lstat(filepath.Join(r.Prefix(), "usr/share/app/app.conf"))
	if st := fi.Sys().(*syscall.Stat_t); st.Uid != 1000 {
		t.Errorf("chown through trusted links: uid %d, want 1000", st.Uid)
	}
	if b, _ := r.ReadFile("/etc/app.conf"); string(b) != "new\nmore\n" {
		t.Errorf("content = %q", b)
	}
}

// The directory of a file is held open from the check to the rename: a
// user who swaps it for a symlink to /etc mid-write does not redirect the
// write, and the temporary file is never left in /etc.
func TestWriteFileSwappedDirectory(t *testing.T) {
	r, shadow := hostileHome(t)
	d := filepath.Join(r.Prefix(), "home/ec2-user/d")
	if err := os.Mkdir(d, 0o755); err != nil {
		t.Fatal(err)
	}
	before := testkit.FileState(t, shadow)
	r.writeHook = func(point string) error {
		if point != atomicfile.BeforeRename {
			return nil
		}
		if err := os.Rename(d, d+".moved"); err != nil {
			return err
		}
		return os.Symlink("/etc", d) // root-owned link: only the dir it sits in is the user's
	}
	err := r.WriteFile("/home/ec2-user/d/shadow", []byte("pwned\n"), 0o644, &Owner{UID: 1000, GID: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if after := testkit.FileState(t, shadow); after != before {
		t.Fatalf("/etc/shadow changed: %s, was %s", after, before)
	}
	if b, err := os.ReadFile(filepath.Join(d+".moved", "shadow")); err != nil || string(b) != "pwned\n" {
		t.Errorf("the write should land in the directory that was checked: %q, %v", b, err)
	}
	if entries := listDir(t, filepath.Join(r.Prefix(), "etc")); len(entries) != 1 {
		t.Errorf("/etc holds %v, want only shadow", entries)
	}
}

// Chown and Chmod never follow a symlink in the last component, even one
// that appears in a root-owned directory.
func TestChownChmodNoFollow(t *testing.T) {
	r, shadow := hostileHome(t)
	before := testkit.FileState(t, shadow)
	// Dangling at the walk, so it reaches the final open: the O_NOFOLLOW open.
	if err := r.Chown("/home/ec2-user/missing", Owner{UID: 1000, GID: 1000}); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Chown of a missing file: %v", err)
	}
	plant(t, r, "/home/ec2-user/link", "/etc/shadow")
	for name, op := range map[string]func() error{
		"Chown": func() error { return r.Chown("/home/ec2-user/link", Owner{UID: 1000, GID: 1000}) },
		"Chmod": func() error { return r.Chmod("/home/ec2-user/link", 0o666) },
	} {
		if err := op(); !errors.Is(err, ErrUntrustedSymlink) {
			t.Errorf("%s through a planted link: %v", name, err)
		}
	}
	if after := testkit.FileState(t, shadow); after != before {
		t.Fatalf("/etc/shadow changed: %s, was %s", after, before)
	}
}

func TestWriteFileIfChanged(t *testing.T) {
	for _, tc := range []struct {
		name      string
		prior     string // "" with fifo false: no file
		priorMode os.FileMode
		fifo      bool // a FIFO at the path instead of a file
		content   string
		perm      os.FileMode
		rewritten bool
	}{
		{name: "no file", content: "a", perm: 0o644, rewritten: true},
		{name: "same content and mode", prior: "same", priorMode: 0o644, content: "same", perm: 0o644},
		{name: "other content, same size", prior: "aaaa", priorMode: 0o644, content: "bbbb", perm: 0o644, rewritten: true},
		{name: "a longer file starting with the content", prior: "same+more", priorMode: 0o644, content: "same", perm: 0o644, rewritten: true},
		{name: "same content, other mode", prior: "secret", priorMode: 0o644, content: "secret", perm: 0o600, rewritten: true},
		{name: "a FIFO, never read", fifo: true, content: "x", perm: 0o644, rewritten: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newTestRoot(t)
			full := filepath.Join(r.Prefix(), "run/app/view")
			var before os.FileInfo
			switch {
			case tc.fifo:
				if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := syscall.Mkfifo(full, 0o644); err != nil {
					t.Fatal(err)
				}
			case tc.prior != "":
				put(t, r, "/run/app/view", tc.prior, tc.priorMode)
			}
			if tc.fifo || tc.prior != "" {
				var err error
				if before, err = os.Lstat(full); err != nil {
					t.Fatal(err)
				}
			}
			if err := r.WriteFileIfChanged("/run/app/view", []byte(tc.content), tc.perm, nil); err != nil {
				t.Fatal(err)
			}
			after, err := os.Lstat(full)
			if err != nil {
				t.Fatal(err)
			}
			if b, err := os.ReadFile(full); err != nil || string(b) != tc.content {
				t.Errorf("content = %q, %v; want %q", b, err, tc.content)
			}
			if after.Mode() != tc.perm {
				t.Errorf("mode = %v, want %v", after.Mode(), tc.perm)
			}
			if before != nil {
				if same := os.SameFile(before, after); same == tc.rewritten {
					t.Errorf("file replaced = %v, want %v", !same, tc.rewritten)
				}
			}
		})
	}
}
