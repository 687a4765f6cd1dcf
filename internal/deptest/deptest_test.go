// Package deptest holds the dependency test: the layers of issue #12 and
// docs/architecture.md, checked on the imports of every non-test Go file
// of the module, so a crossed layer fails `go test ./...`.
package deptest

import (
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
)

const module = "github.com/ec2init/ec2init"

// violation returns why pkg importing imp crosses a layer, or "" when it
// does not. Both are module-relative paths ("agent/fetch", "modules/ntp");
// imports from outside the module are never a violation.
func violation(pkg, imp string) string {
	top := func(p, dir string) (string, bool) { // "modules/ntp/x" -> "ntp"
		rest, ok := strings.CutPrefix(p, dir+"/")
		if !ok {
			return "", false
		}
		name, _, _ := strings.Cut(rest, "/")
		return name, true
	}
	impModule, impIsModule := top(imp, "modules")
	switch {
	case imp == "modules/all" && !(pkg == "cmd" || strings.HasPrefix(pkg, "cmd/")):
		return "only cmd/... wires modules/all"
	case strings.HasPrefix(pkg, "agent/") && (imp == "modules" || impIsModule):
		return "agent/* libraries import no modules package"
	case pkg == "agent" && impIsModule:
		return "the root agent package imports modules but no concrete module (its caller passes the registry)"
	}
	if !impIsModule || impModule == "internal" {
		return ""
	}
	// imp is a concrete module (or a test helper beside them).
	if own, ok := top(pkg, "modules"); ok && own != "all" && own != impModule {
		if own == "internal" {
			return "modules/internal/* imports no module"
		}
		return "a module imports no sibling module (share code through modules/internal/...)"
	}
	return ""
}

// imports maps each package of the module (module-relative) to the
// imports of its non-test files within the module.
func imports(t *testing.T, root string) map[string][]string {
	t.Helper()
	fset := token.NewFileSet()
	out := map[string][]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() {
			if p != root && (strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_") || name == "testdata" || name == "vendor") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, p, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, filepath.Dir(p))
		if err != nil {
			return err
		}
		pkg := filepath.ToSlash(rel)
		for _, s := range f.Imports {
			imp, err := strconv.Unquote(s.Path.Value)
			if err != nil {
				return err
			}
			if imp == module || strings.HasPrefix(imp, module+"/") {
				out[pkg] = append(out[pkg], strings.TrimPrefix(strings.TrimPrefix(imp, module), "/"))
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// moduleRoot is the directory holding go.mod, above this package's.
func moduleRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("go.mod not found above the test's directory")
		}
		dir = parent
	}
}

// TestLayers fails when a non-test file crosses a layer.
func TestLayers(t *testing.T) {
	all := imports(t, moduleRoot(t))
	if len(all["agent"]) == 0 || len(all["modules/all"]) == 0 {
		t.Fatalf("the walk found no imports of agent or modules/all: %v", all)
	}
	pkgs := make([]string, 0, len(all))
	for p := range all {
		pkgs = append(pkgs, p)
	}
	sort.Strings(pkgs)
	for _, pkg := range pkgs {
		for _, imp := range all[pkg] {
			if why := violation(pkg, imp); why != "" {
				t.Errorf("%s imports %s: %s", path.Join(module, pkg), path.Join(module, imp), why)
			}
		}
	}
}

// TestViolation is the test of the test: each forbidden import is caught,
// and the allowed ones are not.
func TestViolation(t *testing.T) {
	tests := []struct {
		pkg, imp string
		bad      bool
	}{
		// forbidden
		{"agent/fetch", "modules", true},
		{"agent/config", "modules/all", true},
		{"agent/state", "modules/ntp", true},
		{"agent", "modules/all", true},
		{"agent", "modules/ntp", true},
		{"agent", "modules/internal/distro", true},
		{"modules/ssh", "modules/users", true},
		{"modules/software", "modules/packages/sub", true},
		{"modules/internal/pkgmgr", "modules/packages", true},
		{"modules/ntp", "modules/all", true},
		{"internal/backoff", "modules/all", true},
		// allowed
		{"agent", "modules", false},
		{"agent", "agent/fetch", false},
		{"cmd/ec2init", "modules/all", false},
		{"cmd/ec2init", "modules/software", false},
		{"modules/all", "modules/ntp", false},
		{"modules/ntp", "modules", false},
		{"modules/ntp", "modules/internal/distro", false},
		{"modules/internal/disk/disktest", "modules/internal/disk", false},
		{"modules/disksetup", "agent/sys", false},
		{"modules/software/sub", "modules/software", false},
	}
	for _, tt := range tests {
		if why := violation(tt.pkg, tt.imp); (why != "") != tt.bad {
			t.Errorf("violation(%s, %s) = %q, want forbidden %v", tt.pkg, tt.imp, why, tt.bad)
		}
	}
}
