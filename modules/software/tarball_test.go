package software

import (
	"archive/tar"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"

	"github.com/ec2init/ec2init/agent/sys"
)

// listTree lists the entries under dir: "path" for files (with content),
// "path/" for directories, "path -> target" for links.
func listTree(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if rel == "." {
			return nil
		}
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			out = append(out, rel+" -> "+target)
		case d.IsDir():
			out = append(out, rel+"/")
		default:
			b, _ := os.ReadFile(p)
			out = append(out, rel+"="+string(b))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}

// An unsafe tarball is refused whole: nothing is written outside dest, the
// previous install stays as it was, and no staging directory is left.
func TestTarballRefusesUnsafeEntries(t *testing.T) {
	tests := []struct {
		name    string
		entries []entry
		want    string
	}{
		{name: "dot-dot entry", entries: []entry{{name: "ok"}, {name: "../outside/evil", body: "x"}}, want: `"../outside/evil" has a ".." component`},
		{name: "dot-dot inside the name", entries: []entry{{name: "a/../../outside/evil", body: "x"}}, want: `has a ".." component`},
		{name: "absolute path", entries: []entry{{name: "/outside/evil", body: "x"}}, want: `"/outside/evil" is an absolute path`},
		{name: "symlink to an absolute path", entries: []entry{{name: "etc", typ: tar.TypeSymlink, linkname: "/etc"}}, want: `symlink to the absolute path "/etc"`},
		{name: "symlink climbing out", entries: []entry{{name: "a/up", typ: tar.TypeSymlink, linkname: "../../outside"}}, want: `symlink to "../../outside" leads outside the tree`},
		{name: "write through a symlink", entries: []entry{
			{name: "d", typ: tar.TypeSymlink, linkname: "sub"},
			{name: "sub/", typ: tar.TypeDir},
			{name: "d/evil", body: "x"},
		}, want: `"d" is not a directory (a symlink?)`},
		{name: "symlink chain escaping", entries: []entry{
			{name: "here", typ: tar.TypeSymlink, linkname: "."},
			{name: "x", typ: tar.TypeSymlink, linkname: "here/.."},
		}, want: `symlink "x": leads outside the tree`},
		{name: "hard link climbing out", entries: []entry{{name: "pw", typ: tar.TypeLink, linkname: "../outside/secret"}}, want: `hard link: "../outside/secret" has a ".." component`},
		{name: "hard link to an absolute path", entries: []entry{{name: "pw", typ: tar.TypeLink, linkname: "/etc/passwd"}}, want: `hard link: "/etc/passwd" is an absolute path`},
		{name: "hard link through a symlink", entries: []entry{
			{name: "dir/", typ: tar.TypeDir},
			{name: "dir/f", body: "x"},
			{name: "l", typ: tar.TypeSymlink, linkname: "dir"},
			{name: "pw", typ: tar.TypeLink, linkname: "l/f"},
		}, want: `hard link to "l/f": "l" is not a directory extracted before it`},
		{name: "hard link to a symlink", entries: []entry{
			{name: "l", typ: tar.TypeSymlink, linkname: "f"},
			{name: "pw", typ: tar.TypeLink, linkname: "l"},
		}, want: `hard link to "l", not a file extracted before it`},
		{name: "device node", entries: []entry{{name: "dev", typ: tar.TypeChar}}, want: `type "3" (device, FIFO, sparse file) is not installed`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := newEnv(t)
			outside := filepath.Join(env.Root.Prefix(), "opt", "outside")
			if err := os.MkdirAll(outside, 0o755); err != nil {
				t.Fatal(err)
			}
			writeHost(t, env.Root, "/opt/outside/secret", []byte("secret"))
			// The previous install.
			writeHost(t, env.Root, "/opt/app/v1", []byte("one"))
			before := listTree(t, filepath.Join(env.Root.Prefix(), "opt"))

			art := writeHost(t, env.Root, "/srv/a.tgz", tarGz(t, tt.entries))
			it := &Item{Name: "a", Install: Install{Type: TypeTarball, Dest: "/opt/app"}}
			_, err := installTarball(env.Root, it, art, false)
			if err == nil || !errors.Is(err, ErrUnsafeEntry) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want ErrUnsafeEntry and %q", err, tt.want)
			}
			if after := listTree(t, filepath.Join(env.Root.Prefix(), "opt")); strings.Join(after, "\n") != strings.Join(before, "\n") {
				t.Errorf("/opt changed:\n%s\nwas:\n%s", strings.Join(after, "\n"), strings.Join(before, "\n"))
			}
		})
	}
}

