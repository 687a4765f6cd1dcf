package userdata

import (
	"errors"
	"fmt"

	"github.com/ec2init/ec2init/agent/bounded"
)

// Sentinel errors, for errors.Is. Every error from this package also carries the
// part and the line where that helps.
var (
	// ErrTooLarge: decompressed or decoded user data went over Options.MaxSize,
	// or there were more than Options.MaxParts parts.
	ErrTooLarge = errors.New("user data too large")
	// ErrTemplate: a jinja part cannot be rendered (a syntax error, a
	// refused include, a limit). An undefined variable is not an error: it
	// renders as cloud-init renders it, with a warning.
	ErrTemplate = errors.New("template error")
	// ErrInclude: an #include could not be resolved (bad URL, fetch failure,
	// too deep, too many).
	ErrInclude = errors.New("include failed")
)

// PartError is an error about one part. It never holds the part's body.
type PartError struct {
	Part        int    // index the part has (or would have had) in Result.Parts
	Filename    string // may be empty (an #include part without a name)
	ContentType string
	Line        int // 1-based line in the part's body; 0 if not about a line
	Err         error
}

func (e *PartError) Error() string {
	s := "user data: " + partLabel(e.Part, e.Filename, e.ContentType)
	if e.Line > 0 {
		s += fmt.Sprintf(": line %d", e.Line)
	}
	return s + ": " + e.Err.Error()
}

func (e *PartError) Unwrap() error { return e.Err }

// limitError says which limit was crossed, in the user's units.
type limitError struct {
	what  string
	limit int64
	count bool  // limit is a count, not bytes
	cause error // the *bounded.TooLargeError behind it, if any
}

func (e *limitError) Error() string {
	if e.count {
		return fmt.Sprintf("%s exceeds %d", e.what, e.limit)
	}
	return fmt.Sprintf("%s exceeds %s", e.what, formatSize(e.limit))
}

// Is matches this package's ErrTooLarge and, like every cap on expanding
// input, bounded.ErrTooLarge.
func (e *limitError) Is(target error) bool {
	return target == ErrTooLarge || target == bounded.ErrTooLarge
}

func (e *limitError) Unwrap() error { return e.cause }

// formatSize prints a limit the way people configure it: 16 MiB, not 16777216.
func formatSize(n int64) string {
	const kib, mib = 1 << 10, 1 << 20
	switch {
	case n >= mib && n%mib == 0:
		return fmt.Sprintf("%d MiB", n/mib)
	case n >= kib && n%kib == 0:
		return fmt.Sprintf("%d KiB", n/kib)
	}
	return fmt.Sprintf("%d bytes", n)
}

// budget is the decoded-bytes allowance shared by everything one Parse (and
// the Resolve after it) produces, so no input can make us hold more than MaxSize.
type budget struct {
	max, used int64
}

func (b *budget) remaining() int64 { return b.max - b.used }

func (b *budget) take(n int) error {
	if int64(n) > b.remaining() {
		return &limitError{what: "decoded user data", limit: b.max}
	}
	b.used += int64(n)
	return nil
}
