package userdata

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/ec2init/ec2init/agent/bounded"
	"github.com/ec2init/ec2init/agent/fetch"
)

// TestIncludePresignedURLNotInError: a failing #include of a presigned URL,
// fetched by the agent's real fetcher from a TLS server, names the include's
// origin and never its token or userinfo, even where net/http quotes a URL
// (a refused redirect quotes the redirect's own signed URL).
func TestIncludePresignedURLNotInError(t *testing.T) {
	const token = "IQoJb3JpZ2luX2VjEXAMPLE-hunter2"
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/denied/ud":
			http.Error(w, "AccessDenied", http.StatusForbidden)
		case "/moved/ud":
			http.Redirect(w, r, "http://127.0.0.1:1/ud?X-Amz-Security-Token="+token+"-2", http.StatusFound)
		}
	}))
	defer srv.Close()
	f := fetch.New(fetch.Options{Attempts: 1, Client: srv.Client()})
	origin := srv.URL + "/..."
	for _, path := range []string{"/denied/ud", "/moved/ud"} {
		t.Run(path, func(t *testing.T) {
			u := strings.Replace(srv.URL, "https://", "https://AKIDEXAMPLE:pw-hunter2@", 1) + path +
				"?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Security-Token=" + token + "&X-Amz-Signature=0123abcd#frag"
			res, err := Parse([]byte("#include\n"+u+"\n"), Options{})
			if err != nil {
				t.Fatal(err)
			}
			out, err := Resolve(context.Background(), res, f.Get, Options{})
			if err == nil || out != nil {
				t.Fatalf("resolved: %v", err)
			}
			msg := err.Error()
			for _, s := range []string{"hunter2", token, "AKIDEXAMPLE", "X-Amz", "0123abcd", "frag", path} {
				if strings.Contains(msg, s) {
					t.Errorf("error leaks %q: %s", s, msg)
				}
			}
			if !strings.Contains(msg, "include 1 of 1 ("+origin+")") || !errors.Is(err, ErrInclude) {
				t.Errorf("error does not name the include: %s", msg)
			}
		})
	}
}

// TestIncludeGzipBomb: a fetched #include body that is a gzip bomb fails
// with the include named and no part produced.
func TestIncludeGzipBomb(t *testing.T) {
	tests := []struct {
		name string
		mib  int
		opts Options
		want string
	}{
		{"within the user-data budget", 20, Options{}, "decompressed size exceeds 16 MiB"},
		// A caller's budget larger than what may be held in memory is
		// still capped at bounded.MaxInMemory.
		{"huge budget", 129, Options{MaxSize: 1 << 40}, "decompressed size exceeds 128 MiB"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.mib > 100 && (testing.Short() || raceEnabled) {
				t.Skip("decompresses 128 MiB: half a second, 15 s under the race detector; skipped with -short or -race")
			}
			bomb := gzipBomb(t, tt.mib)
			web := func(_ context.Context, url string) ([]byte, error) { return bomb, nil }
			res, err := Parse([]byte("#include\nhttps://bucket.example.com/ud?sig=SECRETSIG\n"), Options{})
			if err != nil {
				t.Fatal(err)
			}
			out, err := Resolve(context.Background(), res, web, tt.opts)
			if err == nil || out != nil {
				t.Fatalf("a gzip bomb resolved: %v", describeAll(out))
			}
			msg := err.Error()
			if !strings.Contains(msg, "include 1 of 1 (https://bucket.example.com/...): gzip: "+tt.want) {
				t.Errorf("err = %s\nwant the include named and %q", msg, tt.want)
			}
			if strings.Contains(msg, "SECRETSIG") {
				t.Errorf("error leaks the signature: %s", msg)
			}
			if !errors.Is(err, ErrTooLarge) || !errors.Is(err, bounded.ErrTooLarge) {
				t.Errorf("not a size error: %v", err)
			}
		})
	}
}
