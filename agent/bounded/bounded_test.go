package bounded

import (
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"strings"
	"testing"
)

func gz(t *testing.T, data []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestReader(t *testing.T) {
	for _, tc := range []struct {
		name    string
		size    int
		limit   int64
		wantErr bool
	}{
		{"empty", 0, 10, false},
		{"under", 9, 10, false},
		{"exactly the limit", 10, 10, false},
		{"one over", 11, 10, true},
		{"far over", 1 << 20, 10, true},
		{"zero limit, empty", 0, 0, false},
		{"zero limit, one byte", 1, 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := NewReader(bytes.NewReader(make([]byte, tc.size)), tc.limit, "thing")
			out, err := io.ReadAll(r)
			if tc.wantErr {
				var tl *TooLargeError
				if !errors.As(err, &tl) || !errors.Is(err, ErrTooLarge) {
					t.Fatalf("err = %v, want a TooLargeError", err)
				}
				if int64(len(out)) > tc.limit {
					t.Errorf("returned %d bytes past the limit %d", len(out), tc.limit)
				}
				if !strings.Contains(err.Error(), "thing") {
					t.Errorf("error %q does not name the content", err)
				}
				return
			}
			if err != nil || len(out) != tc.size {
				t.Fatalf("got %d bytes, %v; want %d", len(out), err, tc.size)
			}
		})
	}
}

func TestGunzipBomb(t *testing.T) {
	// 64 MiB of zeros compresses to about 64 KiB: a bomb against a 1 MiB cap.
	bomb := gz(t, make([]byte, 64<<20))
	_, err := Gunzip(bomb, 1<<20, "write_files[0] content")
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("err = %v, want ErrTooLarge", err)
	}
	if want := "write_files[0] content after gzip is larger than the 1 MiB limit"; err.Error() != want {
		t.Errorf("error = %q, want %q", err, want)
	}
	out, err := Gunzip(gz(t, []byte("hello")), 5, "x")
	if err != nil || string(out) != "hello" {
		t.Fatalf("Gunzip = %q, %v", out, err)
	}
	if _, err := Gunzip([]byte("not gzip"), 10, "part 1"); err == nil || !strings.Contains(err.Error(), "part 1: gzip") {
		t.Errorf("corrupt input: err = %v", err)
	}
}

func TestSize(t *testing.T) {
	for n, want := range map[int64]string{
		512: "512 bytes", 1 << 10: "1 KiB", 128 << 20: "128 MiB", 8 << 30: "8 GiB", 1536 << 10: "1.5 MiB",
	} {
		if got := Size(n); got != want {
			t.Errorf("Size(%d) = %q, want %q", n, got, want)
		}
	}
}
