package runcmd

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/ec2init/ec2init/agent/sys"
	"github.com/ec2init/ec2init/internal/testkit"
	"github.com/ec2init/ec2init/modules"
	"github.com/ec2init/ec2init/modules/modtest"
)

// hostileWords are shell metacharacters that would each create a file in
// dir if a shell ever saw them.
func hostileWords(dir string) []string {
	m := func(n int) string { return filepath.Join(dir, "pwned-"+strconv.Itoa(n)) }
	return []string{
		"; touch " + m(1),
		"$(touch " + m(2) + ")",
		"`touch " + m(3) + "`",
		"| touch " + m(4),
		"&& touch " + m(5),
		"> " + m(6),
		`'"; touch ` + m(7) + `; echo "'`,
		"\ntouch " + m(8),
		"${IFS}touch${IFS}" + m(9),
		"*",
		"~",
	}
}

// TestListItemsAreArgv: the words of a runcmd or bootcmd list item are
// shell-quoted into the script as cloud-init quotes them: every word
// reaches the command verbatim, and no metacharacter in it does anything.
func TestListItemsAreArgv(t *testing.T) {
	for _, m := range []modules.Module{Runcmd{}, Bootcmd{}} {
		t.Run(m.Name(), func(t *testing.T) {
			e, _ := modtest.Env(t)
			bin, marks := t.TempDir(), t.TempDir()
			log := filepath.Join(bin, "argv.log")
			// The recorder writes each argument NUL-terminated.
			rec := "#!/bin/sh\nprintf '%s\\0' \"$@\" > " + log + "\n"
			testkit.FakeTool(t, bin, "record-argv", rec)
			e.Runner.Env = map[string]string{"PATH": bin + ":" + sys.DefaultPath}
			words := hostileWords(marks)
			var doc strings.Builder
			doc.WriteString(m.Name() + ":\n  - - record-argv\n")
			for _, w := range words {
				doc.WriteString("    - " + strconv.Quote(w) + "\n") // a YAML double-quoted string is a Go one here
			}
			if err := m.Run(context.Background(), e, modtest.Config(t, doc.String())); err != nil {
				t.Fatal(err)
			}
			b, err := os.ReadFile(log)
			if err != nil {
				t.Fatalf("the command did not run: %v", err)
			}
			got := strings.Split(strings.TrimSuffix(string(b), "\x00"), "\x00")
			if !reflect.DeepEqual(got, words) {
				t.Errorf("argv\n%q\nwant\n%q", got, words)
			}
			if left, _ := os.ReadDir(marks); len(left) > 0 {
				t.Errorf("a metacharacter was interpreted: %v created", left)
			}
		})
	}
}
