// Package compat runs every cloud-config example Debian's cloud-init
// package ships through ec2init's validation: nothing may crash, every
// unsupported key is named, and docs/compatibility.md records which
// examples ec2init fully supports.
package compat

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"testing"

	"github.com/ec2init/ec2init/agent"
	"github.com/ec2init/ec2init/agent/config"
	"github.com/ec2init/ec2init/modules/all"
)

// examplesDir holds /usr/share/doc/cloud-init/examples/cloud-config-*
// from Debian's cloud-init package (.ci/run extracts them there).
func examplesDir(t *testing.T) string {
	dir := os.Getenv("EC2INIT_CLOUDINIT_EXAMPLES")
	if dir == "" {
		dir = "/var/tmp/cloud-init-examples"
	}
	if m, _ := filepath.Glob(filepath.Join(dir, "cloud-config-*")); len(m) == 0 {
		if os.Getenv("CI") != "" {
			t.Fatalf("no cloud-init examples in %s (.ci/run extracts them from Debian's cloud-init package)", dir)
		}
		t.Skipf("no cloud-init examples in %s: apt-get download cloud-init, then extract usr/share/doc/cloud-init/examples there", dir)
	}
	return dir
}

func TestCloudInitExamples(t *testing.T) {
	dir := examplesDir(t)
	files, _ := filepath.Glob(filepath.Join(dir, "cloud-config-*"))
	sort.Strings(files)
	reg := all.Registry()
	var table strings.Builder
	table.WriteString("| example | keys | supported | not supported (warned by name) | errors |\n|---|---|---|---|---|\n")
	full := 0
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".gz")
		data := read(t, f)
		docs, err := agent.ValidateInput(name, data, reg)
		if err != nil {
			fmt.Fprintf(&table, "| %s | - | - | - | %s |\n", name, strings.ReplaceAll(err.Error(), "|", "\\|"))
			continue
		}
		keys, unsupported := map[string]bool{}, map[string]bool{}
		errs := 0
		for _, d := range docs {
			doc, err := config.ParseDoc(name, d.Body)
			if err == nil && doc.Root != nil {
				for i := 0; i+1 < len(doc.Root.Content); i += 2 {
					keys[doc.Root.Content[i].Value] = true
				}
			}
			for _, diag := range d.Diagnostics {
				if diag.Message == "not supported by ec2init; ignored" {
					unsupported[diag.Path] = true
				}
				if diag.Severity == config.SeverityError {
					errs++
				}
			}
		}
		for k := range unsupported {
			if !keys[k] {
				t.Errorf("%s: %q warned but not a key of the document", name, k)
			}
		}
		supported := len(keys) - len(unsupported)
		verdict := fmt.Sprintf("%d/%d", supported, len(keys))
		if len(unsupported) == 0 && errs == 0 {
			verdict = "all"
			full++
		}
		fmt.Fprintf(&table, "| %s | %d | %s | %s | %d |\n", name, len(keys), verdict, sortedKeys(unsupported), errs)
	}
	region := "Every `cloud-config-*` example of Debian's cloud-init package (22.4) validated by `ec2init schema`.\n" +
		"Keys ec2init does not implement are warnings naming each key; nothing is silently ignored. Errors are schema\n" +
		"errors ec2init reports in the example (types it checks more strictly, or values it rejects).\n\n" +
		fmt.Sprintf("Fully supported: %d of %d examples.\n\n", full, len(files)) + table.String()
	checkRegion(t, "examples", region)
}

// checkRegion keeps the generated region name of docs/compatibility.md
// (between "<!-- generated:name -->" and "<!-- end:name -->") equal to
// content, rewriting it under UPDATE_COMPAT=1; the rest of the document
// is written by hand.
func checkRegion(t *testing.T, name, content string) {
	t.Helper()
	path := filepath.Join(repoRoot(), "docs", "compatibility.md")
	doc, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	begin, end := "<!-- generated:"+name+" (UPDATE_COMPAT=1 go test ./test/compat) -->\n", "<!-- end:"+name+" -->"
	i := strings.Index(string(doc), begin)
	j := strings.Index(string(doc), end)
	if i < 0 || j < i {
		t.Fatalf("docs/compatibility.md has no region %q ... %q", begin, end)
	}
	i += len(begin)
	if string(doc[i:j]) == content {
		return
	}
	if os.Getenv("UPDATE_COMPAT") != "" {
		updated := string(doc[:i]) + content + string(doc[j:])
		if err := os.WriteFile(path, []byte(updated), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Errorf("docs/compatibility.md's %s region is stale (UPDATE_COMPAT=1 go test ./test/compat); want:\n%s", name, content)
}

func read(t *testing.T, f string) []byte {
	t.Helper()
	b, err := os.ReadFile(f)
	if err != nil {
		t.Fatal(err)
	}
	if strings.HasSuffix(f, ".gz") {
		zr, err := gzip.NewReader(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		if b, err = io.ReadAll(zr); err != nil {
			t.Fatal(err)
		}
	}
	return b
}

func sortedKeys(m map[string]bool) string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, "`"+k+"`")
	}
	sort.Strings(out)
	return strings.Join(out, ", ")
}

func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}
