package main

import (
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
)

// TestYAMLAgainstPyYAML: status --format yaml is what PyYAML's
// safe_dump writes (cloud-init's safeyaml.dumps), compared with the real
// thing when python3-yaml is installed.
func TestYAMLAgainstPyYAML(t *testing.T) {
	in := `{"recoverable_errors": {"WARNING": ["cloud-config: user data part 0 \"part-001\":3:1: warning: no_such_key: not supported by ec2init; ignored", "plain text that is quite long and goes beyond the eighty column limit of pyyaml for sure yes", "it's a 'quoted' thing: with a colon and a long long long long long long long long long long tail to fold"]}, "errors": ["('runcmd', Error('script exit status 3 and then some more text to go past eighty columns'))"], "detail": "a b", "x": "", "n": null, "f": 12.5, "i": 3, "last_update": "Thu, 01 Jan 1970 00:13:20 +0000", "stage": "modules-final", "t": "true", "num": "1.5", "e": {}, "l": []}`
	dec := json.NewDecoder(strings.NewReader(in))
	dec.UseNumber()
	var v map[string]any
	if err := dec.Decode(&v); err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	b.WriteString("---\n")
	writeYAML(&b, v, 0)
	b.WriteString("...\n")
	cmd := exec.Command("python3", "-c", "import sys,json,yaml; sys.stdout.write(yaml.dump(json.load(sys.stdin), line_break='\\n', indent=4, explicit_start=True, explicit_end=True, default_flow_style=False, Dumper=yaml.dumper.SafeDumper))")
	cmd.Stdin = strings.NewReader(in)
	want, err := cmd.Output()
	if err != nil {
		t.Skipf("python3 with PyYAML (Debian: python3-yaml) not usable: %v", err)
	}
	if b.String() != string(want) {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
}
