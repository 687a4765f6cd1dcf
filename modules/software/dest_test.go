package software

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ec2init/ec2init/agent/bounded"
	"github.com/ec2init/ec2init/agent/sys"
	"github.com/ec2init/ec2init/modules/modtest"
)

// plantSentinels writes the files an escaping install would replace or
// delete: system directories under the root, and a neighbour of the root
// itself (where a dest resolving to the root would stage).
func plantSentinels(t *testing.T, root *sys.Root) {
	t.Helper()
	writeHost(t, root, "/etc/important", []byte("do not touch"))
	writeHost(t, root, "/etc/app/conf", []byte("etc app conf"))
	writeHost(t, root, "/usr/bin/tool", []byte("system tool"))
	writeHost(t, root, "/srv/data/file", []byte("data"))
}

// snapshot lists the root and what is next to it.
func snapshot(t *testing.T, root *sys.Root) string {
	t.Helper()
	return strings.Join(listTree(t, filepath.Dir(root.Prefix())), "\n")
}

// A tarball dest that is a symlink, or is reached through one, is refused
// before anything is staged: the link's target (the root itself, /etc) is
// neither swapped out nor deleted, and nothing is left next to it.
func TestTarballDestThroughSymlink(t *testing.T) {
	tests := []struct {
		name string
		link string // a symlink planted under the root
		to   string
		dest string
		want string
	}{
		{name: "dest links to the root", link: "/opt/app", to: "/", dest: "/opt/app", want: `install /opt/app: is a symlink (to "/")`},
		{name: "dest links to /etc", link: "/opt/app", to: "/etc", dest: "/opt/app", want: `install /opt/app: is a symlink (to "/etc")`},
		{name: "dest links to /etc, relative", link: "/opt/app", to: "../etc", dest: "/opt/app", want: `install /opt/app: is a symlink (to "../etc")`},
		// Above the root: the kernel stops at /, sys.Root refuses the climb.
		{name: "dest links above the root, relative", link: "/opt/app", to: "../../etc", dest: "/opt/app", want: `install /opt/app: is a symlink (to "../../etc")`},
		{name: "parent links to /etc", link: "/opt", to: "/etc", dest: "/opt/app", want: `install /opt/app: /opt/app: /opt is a symlink (to "/etc")`},
		{name: "grandparent links to the root", link: "/data", to: "/", dest: "/data/etc/app", want: `/data is a symlink (to "/")`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := newEnv(t)
			plantSentinels(t, env.Root)
			full := filepath.Join(env.Root.Prefix(), tt.link)
			if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(tt.to, full); err != nil {
				t.Fatal(err)
			}
			art := writeHost(t, env.Root, "/srv/a.tgz", tarGz(t, []entry{{name: "bin/app", body: "app"}}))
			before := snapshot(t, env.Root)

			it := &Item{Name: "a", Install: Install{Type: TypeTarball, Dest: tt.dest}}
			_, err := installTarball(env.Root, it, art, false)
			if err == nil || !errors.Is(err, ErrUnsafeDest) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want ErrUnsafeDest and %q", err, tt.want)
			}
			if after := snapshot(t, env.Root); after != before {
				t.Errorf("the tree changed:\n%s\nwas:\n%s", after, before)
			}
		})
	}
}

