package sys

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestNewServicesByRoot(t *testing.T) {
	host, err := NewRoot("/")
	if err != nil {
		t.Fatal(err)
	}
	tmp, err := NewRoot(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		root *Root
		want any
	}{
		{"host root talks to systemd", host, &DBusServices{}},
		{"other root only records", tmp, &RecordingServices{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := NewServices(tt.root, nil)
			if reflect.TypeOf(got) != reflect.TypeOf(tt.want) {
				t.Errorf("NewServices = %T, want %T", got, tt.want)
			}
		})
	}
}

func TestRecordingServices(t *testing.T) {
	ctx := context.Background()
	r := &RecordingServices{}
	steps := []func() error{
		func() error { return r.Reload(ctx) },
		func() error { return r.Enable(ctx) }, // nothing to enable: not recorded
		func() error { return r.Enable(ctx, "a.service", "b.timer") },
		func() error { return r.Start(ctx, "a.service") },
		func() error { return r.Restart(ctx, "b.service") },
	}
	for i, s := range steps {
		if err := s(); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
	}
	want := []string{"daemon-reload", "enable a.service b.timer", "start a.service", "restart b.service"}
	if got := r.Actions(); !reflect.DeepEqual(got, want) {
		t.Errorf("actions = %q, want %q", got, want)
	}
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	if err := r.Start(canceled, "c.service"); err == nil {
		t.Error("Start with a canceled context: no error")
	}
	if len(r.Actions()) != len(want) {
		t.Errorf("a canceled call was recorded: %q", r.Actions())
	}
}

// With no systemd to reach, every D-Bus call fails with an error naming the
// action, never a panic or a hang.
func TestDBusServicesWithoutSystemd(t *testing.T) {
	if _, err := os.Stat("/run/systemd/private"); err == nil {
		t.Skip("a real systemd runs here: not calling it from a unit test")
	}
	t.Setenv("DBUS_SYSTEM_BUS_ADDRESS", "unix:path="+filepath.Join(t.TempDir(), "no-bus"))
	ctx := context.Background()
	d := &DBusServices{}
	calls := []struct {
		name string
		call func() error
	}{
		{"daemon-reload", func() error { return d.Reload(ctx) }},
		{"enable", func() error { return d.Enable(ctx, "x.service") }},
		{"start", func() error { return d.Start(ctx, "x.service") }},
		{"restart", func() error { return d.Restart(ctx, "x.service") }},
	}
	for _, c := range calls {
		t.Run(c.name, func(t *testing.T) {
			err := c.call()
			if err == nil || !strings.Contains(err.Error(), "systemd "+c.name) || !strings.Contains(err.Error(), "D-Bus") {
				t.Errorf("error = %v, want one naming %q and D-Bus", err, c.name)
			}
		})
	}
	if err := d.Enable(ctx); err != nil {
		t.Errorf("enabling nothing: %v", err)
	}
}
