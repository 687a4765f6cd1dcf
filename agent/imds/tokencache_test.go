package imds_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/ec2init/ec2init/agent/imds"
	"github.com/ec2init/ec2init/agent/imds/imdssim"
)

// TestTokenCacheShared: clients sharing a TokenCache file (the stage
// processes of one boot) take one session token between them; the file is
// root's alone; a token the service refuses (401) is dropped and replaced;
// another endpoint's token is never sent; the token is never logged.
func TestTokenCacheShared(t *testing.T) {
	sim, url := imdssim.Start(t, imdssim.Options{})
	cache := filepath.Join(t.TempDir(), "imds-token")
	core, logs := observer.New(zap.DebugLevel)
	client := func(endpoint string) *imds.Client {
		cfg := fast(endpoint)
		cfg.TokenCache, cfg.Log = cache, zap.New(core)
		c, err := imds.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	ctx := context.Background()
	for i := range 3 {
		if _, err := client(url).Get(ctx, "instance-id"); err != nil {
			t.Fatalf("client %d: %v", i, err)
		}
	}
	if st := sim.Stats(); st.TokenPuts != 1 {
		t.Errorf("3 clients sharing the cache made %d token PUTs, want 1", st.TokenPuts)
	}
	fi, err := os.Stat(cache)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("token cache mode %v, want 0600", fi.Mode().Perm())
	}
	before, _ := os.ReadFile(cache)

	// The service forgets its tokens: the next client's GET is refused,
	// the cached token dropped, a new one asked for and kept.
	sim.ExpireTokens()
	if _, err := client(url).Get(ctx, "instance-id"); err != nil {
		t.Fatalf("after the tokens expired: %v", err)
	}
	after, _ := os.ReadFile(cache)
	if st := sim.Stats(); st.TokenPuts != 2 {
		t.Errorf("after a 401: %d token PUTs in all, want 2", st.TokenPuts)
	}
	if string(before) == string(after) {
		t.Error("the refused token is still cached")
	}
	if _, err := client(url).Get(ctx, "instance-id"); err != nil {
		t.Fatal(err)
	}
	if st := sim.Stats(); st.TokenPuts != 2 {
		t.Errorf("the new token was not shared: %d token PUTs, want 2", st.TokenPuts)
	}

	// Another endpoint (another service) never gets this one's token.
	other, otherURL := imdssim.Start(t, imdssim.Options{})
	if _, err := client(otherURL).Get(ctx, "instance-id"); err != nil {
		t.Fatalf("other endpoint: %v", err)
	}
	if st := other.Stats(); st.TokenPuts != 1 || st.ByStatus[401] != 0 {
		t.Errorf("other endpoint: %d token PUTs, %d refused; want its own token", st.TokenPuts, st.ByStatus[401])
	}

	var tok struct{ Token string }
	if err := json.Unmarshal(after, &tok); err != nil || tok.Token == "" {
		t.Fatalf("token cache %q: %v", after, err)
	}
	for _, e := range logs.All() {
		line := e.Message
		for _, f := range e.Context {
			line += " " + f.String
		}
		if strings.Contains(line, tok.Token) {
			t.Errorf("log entry holds the token: %q", line)
		}
	}
}
