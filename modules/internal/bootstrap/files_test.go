package bootstrap

import (
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/ec2init/ec2init/modules/modtest"
)

// EnsureDir makes a missing directory with the mode asked and leaves an
// existing one's mode alone; WriteSecret writes 0600.
func TestEnsureDirAndWriteSecret(t *testing.T) {
	e, _ := modtest.Env(t)
	if err := EnsureDir(e, "/etc/tool/pki", 0o700); err != nil {
		t.Fatal(err)
	}
	if err := e.Root.Chmod("/etc/tool/pki", 0o750); err != nil {
		t.Fatal(err)
	}
	if err := EnsureDir(e, "/etc/tool/pki", 0o700); err != nil {
		t.Fatal(err)
	}
	if fi, err := e.Root.Stat("/etc/tool/pki"); err != nil || fi.Mode().Perm() != 0o750 {
		t.Errorf("existing directory: %v, %v; want its mode kept (0750)", fi.Mode(), err)
	}
	if err := WriteSecret(e, "/etc/tool/keys/key.pem", []byte("secret")); err != nil {
		t.Fatal(err)
	}
	fi, err := e.Root.Stat("/etc/tool/keys/key.pem")
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("secret: %v, %v; want 0600", fi.Mode(), err)
	}
	if got := modtest.Get(t, e, "/etc/tool/keys/key.pem"); got != "secret" {
		t.Errorf("secret = %q", got)
	}
}

func TestArgs(t *testing.T) {
	def := []string{"--test"}
	tests := []struct {
		name, doc string
		split     func(string) []string
		want      []string
		wantErr   string
	}{
		{"absent", "other: 1", strings.Fields, def, ""},
		{"null", "args: null", strings.Fields, def, ""},
		{"list", "args: [-d, '1800']", strings.Fields, []string{"-d", "1800"}, ""},
		{"string split", "args: --onetime --verbose", strings.Fields, []string{"--onetime", "--verbose"}, ""},
		{"string whole", "args: --onetime --verbose", func(s string) []string { return []string{s} }, []string{"--onetime --verbose"}, ""},
		{"mapping", "args: {a: b}", strings.Fields, nil, "args: line 1: want a list of strings"},
		{"nested list", "args: [[a]]", strings.Fields, nil, "args: line 1:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var doc yaml.Node
			if err := yaml.Unmarshal([]byte(tt.doc), &doc); err != nil {
				t.Fatal(err)
			}
			n := Get(doc.Content[0], "args")
			if n == nil {
				n = &yaml.Node{}
			}
			got, err := Args(n, "args", def, tt.split)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || !slices.Equal(got, tt.want) {
				t.Errorf("Args = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

// YAML writes block style without the user's comments and anchors, and
// refuses what is not a mapping.
func TestYAML(t *testing.T) {
	var doc yaml.Node
	src := "# head\nbase: &b {x: 1}  # line\nlist: [a, b]\ncopy: *b\n"
	if err := yaml.Unmarshal([]byte(src), &doc); err != nil {
		t.Fatal(err)
	}
	got, err := YAML(doc.Content[0], 4)
	if err != nil {
		t.Fatal(err)
	}
	want := "base:\n    x: 1\nlist:\n    - a\n    - b\ncopy:\n    x: 1\n"
	if string(got) != want {
		t.Errorf("YAML =\n%s\nwant\n%s", got, want)
	}
	if _, err := YAML(&yaml.Node{Kind: yaml.SequenceNode, Line: 7}, 2); err == nil || err.Error() != "line 7: want a mapping" {
		t.Errorf("sequence: err = %v", err)
	}
	if Present(&yaml.Node{}) || Present(&yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null"}) || !Present(doc.Content[0]) {
		t.Error("Present is wrong")
	}
}
