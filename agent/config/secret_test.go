package config

import (
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// TestValidateHidesSecrets: a wrong-typed value under a key that can hold a
// secret, or any long value, is named by its type, never quoted back, since
// diagnostics reach the logs and the status files.
func TestValidateHidesSecrets(t *testing.T) {
	long := "AKIAIOSFODNN7EXAMPLE/wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
	users := ListOf(Object(
		Field{Name: "name", Type: String()},
		Field{Name: "passwd", Type: String()},
		Field{Name: "uid", Type: Int()},
		Field{Name: "shell", Type: Enum("/bin/bash", "/bin/sh")},
		Field{Name: "lock_passwd", Type: Bool()},
		Field{Name: "groups", Type: MapOf(String())},
	))
	tests := []struct {
		name, body string
		want       string   // the whole message, as printed
		secrets    []string // must not appear anywhere in it
	}{
		{"integer password", "- {name: a, passwd: 31415926535}\n",
			"f:1:21: error: users[0].passwd: expected string, got an integer (quote it to make it a string)", []string{"31415926535"}},
		{"number password", "- {name: a, passwd: 3.14159}\n",
			"f:1:21: error: users[0].passwd: expected string, got a number (quote it to make it a string)", []string{"3.14159"}},
		{"long integer elsewhere", "- {name: a, uid: 123456789012345678901234567890123456789}\n",
			"f:1:18: error: users[0].uid: expected integer, got a number", []string{"1234567890"}},
		{"long value in an enum", "- {name: a, shell: \"" + long + "\"}\n",
			"f:1:20: error: users[0].shell: expected one of /bin/bash, /bin/sh, got a 61-byte string", []string{long, "AKIA"}},
		{"long number in a boolean", "- {name: a, lock_passwd: 1234567890123456789012345678901234567890.5}\n",
			"f:1:26: error: users[0].lock_passwd: expected boolean (true or false), got a number", []string{"1234567890"}},
		{"long key", "- {name: a, \"" + long + "\": x}\n",
			"f:1:13: warning: users[0].(a 61-byte key): unknown key (a 61-byte key) (known: name, passwd, uid, shell, lock_passwd, groups)", []string{long}},
		{"long map key", "- {name: a, groups: {\"" + long + "\": 5}}\n",
			"f:1:", []string{long}},
		{"short values still shown", "- {name: 5}\n",
			"f:1:10: error: users[0].name: expected string, got integer 5 (quote it to make it a string)", nil},
		{"a URL in an enum", "- {name: a, shell: \"https://u:pw@h/s?t=TOK\"}\n",
			"f:1:20: error: users[0].shell: expected one of /bin/bash, /bin/sh, got \"https://h/s\"", []string{"TOK", "pw"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var n yaml.Node
			if err := yaml.Unmarshal([]byte(tt.body), &n); err != nil {
				t.Fatal(err)
			}
			ds := Validate("f", "users", n.Content[0], users)
			if len(ds) == 0 {
				t.Fatal("no diagnostic")
			}
			got := ds[0].String()
			if !strings.HasPrefix(got, tt.want) {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
			for _, d := range ds {
				for _, s := range tt.secrets {
					if strings.Contains(d.String(), s) {
						t.Errorf("leaks %q: %s", s, d)
					}
				}
			}
		})
	}
}

func TestIsSecretPath(t *testing.T) {
	tests := []struct {
		path string
		want bool
	}{
		{"users[0].passwd", true},
		{"users[0].hashed_passwd", true},
		{"chpasswd.list", true},
		{"chpasswd.users[1].password", true},
		{"ssh_keys.rsa_private", true},
		{"apt.sources.a.keyid", true},
		{"write_files[3].content", true},
		{"chef.validation_cert", true},
		{"puppet.csr_attributes.custom_attributes.challengePassword", true},
		{"users[0].name", false},
		{"users[0].lock_passwd", false},
		{"hostname", false},
	}
	for _, tt := range tests {
		if got := IsSecretPath(tt.path); got != tt.want {
			t.Errorf("IsSecretPath(%q) = %v, want %v", tt.path, got, tt.want)
		}
	}
}

// TestScrubDiagnostics: whatever a module's Checker wrote, the values of
// secret keys, long values and URL credentials do not survive.
func TestScrubDiagnostics(t *testing.T) {
	body := "a: &x {passwd: hunter2, note: " + strings.Repeat("n", 40) + "}\n" +
		"b: [*x, *x]\nurl: https://me:pw@h/p?X-Amz-Security-Token=TOKEN\nsize: 1x\n"
	var n yaml.Node
	if err := yaml.Unmarshal([]byte(body), &n); err != nil {
		t.Fatal(err)
	}
	ds := ScrubDiagnostics("swap", n.Content[0], []Diagnostic{
		{Message: `password "hunter2" is weak`},
		{Message: "note " + strings.Repeat("n", 40) + " too long"},
		{Message: "cannot fetch https://me:pw@h/p?X-Amz-Security-Token=TOKEN"},
		{Message: `size "1x": not a size`},
		{Message: "redirected to http://me:pw@elsewhere/p?sig=TOKEN2"},
	})
	want := []string{
		`password "(a 7-byte value)" is weak`,
		"note (a 40-byte value) too long",
		"cannot fetch (a 44-byte value)", // a long value, hidden whole
		`size "1x": not a size`,
		"redirected to http://elsewhere/p",
	}
	for i, d := range ds {
		if d.Message != want[i] {
			t.Errorf("got  %s\nwant %s", d.Message, want[i])
		}
	}
}

func TestDecodeHidesValues(t *testing.T) {
	doc, err := ParseDoc("u.yaml", []byte("users:\n- name: a\n  passwd: 31415926535\n"))
	if err != nil {
		t.Fatal(err)
	}
	var v struct {
		Users []struct {
			Name   string   `yaml:"name"`
			Passwd []string `yaml:"passwd"`
		} `yaml:"users"`
	}
	_, err = Merge(doc).Decode("users", &v.Users)
	if err == nil {
		t.Fatal("decoded a scalar into a list")
	}
	if strings.Contains(err.Error(), "3141592") || !strings.Contains(err.Error(), "u.yaml:1: users:") || !strings.Contains(err.Error(), "cannot unmarshal !!int into []string") {
		t.Errorf("err = %v", err)
	}
}
