package fetch

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func fast(o Options) *Fetcher {
	o.BaseBackoff, o.MaxBackoff = time.Millisecond, 2*time.Millisecond
	return New(o)
}

func TestGet(t *testing.T) {
	var hits atomic.Int32
	mux := http.NewServeMux()
	mux.HandleFunc("/ok", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("body")) })
	mux.HandleFunc("/flaky", func(w http.ResponseWriter, r *http.Request) {
		if hits.Add(1) < 3 {
			w.WriteHeader(503)
			return
		}
		w.Write([]byte("finally"))
	})
	mux.HandleFunc("/missing", func(w http.ResponseWriter, r *http.Request) { hits.Add(1); w.WriteHeader(404) })
	mux.HandleFunc("/big", func(w http.ResponseWriter, r *http.Request) { w.Write(make([]byte, 2048)) })
	srv := httptest.NewServer(mux)
	defer srv.Close()
	tlsSrv := httptest.NewTLSServer(http.RedirectHandler(srv.URL+"/ok", http.StatusFound))
	defer tlsSrv.Close()

	ctx := context.Background()
	f := fast(Options{AllowHTTP: true, MaxBytes: 1024})
	if b, err := f.Get(ctx, srv.URL+"/ok"); err != nil || string(b) != "body" {
		t.Errorf("ok: %q %v", b, err)
	}
	hits.Store(0)
	if b, err := f.Get(ctx, srv.URL+"/flaky"); err != nil || string(b) != "finally" || hits.Load() != 3 {
		t.Errorf("flaky: %q %v after %d hits", b, err, hits.Load())
	}
	hits.Store(0)
	if _, err := f.Get(ctx, srv.URL+"/missing"); err == nil || !strings.Contains(err.Error(), "HTTP 404") || hits.Load() != 1 {
		t.Errorf("404: %v after %d hits (must not retry)", err, hits.Load())
	}
	if _, err := f.Get(ctx, srv.URL+"/big"); !errors.Is(err, ErrTooLarge) {
		t.Errorf("big: %v", err)
	}
	if _, err := fast(Options{}).Get(ctx, srv.URL+"/ok"); err == nil || !strings.Contains(err.Error(), `scheme "http" not allowed`) {
		t.Errorf("http without AllowHTTP: %v", err)
	}
	tlsFetch := fast(Options{AllowHTTP: true, Client: tlsSrv.Client()})
	if _, err := tlsFetch.Get(ctx, tlsSrv.URL+"/"); !errors.Is(err, ErrRedirect) {
		t.Errorf("https->http redirect: %v", err)
	}
	if _, err := f.Get(ctx, "https://user:secret@127.0.0.1:1/x"); err == nil || strings.Contains(err.Error(), "secret") {
		t.Errorf("credentials in error: %v", err)
	}
}

func TestFileURLs(t *testing.T) {
	p := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(p, []byte("local"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := fast(Options{}).Get(context.Background(), "file://"+p); err == nil {
		t.Error("file:// allowed by default")
	}
	if b, err := fast(Options{AllowFile: true}).Get(context.Background(), "file://"+p); err != nil || string(b) != "local" {
		t.Errorf("file: %q %v", b, err)
	}
}

// TestGetRetryAfter: a 429's Retry-After is waited for (with up to a
// quarter more of jitter), and capped by MaxRetryAfter. It takes over a
// second: Retry-After counts whole seconds, and honouring "1" means waiting one.
func TestGetRetryAfter(t *testing.T) {
	tests := []struct {
		name       string
		retryAfter string
		maxAfter   time.Duration
		min, max   time.Duration
	}{
		{name: "honoured", retryAfter: "1", min: time.Second, max: 3 * time.Second},
		{name: "capped", retryAfter: "3600", maxAfter: 50 * time.Millisecond, min: 50 * time.Millisecond, max: time.Second},
		{name: "absent: the backoff", retryAfter: "", max: 900 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var hits atomic.Int32
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if hits.Add(1) == 1 {
					if tt.retryAfter != "" {
						w.Header().Set("Retry-After", tt.retryAfter)
					}
					w.WriteHeader(http.StatusTooManyRequests)
					return
				}
				w.Write([]byte("ok"))
			}))
			defer srv.Close()
			f := fast(Options{AllowHTTP: true, MaxRetryAfter: tt.maxAfter})
			start := time.Now()
			b, err := f.Get(context.Background(), srv.URL)
			took := time.Since(start)
			if err != nil || string(b) != "ok" || hits.Load() != 2 {
				t.Fatalf("%q %v after %d requests", b, err, hits.Load())
			}
			if took < tt.min || took > tt.max {
				t.Errorf("took %s, want %s to %s", took, tt.min, tt.max)
			}
		})
	}
}
