package command

import (
	"context"
	"reflect"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/ec2init/ec2init/agent/sys"
)

func TestArgv(t *testing.T) {
	tests := []struct {
		yaml string
		want []string
	}{
		{`echo "$HOME" > /x`, []string{"/bin/sh", "-c", `echo "$HOME" > /x`}},
		{`[ls, -l, "/a b"]`, []string{"ls", "-l", "/a b"}},
		{`[sleep, 1]`, []string{"sleep", "1"}},
	}
	for _, tt := range tests {
		var n yaml.Node
		if err := yaml.Unmarshal([]byte(tt.yaml), &n); err != nil {
			t.Fatal(err)
		}
		got, err := Argv(n.Content[0])
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("Argv(%s) = %q, %v; want %q", tt.yaml, got, err, tt.want)
		}
	}
}

// Output runs a real shell; a failure's error is its exit status and the
// first line it printed.
func TestOutput(t *testing.T) {
	root, err := sys.NewRoot(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	r := &sys.Runner{Root: root}
	out, res, err := Output(context.Background(), r, sys.Cmd{Name: "sh", Argv: []string{"/bin/sh", "-c", "echo; echo '  first why'; echo second >&2; exit 3"}})
	if err != nil || res.ExitCode != 3 {
		t.Fatalf("Output: %+v, %v", res, err)
	}
	if out != "\n  first why\nsecond\n" {
		t.Errorf("output %q", out)
	}
	if got := ExitError(res.ExitCode, out).Error(); got != "exit status 3: first why" {
		t.Errorf("ExitError = %q", got)
	}
	if _, _, err := Output(context.Background(), r, sys.Cmd{Name: "missing", Argv: []string{"/nonexistent/tool"}}); err == nil {
		t.Error("a command that cannot run: no error")
	}
}
