package agent_test

import (
	"strings"
	"testing"

	"github.com/ec2init/ec2init/agent"
	"github.com/ec2init/ec2init/agent/config"
	"github.com/ec2init/ec2init/agent/userdata"
	"github.com/ec2init/ec2init/modules/all"
)

// TestValidationSeesWhatTheBootSees: schema renders jinja parts as the
// boot does, fails what the boot would not run, and tells user data the
// boot would ignore from a cloud-config file.
func TestValidationSeesWhatTheBootSees(t *testing.T) {
	vars := userdata.VarsMap{"v1": map[string]any{"region": "eu-west-1"}}
	for _, tc := range []struct {
		name, name2, input string
		vars               userdata.Vars
		wantErr            string // ValidateInputWith's error
		errors             []string
		warnings           []string
		configs            int
	}{
		{name: "jinja renders, then validates", input: "## template: jinja\n#cloud-config\n{% if v1.region == 'eu-west-1' %}\nruncmd: 3\n{% else %}\nruncmd: [ls]\n{% endif %}\n",
			vars: vars, errors: []string{"runcmd: expected"}, configs: 1},
		{name: "jinja other branch valid", input: "## template: jinja\n#cloud-config\n{% if v1.region == 'us-east-1' %}\nruncmd: 3\n{% else %}\nruncmd: [ls]\n{% endif %}\n",
			vars: vars, configs: 1},
		{name: "template error is an error", input: "## template: jinja\n#cloud-config\n{% if v1.region %}\nruncmd: [ls]\n",
			vars: vars, errors: []string{"line 4: template error"}},
		{name: "no instance data: the simulator's", input: "## template: jinja\n#cloud-config\nhostname: {{ v1.local_hostname }}\nruncmd: {{ v1.nope }}\n",
			warnings: []string{"jinja rendered with the IMDS simulator's example instance", `template variables not defined (rendered as CI_MISSING_JINJA_VAR/<name>, as cloud-init does): "nope"`},
			errors:   []string{"runcmd: expected"}, configs: 1},
		{name: "script only is valid user data", input: "#!/bin/sh\necho hi\n"},
		{name: "TOML is not cloud-config", input: "[server]\nport = 8080\n", wantErr: "not cloud-config"},
		{name: "PowerShell is not cloud-config", input: "<powershell>\nWrite-Host hi\n</powershell>\n", wantErr: "not cloud-config"},
		{name: "headerless mapping as user data", input: "runcmd: [ls]\n", warnings: []string{"no #cloud-config first line"}, configs: 1},
		{name: "headerless image config", name2: "/etc/cloud/cloud.cfg.d/90-x.cfg", input: "runcmd: [ls]\n", configs: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			name := "user-data.txt"
			if tc.name2 != "" {
				name = tc.name2
			}
			docs, err := agent.ValidateInputWith(name, []byte(tc.input), all.Registry(), agent.SchemaOptions{Vars: tc.vars})
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var errs, warns []string
			configs := 0
			for _, d := range docs {
				if d.Body != nil {
					configs++
				}
				for _, diag := range d.Diagnostics {
					if diag.Severity == config.SeverityError {
						errs = append(errs, diag.String())
					} else {
						warns = append(warns, diag.String())
					}
				}
			}
			check := func(kind string, got, want []string) {
				if len(got) != len(want) {
					t.Errorf("%s %q, want %q", kind, got, want)
					return
				}
				for i := range want {
					if !strings.Contains(got[i], want[i]) {
						t.Errorf("%s %q, want %q", kind, got, want)
					}
				}
			}
			check("errors", errs, tc.errors)
			check("warnings", warns, tc.warnings)
			if configs != tc.configs {
				t.Errorf("%d cloud-config documents, want %d", configs, tc.configs)
			}
		})
	}
}
