package software

import (
	"context"
	"errors"
	"testing"

	"github.com/ec2init/ec2init/agent/fetch"
	"github.com/ec2init/ec2init/agent/imds"
)

// TestFetcherFromEnv: the artifact fetcher is built on the agent's fetcher
// and IMDS client from env when there are some, and an s3:// item without
// a metadata client fails clearly.
func TestFetcherFromEnv(t *testing.T) {
	shared := fetch.New(fetch.Options{})
	client, err := imds.New(imds.Config{Endpoint: "http://127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		fetcher *fetch.Fetcher
		imds    *imds.Client
		s3      bool
		wantErr error
	}{
		{name: "agent's transport", fetcher: shared, s3: false},
		{name: "no agent fetcher: its own", s3: false},
		{name: "s3 with the agent's IMDS", imds: client, s3: true},
		{name: "s3 without IMDS", s3: true, wantErr: errNoIMDS},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := newEnv(t)
			env.Fetcher, env.IMDS = tt.fetcher, tt.imds
			var got fetch.ArtifactOptions
			m, _ := module()
			m.NewFetcher = func(o fetch.ArtifactOptions) (Fetcher, error) {
				got = o
				return nil, nil
			}
			_, err := m.fetcher(context.Background(), env, &Config{CacheDir: "/var/cache/ec2init/software"}, tt.s3)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err %v, want %v", err, tt.wantErr)
			}
			if err != nil {
				return
			}
			if tt.fetcher != nil && (got.Transport == nil || got.Transport != tt.fetcher.Transport()) {
				t.Error("the agent fetcher's transport is not shared")
			}
			if tt.fetcher == nil && got.Transport != nil {
				t.Error("a transport without an agent fetcher")
			}
			if got.IMDS != tt.imds {
				t.Errorf("IMDS %p, want env's %p", got.IMDS, tt.imds)
			}
		})
	}
}
