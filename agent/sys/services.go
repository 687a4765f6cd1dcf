package sys

import (
	"cmp"
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	sddbus "github.com/coreos/go-systemd/v22/dbus"
	"go.uber.org/zap"
)

// Services is the part of systemd the agent drives after installing
// software: reload unit files, enable units, start or restart one.
type Services interface {
	// Reload is systemctl daemon-reload: unit files written since are read.
	Reload(ctx context.Context) error
	// Enable is systemctl enable: the units start at every boot.
	Enable(ctx context.Context, units ...string) error
	// Start starts unit (a no-op when it runs) and waits for the job.
	Start(ctx context.Context, unit string) error
	// Restart restarts unit (starts it when stopped) and waits for the job.
	Restart(ctx context.Context, unit string) error
}

// NewServices returns the services of the host seen through root: systemd
// over D-Bus when root is "/", otherwise a recorder, so a --root run (a
// test, an image being prepared) never changes the running host's units.
func NewServices(root *Root, log *zap.Logger) Services {
	if root != nil && root.IsHost() {
		return &DBusServices{Log: log}
	}
	return &RecordingServices{Log: log}
}

// DBusServices talks to the running systemd over D-Bus (its private socket
// when the agent is root, the system bus otherwise). Each call opens and
// closes its own connection: the agent makes a handful of calls per boot.
type DBusServices struct {
	Log *zap.Logger
	// JobWait bounds the wait for a start or restart job (default
	// DefaultJobWait). A unit ordered after ec2init's own final unit can
	// only start once the boot is done: its job stays queued, and the
	// wait ends with an error saying so instead of stalling the boot.
	JobWait time.Duration
}

// DefaultJobWait is systemd's own default start timeout, and a margin.
const DefaultJobWait = 2 * time.Minute

func (d *DBusServices) log() *zap.Logger {
	if d.Log == nil {
		return zap.NewNop()
	}
	return d.Log
}

func (d *DBusServices) conn(ctx context.Context, what string) (*sddbus.Conn, error) {
	c, err := sddbus.NewWithContext(ctx)
	if err != nil {
		return nil, fmt.Errorf("systemd %s: connecting over D-Bus: %w", what, err)
	}
	return c, nil
}

// Reload implements Services.
func (d *DBusServices) Reload(ctx context.Context) error {
	c, err := d.conn(ctx, "daemon-reload")
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.ReloadContext(ctx); err != nil {
		return fmt.Errorf("systemd daemon-reload: %w", err)
	}
	d.log().Info("systemd daemon-reload")
	return nil
}

// Enable implements Services.
func (d *DBusServices) Enable(ctx context.Context, units ...string) error {
	if len(units) == 0 {
		return nil
	}
	c, err := d.conn(ctx, "enable")
	if err != nil {
		return err
	}
	defer c.Close()
	// runtime=false: enabled for every boot, not only this one; force=true
	// replaces stale symlinks pointing at an older unit file.
	if _, _, err := c.EnableUnitFilesContext(ctx, units, false, true); err != nil {
		return fmt.Errorf("systemd enable %s: %w", strings.Join(units, " "), err)
	}
	d.log().Info("systemd enable", zap.Strings("units", units))
	return nil
}

// Start implements Services.
func (d *DBusServices) Start(ctx context.Context, unit string) error {
	return d.job(ctx, "start", unit)
}

// Restart implements Services.
func (d *DBusServices) Restart(ctx context.Context, unit string) error {
	return d.job(ctx, "restart", unit)
}

// job queues a start or restart job ("replace" mode, as systemctl does) and
// waits for its result: a unit that fails to start is an error here, not a
// silent success.
func (d *DBusServices) job(ctx context.Context, verb, unit string) error {
	c, err := d.conn(ctx, verb)
	if err != nil {
		return err
	}
	defer c.Close()
	done := make(chan string, 1)
	switch verb {
	case "start":
		_, err = c.StartUnitContext(ctx, unit, "replace", done)
	default:
		_, err = c.RestartUnitContext(ctx, unit, "replace", done)
	}
	if err != nil {
		return fmt.Errorf("systemd %s %s: %w", verb, unit, err)
	}
	select {
	case res := <-done:
		if res != "done" {
			return fmt.Errorf("systemd %s %s: job %s (see journalctl -u %s)", verb, unit, res, unit)
		}
	case <-ctx.Done():
		return fmt.Errorf("systemd %s %s: waiting for the job: %w", verb, unit, ctx.Err())
	case <-time.After(cmp.Or(d.JobWait, DefaultJobWait)):
		return fmt.Errorf("systemd %s %s: the job is still queued after %s (is the unit ordered after ec2init's units?); it stays queued",
			verb, unit, cmp.Or(d.JobWait, DefaultJobWait))
	}
	d.log().Info("systemd "+verb, zap.String("unit", unit))
	return nil
}

// RecordingServices changes nothing: it logs and records what it would do
// ("daemon-reload", "enable a.service", "start a.service"), for a root
// other than "/" and for tests.
type RecordingServices struct {
	Log *zap.Logger

	mu      sync.Mutex
	actions []string
}

// Actions returns what was asked, in order.
func (r *RecordingServices) Actions() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.actions...)
}

func (r *RecordingServices) record(ctx context.Context, action string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("systemd %s: %w", action, err)
	}
	r.mu.Lock()
	r.actions = append(r.actions, action)
	r.mu.Unlock()
	if r.Log != nil {
		r.Log.Info("not the running system's root: would systemctl " + action)
	}
	return nil
}

// Reload implements Services.
func (r *RecordingServices) Reload(ctx context.Context) error {
	return r.record(ctx, "daemon-reload")
}

// Enable implements Services.
func (r *RecordingServices) Enable(ctx context.Context, units ...string) error {
	if len(units) == 0 {
		return nil
	}
	return r.record(ctx, "enable "+strings.Join(units, " "))
}

// Start implements Services.
func (r *RecordingServices) Start(ctx context.Context, unit string) error {
	return r.record(ctx, "start "+unit)
}

// Restart implements Services.
func (r *RecordingServices) Restart(ctx context.Context, unit string) error {
	return r.record(ctx, "restart "+unit)
}
