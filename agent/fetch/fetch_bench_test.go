package fetch_test

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"

	"github.com/ec2init/ec2init/agent/fetch"
)

// BenchmarkGet fetches a 64 KiB body (a large #include) over loopback with
// Fetcher.Get: plain http, and https with keep-alive as a real server
// would allow (the TLS handshake is paid once, not per fetch).
func BenchmarkGet(b *testing.B) {
	body := bytes.Repeat([]byte("#cloud-config\n"), 64<<10/14+1)[:64<<10]
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.Write(body)
	})
	plain := httptest.NewServer(handler)
	b.Cleanup(plain.Close)
	tls := httptest.NewTLSServer(handler)
	b.Cleanup(tls.Close)

	cases := []struct {
		name string
		url  string
		f    *fetch.Fetcher
	}{
		{"http-64KiB", plain.URL + "/x", fetch.New(fetch.Options{AllowHTTP: true})},
		{"https-64KiB", tls.URL + "/x", fetch.New(fetch.Options{Client: tls.Client()})},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			ctx := context.Background()
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				got, err := c.f.Get(ctx, c.url)
				if err != nil {
					b.Fatal(err)
				}
				if len(got) != len(body) {
					b.Fatalf("got %d bytes, want %d", len(got), len(body))
				}
			}
		})
	}
}
