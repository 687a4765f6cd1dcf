package testkit

import (
	"os"
	"testing"
)

// RequireRoot skips the test unless it runs as root; why says what needs
// root (chown to another user, a loop device...), and is the skip message.
func RequireRoot(tb testing.TB, why string) {
	tb.Helper()
	if os.Geteuid() != 0 {
		tb.Skip(why)
	}
}
