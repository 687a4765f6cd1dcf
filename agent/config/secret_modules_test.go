package config_test

import (
	"strings"
	"testing"

	"github.com/ec2init/ec2init/agent/config"
	"github.com/ec2init/ec2init/modules/all"
)

// TestModuleSchemasHideSecrets validates cloud-config against the real
// module schemas (and their Checkers), as a boot and `ec2init schema` do:
// no diagnostic may quote a password or a long value.
func TestModuleSchemasHideSecrets(t *testing.T) {
	long := strings.Repeat("Zm9vYmFy", 8) // 64 bytes, base64-looking
	tests := []struct {
		name, doc string
		want      string
		secrets   []string
	}{
		{"integer passwd", "users: [{name: a, passwd: 31415926535}]\n",
			"users[0].passwd: expected string, got an integer", []string{"31415926535", "3141592"}},
		{"integer hashed_passwd", "users:\n- name: a\n  hashed_passwd: 27182818284590\n",
			"users[0].hashed_passwd: expected string, got an integer", []string{"27182818284590"}},
		{"long value where a list belongs", "users:\n- name: a\n  groups: {x: " + long + "}\n",
			"users[0].groups", []string{long}},
		{"long value for a boolean", "users:\n- name: a\n  lock_passwd: \"" + long + "\"\n",
			"users[0].lock_passwd: expected boolean", []string{long}},
	}
	reg := all.Registry()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc, err := config.ParseDoc("u.yaml", []byte("#cloud-config\n"+tt.doc))
			if err != nil {
				t.Fatal(err)
			}
			var msgs []string
			for _, d := range reg.ValidateDoc(doc) {
				msgs = append(msgs, d.String())
			}
			all := strings.Join(msgs, "\n")
			if !strings.Contains(all, tt.want) {
				t.Errorf("diagnostics:\n%s\nwant one saying %q", all, tt.want)
			}
			for _, s := range tt.secrets {
				if strings.Contains(all, s) {
					t.Errorf("diagnostics quote %q:\n%s", s, all)
				}
			}
		})
	}
}
