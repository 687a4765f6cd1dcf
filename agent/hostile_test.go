package agent_test

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/ec2init/ec2init/agent"
	"github.com/ec2init/ec2init/agent/state"
	"github.com/ec2init/ec2init/modules/all"
)

func repeatAlias(name string, n int) string {
	return strings.TrimSuffix(strings.Repeat("*"+name+", ", n), ", ")
}

// aliasBombConfig is a cloud-config with two alias bombs on keys modules
// read: groups (a list of 400 aliases to a mapping of 400 aliases to a
// list of 400 names: 6.4*10^7 values from 7 KB) and runcmd (the classic
// nine levels of nine).
func aliasBombConfig() string {
	keys := make([]string, 400)
	for i := range keys {
		keys[i] = fmt.Sprintf("g%d: *l", i)
	}
	var b strings.Builder
	b.WriteString("#cloud-config\n")
	b.WriteString("x-l: &l [" + strings.TrimSuffix(strings.Repeat("m, ", 400), ", ") + "]\n")
	b.WriteString("x-m: &m {" + strings.Join(keys, ", ") + "}\n")
	b.WriteString("groups: [" + repeatAlias("m", 400) + "]\n")
	b.WriteString("x-a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n")
	for c := 'b'; c <= 'i'; c++ {
		fmt.Fprintf(&b, "x-%c: &%c [%s]\n", c, c, repeatAlias(string(c-1), 9))
	}
	b.WriteString("runcmd: *i\n")
	return b.String()
}

func gzipped(t *testing.T, s string) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write([]byte(s)); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestHostileUserDataBoot boots on user data built to exhaust the agent:
// the boot ends quickly and in bounded memory, status names the part and
// the limit, and the rest of the user data still runs where it can.
func TestHostileUserDataBoot(t *testing.T) {
	var many strings.Builder
	many.WriteString("Content-Type: multipart/mixed; boundary=\"b\"\nMIME-Version: 1.0\n\n")
	for i := 0; i < 100_000; i++ {
		// No headers: a part starting #! is a script.
		many.WriteString("--b\n\n#!/bin/sh\necho run>>$EC2INIT_ROOT/out/many\n")
	}
	many.WriteString("--b--\n")
	tests := []struct {
		name         string
		userData     []byte
		wantState    string
		wantErrors   []string
		wantDegraded []string
		wantRuns     map[string]int
	}{
		{
			name: "alias bombs in a cloud-config",
			userData: []byte(multipart(
				[3]string{"text/cloud-config", "bomb.yaml", aliasBombConfig()},
				[3]string{"text/x-shellscript", "after.sh", counter("after")},
			)),
			wantState: state.StateError,
			wantErrors: []string{
				`cloud-config: user data part 0 "bomb.yaml":4:9: error: groups: YAML aliases expand`,
			},
			// runcmd's schema is two lists deep: the bomb is checked that
			// far, 81 problems at the line of the list the aliases name;
			// at boot they are warnings, as cloud-init's schema problems are.
			wantDegraded: []string{
				`cloud-config: user data part 0 "bomb.yaml":11:6: warning: runcmd[8][8]: expected string or number or boolean, got a list`,
			},
			wantRuns: map[string]int{"after": 1},
		},
		{
			// 100,000 scripts gzipped into less than EC2's 16 KiB.
			name:       "100k parts, gzipped",
			userData:   gzipped(t, many.String()),
			wantState:  state.StateError,
			wantErrors: []string{`user data: part 1000 "part-1001" (text/x-shellscript): number of parts exceeds 1000`},
			wantRuns:   map[string]int{"many": 0},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if len(tt.userData) > 16<<10 {
				t.Fatalf("user data of %d bytes: EC2 takes 16 KiB", len(tt.userData))
			}
			f := newFixture(t, string(tt.userData))
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			start := time.Now()
			st := f.boot(boot1)
			took := time.Since(start)
			runtime.ReadMemStats(&after)
			alloc := after.TotalAlloc - before.TotalAlloc
			t.Logf("%d bytes of user data: boot %v, %d MiB allocated, state %s", len(tt.userData), took.Round(time.Millisecond), alloc>>20, st.State)
			if took > 20*time.Second || alloc > 512<<20 {
				t.Errorf("boot took %v and %d MiB", took, alloc>>20)
			}
			if st.State != tt.wantState {
				t.Errorf("state %s, want %s", st.State, tt.wantState)
			}
			if len(st.Errors) > 100 {
				t.Errorf("%d errors: a status must stay readable", len(st.Errors))
			}
			joined := strings.Join(st.Errors, "\n")
			for _, w := range tt.wantErrors {
				if !strings.Contains(joined, w) {
					t.Errorf("errors %q lack %q", st.Errors, w)
				}
			}
			for _, w := range tt.wantDegraded {
				if !strings.Contains(strings.Join(st.Degraded, "\n"), w) {
					t.Errorf("degraded %q lack %q", st.Degraded, w)
				}
			}
			f.wantRuns(tt.name, tt.wantRuns)
		})
	}
}

// TestValidateInputAliasBomb: `ec2init schema` on the same user data ends
// quickly with the bombs named by part and line.
func TestValidateInputAliasBomb(t *testing.T) {
	data := []byte(multipart([3]string{"text/cloud-config", "bomb.yaml", aliasBombConfig()},
		[3]string{"text/cloud-config", "fine.yaml", "#cloud-config\nruncmd: [[echo, hi]]\n"}))
	start := time.Now()
	docs, err := agent.ValidateInput("user-data.txt", data, all.Registry())
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("validation took %v", took)
	}
	if len(docs) != 2 || len(docs[1].Diagnostics) != 0 {
		t.Fatalf("documents %+v, want bomb.yaml and a clean fine.yaml", docs)
	}
	var bombs, runcmd int
	for _, diag := range docs[0].Diagnostics {
		switch s := diag.String(); {
		case strings.HasPrefix(s, `user-data.txt part 0 "bomb.yaml":4:9: error: groups: YAML aliases expand`):
			bombs++
		case strings.HasPrefix(s, `user-data.txt part 0 "bomb.yaml":11:6: error: runcmd[`):
			runcmd++
		}
	}
	// The x-* keys are warned about as unsupported; besides them, the
	// groups bomb is one finding and runcmd's 81 list items one each.
	if bombs != 1 || runcmd != 81 {
		t.Errorf("groups bomb found %d times, runcmd items %d; want 1 and 81: %v", bombs, runcmd, docs[0].Diagnostics)
	}
}
