package civiews

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ec2init/ec2init/agent/sys"
)

func newRoot(t *testing.T) (*sys.Root, string) {
	t.Helper()
	dir := t.TempDir()
	r, err := sys.NewRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	return r, dir
}

// counter is a command appending a line to a file under dir, so a test
// counts the runs.
func counter(dir string, exit string) []string {
	return []string{"sh", "-c", `echo ran >> "$1"; exit ` + exit, "sh", filepath.Join(dir, "count")}
}

func runs(t *testing.T, dir string) int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "count"))
	if errors.Is(err, os.ErrNotExist) {
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(string(b), "ran\n")
}

func TestRunPerFrequencies(t *testing.T) {
	now := func() time.Time { return time.Unix(1700000000, 0) }
	tests := []struct {
		name  string
		freq  string
		ids   []string // the instance id of each call
		exit  string
		runs  int
		sem   string // semaphore of the last call, relative to the root
		code  int
		semOK string // its content
	}{
		{"once runs once over two calls", PerOnce, []string{"i-1", "i-1"}, "0", 1, "var/lib/cloud/sem/bootper.my_job.once", 0, "0\t1700000000\n"},
		{"once stays done for a new instance", PerOnce, []string{"i-1", "i-2"}, "0", 1, "var/lib/cloud/sem/bootper.my_job.once", 0, "0\t1700000000\n"},
		{"instance runs once per instance", PerInstance, []string{"i-1", "i-1", "i-2"}, "0", 2, "var/lib/cloud/instances/i-2/sem/bootper.my_job.instance", 0, "0\t1700000000\n"},
		{"always always runs", PerAlways, []string{"i-1", "i-1", "i-1"}, "0", 3, "var/lib/cloud/sem/bootper.my_job.always", 0, "0\t1700000000\n"},
		// cloud-init-per records the status whatever it is: a failed
		// once command is not retried.
		{"failing once is recorded, not retried", PerOnce, []string{"i-1", "i-1"}, "3", 1, "var/lib/cloud/sem/bootper.my_job.once", 0, "3\t1700000000\n"},
		{"failing always returns its status", PerAlways, []string{"i-1"}, "5", 1, "var/lib/cloud/sem/bootper.my_job.always", 5, "5\t1700000000\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root, dir := newRoot(t)
			var code int
			for _, id := range tt.ids {
				var err error
				code, err = RunPer(context.Background(), PerOptions{Root: root, InstanceID: id, Now: now}, tt.freq, "my-job", counter(dir, tt.exit))
				if err != nil {
					t.Fatal(err)
				}
			}
			if got := runs(t, dir); got != tt.runs {
				t.Errorf("ran %d times, want %d", got, tt.runs)
			}
			if code != tt.code {
				t.Errorf("last exit %d, want %d", code, tt.code)
			}
			b, err := os.ReadFile(filepath.Join(dir, tt.sem))
			if err != nil {
				t.Fatal(err)
			}
			if string(b) != tt.semOK {
				t.Errorf("semaphore %q, want %q", b, tt.semOK)
			}
		})
	}
}

func TestRunPerFirstFailureReturnsStatus(t *testing.T) {
	root, dir := newRoot(t)
	code, err := RunPer(context.Background(), PerOptions{Root: root}, PerOnce, "x", counter(dir, "7"))
	if err != nil || code != 7 {
		t.Fatalf("RunPer = %d, %v; want 7, nil", code, err)
	}
}

func TestRunPerNotFound(t *testing.T) {
	root, dir := newRoot(t)
	var stderr bytes.Buffer
	code, err := RunPer(context.Background(), PerOptions{Root: root, Stderr: &stderr}, PerOnce, "x", []string{"no-such-command-h9"})
	if err != nil || code != 127 {
		t.Fatalf("RunPer = %d, %v; want 127, nil", code, err)
	}
	if !strings.Contains(stderr.String(), "not found") {
		t.Errorf("stderr %q", stderr.String())
	}
	if _, err := os.Stat(filepath.Join(dir, "var/lib/cloud/sem/bootper.x.once")); err != nil {
		t.Errorf("semaphore: %v", err)
	}
}

func TestRunPerMigratesLegacyName(t *testing.T) {
	root, dir := newRoot(t)
	sem := filepath.Join(dir, "var/lib/cloud/sem")
	if err := os.MkdirAll(sem, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(sem, "bootper.my-job.once"), []byte("0\t1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, err := RunPer(context.Background(), PerOptions{Root: root}, PerOnce, "my-job", counter(dir, "0"))
	if err != nil || code != 0 {
		t.Fatalf("RunPer = %d, %v", code, err)
	}
	if runs(t, dir) != 0 {
		t.Error("ran although the legacy semaphore says it did")
	}
	if _, err := os.Stat(filepath.Join(sem, "bootper.my_job.once")); err != nil {
		t.Errorf("not migrated: %v", err)
	}
	if _, err := os.Stat(filepath.Join(sem, "bootper.my-job.once")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("legacy still there: %v", err)
	}
}

func TestSemaphorePathErrors(t *testing.T) {
	tests := []struct {
		freq, name, id string
		want           error
	}{
		{"weekly", "x", "i-1", ErrBadFrequency},
		{"once", "a/b", "i-1", ErrBadName},
		{"instance", "x", "", ErrNoInstance},
		{"instance", "x", "..", ErrNoInstance},
	}
	for _, tt := range tests {
		if _, err := SemaphorePath(tt.freq, tt.name, tt.id); !errors.Is(err, tt.want) {
			t.Errorf("SemaphorePath(%q, %q, %q) = %v, want %v", tt.freq, tt.name, tt.id, err, tt.want)
		}
	}
}
