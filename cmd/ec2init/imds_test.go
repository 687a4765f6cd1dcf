package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/ec2init/ec2init/agent/imds/imdssim"
	"github.com/ec2init/ec2init/internal/testkit"
)

// TestRunIMDSServe serves the simulator until its context ends.
func TestRunIMDSServe(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var out testkit.SyncBuffer
	done := make(chan error, 1)
	go func() { done <- runIMDSServe(ctx, imdsServeOptions{addr: "127.0.0.1:0", fail: "2:503"}, &out) }()
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(out.String(), "listening on http://127.0.0.1:") && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil || !strings.Contains(out.String(), "listening on") {
		t.Fatalf("%v %q", err, out.String())
	}
	if err := runIMDSServe(context.Background(), imdsServeOptions{addr: "127.0.0.1:0", fail: "x"}, io.Discard); err == nil || !strings.Contains(err.Error(), "--fail") {
		t.Errorf("bad --fail: %v", err)
	}
}

// TestMetadataSharesTheBootsToken: as root, metadata (and ec2-metadata,
// which boot scripts call again and again) reuses the session token the
// boot shares, for that endpoint only: one token PUT for two runs.
func TestMetadataSharesTheBootsToken(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the shared token is root's (/run/ec2init/imds-token, 0600)")
	}
	sim, url := imdssim.Start(t, imdssim.Options{})
	root := t.TempDir()
	// A boot has made /run/ec2init; the token is kept there.
	if err := os.MkdirAll(root+"/run/ec2init", 0o755); err != nil {
		t.Fatal(err)
	}
	e := newEnv(root)
	for i := 0; i < 2; i++ {
		var out bytes.Buffer
		if err := runMetadata(context.Background(), e, []string{"--endpoint", url, "-i"}, &out); err != nil || !strings.Contains(out.String(), "instance-id: i-") {
			t.Fatalf("run %d: %v %q", i, err, out.String())
		}
	}
	if got := sim.Stats().TokenPuts; got != 1 {
		t.Errorf("%d token PUTs for two runs, want 1", got)
	}
}
