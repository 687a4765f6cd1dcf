package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ec2init/ec2init/agent/config"
	"github.com/ec2init/ec2init/internal/testkit"
)

// TestIdentifyDeadlineFromConfig: how long the boot waits for the
// metadata service comes from the system config (here cloud-init's
// datasource.Ec2.max_wait, under ec2init's imds.deadline) unless
// --identify-deadline is given.
func TestIdentifyDeadlineFromConfig(t *testing.T) {
	tests := []struct {
		name    string
		cfg     string
		opts    bootOptions
		wantErr string
	}{
		{name: "max_wait from /etc/cloud", cfg: "datasource:\n  Ec2:\n    max_wait: 1\n",
			opts: bootOptions{identifyDeadline: time.Hour}, wantErr: "within 1s"},
		{name: "the flag wins", cfg: "datasource:\n  Ec2:\n    max_wait: 3600\n",
			opts: bootOptions{identifyDeadline: 300 * time.Millisecond, identifyDeadlineSet: true}, wantErr: "within 300ms"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, _ := testEnv(t, "")
			e.endpoint = "http://127.0.0.1:1" // nothing listens there
			p := filepath.Join(e.root, config.CloudInitFile)
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, []byte(tt.cfg), 0o644); err != nil {
				t.Fatal(err)
			}
			tt.opts.stage = "network"
			_, err := runStages(context.Background(), e, tt.opts, &testkit.SyncBuffer{})
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("got %v, want an error with %q", err, tt.wantErr)
			}
		})
	}
}
