// Package bounded is the one place expanding input is capped: every
// decompression (and every decode whose output can outgrow its input) reads
// through a Reader, so a small hostile document cannot make the root boot
// write gigabytes or exhaust memory. Exceeding a cap is a *TooLargeError
// naming what was being read and the cap, never a silent truncation.
package bounded

import (
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
)

// The documented caps.
const (
	// MaxInMemory caps one decompression held in memory: a write_files
	// item's content, an #include body, a user-data part. Real user data
	// is at most 16 KiB raw on EC2; 128 MiB leaves room for large files
	// written from an #include while bounding a gzip bomb (1000:1) to a
	// clear error.
	MaxInMemory int64 = 128 << 20
	// MaxUnpacked caps what an archive whose bytes are not pinned by a
	// checksum or signature may expand to on disk (a software artifact,
	// all its members together). A pinned artifact is trusted to be what
	// its publisher meant, so only this cap's configurable override applies.
	MaxUnpacked int64 = 8 << 30
)

// ErrTooLarge is matched (errors.Is) by every *TooLargeError.
var ErrTooLarge = errors.New("size limit exceeded")

// TooLargeError says what outgrew which cap.
type TooLargeError struct {
	What  string // e.g. "write_files[2] content after gzip"
	Limit int64
}

func (e *TooLargeError) Error() string {
	return fmt.Sprintf("%s is larger than the %s limit", e.What, Size(e.Limit))
}

// Is makes errors.Is(err, ErrTooLarge) true.
func (e *TooLargeError) Is(target error) bool { return target == ErrTooLarge }

// Size formats n bytes the way the caps are documented ("128 MiB").
func Size(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d bytes", n)
	}
	units := []string{"KiB", "MiB", "GiB", "TiB"}
	v, i := float64(n)/unit, 0
	for v >= unit && i < len(units)-1 {
		v /= unit
		i++
	}
	if v == float64(int64(v)) {
		return fmt.Sprintf("%d %s", int64(v), units[i])
	}
	return fmt.Sprintf("%.1f %s", v, units[i])
}

// Reader reads at most Limit bytes from R; the read that would go past it
// fails with a *TooLargeError (the bytes before it are returned first, so
// callers that stream must discard what they wrote on error).
type Reader struct {
	R     io.Reader
	Limit int64
	What  string
	n     int64
}

// NewReader caps r at limit bytes; what names the content in the error.
func NewReader(r io.Reader, limit int64, what string) *Reader {
	return &Reader{R: r, Limit: limit, What: what}
}

func (l *Reader) Read(p []byte) (int, error) {
	if l.n > l.Limit {
		return 0, &TooLargeError{What: l.What, Limit: l.Limit}
	}
	// Read one byte past the limit, so content of exactly Limit bytes
	// passes and Limit+1 fails.
	if max := l.Limit + 1 - l.n; int64(len(p)) > max {
		p = p[:max]
	}
	n, err := l.R.Read(p)
	l.n += int64(n)
	if l.n > l.Limit {
		over := int(l.n - l.Limit)
		return n - over, &TooLargeError{What: l.What, Limit: l.Limit}
	}
	return n, err
}

// Count is how many bytes have been read so far.
func (l *Reader) Count() int64 { return min(l.n, l.Limit) }

// ReadAll reads r to its end, at most limit bytes.
func ReadAll(r io.Reader, limit int64, what string) ([]byte, error) {
	return io.ReadAll(NewReader(r, limit, what))
}

// Gunzip decompresses data, at most limit bytes of output.
func Gunzip(data []byte, limit int64, what string) ([]byte, error) {
	zr, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("%s: gzip: %w", what, err)
	}
	defer zr.Close()
	out, err := ReadAll(zr, limit, what+" after gzip")
	if err != nil {
		var tl *TooLargeError
		if errors.As(err, &tl) {
			return nil, err
		}
		return nil, fmt.Errorf("%s: gzip: %w", what, err)
	}
	return out, nil
}
