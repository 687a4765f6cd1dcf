package userdata

import (
	"strings"
	"testing"
)

// TestPartNames: every part that runs the same way gets its own file-safe
// name; the first of a collision keeps the name earlier versions gave it.
func TestPartNames(t *testing.T) {
	mime := func(parts ...[2]string) []byte {
		var b strings.Builder
		b.WriteString("Content-Type: multipart/mixed; boundary=\"B\"\nMIME-Version: 1.0\n\n")
		for _, p := range parts {
			b.WriteString("--B\nContent-Type: " + p[0] + "\n")
			if p[1] != "" {
				b.WriteString("Content-Disposition: attachment; filename=\"" + p[1] + "\"\n")
			}
			b.WriteString("\n#!/bin/sh\necho hi\n")
		}
		b.WriteString("--B--\n")
		return []byte(b.String())
	}
	const sh = "text/x-shellscript"
	for _, tc := range []struct {
		name  string
		parts [][2]string
		want  []string
	}{
		{"collisions", [][2]string{{sh, "setup a.sh"}, {sh, "setup_a.sh"}, {sh, "setup?a.sh"}, {sh, "setup_a.sh"}},
			[]string{"setup_a.sh", "part-002-setup_a.sh", "part-003-setup_a.sh", "part-004-setup_a.sh"}},
		{"unique names kept", [][2]string{{sh, "a.sh"}, {sh, "b.sh"}, {sh, ""}}, []string{"a.sh", "b.sh", "part-003"}},
		{"other kinds are other namespaces", [][2]string{{sh, "x"}, {"text/x-shellscript-per-boot", "x"}, {"text/cloud-boothook", "x"}},
			[]string{"x", "x", "x"}},
		{"named like a generated name", [][2]string{{sh, "part-002-a"}, {sh, "a"}, {sh, "a"}},
			[]string{"part-002-a", "a", "part-003-a"}},
		{"a literal generated name taken first", [][2]string{{sh, "a"}, {sh, "part-003-a"}, {sh, "a"}},
			[]string{"a", "part-003-a", "part-003-1-a"}},
		{"unsafe and dot names", [][2]string{{sh, "../../etc/passwd"}, {sh, "..."}, {sh, strings.Repeat("x", 300)}},
			[]string{"_.._etc_passwd", "unnamed", strings.Repeat("x", 100)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := Parse(mime(tc.parts...), Options{})
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Parts) != len(tc.want) {
				t.Fatalf("%d parts, want %d", len(res.Parts), len(tc.want))
			}
			for i, p := range res.Parts {
				if p.Name != tc.want[i] {
					t.Errorf("part %d %q: name %q, want %q", i, p.Filename, p.Name, tc.want[i])
				}
			}
			// Stable: the same user data names its parts the same way, and
			// the launch-index filter (which renumbers) does not rename.
			again, _ := Parse(mime(tc.parts...), Options{})
			filtered := again.ForLaunchIndex(0)
			for i := range res.Parts {
				if again.Parts[i].Name != res.Parts[i].Name || filtered.Parts[i].Name != res.Parts[i].Name {
					t.Errorf("part %d: names %q, %q, %q", i, res.Parts[i].Name, again.Parts[i].Name, filtered.Parts[i].Name)
				}
			}
		})
	}
}