func TestTarballInstall(t *testing.T) {
	entries := []entry{
		{name: "ne-1.8.2/", typ: tar.TypeDir},
		{name: "ne-1.8.2/bin/", typ: tar.TypeDir},
		{name: "ne-1.8.2/bin/ne", body: "binary", mode: 0o755},
		{name: "ne-1.8.2/LICENSE", body: "MIT"},
		{name: "ne-1.8.2/current", typ: tar.TypeSymlink, linkname: "bin/ne"},
		{name: "ne-1.8.2/lib/", typ: tar.TypeDir},
		{name: "ne-1.8.2/lib/up", typ: tar.TypeSymlink, linkname: "../LICENSE"},
		{name: "ne-1.8.2/COPYING", typ: tar.TypeLink, linkname: "ne-1.8.2/LICENSE"},
		{name: "ne-1.8.2/suid", body: "s", mode: 0o4755},
	}
	want := []string{"COPYING=MIT", "LICENSE=MIT", "bin/", "bin/ne=binary", "current -> bin/ne", "lib/", "lib/up -> ../LICENSE", "suid=s"}
	for _, comp := range []struct {
		name string
		data []byte
	}{{"gzip", tarGz(t, entries)}, {"zstd", tarZst(t, entries)}, {"plain", tarBytes(t, entries)}} {
		t.Run(comp.name, func(t *testing.T) {
			env := newEnv(t)
			writeHost(t, env.Root, "/opt/ne/old-version-file", []byte("old"))
			art := writeHost(t, env.Root, "/srv/ne", comp.data)
			it := &Item{Name: "ne", Install: Install{Type: TypeTarball, Dest: "/opt/ne", StripComponents: 1, Mode: 0o750}}
			p, err := installTarball(env.Root, it, art, true)
			if err != nil {
				t.Fatal(err)
			}
			dest := filepath.Join(env.Root.Prefix(), "opt/ne")
			if got := listTree(t, dest); strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Errorf("tree:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
			// The whole tree was switched: no trace of the old one or of
			// the staging directory next to it.
			if names := listTree(t, filepath.Join(env.Root.Prefix(), "opt")); len(names) != len(want)+1 {
				t.Errorf("/opt holds more than the new tree: %q", names)
			}
			for f, mode := range map[string]os.FileMode{".": 0o750, "bin/ne": 0o755, "LICENSE": 0o644, "suid": 0o755} {
				fi, err := os.Lstat(filepath.Join(dest, f))
				if err != nil || fi.Mode()&(fs.ModePerm|fs.ModeSetuid) != mode {
					t.Errorf("%s: mode %v, want %v (%v)", f, fi.Mode(), mode, err)
				}
			}
			if a, b := inode(t, filepath.Join(dest, "LICENSE")), inode(t, filepath.Join(dest, "COPYING")); a != b {
				t.Error("COPYING is not a hard link of LICENSE")
			}
			if p.Kind != KindTree || p.Files != 4 || p.Size != int64(len("binary")+3+3+1) || len(p.SHA256) != 64 || len(p.StatSHA256) != 64 {
				t.Errorf("installed path record: %+v", p)
			}
		})
	}
}

func inode(t *testing.T, p string) uint64 {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t).Ino
}

func TestTarballNotATarball(t *testing.T) {
	env := newEnv(t)
	writeHost(t, env.Root, "/opt/app/v1", []byte("one"))
	art := writeHost(t, env.Root, "/srv/a", []byte("<html>not found</html>"))
	_, err := installTarball(env.Root, &Item{Install: Install{Type: TypeTarball, Dest: "/opt/app"}}, art, false)
	if err == nil || !strings.Contains(err.Error(), "not a tarball") {
		t.Fatalf("err = %v", err)
	}
	if readHost(t, env.Root, "/opt/app/v1") != "one" {
		t.Error("previous install changed")
	}
	// A truncated archive fails too, and leaves the old tree.
	data := tarGz(t, []entry{{name: "big", body: strings.Repeat("x", 1<<16)}})
	art = writeHost(t, env.Root, "/srv/b", data[:len(data)/2])
	_, err = installTarball(env.Root, &Item{Install: Install{Type: TypeTarball, Dest: "/opt/app"}}, art, false)
	if err == nil {
		t.Fatal("truncated tarball installed")
	}
	if got := listTree(t, filepath.Join(env.Root.Prefix(), "opt")); strings.Join(got, ",") != "app/,app/v1=one" {
		t.Errorf("/opt after a truncated tarball: %q", got)
	}
}

