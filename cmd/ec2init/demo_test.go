package main

import (
	"regexp"
	"strings"
	"testing"
)

// TestDemoHybridAMI: the demo's Hybrid AMI part bakes the runtime from
// the loopback origin, and the instance's first boot fetches only the app,
// with each item's bytes and times and the boot with and without fetching
// (ec2init analyze software).
func TestDemoHybridAMI(t *testing.T) {
	r := runCLI(t, binary, "demo")
	if r.code != 0 {
		t.Fatalf("demo: %+v", r)
	}
	for _, want := range []string{
		"the origin served runtime.bin 1 time(s), app.bin 0",
		"(done); the origin served app.bin 1 time(s), runtime.bin 0 more",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("demo output lacks %q:\n%s", want, r.stdout)
		}
	}
	for _, re := range []string{
		`bake \(on the build instance\): \d+(\.\d+)?m?s;`,
		`\| runtime +bake +verified +- +0\.0 `,
		`\| app +boot +installed +1\.0 MiB +\d+\.\d +\d+\.\d`,
		`\| ec2init's work: \d+\.\d ms; fetching: \d+\.\d ms; without fetching: \d+\.\d ms`,
	} {
		if !regexp.MustCompile(re).MatchString(r.stdout) {
			t.Errorf("demo output does not match %s:\n%s", re, r.stdout)
		}
	}
}
