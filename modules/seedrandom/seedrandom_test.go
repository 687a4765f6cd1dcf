package seedrandom

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ec2init/ec2init/agent/sys"
	"github.com/ec2init/ec2init/internal/testkit"
	"github.com/ec2init/ec2init/modules/modtest"
)

func gz(t *testing.T, s string) string {
	var b bytes.Buffer
	w := gzip.NewWriter(&b)
	w.Write([]byte(s))
	w.Close()
	return base64.StdEncoding.EncodeToString(b.Bytes())
}

func TestSeedRandom(t *testing.T) {
	// The recorder writes what RANDOM_SEED_FILE says, under the root.
	rec := "#!/bin/sh\nprintf '%s %s' \"$RANDOM_SEED_FILE\" \"$*\" > \"$EC2INIT_ROOT/ran\"\n"
	tests := []struct {
		name, cfg, wantSeed, wantRan, wantErr string
	}{
		{"raw appended", "random_seed: {file: /var/lib/seed, data: abc}", "old\nabc", "<absent>", ""},
		{"base64", "random_seed: {file: /var/lib/seed, data: 'aGVsbG8=', encoding: b64}", "old\nhello", "<absent>", ""},
		{"gzip", "random_seed: {file: /var/lib/seed, encoding: gzip, data: '" + gz(t, "zipped") + "'}", "old\nzipped", "<absent>", ""},
		{"bad base64", "random_seed: {file: /var/lib/seed, data: '!!', encoding: base64}", "old\n", "<absent>", "not base64"},
		{"command with env", "random_seed: {file: /var/lib/seed, data: x, command: [rec, -a]}", "old\nx", "/var/lib/seed -a", ""},
		{"command missing, not required", "random_seed: {file: /var/lib/seed, command: [nosuch]}", "old\n", "<absent>", ""},
		{"command missing, required", "random_seed: {file: /var/lib/seed, command: [nosuch], command_required: true}", "old\n", "<absent>", "command not found"},
		{"required without command", "random_seed: {file: /var/lib/seed, command_required: true}", "old\n", "<absent>", "no command"},
		{"command fails", "random_seed: {file: /var/lib/seed, command: [false]}", "old\n", "<absent>", "exited 1"},
		{"default file under --root", "random_seed: {data: x}", "old\n", "<absent>", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, _ := modtest.Env(t)
			bin := testkit.FakeBin(t, map[string]string{"rec": rec, "false": "#!/bin/sh\necho nope\nexit 1\n"})
			e.Runner.Env = map[string]string{"PATH": bin}
			modtest.Put(t, e, "/var/lib/seed", "old\n")
			err := SeedRandom{}.Run(context.Background(), e, modtest.Config(t, tt.cfg))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
			} else if err != nil {
				t.Fatal(err)
			}
			if got := modtest.Get(t, e, "/var/lib/seed"); got != tt.wantSeed {
				t.Errorf("seed file = %q, want %q", got, tt.wantSeed)
			}
			if got := modtest.Get(t, e, "/ran"); got != tt.wantRan {
				t.Errorf("command saw %q, want %q", got, tt.wantRan)
			}
			if got := modtest.Get(t, e, "/dev/urandom"); got != "<absent>" {
				t.Errorf("a stray /dev/urandom under the root: %q", got)
			}
		})
	}
}

// TestSeedRandomKernel appends to the real /dev/urandom (any user may
// write it; the bytes are mixed into the pool, never credited).
func TestSeedRandomKernel(t *testing.T) {
	root, err := sys.NewRoot("/")
	if err != nil {
		t.Fatal(err)
	}
	e, _ := modtest.Env(t)
	dir := t.TempDir()
	e.Root, e.Runner = root, &sys.Runner{Root: root}
	cfg := "random_seed: {data: 'c2VlZA==', encoding: base64, command: [sh, -c, 'test -c \"$RANDOM_SEED_FILE\" && touch " + filepath.Join(dir, "ok") + "']}"
	if err := (SeedRandom{}).Run(context.Background(), e, modtest.Config(t, cfg)); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "ok")); err != nil {
		t.Errorf("the command did not see RANDOM_SEED_FILE=/dev/urandom: %v", err)
	}
}

func TestSchema(t *testing.T) {
	for doc, want := range map[string]string{
		"random_seed: {encoding: rot13}\n":        "u.yaml:1:25: error: random_seed.encoding:",
		"random_seed: {command: ls}\n":            "u.yaml:1:24: error: random_seed.command: expected list",
		"random_seed: {command_required: true}\n": "u.yaml:1:33: error: random_seed.command_required: true needs a command",
	} {
		if got := modtest.Diagnostics(t, doc, SeedRandom{}); !strings.Contains(got, want) {
			t.Errorf("%q: diagnostics %q, want %q", doc, got, want)
		}
	}
}
