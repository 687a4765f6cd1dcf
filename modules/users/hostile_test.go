package users

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/ec2init/ec2init/agent/sys"
	"github.com/ec2init/ec2init/internal/testkit"
	"github.com/ec2init/ec2init/modules/modtest"
)

// TestValuesReachToolsVerbatim: users' names, gecos, groups, shell and
// keys reach the shadow tools as argv (and authorized_keys as text)
// exactly as written; no shell ever sees them, so no metacharacter runs.
func TestValuesReachToolsVerbatim(t *testing.T) {
	e, _ := modtest.Env(t)
	bin, marks := t.TempDir(), t.TempDir()
	m := func(n int) string { return filepath.Join(marks, "pwned-"+strconv.Itoa(n)) }
	name := "x$(touch " + m(1) + ")"
	gecos := "Bob; touch " + m(2) + " `touch " + m(3) + "`"
	group := "ops&&touch " + m(4)
	shell := "/bin/sh|touch " + m(5)
	key := "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHostile $(touch " + m(6) + ");`touch " + m(7) + "`"

	// Each tool records its argv, NUL-terminated, one file per call; the
	// fake useradd also adds the account (its last argument) so keys can
	// be installed.
	uid, gid := strconv.Itoa(os.Getuid()), strconv.Itoa(os.Getgid())
	record := "#!/bin/sh\nn=$(ls " + bin + "/calls | wc -l)\nprintf '%s\\0' \"$(basename \"$0\")\" \"$@\" > " + bin + "/calls/$n\n"
	useradd := record + `for last; do :; done
printf '%s:x:` + uid + `:` + gid + `::/home/%s:/bin/sh\n' "$last" "$last" >> "$2/etc/passwd"
mkdir -p "$2/home/$last"
`
	if err := os.Mkdir(filepath.Join(bin, "calls"), 0o755); err != nil {
		t.Fatal(err)
	}
	for tool, body := range map[string]string{"useradd": useradd, "groupadd": record, "usermod": record, "visudo": record} {
		testkit.FakeTool(t, bin, tool, body)
	}
	e.Runner.Env = map[string]string{"PATH": bin + ":" + sys.DefaultPath}
	if err := e.Root.WriteFile("/etc/passwd", []byte("root:x:0:0::/root:/bin/sh\n"), 0o644, nil); err != nil {
		t.Fatal(err)
	}
	if err := e.Root.WriteFile("/etc/group", []byte("root:x:0:\n"), 0o644, nil); err != nil {
		t.Fatal(err)
	}
	doc := "users:\n  - name: " + strconv.Quote(name) + "\n    gecos: " + strconv.Quote(gecos) +
		"\n    groups: [" + strconv.Quote(group) + "]\n    shell: " + strconv.Quote(shell) +
		"\n    ssh_authorized_keys: [" + strconv.Quote(key) + "]\n"
	if err := (UsersGroups{}).Run(context.Background(), e, modtest.Config(t, doc)); err != nil {
		t.Fatal(err)
	}

	calls, err := os.ReadDir(filepath.Join(bin, "calls"))
	if err != nil {
		t.Fatal(err)
	}
	var got [][]string
	for _, c := range calls {
		b, err := os.ReadFile(filepath.Join(bin, "calls", c.Name()))
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, strings.Split(strings.TrimSuffix(string(b), "\x00"), "\x00"))
	}
	prefix := e.Root.Prefix()
	want := [][]string{
		{"groupadd", "--prefix", prefix, group},
		{"useradd", "--prefix", prefix, "-c", gecos, "-s", shell, "-G", group, "-m", name},
		{"usermod", "--prefix", prefix, "-L", name},
	}
	for _, w := range want {
		if !slices.ContainsFunc(got, func(g []string) bool { return slices.Equal(g, w) }) {
			t.Errorf("no call %q among %q", w, got)
		}
	}
	keys, err := e.Root.ReadFile("/home/" + name + "/.ssh/authorized_keys")
	if err != nil || !slices.Contains(strings.Split(string(keys), "\n"), key) {
		t.Errorf("authorized_keys %q, %v: want the key line verbatim", keys, err)
	}
	if left, _ := os.ReadDir(marks); len(left) > 0 {
		t.Errorf("a metacharacter was interpreted: %v created", left)
	}
}
