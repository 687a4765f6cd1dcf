package userdata

import (
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"
	"time"
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
		{"subscript hyphen key", vars, "{{ ds['meta-data'].placement['availability-zone'] }}", "eu-west-1a"},
		{"if elif else", vars, "{% if v1.region == 'us-east-1' %}us{% elif v1.region.startswith('eu') %}eu{% else %}other{% endif %}", "eu"},
		{"for and set", vars, "{% set n = 0 %}{% for z in ['a', 'b'] %}{{ v1.region }}{{ z }} {% endfor %}", "eu-west-1a eu-west-1b "},
		{"filters", vars, "{{ v1.region | upper }} {{ v1.missing | default('dflt') }} {{ v1.region | replace('-', '_') }}", "EU-WEST-1 dflt eu_west_1"},
		{"tests", vars, "{{ 'y' if v1.missing is defined else 'n' }}{{ 'y' if v1.region is defined else 'n' }}", "ny"},
		{"undefined as cloud-init", vars, "{{ v1.regoin }} {{ nope }} {{ ds.meta_data.placement['zone'] }}", "CI_MISSING_JINJA_VAR/regoin CI_MISSING_JINJA_VAR/nope CI_MISSING_JINJA_VAR/zone"},
		{"trim_blocks", vars, "{% if true %}\nx\n{% endif %}\ny", "x\ny"},
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
		// The old renderer refused statements, filters, subscripts and
		// whitespace control; cloud-init renders them, and so does gonja.
		{"unclosed", "#!/bin/sh\n\n{{ v1.region\n", ErrTemplate,
			`user data: part 0 "part-001" (text/jinja2): line 4: template error: '}}' expected here`},
		{"unclosed comment (bash ${#array})", "#!/bin/sh\necho ${#a[@]}\n", ErrTemplate,
			`user data: part 0 "part-001" (text/jinja2): line 3: template error: comment {# is not closed (a shell ${#var} needs {% raw %} ... {% endraw %})`},
		{"unclosed if", "#!/bin/sh\n{% if v1.region %}\necho\n", ErrTemplate,
			`user data: part 0 "part-001" (text/jinja2): line 4: template error: Unexpected EOF, expected tag elif or else or endif`},
		{"unknown tag", "#cloud-config\nruncmd:\n{% frobnicate %}\n", ErrTemplate,
			`user data: part 0 "part-001" (text/jinja2): line 4: template error: ControlStructure 'frobnicate' not found (or beginning not provided)`},
		{"include refused", "#!/bin/sh\n{% include '/etc/shadow' %}\n", ErrTemplate,
			`user data: part 0 "part-001" (text/jinja2): line 3: template error: templates cannot read files (include, import, extends)`},
		{"import refused", "#!/bin/sh\n{% import 'x.j2' as x %}\n", ErrTemplate,
			`user data: part 0 "part-001" (text/jinja2): line 3: template error: templates cannot read files (include, import, extends)`},
		{"extends refused", "{% extends '/etc/passwd' %}\n", ErrTemplate,
			`user data: part 0 "part-001" (text/jinja2): line 2: template error: templates cannot read files (include, import, extends)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// The part is skipped with a warning, as cloud-init skips it.
			res, err := Parse([]byte("## template: jinja\n"+tt.body), Options{Vars: vars})
			if err != nil {
				t.Fatal(err)
			}
			want := tt.want + "; the part is not run (cloud-init skips it too)"
			if len(res.Warnings) != 1 || res.Warnings[0].Code != WarnTemplate || res.Warnings[0].String() != want {
				t.Fatalf("warnings %v\nwant  %s", res.Warnings, want)
			}
			if len(res.Parts) != 1 || res.Parts[0].Kind != KindUnknown {
				t.Errorf("parts %v: want one part, not run", describeAll(res))
			}
			// Rendered alone, the same template is an ErrTemplate naming its line.
			_, err = render(Part{Kind: KindJinja, Filename: "part-001", ContentType: TypeJinja, Body: []byte("## template: jinja\n" + tt.body)}, vars, 0)
			var pe *PartError
			if !errors.Is(err, tt.is) || !errors.As(err, &pe) || strings.TrimSuffix(err.Error(), ".") != tt.want {
				t.Errorf("render: %v, want %s", err, tt.want)
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
	if err != nil || len(res.Warnings) != 2 || !strings.Contains(res.Warnings[1].String(), `part 1 "part-003" (text/jinja2): line 1: template error: the first line must be "## template: jinja"`) {
		t.Fatalf("err = %v, warnings %v", err, res.Warnings)
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

func TestRenderLimits(t *testing.T) {
	part := func(body string) Part {
		return Part{Kind: KindJinja, ContentType: TypeJinja, Filename: "part-001", Body: []byte("## template: jinja\n#!/bin/sh\n" + body + "\n")}
	}
	lim := Limits{MaxOutput: 1000, Timeout: 2 * time.Second, MaxSteps: 5000}
	tests := []struct {
		name string
		lim  Limits
		body string
		want string
	}{
		{"output", lim, "{% for i in range(100) %}{{ 'x' * 100 }}{% endfor %}", "template output exceeds the size limit"},
		{"steps", lim, "{% for i in range(100000) %}{% endfor %}", "template loops exceed the step limit"},
		{"nested steps", lim, "{% for i in range(100) %}{% for j in range(100) %}{% endfor %}{% endfor %}", "template loops exceed the step limit"},
		{"time", Limits{MaxOutput: 1 << 30, Timeout: 50 * time.Millisecond, MaxSteps: 1 << 40}, "{% for i in range(100000000) %}{% endfor %}", "template rendering exceeds the time limit"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			_, err := renderWith(part(tt.body), VarsMap{}, 0, tt.lim)
			if err == nil || !strings.Contains(err.Error(), tt.want) || !errors.Is(err, ErrTemplate) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
			if d := time.Since(start); d > 3*time.Second {
				t.Errorf("took %v", d)
			}
		})
	}
	// Within the limits the same templates render.
	if _, err := renderWith(part("{% for i in range(9) %}{{ i }}{% endfor %}"), VarsMap{}, 0, lim); err != nil {
		t.Fatal(err)
	}
}

func TestRenderUndefinedWarning(t *testing.T) {
	res, err := Parse([]byte("## template: jinja\n#cloud-config\nhostname: {{ v1.local_hostnme }}\nfqdn: {{ v1.local_hostnme }}.{{ v1.domain }}\n"),
		Options{Vars: VarsMap{"v1": map[string]any{"local_hostname": "h"}}})
	if err != nil {
		t.Fatal(err)
	}
	want := "#cloud-config\nhostname: CI_MISSING_JINJA_VAR/local_hostnme\nfqdn: CI_MISSING_JINJA_VAR/local_hostnme.CI_MISSING_JINJA_VAR/domain\n"
	if got := string(res.Parts[0].Body); got != want {
		t.Errorf("got %q", got)
	}
	if len(res.Warnings) != 1 || res.Warnings[0].Code != WarnUndefined ||
		!strings.Contains(res.Warnings[0].Message, `"local_hostnme.CI_MISSING_JINJA_VAR/domain"`) && !strings.Contains(res.Warnings[0].Message, `"local_hostnme"`) {
		t.Fatalf("warnings %v", res.Warnings)
	}
}

// TestRenderRealShaped renders templates shaped like those real user data
// uses: an EKS-style node bootstrap picking values by region and zone, and
// a cloud-config looping over tags.
func TestRenderRealShaped(t *testing.T) {
	vars := VarsMap{
		"v1": map[string]any{"region": "us-west-2", "availability_zone": "us-west-2b", "instance_id": "i-0abc",
			"cloud_name": "aws", "platform": "ec2", "local_hostname": "ip-10-1-2-3.us-west-2.compute.internal"},
		"ds": map[string]any{
			"meta_data": map[string]any{"placement": map[string]any{"availability-zone": "us-west-2b"},
				"tags": map[string]any{"instance": map[string]any{"Name": "web-1", "team": "infra"}}},
			"dynamic": map[string]any{"instance-identity": map[string]any{"document": map[string]any{"accountId": "123456789012", "region": "us-west-2"}}},
		},
		"merged_cfg": map[string]any{"system_info": map[string]any{"default_user": map[string]any{"name": "ec2-user"}}},
	}
	script := `## template: jinja
#!/bin/bash
set -e
{% set cluster = 'prod-' ~ v1.region %}
{% if v1.availability_zone.endswith('a') %}
ZONE_CLASS=primary
{% elif ds.meta_data.placement['availability-zone'] == 'us-west-2b' %}
ZONE_CLASS=secondary
{% else %}
ZONE_CLASS=other
{% endif %}
/etc/eks/bootstrap.sh {{ cluster }} --kubelet-extra-args '--node-labels=zone={{ ds.meta_data.placement.availability_zone }},account={{ ds.dynamic.instance_identity.document.accountId }}'
echo "user {{ merged_cfg.system_info.default_user.name }} host {{ v1.local_hostname.split('.')[0] }} {{ instance_id }}"
`
	want := "#!/bin/bash\nset -e\nZONE_CLASS=secondary\n/etc/eks/bootstrap.sh prod-us-west-2 --kubelet-extra-args '--node-labels=zone=us-west-2b,account=123456789012'\n" +
		"echo \"user ec2-user host ip-10-1-2-3 i-0abc\"\n"
	config := `## template: jinja
#cloud-config
write_files:
{% for k, v in ds.meta_data.tags.instance | dictsort %}
  - path: /etc/tags/{{ k | lower }}
    content: "{{ v }}"
{% endfor %}
runcmd:
  - echo {{ v1.cloud_name }}/{{ v1.platform }} {{ v1.region | upper }}
`
	wantConfig := "#cloud-config\nwrite_files:\n  - path: /etc/tags/name\n    content: \"web-1\"\n  - path: /etc/tags/team\n    content: \"infra\"\nruncmd:\n  - echo aws/ec2 US-WEST-2\n"
	for _, tt := range []struct{ name, tmpl, want string }{{"eks script", script, want}, {"cloud-config tags", config, wantConfig}} {
		t.Run(tt.name, func(t *testing.T) {
			res, err := Parse([]byte(tt.tmpl), Options{Vars: vars})
			if err != nil {
				t.Fatal(err)
			}
			if got := string(res.Parts[0].Body); got != tt.want || len(res.Warnings) != 0 {
				t.Errorf("got %q\nwant %q\nwarnings %v", got, tt.want, res.Warnings)
			}
		})
	}
}

func TestRenderErrorKeepsSecrets(t *testing.T) {
	// gonja quotes the whole source in its parse errors; ours must not.
	res, err := Parse([]byte("## template: jinja\n#cloud-config\npassword: hunter2-secret\n{% endif %}\n"), Options{Vars: VarsMap{}})
	if err != nil || len(res.Warnings) != 1 || strings.Contains(res.Warnings[0].String(), "hunter2") ||
		!strings.Contains(res.Warnings[0].String(), "line 4: ") {
		t.Fatalf("err = %v, warnings %v", err, res.Warnings)
	}
}

func TestRenderTemplate(t *testing.T) {
	out, err := RenderTemplate([]byte("## template:jinja\n{% for s in servers -%}\nserver {{ s }} iburst\n{% endfor %}"), map[string]any{"servers": []any{"a", "b"}})
	if err != nil || string(out) != "server a iburst\nserver b iburst\n" {
		t.Fatalf("%q %v", out, err)
	}
	if _, err := RenderTemplate([]byte("server x\n"), nil); err == nil || !strings.Contains(err.Error(), "first line must be") {
		t.Errorf("no header: %v", err)
	}
	if _, err := RenderTemplate([]byte("## template: jinja\nok\n{% frobnicate %}\n"), nil); !errors.Is(err, ErrTemplate) || !strings.Contains(err.Error(), "line 3") {
		t.Errorf("syntax error: %v", err)
	}
}
