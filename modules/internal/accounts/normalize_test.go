package accounts

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/ec2init/ec2init/agent/config"
	"github.com/ec2init/ec2init/agent/sys"
)

func cfgOf(t *testing.T, doc string) *config.CloudConfig {
	t.Helper()
	d, err := config.ParseDoc("u.yaml", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	return config.Merge(d)
}

// debianRoot is a root whose os-release makes admin the default user.
func debianRoot(t *testing.T) *sys.Root {
	t.Helper()
	root, err := sys.NewRoot(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := root.WriteFile("/etc/os-release", []byte("ID=debian\n"), 0o644, nil); err != nil {
		t.Fatal(err)
	}
	return root
}

// render shows a user as "name[*] key=value ..." (keys sorted, * for the
// default user), lists as [a,b].
func render(u NormalUser) string {
	var parts []string
	for i := 0; i+1 < len(u.Fields.Content); i += 2 {
		k, v := u.Fields.Content[i].Value, deref(u.Fields.Content[i+1])
		if k == "name" {
			continue
		}
		parts = append(parts, k+"="+renderNode(v))
	}
	slices.Sort(parts)
	name := u.Name
	if u.Default {
		name += "*"
	}
	return strings.TrimSpace(name + " " + strings.Join(parts, " "))
}

func renderNode(n *yaml.Node) string {
	switch n.Kind {
	case yaml.SequenceNode:
		var items []string
		for _, e := range n.Content {
			items = append(items, renderNode(deref(e)))
		}
		return "[" + strings.Join(items, ",") + "]"
	case yaml.MappingNode:
		return "{...}"
	}
	if n.Tag == "!!null" {
		return "null"
	}
	return n.Value
}

// TestNormalizeUsers: the users list, the user key and the distribution's
// default user merge as cloud-init's ug_util.normalize_users_groups
// merges them (each case's expectation is what cloud-init gives for the
// same input and default user).
func TestNormalizeUsers(t *testing.T) {
	root := debianRoot(t)
	// The distribution's default user, as system_info.default_user gives it.
	override := config.DefaultUser{Groups: []string{"adm", "sudo"}}
	const admin = "gecos=Debian groups=[adm,sudo] lock_passwd=true shell=/bin/bash sudo=[ALL=(ALL) NOPASSWD:ALL]"
	tests := []struct {
		name, doc string
		want      []string
	}{
		{"no users key: the default user", "{}", []string{"admin* " + admin}},
		{"default last, whatever its place", "users: [alice, default, bob]",
			[]string{"alice", "bob", "admin* " + admin}},
		{"no default in users", "users: [bob]", []string{"bob"}},
		{"empty list", "users: []", nil},
		{"user renames the default user", "users: [alice, default, bob]\nuser: carol",
			[]string{"alice", "bob", "carol* " + admin}},
		{"user alone adds the default user", "users: [bob]\nuser: carol", []string{"bob", "carol* " + admin}},
		{"user mapping overrides field by field, groups replace the distribution's",
			"user: {name: carol, groups: 'x, y', shell: /bin/zsh}",
			[]string{"carol* gecos=Debian groups=[x,y] lock_passwd=true shell=/bin/zsh sudo=[ALL=(ALL) NOPASSWD:ALL]"}},
		{"user without a name keeps the distribution's", "users: [{name: x}]\nuser: {groups: [g]}",
			[]string{"x", "admin* gecos=Debian groups=[g] lock_passwd=true shell=/bin/bash sudo=[ALL=(ALL) NOPASSWD:ALL]"}},
		{"real-name entry over default entry over distribution; default entry's groups dropped",
			"users:\n  - default\n  - {name: admin, groups: [z], shell: /bin/sh}\n  - {name: default, groups: [q], gecos: G, shell: /bin/ksh}\n",
			[]string{"admin* gecos=G groups=[adm,sudo,z] lock_passwd=true shell=/bin/sh sudo=[ALL=(ALL) NOPASSWD:ALL]"}},
		{"real-name entry before default moves to the end, groups sorted",
			"users: [{name: admin, groups: 'b, a'}, bob, default]",
			[]string{"bob", "admin* gecos=Debian groups=[a,adm,b,sudo] lock_passwd=true shell=/bin/bash sudo=[ALL=(ALL) NOPASSWD:ALL]"}},
		{"a mapping without a name is the default user's", "users: [{gecos: nameless}, 'a, b']",
			[]string{"a", "b", "admin* gecos=nameless groups=[adm,sudo] lock_passwd=true shell=/bin/bash sudo=[ALL=(ALL) NOPASSWD:ALL]"}},
		{"a string, sorted", "users: 'b, a, default'", []string{"a", "b", "admin* " + admin}},
		{"nested list of names", "users: [[x, y], default]", []string{"x", "y", "admin* " + admin}},
		{"mapping form", "users: {x: true, y: 'no', default: true, z: {shell: /s, name: ignored}}",
			[]string{"x", "z shell=/s", "admin* " + admin}},
		{"mapping form: default false stays false under user", "users: {default: false, bob: true}\nuser: carol", []string{"bob"}},
		{"one name twice: the first entry's values win", "users: [{name: dup, shell: /1}, {name: dup, shell: /2, gecos: g}]",
			[]string{"dup gecos=g shell=/1"}},
		{"users entries' keys canonical, user's as written",
			"users: [{name: x, lock-passwd: false}]\nuser: {lock-passwd: false, name: carol}",
			[]string{"x lock_passwd=false", "carol* gecos=Debian groups=[adm,sudo] lock-passwd=false lock_passwd=true shell=/bin/bash sudo=[ALL=(ALL) NOPASSWD:ALL]"}},
		{"user's null sudo wins", "user: {sudo: null, groups: w}",
			[]string{"admin* gecos=Debian groups=[w] lock_passwd=true shell=/bin/bash sudo=null"}},
		{"empty user is none", "users: [bob]\nuser: ''", []string{"bob"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			set := NormalizeUsers(cfgOf(t, tt.doc), root, override)
			var got []string
			for _, u := range set.Users {
				got = append(got, render(u))
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got\n  %s\nwant\n  %s", strings.Join(got, "\n  "), strings.Join(tt.want, "\n  "))
			}
			if len(set.Errors)+len(set.Warnings) > 0 {
				t.Errorf("findings %q %q", set.Errors, set.Warnings)
			}
			_, hasDefault := set.Default()
			if en := DefaultUserEnabled(cfgOf(t, tt.doc)); en != hasDefault {
				t.Errorf("DefaultUserEnabled %v, default user %v", en, hasDefault)
			}
		})
	}
}

func TestNormalizeUsersFindings(t *testing.T) {
	root := debianRoot(t)
	doc := `users:
  - null
  - 5
  - {name: ""}
  - {snapuser: joe@example.com}
  - [a, {b: c}]
  - ok
user: true
`
	set := NormalizeUsers(cfgOf(t, doc), root, config.DefaultUser{})
	var got []string
	for _, u := range set.Users {
		got = append(got, u.Name)
	}
	if !reflect.DeepEqual(got, []string{"a", "ok"}) {
		t.Errorf("users %q", got)
	}
	wantErrs := []string{
		"u.yaml:2: users[0]: expected a name or a mapping; skipped",
		"u.yaml:3: users[1]: expected a name or a mapping; skipped",
		"u.yaml:4: users[2]: no name; skipped",
		"u.yaml:5: users[3]: snapuser is not supported (snapd's create-user); skipped",
		"u.yaml:6: users[4]: expected a list of names; skipped",
	}
	if !reflect.DeepEqual(set.Errors, wantErrs) {
		t.Errorf("errors\n%s", strings.Join(set.Errors, "\n"))
	}
	if !reflect.DeepEqual(set.Warnings, []string{"u.yaml:8: user: expected a name or a mapping; ignored"}) {
		t.Errorf("warnings %q", set.Warnings)
	}
}

// TestOptionalGroups: only the distribution's groups (not the user key's,
// not an entry's) are skipped when the image lacks them.
func TestDefaultUserName(t *testing.T) {
	root := debianRoot(t)
	for doc, want := range map[string]string{
		"{}":                             "admin",
		"users: [bob]":                   "",
		"users: [bob]\nuser: carol":      "carol",
		"user: {name: dave, shell: /sh}": "dave",
		"users: [{shell: /bin/sh}]":      "admin",
	} {
		if got := DefaultUserName(cfgOf(t, doc), root, config.DefaultUser{}); got != want {
			t.Errorf("%q: %q, want %q", doc, got, want)
		}
	}
	if got := fmt.Sprint(ListUsers(cfgOf(t, "users: [default, bob, bob]"), root, config.DefaultUser{})); !strings.Contains(got, "bob") || strings.Count(got, "bob") != 1 {
		t.Errorf("ListUsers %s", got)
	}
}
