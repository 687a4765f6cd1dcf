package fetch

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"
)

func TestGetAttempts(t *testing.T) {
	var n atomic.Int32
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		n.Add(1)
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	f := New(Options{Client: srv.Client(), BaseBackoff: time.Millisecond, MaxBackoff: time.Millisecond})
	for _, tt := range []struct{ attempts, want int32 }{{2, 2}, {0, 5}} {
		n.Store(0)
		if _, err := f.GetAttempts(context.Background(), srv.URL, int(tt.attempts)); err == nil {
			t.Fatal("a 503 is an error")
		}
		if got := n.Load(); got != tt.want {
			t.Errorf("GetAttempts(%d): %d requests, want %d", tt.attempts, got, tt.want)
		}
	}
}
