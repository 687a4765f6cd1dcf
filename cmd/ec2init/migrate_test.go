package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRunMigrate: the report printed for an image with cloud-init's
// configuration and no ec2init units; nothing changes without --apply.
func TestRunMigrate(t *testing.T) {
	e := newEnv(t.TempDir())
	p := filepath.Join(e.root, "etc/cloud/cloud.cfg")
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte("runcmd: [echo hi]\ndatasource:\n  Azure: {}\nno_such_key: 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	if err := runMigrate(context.Background(), e, migrateOptions{}, &out); err != nil {
		t.Fatal(err)
	}
	// Columns collapsed: the table's widths are tabwriter's.
	var lines []string
	for _, l := range strings.Split(out.String(), "\n") {
		lines = append(lines, strings.Join(strings.Fields(l), " "))
	}
	got := strings.Join(lines, "\n")
	for _, want := range []string{
		"cloud-init: not installed\n", "ec2init: not installed\n",
		"yes runcmd /etc/cloud/cloud.cfg:1 module runcmd",
		"no datasource.Azure /etc/cloud/cloud.cfg:3 another datasource's; ignored",
		"no no_such_key /etc/cloud/cloud.cfg:4 not supported by ec2init",
		"changes: none needed", "ec2init's package is not installed",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	if entries, _ := os.ReadDir(e.root); len(entries) != 1 {
		t.Errorf("the report changed the root: %v", entries)
	}
}