// The switch without RENAME_EXCHANGE, and the recovery after a crash
// between its two renames.
func TestSwitchAndRecover(t *testing.T) {
	dir := t.TempDir()
	old := filepath.Join(dir, ".app"+oldMark+"abc")
	stale := filepath.Join(dir, ".app"+stagingMark+"def")
	for _, d := range []string{old, stale} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(filepath.Join(old, "v1"), []byte("one"), 0o644)
	// A crash left dest missing, the old tree aside and a staging dir.
	if err := recoverSwitch(testDest(t, dir, "app")); err != nil {
		t.Fatal(err)
	}
	if got := listTree(t, dir); strings.Join(got, ",") != "app/,app/v1=one" {
		t.Fatalf("after recovery: %q", got)
	}
	// A first install (nothing at dest) is a plain rename.
	staging := filepath.Join(dir, "new")
	os.MkdirAll(staging, 0o755)
	os.WriteFile(filepath.Join(staging, "v2"), []byte("two"), 0o644)
	if err := switchDirs(testDest(t, dir, "other"), "new"); err != nil {
		t.Fatal(err)
	}
	if got := listTree(t, dir); strings.Join(got, ",") != "app/,app/v1=one,other/,other/v2=two" {
		t.Fatalf("after first install: %q", got)
	}
}

func TestSwitchWithoutExchange(t *testing.T) {
	tests := []struct {
		name     string
		exchange func(dirfd int, a, b string) error
	}{
		{"renameat2 exchange", exchange},
		{"no exchange on this filesystem", func(int, string, string) error { return syscall.EINVAL }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			full, staging := filepath.Join(dir, "app"), filepath.Join(dir, ".app"+stagingMark+"x")
			os.MkdirAll(full, 0o755)
			os.WriteFile(filepath.Join(full, "v1"), []byte("one"), 0o644)
			os.MkdirAll(staging, 0o755)
			os.WriteFile(filepath.Join(staging, "v2"), []byte("two"), 0o644)
			if err := switchDirsWith(testDest(t, dir, "app"), filepath.Base(staging), tt.exchange); err != nil {
				t.Fatal(err)
			}
			if got := listTree(t, dir); strings.Join(got, ",") != "app/,app/v2=two" {
				t.Errorf("after the switch: %q", got)
			}
		})
	}
	// The second rename failing puts the old tree back.
	dir := t.TempDir()
	full := filepath.Join(dir, "app")
	os.MkdirAll(full, 0o755)
	os.WriteFile(filepath.Join(full, "v1"), []byte("one"), 0o644)
	err := switchDirsWith(testDest(t, dir, "app"), "missing-staging", func(int, string, string) error { return syscall.ENOSYS })
	if err == nil {
		t.Fatal("switch from a missing staging directory succeeded")
	}
	if got := listTree(t, dir); strings.Join(got, ",") != "app/,app/v1=one" {
		t.Errorf("after a failed switch: %q", got)
	}
}

// testDest is dest /base under a root at dir, for the switch helpers.
func testDest(t *testing.T, dir, base string) *destDir {
	t.Helper()
	root, err := sys.NewRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	d, err := openDest(root, "/"+base, false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Close)
	return d
}

func TestEntryPath(t *testing.T) {
	tests := []struct {
		name  string
		strip int
		rel   string
		skip  bool
		err   bool
	}{
		{"a/b/c", 0, "a/b/c", false, false},
		{"./a/b/", 1, "b", false, false},
		{"a/", 1, "", true, false},
		{"a/b", 2, "", true, false},
		{"a//./b", 0, "a/b", false, false},
		{"../a", 0, "", false, true},
		{"a/../../b", 5, "", false, true},
		{"/etc/passwd", 0, "", false, true},
	}
	for _, tt := range tests {
		rel, skip, err := entryPath(tt.name, tt.strip)
		if rel != tt.rel || skip != tt.skip || (err != nil) != tt.err {
			t.Errorf("entryPath(%q, %d) = %q, %v, %v", tt.name, tt.strip, rel, skip, err)
		}
	}
}

// Links the extraction wrote are checked whoever may write their
// directory (an 0777 one of the archive's), and a dangling one that
// stays inside the tree is installed as it is.
func TestTarballLinksInside(t *testing.T) {
	env := newEnv(t)
	art := writeHost(t, env.Root, "/srv/a.tgz", tarGz(t, []entry{
		{name: "shared/", typ: tar.TypeDir, mode: 0o777},
		{name: "shared/f", body: "x"},
		{name: "shared/l", typ: tar.TypeSymlink, linkname: "f"},
		{name: "d/", typ: tar.TypeDir},
		{name: "d/dangle", typ: tar.TypeSymlink, linkname: "nope/../../x"},
	}))
	it := &Item{Name: "a", Install: Install{Type: TypeTarball, Dest: "/opt/app"}}
	if _, err := installTarball(env.Root, it, art, false); err != nil {
		t.Fatal(err)
	}
	if got, err := os.Readlink(filepath.Join(env.Root.Prefix(), "opt/app/d/dangle")); err != nil || got != "nope/../../x" {
		t.Errorf("dangling link: %q %v", got, err)
	}
}
