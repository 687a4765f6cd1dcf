package writefiles

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ec2init/ec2init/agent/sys"
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
