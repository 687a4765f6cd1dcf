package main

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/ec2init/ec2init/modules/all"
)

// TestRunSchema calls the schema command's run function without cobra.
func TestRunSchema(t *testing.T) {
	for _, tc := range []struct {
		name, input string
		o           schemaOptions
		code        int
		want        string
	}{
		{"valid", "#cloud-config\nruncmd: [ls]\n", schemaOptions{input: "-"}, 0, "<stdin>: valid cloud-config"},
		{"error", "#cloud-config\nruncmd: 3\n", schemaOptions{input: "-"}, 1, "<stdin>:2:9: error: runcmd: expected"},
		{"annotated", "#cloud-config\nruncmd: 3\n", schemaOptions{input: "-", annotate: true}, 1, "runcmd: 3\t\t# E1"},
		{"scripts only", "#!/bin/sh\necho\n", schemaOptions{input: "-"}, 0, "valid user data (no cloud-config part to check)"},
		{"jinja with the simulator's instance", "## template: jinja\n#cloud-config\nhostname: {{ v1.local_hostname }}\n", schemaOptions{input: "-"}, 0, "info: user data: jinja rendered with the IMDS simulator's example instance"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			err := runSchema(context.Background(), newEnv(t.TempDir()), tc.o, strings.NewReader(tc.input), &out)
			code := 0
			var ee *exitError
			if errors.As(err, &ee) {
				code = ee.code
			} else if err != nil {
				t.Fatal(err)
			}
			if code != tc.code || !strings.Contains(out.String(), tc.want) {
				t.Errorf("exit %d, output %q; want %d and %q", code, out.String(), tc.code, tc.want)
			}
		})
	}
}

func TestRunModules(t *testing.T) {
	var out bytes.Buffer
	if err := runModules(all.Registry(), false, &out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"STAGE", "final   ", "scripts_user", "ansible"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("modules output lacks %q:\n%s", want, out.String())
		}
	}
}
