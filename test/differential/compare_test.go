package differential

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The comparison and the allow-list on hand-made records (no containers).
func TestCompare(t *testing.T) {
	dirA, dirB := t.TempDir(), t.TempDir()
	for dir, header := range map[string]string{dirA: "# Created by ec2init v. 1 on Mon, 07 Dec 2026 03:38:52 +0000\n", dirB: "# Created by cloud-init v. 22.4.2 on Mon, 07 Dec 2026 03:38:57 +0000\n"} {
		p := filepath.Join(dir, "content", "etc/sudoers.d/90-cloud-init-users")
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(header+"admin ALL=(ALL) NOPASSWD:ALL\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for dir, keys := range map[string]string{dirA: "k1\nk2\n", dirB: "k2\nk1\n"} {
		p := filepath.Join(dir, "content", "home/app/.ssh/authorized_keys")
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(keys), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	a := &effects{dir: dirA, status: "ok", files: map[string]fileEntry{
		"/etc/sudoers.d/90-cloud-init-users": {changed: true, typ: "regular file", mode: "440", owner: "root:root", sum: "1"},
		"/etc/app.conf":                      {changed: true, typ: "regular file", mode: "600", owner: "root:root", sum: "x"},
		"/var/lib/ec2init/x":                 {changed: true, typ: "regular file", mode: "600", owner: "root:root", sum: "x"},
		"/etc/passwd":                        {changed: true, typ: "regular file", mode: "644", owner: "root:root", sum: "p1"},
		"/srv/only-ec2init-dir":              {changed: true, typ: "directory", mode: "755", owner: "root:root", sum: "-"},
		"/etc/localtime":                     {changed: true, typ: "symbolic link", mode: "777", owner: "root:root", sum: "-> ../usr/share/zoneinfo/UTC"},
		"/home/app/.ssh/authorized_keys":     {changed: true, typ: "regular file", mode: "600", owner: "app:app", sum: "k12"},
	}, users: map[string]map[string]string{"app": {"uid": "1000", "shell": "/bin/sh"}},
		groups: map[string]groupEntry{"ops": {gid: "1001", members: []string{"app"}}},
		trace:  []traceEntry{{name: "a", fields: map[string]string{"cwd": "/", "env": "A B"}, keys: []string{"cwd", "env"}}, {name: "b", fields: map[string]string{}}},
	}
	b := &effects{dir: dirB, status: "failed", files: map[string]fileEntry{
		"/etc/sudoers.d/90-cloud-init-users": {changed: true, typ: "regular file", mode: "440", owner: "root:root", sum: "2"},
		"/etc/app.conf":                      {changed: true, typ: "regular file", mode: "644", owner: "root:root", sum: "x"},
		"/var/lib/cloud/y":                   {changed: true, typ: "regular file", mode: "600", owner: "root:root", sum: "y"},
		"/etc/passwd":                        {changed: true, typ: "regular file", mode: "644", owner: "root:root", sum: "p2"},
		"/etc/only-cloudinit":                {changed: true, typ: "regular file", mode: "644", owner: "root:root", sum: "z"},
		"/etc/localtime":                     {changed: true, typ: "symbolic link", mode: "777", owner: "root:root", sum: "-> /usr/share/zoneinfo/UTC"},
		"/home/app/.ssh/authorized_keys":     {changed: true, typ: "regular file", mode: "600", owner: "app:app", sum: "k21"},
	}, users: map[string]map[string]string{"app": {"uid": "1000", "shell": "/bin/bash"}},
		groups: map[string]groupEntry{"ops": {gid: "1001"}},
		trace:  []traceEntry{{name: "b", fields: map[string]string{}}, {name: "a", fields: map[string]string{"cwd": "/tmp", "env": "B C"}, keys: []string{"cwd", "env"}}},
	}
	var got []string
	for _, d := range compare(a, b) {
		got = append(got, d.key)
	}
	want := []string{
		"status",
		"file:/etc/app.conf:mode",
		"file:/etc/only-cloudinit:only-cloudinit",
		"user:app:shell",
		"group:ops:members",
		"trace:order",
		"trace:a:cwd",
		"trace:a:env",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("differences:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestAllowList(t *testing.T) {
	p := filepath.Join(t.TempDir(), "allow.txt")
	if err := os.WriteFile(p, []byte("# comment\n\n*  trace:*:arg0  each agent's own path\n03-users.yaml user:*:uid open: creation order\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	l, err := loadAllowList(p)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		doc, key, reason string
		ok               bool
	}{
		{"01-eks.mime", "trace:boothook:arg0", "each agent's own path", true},
		{"01-eks.mime", "trace:boothook:cwd", "", false},
		{"03-users.yaml", "user:app:uid", "open: creation order", true},
		{"02-runcmd.yaml", "user:app:uid", "", false},
	} {
		reason, ok := l.match(c.doc, c.key)
		if ok != c.ok || reason != c.reason {
			t.Errorf("match(%s, %s) = %q, %v; want %q, %v", c.doc, c.key, reason, ok, c.reason, c.ok)
		}
	}
	if u := l.unused(); len(u) != 0 {
		t.Errorf("unused entries: %d", len(u))
	}
	if err := os.WriteFile(p, []byte("* trace:*:arg0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := loadAllowList(p); err == nil || !strings.Contains(err.Error(), "allow.txt:1") {
		t.Errorf("an entry without a reason: %v", err)
	}
}

// The allow-list in the tree parses.
func TestAllowListFile(t *testing.T) {
	if _, err := loadAllowList(filepath.Join(here(), "allowlist.txt")); err != nil {
		t.Fatal(err)
	}
}
