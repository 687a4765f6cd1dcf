package bootstraptest

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"go.uber.org/zap"

	"github.com/ec2init/ec2init/agent/sys"
	"github.com/ec2init/ec2init/modules/modtest"
)

func TestFakes(t *testing.T) {
	e, _ := modtest.Env(t)
	f := NewFakes(t, e, map[string]string{"apt-get": "", "systemctl": "echo extra >> \"$log\"\nexit 3\n"})
	if got := f.Argv(t); got != "" {
		t.Errorf("before any run: %q", got)
	}
	ctx := context.Background()
	if _, err := e.Runner.Run(ctx, sys.Cmd{Name: "apt-get", Argv: []string{"apt-get", "install", "x"}}); err != nil {
		t.Fatal(err)
	}
	res, err := e.Runner.Run(ctx, sys.Cmd{Name: "systemctl", Argv: []string{"systemctl", "enable", "u"}})
	if err != nil || res.ExitCode != 3 {
		t.Fatalf("systemctl: %+v, %v; want its script's exit status 3", res, err)
	}
	if got, want := f.Argv(t), "apt-get install x\nsystemctl enable u\nextra\n"; got != want {
		t.Errorf("Argv = %q, want %q", got, want)
	}
}

// errorTB records Errorf instead of failing the test, to test NoLeak.
type errorTB struct {
	testing.TB
	failed bool
}

func (e *errorTB) Helper()                   {}
func (e *errorTB) Errorf(string, ...any)     { e.failed = true }
func (e *errorTB) Error(...any)              { e.failed = true }
func (e *errorTB) Fatalf(f string, a ...any) { panic(fmt.Sprintf(f, a...)) }

func TestNoLeak(t *testing.T) {
	const secret = "-----BEGIN KEY-----\nMIIsecret\n-----END KEY-----\n"
	tests := []struct {
		name    string
		log     func(*zap.Logger)
		console string
		err     error
		leak    bool
	}{
		{"clean", func(l *zap.Logger) { l.Info("configured", zap.String("dir", "/etc/x")) }, "ok", errors.New("x: exit status 1"), false},
		{"in the console", func(*zap.Logger) {}, "key " + secret, nil, true},
		{"in the error", func(*zap.Logger) {}, "", fmt.Errorf("bad key %s", secret), true},
		{"in a message", func(l *zap.Logger) { l.Warn("key " + secret) }, "", nil, true},
		{"in an error field", func(l *zap.Logger) { l.Warn("failed", zap.Error(errors.New(secret))) }, "", nil, true},
		{"reflowed in a field", func(l *zap.Logger) { l.Info("x", zap.String("k", "-----BEGIN KEY----- MIIsecret -----END KEY-----")) }, "", nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, _ := modtest.Env(t)
			logs := Observe(e)
			tt.log(e.Logger())
			rec := &errorTB{TB: t}
			NoLeak(rec, secret, logs, tt.console, tt.err)
			if rec.failed != tt.leak {
				t.Errorf("NoLeak reported a leak: %v, want %v", rec.failed, tt.leak)
			}
		})
	}
}
