package snap

import (
	"context"
	"errors"
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/ec2init/ec2init/agent/state"
	"github.com/ec2init/ec2init/internal/testkit"
	"github.com/ec2init/ec2init/modules"
	"github.com/ec2init/ec2init/modules/modtest"
)

// fakeSnap records its calls and, for ack, the file it was given. snapd
// does not run in a container (it needs systemd, AppArmor and squashfs
// mounts), so the module is checked argv by argv against this fake.
// FAIL names a subcommand that fails.
const fakeSnap = `#!/bin/sh
echo "snap $*" >> "$EC2INIT_ROOT/calls"
[ "$1" = ack ] && cp "$2" "$EC2INIT_ROOT/acked"
[ "$1" = "$FAIL" ] && { echo "error: cannot $1"; exit 1; }
exit 0
`

const rec = "#!/bin/sh\necho \"$(basename \"$0\") $*\" >> \"$EC2INIT_ROOT/calls\"\n"

func TestSnap(t *testing.T) {
	tests := []struct {
		name, cfg, fail, want, wantAcked string
		wantErr                          []string
	}{
		{"assertions and commands (list)", `snap:
  assertions:
    - "type: account-key\nauthority-id: canonical"
    - "type: model"
  commands:
    - snap install core
    - [install, hello-world]
    - [snap, refresh, --list]
    - [null, other, -x]
`, "", `snap wait system seed.loaded
snap ack $ACK
snap install core
snap install hello-world
snap refresh --list
other -x`, "type: account-key\nauthority-id: canonical\ntype: model", nil},
		{"mappings: assertions in order, commands sorted by key", `snap:
  assertions: {b: "type: b", a: "type: a"}
  commands:
    "20": [remove, x]
    "10": snap install y
    "00": [other]
`, "", `snap wait system seed.loaded
snap ack $ACK
snap other
snap install y
snap remove x`, "type: b\ntype: a", nil},
		{"every command runs; failures reported", `snap:
  commands:
    - [install, a]
    - [remove, b]
    - "exit 4"
`, "remove", `snap wait system seed.loaded
snap install a
snap remove b`, "<absent>", []string{"commands [1]: snap command [1]: exit status 1: error: cannot remove", "commands [2]: snap command [2]: exit status 4"}},
		{"ack fails: no command runs", `snap:
  assertions: ["type: x"]
  commands: [[install, a]]
`, "ack", `snap wait system seed.loaded
snap ack $ACK`, "type: x", []string{"snap.assertions: snap ack: exit status 1"}},
		{"empty", "snap: {}\n", "", "<absent>", "<absent>", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, _ := modtest.Env(t)
			e.State = state.NewModuleStates(e.Root, "i-0123456789abcdef0")
			bin := testkit.FakeBin(t, map[string]string{"snap": fakeSnap, "other": rec})
			e.Runner.Env = map[string]string{"PATH": bin + ":/usr/bin:/bin", "FAIL": tt.fail}
			modtest.Put(t, e, "/usr/bin/snap", "") // snapd is in the image
			core, logs := observer.New(zap.DebugLevel)
			e.Log = zap.New(core)
			err := Snap{}.Run(context.Background(), e, modtest.Config(t, tt.cfg))
			for _, w := range tt.wantErr {
				if err == nil || !strings.Contains(err.Error(), w) {
					t.Errorf("err = %v, want %q", err, w)
				}
			}
			if len(tt.wantErr) == 0 && err != nil {
				t.Fatal(err)
			}
			var items modules.ItemErrors
			if len(tt.wantErr) > 1 && (!errors.As(err, &items) || len(items) != len(tt.wantErr)) {
				t.Errorf("err = %#v, want %d items", err, len(tt.wantErr))
			}
			ackFile, _ := e.Root.Path("/var/lib/ec2init/instances/i-0123456789abcdef0/" + AssertionsFile)
			want := strings.ReplaceAll(tt.want, "$ACK", ackFile)
			if got := strings.TrimSpace(modtest.Get(t, e, "/calls")); got != want {
				t.Errorf("calls:\n%s\nwant:\n%s", got, want)
			}
			if got := modtest.Get(t, e, "/acked"); got != tt.wantAcked {
				t.Errorf("acked %q, want %q", got, tt.wantAcked)
			}
			if strings.Contains(tt.cfg, "exit 4") && logs.FilterMessageSnippet("not snap's").Len() != 1 {
				t.Errorf("no warning for a shell command that is not snap's: %v", logs.All())
			}
		})
	}
}

// TestNoSnapd: an image without snapd is not waited on, and the commands
// say snap is missing.
func TestNoSnapd(t *testing.T) {
	e, _ := modtest.Env(t)
	e.Runner.Env = map[string]string{"PATH": t.TempDir()}
	err := Snap{}.Run(context.Background(), e, modtest.Config(t, "snap: {commands: [[install, a]]}\n"))
	if err == nil || !strings.Contains(err.Error(), "executable file not found") {
		t.Errorf("err = %v", err)
	}
}

func TestSchema(t *testing.T) {
	for doc, want := range map[string]string{
		"snap: {assertions: 'type: x'}\n":         "u.yaml:1:20: error: snap.assertions: expected list of string or mapping of string",
		"snap: {commands: [[install, null]]}\n":   "u.yaml:1:29: error: snap.commands[0][1]: only the first word may be null",
		"snap: {commands: [[]]}\n":                "u.yaml:1:19: error: snap.commands[0]: empty command",
		"snap: {commands: {a: 'ls /'}}\n":         "u.yaml:1:22: warning: snap.commands.a: not a snap command",
		"snap: {commands: []}\n":                  "u.yaml:1:18: warning: snap.commands: empty: nothing to do",
		"snap: {}\n":                              "u.yaml:1:7: warning: snap: empty",
		"snap: {commands: [{install: x}]}\n":      "u.yaml:1:19: error: snap.commands[0]: expected string or list",
		"snap: {assertions: [a], install: [x]}\n": `warning: snap.install: unknown key "install"`,
	} {
		if got := modtest.Diagnostics(t, doc, Snap{}); !strings.Contains(got, want) {
			t.Errorf("%q: diagnostics %q, want %q", doc, got, want)
		}
	}
	if got := modtest.Diagnostics(t, "snap: {assertions: [a], commands: [snap install x, [install, y], [null, ls]]}\n", Snap{}); got != "" {
		t.Errorf("good config: %q", got)
	}
}
