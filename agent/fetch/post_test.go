package fetch

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestPostForm(t *testing.T) {
	tests := []struct {
		name         string
		statuses     []int // answers in turn; the last repeats
		attempts     int
		wantErr      string
		wantRequests int
	}{
		{"ok", []int{200}, 3, "", 1},
		{"created", []int{201}, 3, "", 1},
		{"retried after 503", []int{503, 200}, 3, "", 2},
		{"gives up after attempts", []int{500}, 2, "HTTP 500", 2},
		{"404 is final", []int{404}, 5, "HTTP 404", 1},
		{"redirect not followed", []int{302}, 5, "HTTP 302", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var mu sync.Mutex
			var bodies []string
			var ctypes []string
			srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				b, _ := io.ReadAll(r.Body)
				mu.Lock()
				i := min(len(bodies), len(tt.statuses)-1)
				bodies = append(bodies, r.Method+" "+string(b))
				ctypes = append(ctypes, r.Header.Get("Content-Type"))
				mu.Unlock()
				if tt.statuses[i] == 302 {
					w.Header().Set("Location", "/elsewhere")
				}
				w.WriteHeader(tt.statuses[i])
				io.WriteString(w, "thanks")
			}))
			defer srv.Close()
			f := New(Options{Client: srv.Client(), BaseBackoff: time.Millisecond, MaxBackoff: time.Millisecond})
			out, err := f.PostForm(context.Background(), srv.URL+"/ph?token=s3cret", url.Values{"instance_id": {"i-1"}, "hostname": {"a b"}}, tt.attempts)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), "s3cret") {
					t.Errorf("error shows the URL's secret: %v", err)
				}
			} else if err != nil || string(out) != "thanks" {
				t.Fatalf("PostForm = %q, %v", out, err)
			}
			if len(bodies) != tt.wantRequests {
				t.Fatalf("requests %q, want %d", bodies, tt.wantRequests)
			}
			for i, b := range bodies {
				if b != "POST hostname=a+b&instance_id=i-1" || ctypes[i] != "application/x-www-form-urlencoded" {
					t.Errorf("request %d: %q (%s)", i, b, ctypes[i])
				}
			}
		})
	}
}

func TestPostFormScheme(t *testing.T) {
	_, err := New(Options{}).PostForm(context.Background(), "http://example.invalid/?k=secret", nil, 1)
	if err == nil || !strings.Contains(err.Error(), `scheme "http" not allowed`) || strings.Contains(err.Error(), "secret") {
		t.Errorf("err = %v", err)
	}
}
