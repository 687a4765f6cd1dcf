package config

import (
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

func mustDoc(t *testing.T, name, body string) Doc {
	t.Helper()
	d, err := ParseDoc(name, []byte(body))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func render(t *testing.T, c *CloudConfig, key string) string {
	t.Helper()
	v, ok := c.Get(key)
	if !ok {
		return "<absent>"
	}
	var plain any
	if err := v.Node.Decode(&plain); err != nil {
		t.Fatal(err)
	}
	b, err := yaml.Marshal(plain)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

func TestMerge(t *testing.T) {
	tests := []struct {
		name string
		docs []string
		key  string
		want string
	}{
		{"later replaces", []string{"a: 1\n", "a: 2\n"}, "a", "2"},
		{"lists replaced by default", []string{"runcmd: [x, y]\n", "runcmd: [z]\n"}, "runcmd", "- z"},
		{"list append", []string{"runcmd: [x, w]\n", "merge_how: 'list(append)+dict(recurse_array)+str()'\nruncmd: [z]\n"}, "runcmd", "- x\n- w\n- z"},
		{"list append, list form", []string{"packages: [a]\n", "merge_how:\n  - name: list\n    settings: [append]\n  - name: dict\n    settings: [recurse_array]\npackages: [b]\n"}, "packages", "- a\n- b"},
		// cloud-init's runtime: no dict merger, nothing of the part is merged.
		{"no dict merger: part not merged", []string{"packages: [a]\n", "merge_how: list(append)\npackages: [b]\n"}, "packages", "- a"},
		{"no_replace keeps earlier scalars", []string{"hostname: a\n", "merge_how: dict(recurse_array)+list(append)\nhostname: b\n"}, "hostname", "a"},
		{"str append", []string{"final_message: a\n", "merge_how: dict(no_replace,recurse_str)+str(append)\nfinal_message: b\n"}, "final_message", "ab"},
		{"allow_delete", []string{"runcmd: [a]\n", "merge_how: dict(replace,allow_delete)\nruncmd: null\n"}, "runcmd", "<absent>"},
		{"prepend, hyphens", []string{"runcmd: [a]\n", "merge_how: LIST(prepend)+Dict(Recurse-Array)\nruncmd: [b]\n"}, "runcmd", "- b\n- a"},
		{"list replace by index, recursing", []string{"x: [[1, 2], c]\n", "merge_how: dict(recurse_array)+list(replace,recurse_array)\nx: [[3], d, e]\n"}, "x", "- - 3\n  - 2\n- d"},
		{"dicts replaced by default", []string{"apt: {a: 1, b: 2}\n", "apt: {b: 3}\n"}, "apt", "b: 3"},
		// dict(recurse_array) is no_replace: b keeps the earlier value.
		{"dict recurse", []string{"apt: {a: 1, b: 2}\n", "merge_how: dict(recurse_array)\napt: {b: 3, c: 4}\n"}, "apt", "a: 1\nb: 2\nc: 4"},
		{"dict replace recursing", []string{"apt: {a: 1, b: 2}\n", "merge_how: dict(replace)\napt: {b: 3}\n"}, "apt", "b: 3"},
		{"untouched keys kept", []string{"a: 1\nb: 2\n", "a: 3\n"}, "b", "2"},
		{"merge_how not a key", []string{"merge_how: list(append)\n"}, "merge_how", "<absent>"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var docs []Doc
			for i, d := range tt.docs {
				docs = append(docs, mustDoc(t, "part"+string(rune('0'+i)), d))
			}
			if got := render(t, Merge(docs...), tt.key); got != tt.want {
				t.Errorf("%s = %q, want %q", tt.key, got, tt.want)
			}
		})
	}
	// The Merge-Type header of a MIME part: the first part's write_files
	// are kept, the second's appended.
	second := mustDoc(t, "p1", "write_files:\n  - path: /b\n")
	second.MergeType = "list(append)+dict(recurse_array)+str()"
	if got := render(t, Merge(mustDoc(t, "p0", "write_files:\n  - path: /a\n"), second), "write_files"); got != "- path: /a\n- path: /b" {
		t.Errorf("Merge-Type header: write_files = %q", got)
	}
	c := Merge(mustDoc(t, "p0", "a: 1\n"), mustDoc(t, "p1", "\n\na: 2\n"))
	if v, _ := c.Get("a"); v.Source != "p1" || v.KeyLine != 3 {
		t.Errorf("source of a: %+v", v)
	}
}

func TestParseDocErrors(t *testing.T) {
	for _, tt := range []struct{ body, want string }{
		{"- a\n", "src:1:1: cloud-config must be a mapping"},
		{"a: [\n", "src:1:1: did not find expected node content"},
	} {
		if _, err := ParseDoc("src", []byte(tt.body)); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("ParseDoc(%q) = %v, want %q", tt.body, err, tt.want)
		}
	}
	if d, err := ParseDoc("src", []byte("#cloud-config\n")); err != nil || d.Root != nil {
		t.Errorf("empty doc: %+v %v", d, err)
	}
}

func TestValidate(t *testing.T) {
	userType := ListOf(Object(
		Field{Name: "name", Type: String(), Required: true},
		Field{Name: "uid", Type: Int()},
		Field{Name: "lock_passwd", Type: Bool()},
		Field{Name: "groups", Type: OneOf(String(), ListOf(String()))},
		Field{Name: "shell", Type: Enum("/bin/bash", "/bin/sh")},
	))
	tests := []struct {
		name, body string
		want       []string
	}{
		{"valid", "- name: a\n  uid: 1001\n  lock_passwd: yes\n  groups: [x, y]\n", nil},
		{"types", "- name: 5\n  uid: x\n  lock_passwd: maybe\n", []string{
			"f:1:9: error: users[0].name: expected string, got integer 5 (quote it to make it a string)",
			"f:2:8: error: users[0].uid: expected integer, got string",
			"f:3:16: error: users[0].lock_passwd: expected boolean (true or false), got string",
		}},
		{"required and unknown", "- uid: 3\n  colour: red\n", []string{
			"f:1:3: error: users[0]: missing required key \"name\"",
			"f:2:3: warning: users[0].colour: unknown key \"colour\"",
		}},
		{"one of", "- name: a\n  groups: {x: 1}\n", []string{"f:2:11: error: users[0].groups: expected string or list of string, got a mapping"}},
		{"enum", "- name: a\n  shell: /bin/zsh\n", []string{`f:2:10: error: users[0].shell: expected one of /bin/bash, /bin/sh, got "/bin/zsh"`}},
		{"not a list", "name: a\n", []string{"f:1:1: error: users: expected list of mapping, got a mapping"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var n yaml.Node
			if err := yaml.Unmarshal([]byte(tt.body), &n); err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, d := range Validate("f", "users", n.Content[0], userType) {
				got = append(got, d.String())
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %q\nwant %q", got, tt.want)
			}
			for i := range got {
				if !strings.HasPrefix(got[i], tt.want[i]) {
					t.Errorf("got  %q\nwant %q", got[i], tt.want[i])
				}
			}
		})
	}
}
