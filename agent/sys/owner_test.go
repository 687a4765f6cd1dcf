package sys

import (
	"strings"
	"testing"
)

const testPasswd = `# a comment
root:x:0:0:root:/root:/bin/bash
daemon:x:2:2:daemon:/sbin:/sbin/nologin

ec2-user:x:1000:1000:EC2 Default User:/home/ec2-user:/bin/bash
app:x:1001:1000::/srv/app:/sbin/nologin
123:x:5000:5000:named like a number:/home/123:/bin/sh
+nisuser::::::
broken:x:notanumber:0::/:/bin/sh
`

const testGroup = `root:x:0:
wheel:x:10:ec2-user
ec2-user:x:1000:
docker:x:991:ec2-user,app
+
`

func TestLookupOwner(t *testing.T) {
	r := newTestRoot(t)
	put(t, r, "/etc/passwd", testPasswd, 0o644)
	put(t, r, "/etc/group", testGroup, 0o644)

	for _, tc := range []struct {
		spec    string
		want    Owner
		wantErr []string // substrings of the error
	}{
		{spec: "root", want: Owner{0, 0}},
		{spec: "root:root", want: Owner{0, 0}},
		{spec: "ec2-user", want: Owner{1000, 1000}},
		{spec: "ec2-user:wheel", want: Owner{1000, 10}},
		{spec: "app", want: Owner{1001, 1000}},
		{spec: "app:docker", want: Owner{1001, 991}},
		{spec: "app:", want: Owner{1001, 1000}},
		{spec: ":docker", want: Owner{-1, 991}},
		{spec: "1000", want: Owner{1000, 1000}},        // an id with an entry: its login group
		{spec: "4242", want: Owner{4242, -1}},          // an id without one: group unchanged
		{spec: "4242:4343", want: Owner{4242, 4343}},   // ids need no entry
		{spec: "ec2-user:991", want: Owner{1000, 991}}, // mixed
		{spec: "123", want: Owner{5000, 5000}},         // a name wins over digits
		{spec: "bob", wantErr: []string{`owner "bob"`, `user "bob" not found in /etc/passwd under ` + r.Prefix()}},
		{spec: "ec2-user:staff", wantErr: []string{`group "staff" not found in /etc/group`}},
		{spec: "nisuser", wantErr: []string{`user "nisuser" not found`}},
		{spec: "broken", wantErr: []string{`user "broken" not found`}},
		{spec: "4242:", wantErr: []string{`user "4242" has no entry in /etc/passwd`}},
		{spec: "", wantErr: []string{"empty owner"}},
		{spec: ":", wantErr: []string{"empty owner"}},
		{spec: "4294967295", wantErr: []string{"user", "4294967295"}},
		{spec: "-1", wantErr: []string{`user "-1" not found`}},
	} {
		got, err := r.LookupOwner(tc.spec)
		if len(tc.wantErr) > 0 {
			if err == nil {
				t.Errorf("LookupOwner(%q) = %v, want an error", tc.spec, got)
				continue
			}
			for _, s := range tc.wantErr {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("LookupOwner(%q) error = %q, want it to contain %q", tc.spec, err, s)
				}
			}
			continue
		}
		if err != nil {
			t.Errorf("LookupOwner(%q): %v", tc.spec, err)
			continue
		}
		if got != tc.want {
			t.Errorf("LookupOwner(%q) = %v, want %v", tc.spec, got, tc.want)
		}
	}
}

// The root's files, not the host's: a root without them knows only ids.
func TestLookupOwnerEmptyRoot(t *testing.T) {
	r := newTestRoot(t)
	if got, err := r.LookupOwner("0:0"); err != nil || got != (Owner{0, 0}) {
		t.Errorf("LookupOwner(0:0) = %v, %v", got, err)
	}
	_, err := r.LookupOwner("root")
	if err == nil || !strings.Contains(err.Error(), `user "root"`) || !strings.Contains(err.Error(), "/etc/passwd") {
		t.Errorf("LookupOwner(root) in an empty root: error = %v, want one naming the user and /etc/passwd", err)
	}
}
