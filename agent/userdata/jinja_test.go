package userdata

import (
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"
)

func instanceData(t *testing.T) VarsMap {
	t.Helper()
	b, err := os.ReadFile("testdata/src/instance-data.json")
	if err != nil {
		t.Fatal(err)
	}
	var m VarsMap
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// TestRenderAgainstCloudInit renders the templates cloud-init's jinja handler
// rendered into testdata/golden/jinja (same instance data) and compares.
func TestRenderAgainstCloudInit(t *testing.T) {
	vars := instanceData(t)
	for _, tt := range []struct {
		file string
		kind Kind
	}{
		{"jinja.txt", KindScript},
		{"jinja-config.yaml", KindCloudConfig},
		{"jinja-crlf.txt", KindScript},
	} {
		t.Run(tt.file, func(t *testing.T) {
			want, err := os.ReadFile("testdata/golden/jinja/" + tt.file + ".rendered")
			if err != nil {
				t.Fatal(err)
			}
			res, err := Parse(readInput(t, "single-"+tt.file), Options{Vars: vars})
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if len(res.Parts) != 1 || len(res.Warnings) != 0 {
				t.Fatalf("parts %v warnings %v", describeAll(res), res.Warnings)
			}
			p := res.Parts[0]
			if p.Kind != tt.kind || !p.Template || p.Filename != "part-001" {
				t.Errorf("got %s", Describe(p))
			}
			if string(p.Body) != string(want) {
				t.Errorf("rendered:\n%q\ncloud-init:\n%q", p.Body, want)
			}
		})
	}
}

func TestRenderLater(t *testing.T) {
	res, err := Parse(readInput(t, "make-mime-all.txt"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Parts[4].Kind != KindJinja {
		t.Fatalf("part 4: %s", Describe(res.Parts[4]))
	}
	out, err := res.Render(instanceData(t))
	if err != nil {
		t.Fatal(err)
	}
	p := out.Parts[4]
	if p.Kind != KindScript || p.Filename != "src/jinja.txt" || !strings.Contains(string(p.Body), "i-0123456789abcdef0") {
		t.Errorf("rendered part: %s %q", Describe(p), p.Body)
	}
	if res.Parts[4].Kind != KindJinja {
		t.Errorf("Render changed its receiver")
	}
}

func TestRenderVars(t *testing.T) {
	vars := VarsMap{
		"v1": map[string]any{"instance_id": "i-1", "region": "eu-west-1", "flag": true, "n": float64(3), "nothing": nil},
		"ds": map[string]any{"meta-data": map[string]any{"local-hostname": "ip-10-0-0-1", "placement": map[string]any{"availability-zone": "eu-west-1a"}}},
	}
	fn := VarsFunc(func(p string) (string, bool) { return "<" + p + ">", p == "v1.region" })
	tests := []struct {
		name string
		vars Vars
		tmpl string
		want string
	}{
		{"spaces optional", vars, "{{v1.instance_id}} {{  v1.region  }}", "i-1 eu-west-1"},
		{"hyphen keys by underscore", vars, "{{ ds.meta_data.local_hostname }} {{ ds.meta_data.placement.availability_zone }}", "ip-10-0-0-1 eu-west-1a"},
		{"v1 aliases at top level", vars, "{{ instance_id }}", "i-1"},
		{"python formatting", vars, "{{ v1.flag }} {{ v1.n }} {{ v1.nothing }}", "True 3 None"},
		{"comment", vars, "a{# x #}b", "ab"},
		{"single braces pass", vars, "${HOME} {x} }}", "${HOME} {x} }}"},
		{"func", fn, "{{ v1.region }}", "<v1.region>"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := Parse([]byte("## template: jinja\n#!/bin/sh\n"+tt.tmpl+"\n"), Options{Vars: tt.vars})
			if err != nil {
				t.Fatal(err)
			}
			if got := string(res.Parts[0].Body); got != "#!/bin/sh\n"+tt.want+"\n" {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestRenderErrors(t *testing.T) {
	vars := VarsMap{"v1": map[string]any{"region": "us-east-1"}}
	tests := []struct {
		name string
		body string
		is   error
		want string
	}{
		{"statement", "#!/bin/sh\n{% if true %}x{% endif %}\n", ErrTemplate,
			`user data: part 0 "part-001" (text/jinja2): line 3: unsupported template: jinja statements ({% ... %}) are not supported`},
		{"filter", "#!/bin/sh\necho\n{{ v1.region | upper }}\n", ErrTemplate,
			`user data: part 0 "part-001" (text/jinja2): line 4: unsupported template: jinja filters (|) are not supported`},
		{"undefined", "#!/bin/sh\n{{ v1.regoin }}\n", ErrUndefined,
			`user data: part 0 "part-001" (text/jinja2): line 3: undefined template variable "v1.regoin"`},
		{"subscript", "#!/bin/sh\n{{ v1['region'] }}\n", ErrTemplate,
			`user data: part 0 "part-001" (text/jinja2): line 3: unsupported template: only {{ variable.path }} expressions are supported`},
		{"whitespace control", "#!/bin/sh\n{{- v1.region }}\n", ErrTemplate,
			`user data: part 0 "part-001" (text/jinja2): line 3: unsupported template: whitespace control ({{- -}}) is not supported`},
		{"unclosed", "#!/bin/sh\n\n{{ v1.region\n", ErrTemplate,
			`user data: part 0 "part-001" (text/jinja2): line 4: unsupported template: {{ is not closed`},
		{"unclosed comment (bash ${#array})", "#!/bin/sh\necho ${#a[@]}\n", ErrTemplate,
			`user data: part 0 "part-001" (text/jinja2): line 3: unsupported template: comment {# is not closed`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte("## template: jinja\n"+tt.body), Options{Vars: vars})
			if err == nil || err.Error() != tt.want {
				t.Fatalf("err = %v\nwant  %s", err, tt.want)
			}
			var pe *PartError
			if !errors.Is(err, tt.is) || !errors.As(err, &pe) || pe.Line == 0 {
				t.Errorf("error chain: is %v: %v, PartError %+v", tt.is, errors.Is(err, tt.is), pe)
			}
		})
	}
}

func TestRenderTargets(t *testing.T) {
	// cloud-init only runs #cloud-config and #! scripts from a template.
	res, err := Parse(mimeMsg(
		"Content-Type: text/jinja2\n\n## template: jinja\n#cloud-boothook\necho",
		"Content-Type: text/jinja2\n\n## template: jinja\n{# nothing #}",
		"Content-Type: text/jinja2\n\nno header line"), Options{Vars: VarsMap{}})
	if err == nil || !strings.Contains(err.Error(), `part 1 "part-003" (text/jinja2): line 1: unsupported template: the first line must be "## template: jinja"`) {
		t.Fatalf("err = %v", err)
	}
	res, err = Parse(mimeMsg(
		"Content-Type: text/jinja2\n\n## template: jinja\n#cloud-boothook\necho",
		"Content-Type: text/jinja2\n\n## template: jinja\n{# nothing #}"), Options{Vars: VarsMap{}})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Parts) != 1 || res.Parts[0].Kind != KindUnknown || res.Parts[0].ContentType != TypeBoothook ||
		len(res.Warnings) != 1 || res.Warnings[0].Code != WarnIgnored {
		t.Fatalf("parts %v warnings %v", describeAll(res), res.Warnings)
	}
}
