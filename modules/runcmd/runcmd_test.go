package runcmd

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/ec2init/ec2init/agent/config"
	"github.com/ec2init/ec2init/agent/imds"
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
		t.Fatal("failing script not reported")
	}
	// One script: its status is its last command's (127, not found).
	if !strings.Contains(err.Error(), "exit status 127") {
		t.Errorf("error %q lacks the script's exit status", err)
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
	if !strings.Contains(out.String(), "== ec2init: runcmd started") {
		t.Errorf("output has no header: %q", out.String())
	}
}

// TestOneScript: items are lines of one /bin/sh script, so what one does
// to the shell (cd, export, variables, functions) the next sees, and a
// failing item does not stop the rest.
func TestOneScript(t *testing.T) {
	tests := []struct {
		name, doc, want string
		fails           bool
	}{
		{"export", "- export FOO=bar\n- echo $FOO\n", "bar\n", false},
		{"cd", "- cd /tmp\n- pwd\n", "/tmp\n", false},
		{"variable and function", "- X=1\n- f() { echo f$X; }\n- f\n", "f1\n", false},
		{"failing middle item", "- echo one\n- 'false'\n- [sh, -c, 'exit 3']\n- echo three\n", "one\nthree\n", false},
		{"last item fails", "- echo one\n- [sh, -c, 'exit 3']\n", "one\n", true},
		{"list words", "- [printf, '%s|', a b, \"it's\", '\"q\"', '$HOME', '']\n- echo\n", "a b|it's|\"q\"|$HOME||\n", false},
		{"non-string words", "- [echo, 3.5, true, null, 2024-01-02, 010, yes]\n", "3.5 True None 2024-01-02 8 True\n", false},
		{"null item skipped", "- echo a\n-\n- echo b\n", "a\nb\n", false},
	}
	for _, m := range []modules.Module{Runcmd{}, Bootcmd{}} {
		for _, tt := range tests {
			t.Run(m.Name()+"/"+tt.name, func(t *testing.T) {
				e, _ := modtest.Env(t)
				var out strings.Builder
				e.Console = &out
				err := m.Run(context.Background(), e, modtest.Config(t, m.Name()+":\n"+indent(tt.doc)))
				if (err != nil) != tt.fails {
					t.Fatalf("err = %v, want failure %v", err, tt.fails)
				}
				if got := body(out.String()); got != tt.want {
					t.Errorf("output %q, want %q", got, tt.want)
				}
			})
		}
	}
}

// body drops the runner's header and footer lines.
func body(s string) string {
	var keep []string
	for _, l := range strings.SplitAfter(s, "\n") {
		if l != "" && !strings.HasPrefix(l, "== ec2init: ") {
			keep = append(keep, l)
		}
	}
	return strings.Join(keep, "")
}

func indent(s string) string {
	return "  " + strings.ReplaceAll(strings.TrimSuffix(s, "\n"), "\n", "\n  ") + "\n"
}

// TestScriptFile: runcmd's script is kept in the instance's scripts
// directory, 0700, as cloud-init writes it; bootcmd's is removed.
func TestScriptFile(t *testing.T) {
	e, _ := modtest.Env(t)
	e.Instance = &imds.Instance{InstanceID: "i-0abc"}
	doc := "  - echo 'a b' | tr a A\n  - [ls, -l, \"/x y\", \"it's\"]\n  - [echo, 3.5]\n"
	if err := (Runcmd{}).Run(context.Background(), e, modtest.Config(t, "runcmd:\n"+doc)); err != nil {
		t.Fatal(err)
	}
	want := "#!/bin/sh\necho 'a b' | tr a A\n'ls' '-l' '/x y' 'it'\\''s'\n'echo' '3.5'\n"
	if got := modtest.Get(t, e, "/var/lib/ec2init/instances/i-0abc/scripts/runcmd"); got != want {
		t.Errorf("script\n%s\nwant\n%s", got, want)
	}
	fi, err := e.Root.Stat(ScriptPath("i-0abc"))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o700 {
		t.Errorf("mode %v, want 0700", fi.Mode().Perm())
	}

	if err := (Bootcmd{}).Run(context.Background(), e, modtest.Config(t, "bootcmd:\n  - echo $INSTANCE_ID > \"$EC2INIT_ROOT/iid\"\n")); err != nil {
		t.Fatal(err)
	}
	if got := modtest.Get(t, e, "/iid"); got != "i-0abc\n" {
		t.Errorf("bootcmd INSTANCE_ID = %q", got)
	}
	if left, _ := e.Root.ReadDir(tempDir); len(left) != 0 {
		t.Errorf("bootcmd left %v", left)
	}
}

