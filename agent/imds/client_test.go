package imds_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/ec2init/ec2init/agent/imds"
	"github.com/ec2init/ec2init/agent/imds/imdssim"
	"github.com/ec2init/ec2init/internal/testnet"
)

// fast keeps retries quick in tests; the policy itself is the same.
func fast(endpoint string) imds.Config {
	return imds.Config{
		Endpoint:       endpoint,
		RequestTimeout: 500 * time.Millisecond,
		CallTimeout:    5 * time.Second,
		MaxAttempts:    4,
		BaseBackoff:    time.Millisecond,
		MaxBackoff:     5 * time.Millisecond,
	}
}

func start(t *testing.T, opts imdssim.Options) (*imdssim.Server, *imds.Client) {
	t.Helper()
	sim, url := imdssim.Start(t, opts)
	c, err := imds.New(fast(url))
	if err != nil {
		t.Fatal(err)
	}
	return sim, c
}

func TestGet(t *testing.T) {
	sim, c := start(t, imdssim.Options{})
	ctx := context.Background()
	tests := []struct {
		path    string
		want    string
		wantErr error
	}{
		{path: "instance-id", want: "i-0123456789abcdef0"},
		{path: "placement/availability-zone", want: "us-east-1a"},
		{path: "block-device-mapping/", want: "ami\nebs1\nephemeral0\nroot"},
		{path: "no-such-thing", wantErr: imds.ErrNotFound},
	}
	for _, tt := range tests {
		sim.ResetStats()
		got, err := c.Get(ctx, tt.path)
		if !errors.Is(err, tt.wantErr) || got != tt.want {
			t.Errorf("Get(%q) = %q, %v; want %q, %v", tt.path, got, err, tt.want, tt.wantErr)
		}
		if tt.wantErr != nil && sim.Stats().Gets != 1 {
			t.Errorf("Get(%q): %d GETs, want 1 (a 404 is never retried)", tt.path, sim.Stats().Gets)
		}
	}
}

func TestRetries(t *testing.T) {
	tests := []struct {
		name      string
		fail      int
		status    int
		wantErr   bool
		wantGets  int
		wantInErr string
	}{
		{name: "500 then success", fail: 2, status: 500, wantGets: 3},
		{name: "503 then success", fail: 3, status: 503, wantGets: 4},
		{name: "429 then success", fail: 1, status: 429, wantGets: 2},
		{name: "gives up after max attempts", fail: 10, status: 503, wantErr: true, wantGets: 4, wantInErr: "HTTP 503"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sim, c := start(t, imdssim.Options{})
			sim.FailNext(tt.fail, tt.status)
			got, err := c.Get(context.Background(), "ami-id")
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if err == nil && got != "ami-0abcdef1234567890" {
				t.Errorf("got %q", got)
			}
			if err != nil && !strings.Contains(err.Error(), tt.wantInErr) {
				t.Errorf("err = %q, want it to name %q", err, tt.wantInErr)
			}
			if g := sim.Stats().Gets; g != tt.wantGets {
				t.Errorf("%d GETs, want %d", g, tt.wantGets)
			}
		})
	}
}

func TestDeadline(t *testing.T) {
	sim, url := imdssim.Start(t, imdssim.Options{})
	cfg := fast(url)
	cfg.CallTimeout = 300 * time.Millisecond
	c, err := imds.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	sim.Hang(true)
	defer sim.Hang(false)
	begin := time.Now()
	_, err = c.Get(context.Background(), "ami-id")
	if err == nil || !strings.Contains(err.Error(), "timed out") {
		t.Fatalf("err = %v, want a timeout", err)
	}
	// Generous bound: the point is that the deadline ends the call at all.
	if waited := time.Since(begin); waited > 3*time.Second {
		t.Errorf("call took %v despite a 300ms deadline", waited)
	}
}

