package fetch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/ec2init/ec2init/internal/testkit"
)

// closedURL is an https URL on a loopback port nothing listens on.
func closedURL(t *testing.T, p string) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return "https://" + addr + p
}

// caBundle writes the origins' certificates into one CA file.
func caBundle(t *testing.T, origins ...*testkit.Origin) string {
	t.Helper()
	var pem []byte
	for _, o := range origins {
		pem = append(pem, o.CAPEM()...)
	}
	p := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(p, pem, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestMirrors: the sources are tried in order; the primary's port closed,
// a mirror serving other bytes fails verification, the next one serves;
// every source is held to the same checksum or signature.
func TestMirrors(t *testing.T) {
	body := payload(1<<20 + 9)
	bad, good := testkit.NewOrigin(t, nil), testkit.NewOrigin(t, nil)
	badURL := bad.Put("/app.tgz", payload(1<<20 + 9)[1:])
	goodURL := good.Put("/app.tgz", body)
	ca := caBundle(t, bad, good)
	down := closedURL(t, "/app.tgz")

	tests := []struct {
		name     string
		src      Source
		wantURL  string
		wantErr  string
		wantIs   error
		wantWarn int
	}{
		{name: "primary down, a mirror serves", src: Source{URL: down, Mirrors: []string{goodURL}, SHA256: sha256Hex(body)},
			wantURL: goodURL, wantWarn: 1},
		{name: "a mirror with other bytes, then a good one", src: Source{URL: down, Mirrors: []string{badURL, goodURL}, SHA256: sha256Hex(body)},
			wantURL: goodURL, wantWarn: 2},
		{name: "every source fails", src: Source{URL: down, Mirrors: []string{badURL}, SHA256: sha256Hex(body)},
			wantIs: ErrChecksum, wantErr: "all 2 sources failed"},
		{name: "a mirror with the file missing", src: Source{URL: good.URL + "/none", Mirrors: []string{goodURL}, SHA256: sha256Hex(body)},
			wantURL: goodURL, wantWarn: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			log, logs := observed()
			f := newTestFetcher(t, ArtifactOptions{CAFile: ca, Log: log, Attempts: 2})
			a, err := f.Fetch(context.Background(), "app", tt.src)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !errors.Is(err, tt.wantIs) {
					t.Fatalf("err %v, want %q (%v)", err, tt.wantErr, tt.wantIs)
				}
				for _, p := range cacheFiles(t, f.opts.CacheDir) {
					// A partial file of the unreachable source may stay, for
					// resuming; nothing is in the verified cache.
					if !strings.HasPrefix(p, partialDir+"/") {
						t.Errorf("left in the cache: %s", p)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if a.URL != tt.wantURL || a.Sum != sha256Hex(body) {
				t.Errorf("artifact %+v", a)
			}
			if n := logs.FilterMessage("artifact source failed; trying the next").Len(); n != tt.wantWarn {
				t.Errorf("%d warnings, want %d", n, tt.wantWarn)
			}
		})
	}
}

// fakeRegionalS3 answers as S3 does for a bucket in us-west-2 asked in
// another region: 301 PermanentRedirect with x-amz-bucket-region, and the
// object once the request is signed for us-west-2. versitygw does not
// redirect, so this small server stands in for S3 here.
type fakeRegionalS3 struct {
	mu      sync.Mutex
	regions []string
	body    []byte
}

func (s *fakeRegionalS3) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	auth := r.Header.Get("Authorization")
	region := ""
	if _, rest, ok := strings.Cut(auth, "Credential="); ok {
		if parts := strings.Split(rest, "/"); len(parts) > 2 {
			region = parts[2]
		}
	}
	s.mu.Lock()
	s.regions = append(s.regions, region)
	s.mu.Unlock()
	if region != "us-west-2" {
		w.Header().Set("X-Amz-Bucket-Region", "us-west-2")
		w.Header().Set("Content-Type", "application/xml")
		w.WriteHeader(http.StatusMovedPermanently)
		io.WriteString(w, `<?xml version="1.0" encoding="UTF-8"?>
<Error><Code>PermanentRedirect</Code><Message>The bucket you are attempting to access must be addressed using the specified endpoint.</Message><Bucket>west</Bucket><Endpoint>west.s3.us-west-2.amazonaws.com</Endpoint></Error>`)
		return
	}
	if r.URL.Path != "/west/app.bin" {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Length", fmt.Sprint(len(s.body)))
	w.Header().Set("ETag", `"abc"`)
	w.Write(s.body)
}

// TestS3OtherRegion: a bucket in another region is followed to it (and
// remembered), at the configured endpoint.
func TestS3OtherRegion(t *testing.T) {
	ca := newTestCA(t)
	body := payload(70000)
	fake := &fakeRegionalS3{body: body}
	srv := ca.serveTLS(t, fake)
	_, client := roleIMDS(t, "role")
	f := newTestFetcher(t, ArtifactOptions{CAFile: ca.pemPath, S3Endpoint: srv.URL, S3PathStyle: true, IMDS: client})
	src := Source{URL: "s3://west/app.bin", SHA256: sha256Hex(body)}
	a, err := f.Fetch(context.Background(), "app", src)
	if err != nil {
		t.Fatal(err)
	}
	if a.Sum != sha256Hex(body) {
		t.Errorf("artifact %+v", a)
	}
	// A second object in the same bucket goes to its region at once.
	src.SHA256 = sha256Hex(nil)
	f.Fetch(context.Background(), "again", Source{URL: "s3://west/other.bin", SHA256: sha256Hex(nil)})
	fake.mu.Lock()
	defer fake.mu.Unlock()
	if want := []string{s3Region, "us-west-2", "us-west-2"}; strings.Join(fake.regions, ",") != strings.Join(want, ",") {
		t.Errorf("requests signed for %q, want %q", fake.regions, want)
	}
}
