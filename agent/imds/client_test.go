package imds_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

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

// TestNoSilentIMDSv1Fallback: a 403 on the token PUT means IMDS is
// disabled, never "try without a token", whatever allow_imdsv1 says; only a
// service that has no tokens (404, 405) is read without one, and then only
// when allowed, each path warned about once.
func TestNoSilentIMDSv1Fallback(t *testing.T) {
	tests := []struct {
		name         string
		putStatus    int
		allow        bool
		wantErr      error // nil: the value is read
		wantTokenErr bool
	}{
		{name: "403, v1 not allowed", putStatus: 403, wantErr: imds.ErrDisabled, wantTokenErr: true},
		{name: "403, v1 allowed", putStatus: 403, allow: true, wantErr: imds.ErrDisabled, wantTokenErr: true},
		{name: "405, v1 not allowed", putStatus: 405, wantTokenErr: true},
		{name: "500, v1 allowed", putStatus: 500, allow: true, wantTokenErr: true},
		{name: "400, v1 allowed", putStatus: 400, allow: true, wantTokenErr: true},
		{name: "404, v1 allowed", putStatus: 404, allow: true},
		{name: "405, v1 allowed", putStatus: 405, allow: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sim, url := imdssim.Start(t, imdssim.Options{AllowV1: true})
			sim.FailTokenNext(1000, tt.putStatus)
			core, logs := observer.New(zap.WarnLevel)
			cfg := fast(url)
			cfg.AllowV1 = tt.allow
			cfg.Log = zap.New(core)
			c, err := imds.New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			got, err := c.Get(ctx, "ami-id")
			fails := tt.wantErr != nil || tt.wantTokenErr
			if fails {
				if err == nil || (tt.wantErr != nil && !errors.Is(err, tt.wantErr)) || imds.IsTokenError(err) != tt.wantTokenErr {
					t.Fatalf("err = %v, want %v (token error %v)", err, tt.wantErr, tt.wantTokenErr)
				}
				if tt.wantErr == imds.ErrDisabled && !strings.Contains(err.Error(), "disabled (token request answered 403)") {
					t.Errorf("err %q does not say IMDS is disabled", err)
				}
				if st := sim.Stats(); st.Gets != 0 || st.V1Requests != 0 {
					t.Errorf("%d GETs (%d without a token) after the token PUT failed", st.Gets, st.V1Requests)
				}
				if n := logs.FilterMessageSnippet("IMDSv1").Len(); n != 0 {
					t.Errorf("%d IMDSv1 warnings for no IMDSv1 request", n)
				}
				return
			}
			if err != nil || got != "ami-0abcdef1234567890" {
				t.Fatalf("v1 allowed: %q, %v", got, err)
			}
			// Twice the same path, once another: one warning per path, and
			// no new token attempt once the service showed it has none.
			for _, p := range []string{"ami-id", "instance-id"} {
				if _, err := c.Get(ctx, p); err != nil {
					t.Fatal(err)
				}
			}
			st := sim.Stats()
			if st.V1Requests != 3 || st.TokenPuts != 1 {
				t.Errorf("%d token-less requests, %d token PUTs; want 3 and 1", st.V1Requests, st.TokenPuts)
			}
			var paths []string
			for _, e := range logs.FilterMessageSnippet("IMDSv1 request without a token").All() {
				paths = append(paths, e.ContextMap()["path"].(string))
			}
			if want := []string{"/latest/meta-data/ami-id", "/latest/meta-data/instance-id"}; !reflect.DeepEqual(paths, want) {
				t.Errorf("IMDSv1 warnings for %q, want one each for %q", paths, want)
			}
		})
	}
}

// TestIMDSv1BackToTokens: a service read without tokens that starts
// requiring them (HttpTokens turned required) answers 401; the client asks
// for a token again rather than failing.
func TestIMDSv1BackToTokens(t *testing.T) {
	sim, url := imdssim.Start(t, imdssim.Options{AllowV1: true})
	sim.FailTokenNext(1, 405)
	cfg := fast(url)
	cfg.AllowV1 = true
	c, err := imds.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Get(context.Background(), "ami-id"); err != nil {
		t.Fatal(err)
	}
	sim.SetAllowV1(false)
	sim.ResetStats()
	if got, err := c.Get(context.Background(), "instance-id"); err != nil || got != "i-0123456789abcdef0" {
		t.Fatalf("after tokens became required: %q, %v", got, err)
	}
	if st := sim.Stats(); st.TokenPuts != 1 || st.V1Requests != 1 {
		t.Errorf("%d token PUTs, %d token-less requests; want 1 and 1 (the 401)", st.TokenPuts, st.V1Requests)
	}
}

// TestIMDSv1NoAnswerToPut: a token PUT that gets no answer at all (the
// reply dropped by a hop limit of 1 in a container) is the other case of a
// service read without tokens when allowed. The server here closes the
// connection on every PUT and counts what it is asked.
func TestIMDSv1NoAnswerToPut(t *testing.T) {
	var mu sync.Mutex
	var puts, gets int
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if r.Method == http.MethodPut {
			puts++
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				conn.Close()
			}
			return
		}
		gets++
		if r.Header.Get("X-Aws-Ec2-Metadata-Token") != "" {
			t.Errorf("GET with a token no PUT gave")
		}
		io.WriteString(w, "i-0123456789abcdef0")
	}))
	t.Cleanup(srv.Close)
	for _, allow := range []bool{false, true} {
		mu.Lock()
		puts, gets = 0, 0
		mu.Unlock()
		core, logs := observer.New(zap.WarnLevel)
		cfg := fast(srv.URL)
		cfg.AllowV1, cfg.Log, cfg.MaxAttempts = allow, zap.New(core), 2
		c, err := imds.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		got, err := c.Get(context.Background(), "instance-id")
		mu.Lock()
		p, g := puts, gets
		mu.Unlock()
		if !allow {
			if err == nil || !imds.IsTokenError(err) || g != 0 {
				t.Errorf("v1 not allowed: %q, %v, %d GETs", got, err, g)
			}
			continue
		}
		if err != nil || got != "i-0123456789abcdef0" || p == 0 || g != 1 {
			t.Errorf("v1 allowed: %q, %v after %d PUTs and %d GETs", got, err, p, g)
		}
		if logs.FilterMessageSnippet("IMDSv1 request without a token: /latest/meta-data/instance-id").Len() != 1 {
			t.Errorf("no warning for the token-less request: %v", logs.All())
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
