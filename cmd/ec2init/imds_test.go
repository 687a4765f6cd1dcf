package main

import (
	"context"
	"io"
	"strings"
	"testing"
	"time"

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
