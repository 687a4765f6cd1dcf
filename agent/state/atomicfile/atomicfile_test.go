package atomicfile

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// temps returns the temporary files left in dir.
func temps(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		if IsTemp(e.Name()) {
			out = append(out, e.Name())
		}
	}
	return out
}

func TestWriteFile(t *testing.T) {
	tests := []struct {
		name  string
		umask int
		old   string // existing content; "" for none
		perm  os.FileMode
	}{
		{name: "new file, umask 022", umask: 0o022, perm: 0o600},
		{name: "new file, umask 077, wider perm", umask: 0o077, perm: 0o644},
		{name: "new file, umask 0", umask: 0, perm: 0o600},
		{name: "replace", umask: 0o022, old: "old", perm: 0o640},
		{name: "setgid bit", umask: 0o022, perm: os.ModeSetgid | 0o750},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			old := syscall.Umask(tt.umask)
			defer syscall.Umask(old)
			dir := t.TempDir()
			p := filepath.Join(dir, "f.json")
			if tt.old != "" {
				if err := os.WriteFile(p, []byte(tt.old), 0o666); err != nil {
					t.Fatal(err)
				}
			}
			if err := WriteFileAtomic(p, []byte("new"), tt.perm); err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(p)
			if err != nil || string(got) != "new" {
				t.Fatalf("content = %q, %v", got, err)
			}
			fi, err := os.Stat(p)
			if err != nil {
				t.Fatal(err)
			}
			if want := tt.perm; fi.Mode()&allowedMode != want {
				t.Errorf("mode = %v, want %v", fi.Mode()&allowedMode, want)
			}
			if left := temps(t, dir); len(left) != 0 {
				t.Errorf("temporary files left: %v", left)
			}
		})
	}
}

func TestWriteFileReplacesSymlink(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "target")
	if err := os.WriteFile(target, []byte("keep"), 0o600); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	if err := WriteFileAtomic(link, []byte("new"), 0o600); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(target); string(b) != "keep" {
		t.Errorf("symlink target changed to %q", b)
	}
	fi, err := os.Lstat(link)
	if err != nil {
		t.Fatal(err)
	}
	if !fi.Mode().IsRegular() {
		t.Errorf("link is %v, want a regular file", fi.Mode())
	}
}

func TestWriteFileErrors(t *testing.T) {
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "sub"), 0o700); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		path string
		perm os.FileMode
		want string
	}{
		{name: "target is a directory", path: filepath.Join(dir, "sub"), perm: 0o600, want: "is a directory"},
		{name: "missing directory", path: filepath.Join(dir, "nope", "f"), perm: 0o600, want: "no such file"},
		{name: "mode with type bits", path: filepath.Join(dir, "f"), perm: os.ModeDir | 0o700, want: "only permission"},
		{name: "trailing slash", path: dir + "/", perm: 0o600, want: "not a file name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := WriteFileAtomic(tt.path, []byte("x"), tt.perm)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tt.want)
			}
			if left := temps(t, dir); len(left) != 0 {
				t.Errorf("temporary files left: %v", left)
			}
		})
	}
}

func TestHookAbort(t *testing.T) {
	errAbort := errors.New("abort")
	for _, point := range Points() {
		t.Run(point, func(t *testing.T) {
			dir := t.TempDir()
			p := filepath.Join(dir, "status.json")
			if err := os.WriteFile(p, []byte("old"), 0o600); err != nil {
				t.Fatal(err)
			}
			var seen []string
			w := Writer{Hook: func(pt string) error {
				seen = append(seen, pt)
				if pt == point {
					return errAbort
				}
				return nil
			}}
			err := w.WriteFile(p, []byte("new"), 0o600)
			if !errors.Is(err, errAbort) {
				t.Fatalf("err = %v, want the hook's error", err)
			}
			if !strings.Contains(err.Error(), point) || !strings.Contains(err.Error(), p) {
				t.Errorf("err %q should name the point and the path", err)
			}
			all := Points()
			if want := all[:slices.Index(all, point)+1]; !slices.Equal(seen, want) {
				t.Errorf("hook saw %v, want %v", seen, want)
			}
			want := "old"
			if point == BeforeDirSync {
				want = "new" // already renamed
			}
			if b, _ := os.ReadFile(p); string(b) != want {
				t.Errorf("content = %q, want %q", b, want)
			}
			if left := temps(t, dir); len(left) != 0 {
				t.Errorf("temporary files left: %v", left)
			}
		})
	}
}

func TestHookSeesEveryPoint(t *testing.T) {
	var seen []string
	w := Writer{Hook: func(pt string) error { seen = append(seen, pt); return nil }}
	if err := w.WriteFile(filepath.Join(t.TempDir(), "f"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(seen, Points()) {
		t.Errorf("hook saw %v, want %v", seen, Points())
	}
}

func TestLongName(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, strings.Repeat("n", 250))
	if err := WriteFileAtomic(p, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestIsTemp(t *testing.T) {
	tests := []struct {
		name string
		want bool
	}{
		{".status.json.tmp-0123456789abcdef", true},
		{".x.tmp-0123456789abcdef", true},
		{"status.json.tmp-0123456789abcdef", false},  // no leading dot
		{".status.json.tmp-0123456789ABCDEF", false}, // we write lower case
		{".status.json.tmp-0123456789abcde", false},  // short
		{".status.json.tmp-0123456789abcdeg", false}, // not hex
		{".tmp-0123456789abcdef", false},             // no base
		{"status.json", false},
		{"", false},
	}
	for _, tt := range tests {
		if got := IsTemp(tt.name); got != tt.want {
			t.Errorf("IsTemp(%q) = %v, want %v", tt.name, got, tt.want)
		}
	}
	// And what createTempAt makes is recognised.
	dir, err := os.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer dir.Close()
	fd, name, err := createTempAt(int(dir.Fd()), "status.json")
	if err != nil {
		t.Fatal(err)
	}
	os.NewFile(uintptr(fd), name).Close()
	if !IsTemp(filepath.Base(name)) {
		t.Errorf("IsTemp(%q) = false for a temporary file", name)
	}
}

func TestRemoveStaleTemps(t *testing.T) {
	dir := t.TempDir()
	mk := func(name string, age time.Duration) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
		mt := time.Now().Add(-age)
		if err := os.Chtimes(p, mt, mt); err != nil {
			t.Fatal(err)
		}
		return p
	}
	stale := mk(".a.json.tmp-00000000000000aa", time.Hour)
	fresh := mk(".b.json.tmp-00000000000000bb", 0)
	keep := mk("a.json", time.Hour)
	if err := os.Mkdir(filepath.Join(dir, ".d.tmp-00000000000000cc"), 0o700); err != nil {
		t.Fatal(err)
	}
	removed, err := RemoveStaleTemps(dir, time.Now().Add(-time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(removed, []string{stale}) {
		t.Errorf("removed %v, want [%s]", removed, stale)
	}
	for _, p := range []string{fresh, keep, filepath.Join(dir, ".d.tmp-00000000000000cc")} {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("%s: %v", p, err)
		}
	}
}

func BenchmarkWriteFileAtomic(b *testing.B) {
	for _, size := range []int{1 << 10, 64 << 10} {
		b.Run(strconv.Itoa(size>>10)+"KiB", func(b *testing.B) {
			p := filepath.Join(b.TempDir(), "status.json")
			data := []byte(strings.Repeat("x", size))
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for b.Loop() {
				if err := WriteFileAtomic(p, data, 0o600); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
