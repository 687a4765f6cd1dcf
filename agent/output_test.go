package agent_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ec2init/ec2init/agent"
	"github.com/ec2init/ec2init/agent/state"
	"github.com/ec2init/ec2init/internal/testkit"
	"github.com/ec2init/ec2init/modules/all"
)

// TestOutputRedirection: cloud-config's output key sends a stage's script
// and command output where cloud-init would, and ec2init's own output log
// always keeps it.
func TestOutputRedirection(t *testing.T) {
	const script = "#!/bin/sh\necho from-script\n"
	for _, tc := range []struct {
		name, output string
		file         string // under the root: must hold the output
		console      bool   // the console gets it too
		truncated    bool   // the file's earlier content is gone
	}{
		{"cloud-init's default tee", "{all: '| tee -a /var/log/cloud-init-output.log'}", "/var/log/cloud-init-output.log", true, false},
		{"append to a file, not the console", "{final: '>> /var/log/final.log'}", "/var/log/final.log", false, false},
		{"truncate", "{all: ['> /var/log/t.log', '&1']}", "/var/log/t.log", false, true},
		{"a shell pipe", `{all: '| sed s/^/piped:/ >> "$EC2INIT_ROOT/out/piped"'}`, "/out/piped", false, false},
		{"other mode only", "{init: '>> /var/log/init.log'}", "", true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, multipart(
				[3]string{"text/cloud-config", "cfg.yaml", "#cloud-config\noutput: " + tc.output + "\nruncmd:\n  - echo from-runcmd\n"},
				[3]string{"text/x-shellscript", "s.sh", script},
			))
			if tc.file != "" {
				if err := os.MkdirAll(filepath.Join(f.root, filepath.Dir(tc.file)), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(f.root, tc.file), []byte("earlier\n"), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			// The output command logs from its own goroutine: a safe log.
			var console testkit.SyncBuffer
			o := f.quietOptions(boot1, &syncBuffer{})
			o.Console = &console
			o.Registry = all.Registry()
			st := f.bootWith(o.Registry, func(string) agent.Options { return o })(boot1)
			if st.State != state.StateDone {
				t.Fatalf("boot: %s %q %q", st.State, st.Errors, st.Degraded)
			}
			own, err := os.ReadFile(filepath.Join(f.root, state.OutputLogFile))
			if err != nil || !strings.Contains(string(own), "from-script") || !strings.Contains(string(own), "from-runcmd") {
				t.Errorf("ec2init's output log lost the output: %q %v", own, err)
			}
			if got := strings.Contains(console.String(), "from-script"); got != tc.console {
				t.Errorf("console has the script's output: %v, want %v", got, tc.console)
			}
			if tc.file == "" {
				return
			}
			b, err := os.ReadFile(filepath.Join(f.root, tc.file))
			if err != nil {
				t.Fatal(err)
			}
			for _, want := range []string{"from-script", "from-runcmd"} {
				if !strings.Contains(string(b), want) {
					t.Errorf("%s lacks %q: %q", tc.file, want, b)
				}
			}
			if tc.name == "a shell pipe" && !strings.Contains(string(b), "piped:from-script") {
				t.Errorf("the pipe did not read the output: %q", b)
			}
			if got := strings.Contains(string(b), "earlier"); got == tc.truncated {
				t.Errorf("earlier content kept %v, want truncated %v", got, tc.truncated)
			}
		})
	}
}

// TestOutputCommandFails: an output command that exits at once neither
// blocks nor fails the scripts; the boot is degraded naming it.
func TestOutputCommandFails(t *testing.T) {
	f := newFixture(t, multipart(
		[3]string{"text/cloud-config", "cfg.yaml", "#cloud-config\noutput: {final: '| exit 3'}\n"},
		[3]string{"text/x-shellscript", "s.sh", counter("s")},
	))
	o := f.quietOptions(boot1, &syncBuffer{})
	st := f.bootWith(o.Registry, func(string) agent.Options { return o })(boot1)
	f.wantRuns("boot", map[string]int{"s": 1})
	if st.State != state.StateDegraded || !strings.Contains(strings.Join(st.Degraded, " "), "output (final)") {
		t.Fatalf("boot: %s %q %q", st.State, st.Errors, st.Degraded)
	}
}

// TestOutputThroughCloudInitLink: where the package linked cloud-init's
// output log to ec2init's, cloud-init's default tee writes each line once.
func TestOutputThroughCloudInitLink(t *testing.T) {
	f := newFixture(t, multipart(
		[3]string{"text/cloud-config", "cfg.yaml", "#cloud-config\noutput: {all: '| tee -a /var/log/cloud-init-output.log'}\n"},
		[3]string{"text/x-shellscript", "s.sh", "#!/bin/sh\necho once-only\n"},
	))
	if err := os.MkdirAll(filepath.Join(f.root, "var/log"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("ec2init-output.log", filepath.Join(f.root, "var/log/cloud-init-output.log")); err != nil {
		t.Fatal(err)
	}
	o := f.quietOptions(boot1, &syncBuffer{})
	if st := f.bootWith(o.Registry, func(string) agent.Options { return o })(boot1); st.State != state.StateDone {
		t.Fatalf("boot: %s %q %q", st.State, st.Errors, st.Degraded)
	}
	b, err := os.ReadFile(filepath.Join(f.root, state.OutputLogFile))
	if err != nil || strings.Count(string(b), "once-only\n") != 1 {
		t.Fatalf("output log: %q %v: want the line once", b, err)
	}
}
