package testkit

import (
	"fmt"
	"os"
	"syscall"
	"testing"
)

// UserUID and UserGID own what the hostile-user fixtures make: the first
// regular user of most distributions (ec2-user, ubuntu).
const UserUID, UserGID = 1000, 1000

// UserDir makes the host directory full (and its missing parents, with
// perm) owned by UserUID, as a user's home or a service user's /opt/<app>
// is. It needs root; call RequireRoot first.
func UserDir(tb testing.TB, full string, perm os.FileMode) {
	tb.Helper()
	if err := os.MkdirAll(full, perm); err != nil {
		tb.Fatal(err)
	}
	if err := os.Chown(full, UserUID, UserGID); err != nil {
		tb.Fatal(err)
	}
}

// StickyDir makes the host directory full mode 1777, as /tmp is.
func StickyDir(tb testing.TB, full string) {
	tb.Helper()
	if err := os.MkdirAll(full, 0o755); err != nil {
		tb.Fatal(err)
	}
	if err := os.Chmod(full, os.ModeSticky|0o777); err != nil {
		tb.Fatal(err)
	}
}

// Plant makes the host symlink full -> target owned by UserUID, as a user
// who wants ec2init to write through it would. It needs root.
func Plant(tb testing.TB, full, target string) {
	tb.Helper()
	if err := os.Symlink(target, full); err != nil {
		tb.Fatal(err)
	}
	if err := os.Lchown(full, UserUID, UserGID); err != nil {
		tb.Fatal(err)
	}
}

// FileState is the content, mode and owner of the host file full, to
// compare before and after an attack on it.
func FileState(tb testing.TB, full string) string {
	tb.Helper()
	b, err := os.ReadFile(full)
	if err != nil {
		tb.Fatal(err)
	}
	fi, err := os.Lstat(full)
	if err != nil {
		tb.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	return fmt.Sprintf("%v %d:%d %q", fi.Mode(), st.Uid, st.Gid, b)
}
