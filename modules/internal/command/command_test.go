package command

import (
	"reflect"
	"testing"

	"gopkg.in/yaml.v3"
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
