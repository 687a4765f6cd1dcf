package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ec2init/ec2init/agent/state"
)

func TestCloudInitPerArgv0(t *testing.T) {
	link := filepath.Join(t.TempDir(), "cloud-init-per")
	if err := os.Symlink(binary, link); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		args         []string
		code         int
		stdout, errs string
	}{
		{[]string{"--help"}, 0, "Usage: cloud-init-per frequency name cmd", ""},
		{[]string{"once", "x"}, 1, "", "Usage: cloud-init-per"},
		{[]string{"weekly", "x", "true"}, 1, "", "invalid frequency: weekly"},
		{[]string{"once", "a/b", "true"}, 1, "", "name cannot contain a /"},
	}
	for _, tt := range tests {
		r := runCLI(t, link, tt.args...)
		if r.code != tt.code || !strings.Contains(r.stdout, tt.stdout) || !strings.Contains(r.stderr, tt.errs) {
			t.Errorf("cloud-init-per %q: %+v", tt.args, r)
		}
	}
}

func TestCloudInitPerUnderRoot(t *testing.T) {
	dir := t.TempDir()
	count := filepath.Join(dir, "count")
	per := func(freq string, exit string) result {
		return runCLI(t, binary, "--root", dir, "cloud-init-per", freq, "job-"+freq,
			"sh", "-c", `echo ran >> "$1"; exit `+exit, "sh", count)
	}
	runs := func() int {
		b, _ := os.ReadFile(count)
		n := strings.Count(string(b), "\n")
		os.Remove(count)
		return n
	}
	boot := func(id string) {
		st, err := state.Open(state.Options{Root: dir})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := st.BeginInstance(id); err != nil {
			t.Fatal(err)
		}
	}

	if r := per("instance", "0"); r.code != 1 || !strings.Contains(r.stderr, "no current instance") {
		t.Errorf("instance before any boot: %+v", r)
	}
	boot("i-0aaa")
	for i := 0; i < 2; i++ {
		if r := per("once", "0"); r.code != 0 {
			t.Errorf("once: %+v", r)
		}
		if r := per("instance", "0"); r.code != 0 {
			t.Errorf("instance: %+v", r)
		}
	}
	if n := runs(); n != 2 {
		t.Errorf("once and instance over two calls ran %d times, want 2", n)
	}
	if _, err := os.Stat(filepath.Join(dir, "var/lib/cloud/instances/i-0aaa/sem/bootper.job_instance.instance")); err != nil {
		t.Error(err)
	}
	boot("i-0bbb")
	per("once", "0")
	per("instance", "0")
	if n := runs(); n != 1 {
		t.Errorf("new instance: %d runs, want 1 (instance only)", n)
	}
	if r := per("always", "4"); r.code != 4 {
		t.Errorf("always exit 4: %+v", r)
	}
	if r := per("always", "0"); r.code != 0 {
		t.Errorf("always: %+v", r)
	}
	if n := runs(); n != 2 {
		t.Errorf("always: %d runs, want 2", n)
	}
}
