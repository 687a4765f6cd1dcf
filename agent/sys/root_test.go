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
	if os.Geteuid() != 0 {
		t.Skip("chown needs root")
	}
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
			if tc.prior == 0o400 && os.Geteuid() != 0 {
				t.Skip("opening a 0400 file for writing needs root")
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
