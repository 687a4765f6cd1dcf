package userdata

import "testing"

func TestMergeTypeHeader(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"Content-Type: text/cloud-config\nMerge-Type: list(append)+dict(recurse_array)+str()\n\nx: 1\n", "list(append)+dict(recurse_array)+str()"},
		{"Content-Type: text/cloud-config\nX-Merge-Type: dict(replace)\n\nx: 1\n", "dict(replace)"},
		{"Content-Type: text/cloud-config\nmerge-type:  \n\nx: 1\n", ""},
		{"Content-Type: text/cloud-config\n\nx: 1\n", ""},
	} {
		if got := parseEntity([]byte(tt.in)).mergeType(); got != tt.want {
			t.Errorf("mergeType of %q = %q, want %q", tt.in, got, tt.want)
		}
	}
}
