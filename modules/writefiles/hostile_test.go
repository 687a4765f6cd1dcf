package writefiles

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ec2init/ec2init/agent/bounded"
	"github.com/ec2init/ec2init/agent/sys"
	"github.com/ec2init/ec2init/internal/testkit"
	"github.com/ec2init/ec2init/modules"
	"github.com/ec2init/ec2init/modules/modtest"
)

// snapshot records every entry under dir: path, mode and content.
func snapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		entry := fi.Mode().String()
		if fi.Mode().IsRegular() {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			entry += " " + string(b)
		}
		out[p] = entry
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestNothingWrittenOutsideRoot plants symlinks in the root that point out
// of it, absolutely (taken inside the root, as in a chroot) and by climbing
// "..", and gives write_files paths that climb with "..": nothing outside
// the root changes, whatever the item (write, append, parents, deferred).
func TestNothingWrittenOutsideRoot(t *testing.T) {
	e := newEnv(t)
	outside := t.TempDir() // a directory of the host, outside the root
	if err := os.WriteFile(filepath.Join(outside, "victim"), []byte("host data\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	climb := strings.Repeat("../", 30) + strings.TrimPrefix(outside, "/")
	for link, target := range map[string]string{
		"abs-link":      outside,                   // absolute: read as the root's own <outside>
		"abs-file-link": outside + "/victim",       // the same, on the final component
		"climb":         climb,                     // relative, climbs out of the root
		"climb-file":    climb + "/victim",         // the same, on the final component
		"up":            "../../../../../../../..", // a directory link that lands above the root
	} {
		if err := os.Symlink(target, filepath.Join(e.Root.Prefix(), link)); err != nil {
			t.Fatal(err)
		}
	}
	before := snapshot(t, outside)

	cfg := modtest.Config(t, fmt.Sprintf(`write_files:
- {path: "/../../../..%[2]s/dotdot", content: a, owner: "%[1]s"}
- {path: "var/../../../..%[2]s/relative", content: b, owner: "%[1]s"}
- {path: /abs-link/through, content: c, owner: "%[1]s"}
- {path: /abs-file-link, content: d, owner: "%[1]s"}
- {path: /climb/through, content: e, owner: "%[1]s"}
- {path: /climb-file, content: f, owner: "%[1]s", permissions: '0777'}
- {path: /abs-link/new/dir/deep, content: g, owner: "%[1]s"}
- {path: /abs-file-link, content: h, append: true, owner: "%[1]s"}
- {path: /climb-file, content: i, append: true, owner: "%[1]s"}
- {path: /up/etc/passwd, content: j, owner: "%[1]s"}
- {path: /abs-link/deferred, content: k, defer: true, owner: "%[1]s"}
- {path: /climb/deferred, content: l, defer: true, owner: "%[1]s"}
`, self(), outside))
	err := WriteFiles{}.Run(context.Background(), e, cfg)
	if err == nil {
		t.Fatal("items through climbing symlinks were not refused")
	}
	deferredErr := WriteFilesDeferred{}.Run(context.Background(), e, cfg)

	if after := snapshot(t, outside); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Fatalf("the host outside the root changed:\nbefore %v\nafter  %v", before, after)
	}
	// Refused: every path that resolves above the root, named by item.
	for _, tt := range []struct {
		err  error
		item string
	}{
		{err, "write_files[4] /climb/through"},
		{err, "write_files[5] /climb-file"},
		{err, "write_files[8] /climb-file"},
		{err, "write_files[9] /up/etc/passwd"},
		{deferredErr, "write_files[11] /climb/deferred"},
	} {
		if tt.err == nil || !strings.Contains(tt.err.Error(), tt.item+": ") || !errors.Is(tt.err, sys.ErrEscapesRoot) {
			t.Errorf("error %v: want %s refused with ErrEscapesRoot", tt.err, tt.item)
		}
	}
	// Written, inside the root: ".." stops at the root's "/", and an
	// absolute symlink target is the root's own path.
	in := func(p string) string { return filepath.Join(e.Root.Prefix(), p) }
	for p, want := range map[string]string{
		in(outside + "/dotdot"):        "a",
		in(outside + "/relative"):      "b",
		in(outside + "/through"):       "c",
		in(outside + "/victim"):        "dh",
		in(outside + "/new/dir/deep"):  "g",
		in(outside + "/deferred"):      "k",
		filepath.Join(outside, "none"): "",
	} {
		b, err := os.ReadFile(p)
		switch {
		case want == "" && !errors.Is(err, fs.ErrNotExist):
			t.Errorf("%s: %q %v, want no file", p, b, err)
		case want != "" && string(b) != want:
			t.Errorf("%s: %q %v, want %q", p, b, err, want)
		}
	}
}

// userDir makes the directory p under the root owned by uid 1000, as a
// user's home or a service user's /opt/<app> is.
func userDir(t *testing.T, e *modules.Env, p string) {
	t.Helper()
	testkit.UserDir(t, filepath.Join(e.Root.Prefix(), p), 0o755)
}

// plant makes the symlink p -> target owned by uid 1000.
func plant(t *testing.T, e *modules.Env, p, target string) {
	t.Helper()
	testkit.Plant(t, filepath.Join(e.Root.Prefix(), p), target)
}

// A user who plants a symlink in a directory they own (or in /tmp) cannot
// make write_files write, append to or chown the file it points at: each
// such item fails naming its path, /etc/shadow keeps its bytes, mode and
// owner. A deferred item is checked when it is written, after the user
// exists; a root-owned symlink is still followed.
func TestPlantedSymlinksNotFollowed(t *testing.T) {
	testkit.RequireRoot(t, "directories owned by another user need root")
	e := newEnv(t)
	prefix := e.Root.Prefix()
	if err := e.Root.WriteFile("/etc/shadow", []byte("root:$6$secret:19000::::::\n"), 0o640, nil); err != nil {
		t.Fatal(err)
	}
	shadow := filepath.Join(prefix, "etc/shadow")
	userDir(t, e, "/home/ec2-user")
	userDir(t, e, "/opt/app")
	testkit.StickyDir(t, filepath.Join(prefix, "tmp"))
	plant(t, e, "/home/ec2-user/app.conf", "/etc/shadow")
	plant(t, e, "/home/ec2-user/rel.conf", "../../../../../../../../etc/shadow") // climbs out of the root
	plant(t, e, "/home/ec2-user/conf", "/etc")
	plant(t, e, "/opt/app/settings", "../../etc/shadow")
	plant(t, e, "/tmp/app.conf", "/etc/shadow")
	// Root's own link, as the alternatives system makes them: followed.
	if err := os.MkdirAll(filepath.Join(prefix, "etc/alternatives"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/usr/share/app/app.conf", filepath.Join(prefix, "etc/alternatives/app.conf")); err != nil {
		t.Fatal(err)
	}
	before := testkit.FileState(t, shadow)

	cfg := modtest.Config(t, `write_files:
- {path: /home/ec2-user/app.conf, content: "pwned\n", owner: "1000:1000", permissions: '0666'}
- {path: /home/ec2-user/rel.conf, content: "pwned\n", owner: "1000:1000"}
- {path: /home/ec2-user/conf/shadow, content: "pwned\n", owner: "1000:1000"}
- {path: /home/ec2-user/conf/sub/x, content: "pwned\n", owner: "1000:1000"}
- {path: /opt/app/settings, content: "pwned\n", owner: "1000:1000"}
- {path: /tmp/app.conf, content: "pwned\n", owner: "1000:1000"}
- {path: /home/ec2-user/app.conf, content: "pwned\n", append: true, owner: "1000:1000"}
- {path: /home/later/app.conf, content: "pwned\n", defer: true, owner: "1000:1000"}
- {path: /etc/alternatives/app.conf, content: "real\n"}
- {path: /home/ec2-user/plain.conf, content: "mine\n", owner: "1000:1000"}
`)
	err := WriteFiles{}.Run(context.Background(), e, cfg)
	// The user "is created" between the stages and plants a link in the
	// home it now owns: the deferred pass must check at write time.
	userDir(t, e, "/home/later")
	plant(t, e, "/home/later/app.conf", "/etc/shadow")
	deferredErr := WriteFilesDeferred{}.Run(context.Background(), e, cfg)

	if after := testkit.FileState(t, shadow); after != before {
		t.Fatalf("/etc/shadow changed: %s, was %s", after, before)
	}
	for _, tt := range []struct {
		err        error
		item, link string
	}{
		{err, "write_files[0] /home/ec2-user/app.conf", "/home/ec2-user/app.conf"},
		{err, "write_files[1] /home/ec2-user/rel.conf", "/home/ec2-user/rel.conf"},
		{err, "write_files[2] /home/ec2-user/conf/shadow", "/home/ec2-user/conf"},
		{err, "write_files[3] /home/ec2-user/conf/sub/x", "/home/ec2-user/conf"},
		{err, "write_files[4] /opt/app/settings", "/opt/app/settings"},
		{err, "write_files[5] /tmp/app.conf", "/tmp/app.conf"},
		{err, "write_files[6] /home/ec2-user/app.conf", "/home/ec2-user/app.conf"},
		{deferredErr, "write_files[7] /home/later/app.conf", "/home/later/app.conf"},
	} {
		if tt.err == nil || !strings.Contains(tt.err.Error(), tt.item+": ") ||
			!strings.Contains(tt.err.Error(), tt.link+" is a symlink in a directory") ||
			!errors.Is(tt.err, sys.ErrUntrustedSymlink) {
			t.Errorf("error %v: want %s refused, naming %s", tt.err, tt.item, tt.link)
		}
	}
	if entries, _ := os.ReadDir(filepath.Join(prefix, "etc")); len(entries) != 2 {
		t.Errorf("/etc holds %d entries, want shadow and alternatives only (no sub, no temporary file)", len(entries))
	}
	for p, want := range map[string]string{
		"/usr/share/app/app.conf":   "real\n",
		"/home/ec2-user/plain.conf": "mine\n",
	} {
		if b, err := os.ReadFile(filepath.Join(prefix, p)); err != nil || string(b) != want {
			t.Errorf("%s: %q, %v; want %q", p, b, err, want)
		}
	}
}

// A gz+b64 item that inflates past bounded.MaxInMemory fails naming the
// item, and nothing of it is written; the other items are.
func TestGzipBombRefused(t *testing.T) {
	if testing.Short() {
		t.Skip("inflates 128 MiB to find the bomb (a second or two, more under -race)")
	}
	// 200 MiB of zeros as 200 identical gzip members (a gzip reader reads
	// concatenated members as one stream): about 200 KiB, built in
	// milliseconds instead of compressing 200 MiB.
	var member bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&member, gzip.BestCompression)
	zw.Write(make([]byte, 1<<20))
	zw.Close()
	bomb := bytes.Repeat(member.Bytes(), 200)
	e := newEnv(t)
	cfg := modtest.Config(t, fmt.Sprintf(`write_files:
- {path: /etc/ok, content: fine}
- {path: /etc/small, encoding: gz+b64, content: %q}
- {path: /etc/bomb, encoding: gz+b64, content: %q}
`, base64.StdEncoding.EncodeToString(gz("small")), base64.StdEncoding.EncodeToString(bomb)))
	err := WriteFiles{}.Run(context.Background(), e, cfg)
	if err == nil || !errors.Is(err, bounded.ErrTooLarge) ||
		!strings.Contains(err.Error(), "write_files[2] /etc/bomb: ") || !strings.Contains(err.Error(), "128 MiB") {
		t.Fatalf("error = %v, want write_files[2] /etc/bomb refused at the 128 MiB cap", err)
	}
	if _, err := os.Lstat(filepath.Join(e.Root.Prefix(), "etc/bomb")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("/etc/bomb exists (stat error %v), want nothing written", err)
	}
	if names, _ := os.ReadDir(filepath.Join(e.Root.Prefix(), "etc")); len(names) != 2 {
		t.Errorf("/etc holds %v, want ok and small only", names)
	}
}