// Through the module, the item fails with an error naming dest; the boot
// goes on and the target stays.
func TestRunRefusesSymlinkedDest(t *testing.T) {
	env := newEnv(t)
	plantSentinels(t, env.Root)
	if err := os.MkdirAll(filepath.Join(env.Root.Prefix(), "opt"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/etc", filepath.Join(env.Root.Prefix(), "opt/app")); err != nil {
		t.Fatal(err)
	}
	writeHost(t, env.Root, "/srv/a.tgz", tarGz(t, []entry{{name: "important", body: "evil"}}))
	before := snapshot(t, env.Root)
	cfg := modtest.Config(t, `software:
  items:
    - name: app
      source: file:///srv/a.tgz
      install: {type: tarball, dest: /opt/app}
`)
	m, _ := module()
	err := m.Run(context.Background(), env, cfg)
	if err == nil || !errors.Is(err, ErrUnsafeDest) || !strings.Contains(err.Error(), "install /opt/app: is a symlink") {
		t.Fatalf("err = %v, want the item refused naming /opt/app", err)
	}
	if r := readResults(t, env.Root, "i-0abc")["app"]; r.Action != ActionFailed || !strings.Contains(r.Error, "/opt/app") {
		t.Errorf("result %+v", r)
	}
	// Only the module's own records are new: nothing was changed or removed.
	after := map[string]bool{}
	for _, l := range strings.Split(snapshot(t, env.Root), "\n") {
		after[l] = true
	}
	for _, l := range strings.Split(before, "\n") {
		if !after[l] {
			t.Errorf("changed or removed: %s", l)
		}
	}
	if readHost(t, env.Root, "/etc/important") != "do not touch" {
		t.Error("/etc/important changed")
	}
}

// The root and system directories are refused as dest, at parse time and
// again at install time (for a caller that did not parse).
func TestSystemDirDest(t *testing.T) {
	for _, dest := range []string{"/", "/usr", "/etc", "/usr/local", "/var/lib", "/opt", "/home", "/usr/local/bin/"} {
		t.Run("parse "+dest, func(t *testing.T) {
			cfg := modtest.Config(t, "software:\n  items:\n    - {name: a, source: \"file:///a.tgz\", install: {type: tarball, dest: "+dest+"}}\n")
			c, _, err := Parse(cfg)
			if err != nil {
				t.Fatal(err)
			}
			if e := c.Items[0].Err; e == nil || !strings.Contains(e.Error(), "install.dest") || !strings.Contains(e.Error(), "may not be /") && !strings.Contains(e.Error(), "is a system directory") {
				t.Errorf("item error = %v", e)
			}
		})
		t.Run("install "+dest, func(t *testing.T) {
			env := newEnv(t)
			plantSentinels(t, env.Root)
			art := writeHost(t, env.Root, "/srv/a.tgz", tarGz(t, []entry{{name: "x", body: "x"}}))
			before := snapshot(t, env.Root)
			_, err := installTarball(env.Root, &Item{Install: Install{Type: TypeTarball, Dest: dest}}, art, false)
			if err == nil || !errors.Is(err, ErrUnsafeDest) {
				t.Fatalf("err = %v, want ErrUnsafeDest", err)
			}
			if after := snapshot(t, env.Root); after != before {
				t.Errorf("the tree changed:\n%s", after)
			}
		})
	}
	// Every parent of a system directory is one too: no dest can hold one.
	for d := range systemDirs {
		if p := filepath.Dir(d); !systemDirs[p] {
			t.Errorf("%s is a system directory but its parent %s is not", d, p)
		}
	}
}

// A file install does not write through a symlink at dest: the link is
// replaced by the file and its target stays. Symlinked parents resolve
// inside the root (merged /usr).
func TestFileDestSymlink(t *testing.T) {
	env := newEnv(t)
	plantSentinels(t, env.Root)
	writeHost(t, env.Root, "/etc/shadow", []byte("root:secret"))
	if err := os.MkdirAll(filepath.Join(env.Root.Prefix(), "opt"), 0o755); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(env.Root.Prefix(), "opt/app.conf")
	if err := os.Symlink("/etc/shadow", link); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("usr/bin", filepath.Join(env.Root.Prefix(), "bin")); err != nil {
		t.Fatal(err)
	}
	art := writeHost(t, env.Root, "/srv/conf", []byte("new conf"))
	if _, err := installFile(env.Root, &Item{Install: Install{Type: TypeFile, Dest: "/opt/app.conf"}}, art, "", true); err != nil {
		t.Fatal(err)
	}
	if got := readHost(t, env.Root, "/etc/shadow"); got != "root:secret" {
		t.Errorf("/etc/shadow = %q: written through the link", got)
	}
	if fi, err := os.Lstat(link); err != nil || !fi.Mode().IsRegular() {
		t.Errorf("/opt/app.conf is not the installed file: %v %v", fi, err)
	}
	if got := readHost(t, env.Root, "/opt/app.conf"); got != "new conf" {
		t.Errorf("/opt/app.conf = %q", got)
	}
	// /bin -> usr/bin: installed into the real directory, the link kept.
	if _, err := installFile(env.Root, &Item{Install: Install{Type: TypeFile, Dest: "/bin/newtool"}}, art, "", false); err != nil {
		t.Fatal(err)
	}
	if got := readHost(t, env.Root, "/usr/bin/newtool"); got != "new conf" {
		t.Errorf("/usr/bin/newtool = %q", got)
	}
	// A parent resolving to a system directory as the file's dest itself.
	if err := os.Symlink("/", filepath.Join(env.Root.Prefix(), "opt/top")); err != nil {
		t.Fatal(err)
	}
	_, err := installFile(env.Root, &Item{Install: Install{Type: TypeFile, Dest: "/opt/top/etc"}}, art, "", false)
	if err == nil || !strings.Contains(err.Error(), "install /opt/top/etc: is a directory") {
		t.Errorf("err = %v", err)
	}
}

// bombTarGz is a tar.gz of one member of size zero bytes (a few KiB
// compressed per MiB).
func bombTarGz(t *testing.T, size int64) []byte {
	t.Helper()
	var b bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&b, gzip.BestSpeed)
	tw := tar.NewWriter(zw)
	if err := tw.WriteHeader(&tar.Header{Name: "zeros", Typeflag: tar.TypeReg, Mode: 0o644, Size: size, ModTime: time.Unix(0, 0)}); err != nil {
		t.Fatal(err)
	}
	if _, err := io.CopyN(tw, zeroReader{}, size); err != nil {
		t.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	zw.Close()
	return b.Bytes()
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// assertUntouched checks dest holds the previous install only and no
// staging directory is left next to it.
func assertUntouched(t *testing.T, root *sys.Root) {
	t.Helper()
	if got := strings.Join(listTree(t, filepath.Join(root.Prefix(), "opt")), ","); got != "app/,app/v1=one" {
		t.Errorf("/opt after the refused tarball: %q", got)
	}
}

// A decompression bomb fails its item with a size error naming the cap;
// dest keeps the previous install and the staging directory is removed.
func TestTarballBomb(t *testing.T) {
	bomb := bombTarGz(t, 16<<20)
	if len(bomb) > 1<<20 {
		t.Fatalf("bomb is %d bytes compressed", len(bomb))
	}
	// A header claiming a huge member, without its data: refused before
	// any byte is written.
	var claim bytes.Buffer
	zw := gzip.NewWriter(&claim)
	tw := tar.NewWriter(zw)
	tw.WriteHeader(&tar.Header{Name: "huge", Typeflag: tar.TypeReg, Mode: 0o644, Size: 1 << 40})
	tw.Flush()
	zw.Close()
	// Members each under the cap, together over it.
	var many []entry
	for _, n := range []string{"a", "b", "c"} {
		many = append(many, entry{name: n, body: strings.Repeat(n, 400<<10)})
	}
	// Headers alone (PAX records, no file data) beyond the cap: the
	// stream itself is capped.
	var pax bytes.Buffer
	zw = gzip.NewWriter(&pax)
	tw = tar.NewWriter(zw)
	for i := range 12 {
		h := &tar.Header{Name: strings.Repeat("d", i+1) + "/", Typeflag: tar.TypeDir, Mode: 0o755, Format: tar.FormatPAX,
			PAXRecords: map[string]string{"comment": strings.Repeat("x", 100<<10)}}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
	}
	tw.Close()
	zw.Close()

	t.Run("through the module, cap from max_unpacked_size", func(t *testing.T) {
		env := newEnv(t)
		writeHost(t, env.Root, "/opt/app/v1", []byte("one"))
		writeHost(t, env.Root, "/srv/bomb.tgz", bomb)
		cfg := modtest.Config(t, `software:
  items:
    - name: bomb
      source: file:///srv/bomb.tgz
      install: {type: tarball, dest: /opt/app, max_unpacked_size: 1MiB}
`)
		m, _ := module()
		err := m.Run(context.Background(), env, cfg)
		if err == nil || !errors.Is(err, bounded.ErrTooLarge) || !strings.Contains(err.Error(), `install /opt/app: entry "zeros" of 16777216 bytes: the unpacked tarball is larger than the 1 MiB limit`) {
			t.Fatalf("err = %v", err)
		}
		assertUntouched(t, env.Root)
	})
	tests := []struct {
		name string
		art  []byte
		lim  int64
		want string
	}{
		{"one member over the cap", bomb, 1 << 20, `entry "zeros" of 16777216 bytes: the unpacked tarball is larger than the 1 MiB limit`},
		{"members together over the cap", tarGz(t, many), 1 << 20, `entry "c" of 409600 bytes: the unpacked tarball is larger than the 1 MiB limit`},
		{"headers over the cap", pax.Bytes(), 1 << 20, "the unpacked tarball is larger than the 1 MiB limit"},
		{"header claims more than the cap", claim.Bytes(), 1 << 30, `entry "huge" of 1099511627776 bytes: the unpacked tarball is larger than the 1 GiB limit`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := newEnv(t)
			writeHost(t, env.Root, "/opt/app/v1", []byte("one"))
			art := writeHost(t, env.Root, "/srv/bomb.tgz", tt.art)
			it := &Item{Install: Install{Type: TypeTarball, Dest: "/opt/app", MaxUnpackedSize: byteSize(tt.lim)}}
			_, err := installTarball(env.Root, it, art, false)
			if err == nil || !errors.Is(err, bounded.ErrTooLarge) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
			assertUntouched(t, env.Root)
		})
	}
	t.Run("too many members", func(t *testing.T) {
		dir := t.TempDir()
		st, err := os.OpenRoot(dir)
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		var es []entry
		for _, n := range []string{"a", "b", "c", "d"} {
			es = append(es, entry{name: n, body: n})
		}
		err = extract(bytes.NewReader(tarGz(t, es)), st, 0, unpackLimits{members: 3})
		if err == nil || !errors.Is(err, bounded.ErrTooLarge) || !strings.Contains(err.Error(), "more than 3 entries") {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestUnpackLimit(t *testing.T) {
	tests := []struct {
		name string
		it   Item
		want int64
	}{
		{"unpinned", Item{Source: "file:///a.tgz"}, bounded.MaxUnpacked},
		{"pinned", Item{Source: "https://x/a.tgz", SHA256: strings.Repeat("a", 64)}, 0},
		{"pinned with a cap", Item{SHA256URL: "https://x/a.sha256", Install: Install{MaxUnpackedSize: 1 << 30}}, 1 << 30},
		{"unpinned with a larger cap", Item{Install: Install{MaxUnpackedSize: 16 << 30}}, 16 << 30},
	}
	for _, tt := range tests {
		if got := unpackLimitOf(&tt.it); got != tt.want {
			t.Errorf("%s: limit %d, want %d", tt.name, got, tt.want)
		}
	}
}

func TestParseByteSize(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		err  bool
	}{
		{"4096", 4096, false},
		{"512MiB", 512 << 20, false},
		{"2 GiB", 2 << 30, false},
		{"8G", 8 << 30, false},
		{"1_000B", 1000, false},
		{"0", 0, true},
		{"-1MiB", 0, true},
		{"lots", 0, true},
		{"1.5GiB", 0, true},
		{"99999999999TiB", 0, true},
	}
	for _, tt := range tests {
		got, err := parseByteSize(tt.in)
		if got != tt.want || (err != nil) != tt.err {
			t.Errorf("parseByteSize(%q) = %d, %v", tt.in, got, err)
		}
	}
	cfg := modtest.Config(t, `software:
  items:
    - {name: a, source: "file:///a", install: {type: file, dest: /a, max_unpacked_size: 1MiB}}
    - {name: b, source: "file:///b", install: {type: tarball, dest: /opt/b, max_unpacked_size: huge}}
    - {name: c, source: "file:///c", install: {type: tarball, dest: /opt/c, max_unpacked_size: 1048576}}
`)
	c, _, err := Parse(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if e := c.Items[0].Err; e == nil || !strings.Contains(e.Error(), "install.max_unpacked_size is for type tarball") {
		t.Errorf("items[0]: %v", e)
	}
	if e := c.Items[1].Err; e == nil || !strings.Contains(e.Error(), `max_unpacked_size "huge"`) {
		t.Errorf("items[1]: %v", e)
	}
	if it := c.Items[2]; it.Err != nil || it.Install.MaxUnpackedSize != 1<<20 {
		t.Errorf("items[2]: %v %d", it.Err, it.Install.MaxUnpackedSize)
	}
}
