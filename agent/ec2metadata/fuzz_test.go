package ec2metadata

import (
	"strings"
	"testing"
)

// FuzzParse: any command line is parsed or refused with getopt's wording,
// never a panic, and a path always normalises into latest/ or a version.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"-aiz", "--inst", "--path x --path=/y", "-- -a", "--quiet --all", "-h --help", "--pa"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		args, err := Parse(strings.Fields(line))
		if err != nil {
			if _, ok := err.(*UsageError); !ok {
				t.Fatalf("error of type %T", err)
			}
			return
		}
		for _, a := range args.Actions {
			if a.Name == "path" {
				if _, fetch := NormalizePath(a.Path); strings.Contains(fetch, "//") {
					t.Fatalf("path %q normalised to %q", a.Path, fetch)
				}
			}
		}
	})
}
