package disableimds

import (
	"context"
	"errors"
	"net"
	"os/exec"
	"runtime"
	"strings"
	"syscall"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
	"golang.org/x/sys/unix"

	"github.com/ec2init/ec2init/agent/sys"
	"github.com/ec2init/ec2init/internal/testkit"
	"github.com/ec2init/ec2init/modules/modtest"
)

// inNetns runs f on a thread of its own in a new network namespace (with
// only a loopback, down). The thread is never unlocked, so Go discards
// it afterwards: nothing else ever runs in that namespace, and the
// host's namespace is never touched. Commands f starts inherit it.
func inNetns(t *testing.T, f func() error) error {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			done <- err
			return
		}
		done <- f()
	}()
	return <-done
}

// dialIMDS is a UDP connect to IMDS: the kernel's route lookup, no packet.
func dialIMDS() error {
	c, err := net.Dial("udp4", IMDSAddress+":80")
	if err == nil {
		c.Close()
	}
	return err
}

// TestRejectInNetns adds the route for real, with the real ip, in a
// network namespace with a route to 169.254.0.0/16: IMDS is reachable before and
// a connect fails with EACCES (the prohibit route's error) after.
func TestRejectInNetns(t *testing.T) {
	testkit.RequireRoot(t, "a network namespace")
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("ip (Debian package iproute2) not installed")
	}
	var before, after error
	var routes string
	err := inNetns(t, func() error {
		for _, argv := range [][]string{
			{"ip", "link", "set", "lo", "up"},
			// the link-local network through lo: IMDS has a route
			{"ip", "route", "add", "169.254.0.0/16", "dev", "lo"},
		} {
			if out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput(); err != nil {
				return errors.New(strings.Join(argv, " ") + ": " + string(out))
			}
		}
		before = dialIMDS()
		e, _ := modtest.Env(t)
		root, err := sys.NewRoot("/")
		if err != nil {
			return err
		}
		e.Root, e.Runner = root, &sys.Runner{Root: root}
		cfg := modtest.Config(t, "disable_ec2_metadata: true\n")
		for range 2 { // a second run in the same boot succeeds too
			if err := (DisableEC2Metadata{}).Run(context.Background(), e, cfg); err != nil {
				return err
			}
		}
		after = dialIMDS()
		out, _ := exec.Command("ip", "route", "show", "type", "prohibit").CombinedOutput()
		routes = string(out)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if before != nil {
		t.Fatalf("before: connect to IMDS failed already: %v", before)
	}
	if !errors.Is(after, syscall.EACCES) {
		t.Errorf("after: connect to IMDS = %v, want EACCES (permission denied)", after)
	}
	if strings.TrimSpace(routes) != "prohibit 169.254.169.254" {
		t.Errorf("prohibit routes = %q", routes)
	}
}

func TestUnderRootOrOff(t *testing.T) {
	for _, tt := range []struct{ name, cfg, wantLog string }{
		{"under --root", "disable_ec2_metadata: true\n", "not applied under a --root prefix"},
		{"false", "disable_ec2_metadata: false\n", "left reachable"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e, _ := modtest.Env(t)
			// Commands would fail loudly: none may run.
			bin := testkit.FakeBin(t, map[string]string{"ip": "#!/bin/sh\nexit 9\n", "route": "#!/bin/sh\nexit 9\n"})
			e.Runner.Env = map[string]string{"PATH": bin}
			core, logs := observer.New(zap.DebugLevel)
			e.Log = zap.New(core)
			if err := (DisableEC2Metadata{}).Run(context.Background(), e, modtest.Config(t, tt.cfg)); err != nil {
				t.Fatal(err)
			}
			if logs.FilterMessageSnippet(tt.wantLog).Len() != 1 {
				t.Errorf("logs %v, want %q", logs.All(), tt.wantLog)
			}
		})
	}
}

func TestSchema(t *testing.T) {
	got := modtest.Diagnostics(t, "disable_ec2_metadata: [x]\n", DisableEC2Metadata{})
	if !strings.Contains(got, "u.yaml:1:23: error: disable_ec2_metadata: expected bool") {
		t.Errorf("diagnostics %q", got)
	}
}
