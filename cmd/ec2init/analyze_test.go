package main

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

// TestRunAnalyze calls analyze's run function without cobra, each view
// on one recorded boot.
func TestRunAnalyze(t *testing.T) {
	root, ep := bootFixture(t, "#!/bin/sh\necho hi\n")
	e := newEnv(root)
	e.bootID = strings.TrimPrefix(testBoot, "--boot-id=")
	if err := runAnalyze(e, analyzeOptions{view: "show"}, &bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), "no boot recorded") {
		t.Errorf("before a boot: %v", err)
	}
	if r := runCLI(t, binary, "boot", "--root", root, ep, testBoot, "--log-level=error"); r.code != 0 {
		t.Fatalf("boot: %+v", r)
	}
	for _, tc := range []struct {
		o    analyzeOptions
		want string
	}{
		{analyzeOptions{view: "show"}, "scripts_user:part-001"},
		{analyzeOptions{view: "blame", asJSON: true}, `"module": "scripts_user:part-001"`},
		{analyzeOptions{view: "software"}, "without fetching"},
		{analyzeOptions{view: "boot", kernelStart: time.Unix(1700000000, 0)}, "Kernel started at:                 2023-11-14 22:13:20.000 UTC"},
	} {
		var out bytes.Buffer
		if err := runAnalyze(e, tc.o, &out); err != nil || !strings.Contains(out.String(), tc.want) {
			t.Errorf("%s: %v\n%s\nwant %q", tc.o.view, err, out.String(), tc.want)
		}
	}
}