// TestUnscriptable: what cloud-init cannot shellify fails the module and
// runs nothing, as there.
func TestUnscriptable(t *testing.T) {
	for _, doc := range []string{"  - touch \"$EC2INIT_ROOT/ran\"\n  - 3.5\n", "  - touch \"$EC2INIT_ROOT/ran\"\n  - [ls, {a: b}]\n", "  - touch \"$EC2INIT_ROOT/ran\"\n  - {a: b}\n"} {
		e, _ := modtest.Env(t)
		err := Runcmd{}.Run(context.Background(), e, modtest.Config(t, "runcmd:\n"+doc))
		if err == nil || !strings.Contains(err.Error(), "runcmd[1]") || !strings.Contains(err.Error(), "no command run") {
			t.Errorf("%q: err = %v", doc, err)
		}
		if got := modtest.Get(t, e, "/ran"); got != "<absent>" {
			t.Errorf("%q: a command ran", doc)
		}
	}
}

func TestPyScalar(t *testing.T) {
	// Expected values are what PyYAML 6 and Python's str() give.
	tests := []struct{ in, kind, want string }{
		{"3.5", "float", "3.5"}, {"true", "boolean", "True"}, {"yes", "boolean", "True"},
		{"Off", "boolean", "False"}, {"null", "null", "None"}, {"~", "null", "None"},
		{"2024-01-02", "date", "2024-01-02"},
		{"2024-01-02T10:00:00Z", "date", "2024-01-02 10:00:00+00:00"},
		{"2024-01-02 10:00:00.5 +05:30", "date", "2024-01-02 10:00:00.500000+05:30"},
		{"2024-1-2 3:04:05", "date", "2024-01-02 03:04:05"},
		{"010", "integer", "8"}, {"0x1F", "integer", "31"}, {"0b101", "integer", "5"},
		{"1_000", "integer", "1000"}, {"1:30", "integer", "90"}, {"+12", "integer", "12"},
		{"-0", "integer", "0"}, {"123456789012345678901234567890", "integer", "123456789012345678901234567890"},
		{"1e3", "string", "1e3"}, {"1.0e+3", "float", "1000.0"}, {"1.5e-05", "float", "1.5e-05"},
		{"1e+16", "string", "1e+16"}, {"1.0e+16", "float", "1e+16"}, {".inf", "float", "inf"},
		{"-.Inf", "float", "-inf"}, {".nan", "float", "nan"}, {"1.", "float", "1.0"},
		{"08", "string", "08"}, {"0.1", "float", "0.1"}, {"1:30.5", "float", "90.5"},
		{"y", "string", "y"}, {"12.30", "float", "12.3"}, {"'3.5'", "string", "3.5"},
		{"!!str 3.5", "string", "3.5"}, {"a b", "string", "a b"},
	}
	for _, tt := range tests {
		var n yaml.Node
		if err := yaml.Unmarshal([]byte("k: "+tt.in), &n); err != nil {
			t.Fatal(err)
		}
		kind, got := pyScalar(n.Content[0].Content[1])
		if string(kind) != tt.kind || got != tt.want {
			t.Errorf("%s: %s %q, want %s %q", tt.in, kind, got, tt.kind, tt.want)
		}
	}
}

func TestSchema(t *testing.T) {
	r, err := modules.NewRegistry(Bootcmd{}, Runcmd{})
	if err != nil {
		t.Fatal(err)
	}
	d, err := config.ParseDoc("u.yaml", []byte("runcmd:\n  - [ls, {a: b}]\n  - 3.5\n  - [echo, 3.5, null]\n  - yes\n  -\nbootcmd: echo\n"))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, diag := range r.ValidateDoc(d) {
		got = append(got, diag.String())
	}
	want := []string{
		"u.yaml:2:10: error: runcmd[0][1]: expected string or number or boolean, got a mapping",
		"u.yaml:3:5: error: runcmd[1]",
		"u.yaml:4:12: warning: runcmd[2][1]: a float, not a string",
		"u.yaml:4:17: warning: runcmd[2][2]: a null, not a string",
		"u.yaml:5:5: error: runcmd[3]: cloud-init reads this as a boolean",
		"u.yaml:7:10: error: bootcmd: expected list of",
	}
	if len(got) != len(want) {
		t.Errorf("diagnostics %q, want %d", got, len(want))
	}
	for _, w := range want {
		if !strings.Contains(strings.Join(got, "\n"), w) {
			t.Errorf("diagnostics %q lack %q", got, w)
		}
	}
}
