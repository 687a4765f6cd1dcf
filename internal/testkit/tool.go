package testkit

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FakeTool writes script as the executable dir/name and returns its path.
// The script is the whole file, "#!" line included: a fake without one
// would fail with ENOEXEC far from the mistake, so FakeTool fails the test
// at once instead.
func FakeTool(tb testing.TB, dir, name, script string) string {
	tb.Helper()
	if !strings.HasPrefix(script, "#!") {
		tb.Fatalf("fake %s: script has no #! line", name)
	}
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(script), 0o755); err != nil {
		tb.Fatal(err)
	}
	return p
}

// FakeBin makes a fresh directory holding one fake tool per entry of
// tools (name to script, as FakeTool takes them) and returns it, to put
// first in a runner's PATH.
func FakeBin(tb testing.TB, tools map[string]string) string {
	tb.Helper()
	dir := tb.TempDir()
	for name, script := range tools {
		FakeTool(tb, dir, name, script)
	}
	return dir
}