func TestTokenRefresh(t *testing.T) {
	sim, c := start(t, imdssim.Options{})
	ctx := context.Background()
	if _, err := c.Get(ctx, "ami-id"); err != nil {
		t.Fatal(err)
	}
	sim.ExpireTokens()
	if _, err := c.Get(ctx, "instance-id"); err != nil {
		t.Fatalf("after token expiry: %v", err)
	}
	if puts := sim.Stats().TokenPuts; puts != 2 {
		t.Errorf("%d token PUTs, want 2 (one refresh after the 401)", puts)
	}
	if v1 := sim.Stats().V1Requests; v1 != 0 {
		t.Errorf("%d requests without a token", v1)
	}
}

func TestNoSilentIMDSv1Fallback(t *testing.T) {
	for _, allow := range []bool{false, true} {
		sim, url := imdssim.Start(t, imdssim.Options{AllowV1: true})
		// An IMDSv1-only service refuses the token PUT.
		sim.FailTokenNext(1000, 403)
		cfg := fast(url)
		cfg.AllowV1 = allow
		c, err := imds.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		got, err := c.Get(context.Background(), "ami-id")
		if !allow {
			if err == nil || !imds.IsTokenError(err) {
				t.Errorf("v1 not allowed: err = %v, want a token error", err)
			}
			if v1 := sim.Stats().V1Requests; v1 != 0 {
				t.Errorf("v1 not allowed, yet %d token-less requests", v1)
			}
			continue
		}
		if err != nil || got != "ami-0abcdef1234567890" {
			t.Errorf("v1 allowed: %q, %v", got, err)
		}
		if sim.Stats().V1Requests == 0 {
			t.Errorf("v1 allowed: expected a token-less request")
		}
	}
}

func TestBadEndpoints(t *testing.T) {
	closed := testnet.ClosedPort(t)
	notHTTP := testnet.NotHTTP(t)
	tests := []struct {
		name, endpoint, want string
	}{
		{"unreachable", closed, "connection refused"},
		{"not http", notHTTP, "does not speak HTTP"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := imds.New(fast(tt.endpoint))
			if err != nil {
				t.Fatal(err)
			}
			_, err = c.Get(context.Background(), "ami-id")
			if err == nil {
				t.Fatal("no error")
			}
			msg := err.Error()
			if !strings.Contains(msg, tt.want) || !strings.Contains(msg, tt.endpoint) || strings.Contains(msg, "\n") {
				t.Errorf("error %q: want one line naming %q and %q", msg, tt.endpoint, tt.want)
			}
		})
	}
	if _, err := imds.New(imds.Config{Endpoint: "169.254.169.254"}); err == nil {
		t.Error("an endpoint without scheme was accepted")
	}
}

func TestBoundedResponse(t *testing.T) {
	sim, url := imdssim.Start(t, imdssim.Options{})
	sim.Set("meta-data/huge", strings.Repeat("x", 10<<20))
	cfg := fast(url)
	cfg.MaxResponseBytes = 1 << 20
	c, err := imds.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Get(context.Background(), "huge"); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Fatalf("err = %v, want a size error", err)
	}
	sim.Set("meta-data/fits", strings.Repeat("y", 1<<20))
	if v, err := c.Get(context.Background(), "fits"); err != nil || len(v) != 1<<20 {
		t.Fatalf("a body of exactly the limit: %d bytes, %v", len(v), err)
	}
}

func TestGetRawVersions(t *testing.T) {
	_, c := start(t, imdssim.Options{})
	for _, p := range []string{"2009-04-04/meta-data/instance-id", "1.0/meta-data/instance-id", "latest/meta-data/instance-id"} {
		got, err := c.GetRaw(context.Background(), p)
		if err != nil || string(got) != "i-0123456789abcdef0" {
			t.Errorf("GetRaw(%q) = %q, %v", p, got, err)
		}
	}
	root, err := c.GetRaw(context.Background(), "")
	if err != nil || !strings.Contains(string(root), "latest") {
		t.Errorf("root listing = %q, %v", root, err)
	}
}
