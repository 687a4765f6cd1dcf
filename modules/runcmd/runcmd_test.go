package runcmd

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ec2init/ec2init/agent/config"
	"github.com/ec2init/ec2init/modules"
	"github.com/ec2init/ec2init/modules/modtest"
)

func TestRuncmd(t *testing.T) {
	e, out := modtest.Env(t)
	marker := filepath.Join(e.Root.Prefix(), "marker")
	cfg := modtest.Config(t, `runcmd:
  - echo shell >> "$EC2INIT_ROOT/marker"
  - [sh, -c, 'exit 7']
  - [touch, "`+marker+`.argv"]
  - [no-such-command-xyz]
`)
	err := Runcmd{}.Run(context.Background(), e, cfg)
	if err == nil {
		t.Fatal("failing items not reported")
	}
	for _, want := range []string{"runcmd[1] (line 3): exit status 7", "runcmd[3] (line 5)"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	if strings.Contains(err.Error(), "exit 7'") || strings.Contains(err.Error(), "no-such-command-xyz ") {
		t.Errorf("error quotes command content: %q", err)
	}
	if b, _ := os.ReadFile(marker); string(b) != "shell\n" {
		t.Errorf("shell item: %q", b)
	}
	if _, err := os.Stat(marker + ".argv"); err != nil {
		t.Errorf("argv item after a failure did not run: %v", err)
	}
	if !strings.Contains(out.String(), "== ec2init: runcmd[0] started") {
		t.Errorf("output has no headers: %q", out.String())
	}
}

func TestSchema(t *testing.T) {
	r, err := modules.NewRegistry(Bootcmd{}, Runcmd{})
	if err != nil {
		t.Fatal(err)
	}
	d, err := config.ParseDoc("u.yaml", []byte("runcmd:\n  - [ls, {a: b}]\n  - 3.5\nbootcmd: echo\n"))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, diag := range r.ValidateDoc(d) {
		got = append(got, diag.String())
	}
	if len(got) != 3 {
		t.Fatalf("diagnostics %q, want 3", got)
	}
	for _, w := range []string{"u.yaml:2:10: error: runcmd[0][1]: expected string or integer or boolean, got a mapping", "u.yaml:3:5: error: runcmd[1]", "u.yaml:4:10: error: bootcmd: expected list of"} {
		if !strings.Contains(strings.Join(got, "\n"), w) {
			t.Errorf("diagnostics %q lack %q", got, w)
		}
	}
}
