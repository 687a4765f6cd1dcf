package fetch

import (
	"bytes"
	"context"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

var modTime = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// rangeServer serves content with Range and If-Range support (as nginx or
// S3 would), counting requests and body bytes sent.
type rangeServer struct {
	mu      sync.Mutex
	content []byte
	etag    string
	reqs    atomic.Int32
	sent    atomic.Int64
	ranges  []string // Range header of each request
	ifRange []string
}

func (s *rangeServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.reqs.Add(1)
	s.mu.Lock()
	s.ranges = append(s.ranges, r.Header.Get("Range"))
	s.ifRange = append(s.ifRange, r.Header.Get("If-Range"))
	content, etag := s.content, s.etag
	s.mu.Unlock()
	if etag != "" {
		w.Header().Set("ETag", etag)
	}
	http.ServeContent(countingWriter{w, &s.sent}, r, "artifact.bin", modTime, bytes.NewReader(content))
}

func (s *rangeServer) set(content []byte, etag string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.content, s.etag = content, etag
}

type countingWriter struct {
	http.ResponseWriter
	n *atomic.Int64
}

func (c countingWriter) Write(p []byte) (int, error) {
	n, err := c.ResponseWriter.Write(p)
	c.n.Add(int64(n))
	return n, err
}

func TestCAFile(t *testing.T) {
	ca := newTestCA(t)
	body := payload(4096)
	srv := ca.serveTLS(t, &rangeServer{content: body})
	notPEM := filepath.Join(t.TempDir(), "not.pem")
	os.WriteFile(notPEM, []byte("hello"), 0o600)

	tests := []struct {
		name       string
		caFile     string
		newErr     string // from NewArtifactFetcher
		fetchErrs  []string
		wantSucces bool
	}{
		{name: "private CA in ca_file", caFile: ca.pemPath, wantSucces: true},
		{name: "system roots only", fetchErrs: []string{"x509", "certificate signed by unknown authority", "ca_file"}},
		{name: "missing ca_file", caFile: "/nonexistent/ca.pem", newErr: "ca_file: open /nonexistent/ca.pem"},
		{name: "ca_file without PEM", caFile: notPEM, newErr: "no PEM certificate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := NewArtifactFetcher(ArtifactOptions{CacheDir: t.TempDir(), CAFile: tt.caFile, Attempts: 2, BaseBackoff: time.Millisecond})
			if tt.newErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.newErr) {
					t.Fatalf("NewArtifactFetcher: %v, want %q", err, tt.newErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			a, err := f.Fetch(context.Background(), "a", Source{URL: srv.URL + "/a.bin", SHA256: sha256Hex(body)})
			if tt.wantSucces {
				if err != nil {
					t.Fatal(err)
				}
				if got, _ := os.ReadFile(a.Path); !bytes.Equal(got, body) {
					t.Error("cached file differs from the body")
				}
				return
			}
			for _, want := range tt.fetchErrs {
				if err == nil || !strings.Contains(err.Error(), want) {
					t.Errorf("error %v, want it to mention %q", err, want)
				}
			}
			if err != nil && !strings.Contains(err.Error(), "after 1 attempts") {
				t.Errorf("certificate errors must not be retried: %v", err)
			}
		})
	}
}

func TestFetchVerifiesAndCaches(t *testing.T) {
	body := payload(100_000)
	sum512 := sha512.Sum512(body)
	tests := []struct {
		name     string
		body     []byte // instead of the shared one
		src      func(url string) Source
		wantAlgo string
		wantErr  error
	}{
		{name: "sha256", src: func(u string) Source { return Source{URL: u, SHA256: sha256Hex(body)} }, wantAlgo: "sha256"},
		{name: "sha256 upper case", src: func(u string) Source { return Source{URL: u, SHA256: strings.ToUpper(sha256Hex(body))} }, wantAlgo: "sha256"},
		{name: "sha512", src: func(u string) Source { return Source{URL: u, SHA512: hex.EncodeToString(sum512[:])} }, wantAlgo: "sha512"},
		{name: "mismatch", src: func(u string) Source { return Source{URL: u, SHA256: sha256Hex([]byte("other"))} }, wantErr: ErrChecksum},
		{name: "empty artifact", body: []byte{}, src: func(u string) Source { return Source{URL: u, SHA256: sha256Hex(nil)} }, wantAlgo: "sha256"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := body
			if tt.body != nil {
				body = tt.body
			}
			rs := &rangeServer{content: body}
			srv := httptest.NewServer(rs)
			defer srv.Close()
			f := newTestFetcher(t, ArtifactOptions{})
			src := tt.src(srv.URL + "/artifact.bin")
			src.AllowInsecure = true
			a, err := f.Fetch(context.Background(), tt.name, src)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err %v, want %v", err, tt.wantErr)
				}
				if files := cacheFiles(t, f.opts.CacheDir); len(files) != 0 {
					t.Errorf("cache after a mismatch holds %v, want nothing", files)
				}
				if rs.reqs.Load() != 1 {
					t.Errorf("a mismatch took %d requests, want 1 (not retried)", rs.reqs.Load())
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if a.Algo != tt.wantAlgo || a.Size != int64(len(body)) || a.Cached {
				t.Errorf("artifact %+v", a)
			}
			if a.Path != filepath.Join(f.opts.CacheDir, a.Algo, a.Sum) {
				t.Errorf("path %s is not content-addressed", a.Path)
			}
			fi, err := os.Stat(a.Path)
			if err != nil || fi.Mode().Perm() != 0o400 {
				t.Errorf("cached file mode %v (%v), want 0400", fi.Mode(), err)
			}
			if got, _ := os.ReadFile(a.Path); !bytes.Equal(got, body) {
				t.Error("cached file differs from the body")
			}
			// A hit: no request at all, whatever the URL now says.
			rs.reqs.Store(0)
			b, err := f.Fetch(context.Background(), tt.name, src)
			if err != nil || !b.Cached || b.Path != a.Path || rs.reqs.Load() != 0 {
				t.Errorf("second fetch: %+v %v after %d requests, want a cache hit with none", b, err, rs.reqs.Load())
			}
			if files := cacheFiles(t, filepath.Join(f.opts.CacheDir, partialDir)); len(files) != 0 {
				t.Errorf("partial dir holds %v after success", files)
			}
		})
	}
}

func TestVerifyCache(t *testing.T) {
	body := payload(10_000)
	rs := &rangeServer{content: body}
	srv := httptest.NewServer(rs)
	defer srv.Close()
	f := newTestFetcher(t, ArtifactOptions{VerifyCache: true})
	src := Source{URL: srv.URL + "/a", SHA256: sha256Hex(body), AllowInsecure: true}
	a, err := f.Fetch(context.Background(), "a", src)
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(a.Path, 0o600)
	os.WriteFile(a.Path, []byte("bit rot"), 0o400)
	b, err := f.Fetch(context.Background(), "a", src)
	if err != nil || b.Cached || rs.reqs.Load() != 2 {
		t.Fatalf("corrupt entry: %+v %v after %d requests, want a fresh download", b, err, rs.reqs.Load())
	}
	if got, _ := os.ReadFile(b.Path); !bytes.Equal(got, body) {
		t.Error("corrupt entry not replaced")
	}
}

// cutServer sends the first cut bytes of the first response with the full
// Content-Length and then drops the connection, as a proxy timing out or a
// network failure does; later requests are served normally.
type cutServer struct {
	rangeServer
	cut   int
	first atomic.Bool
	// down answers 503 to the requests after the first, so a fetch with
	// one attempt gives up and leaves its partial file.
	down atomic.Bool
}

func (s *cutServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if s.first.Load() && s.down.Load() {
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	if s.first.CompareAndSwap(false, true) {
		s.reqs.Add(1)
		s.mu.Lock()
		s.ranges = append(s.ranges, r.Header.Get("Range"))
		s.ifRange = append(s.ifRange, r.Header.Get("If-Range"))
		s.mu.Unlock()
		w.Header().Set("Content-Length", fmt.Sprint(len(s.content)))
		w.Header().Set("ETag", s.etag)
		w.Header().Set("Last-Modified", modTime.Format(http.TimeFormat))
		w.WriteHeader(http.StatusOK)
		n, _ := w.Write(s.content[:s.cut])
		s.sent.Add(int64(n))
		conn, _, err := http.NewResponseController(w).Hijack()
		if err != nil {
			panic(err)
		}
		conn.Close()
		return
	}
	s.rangeServer.ServeHTTP(w, r)
}

func TestResume(t *testing.T) {
	const size, cut = 3 << 20, 1<<20 + 12345
	body := payload(size)
	tests := []struct {
		name string
		// acrossCalls makes the first Fetch give up after the cut, so the
		// second resumes from the partial file on disk.
		acrossCalls bool
		// replace changes the object after the cut (new content, new
		// ETag): If-Range must bring it back whole.
		replace     bool
		wantRange   string
		wantIfRange string
	}{
		{name: "within one fetch", wantRange: fmt.Sprintf("bytes=%d-", cut), wantIfRange: `"v1"`},
		{name: "across fetches", acrossCalls: true, wantRange: fmt.Sprintf("bytes=%d-", cut), wantIfRange: `"v1"`},
		{name: "object replaced", replace: true, acrossCalls: true, wantRange: fmt.Sprintf("bytes=%d-", cut), wantIfRange: `"v1"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cs := &cutServer{cut: cut}
			cs.set(body, `"v1"`)
			srv := httptest.NewServer(cs)
			defer srv.Close()
			want := body
			if tt.replace {
				want = payload(size + 7)
				want[0] ^= 0xff
			}
			src := Source{URL: srv.URL + "/big.bin", SHA256: sha256Hex(want), AllowInsecure: true}
			cache := filepath.Join(t.TempDir(), "cache")
			var fetchErr error
			if tt.acrossCalls || tt.replace {
				cs.down.Store(true)
				f := newTestFetcher(t, ArtifactOptions{CacheDir: cache, Attempts: 1})
				_, fetchErr = f.Fetch(context.Background(), "big", src)
				if fetchErr == nil || !strings.Contains(fetchErr.Error(), "HTTP 503") {
					t.Fatalf("first fetch: %v, want the 503 after the cut", fetchErr)
				}
				cs.down.Store(false)
				parts := cacheFiles(t, filepath.Join(cache, partialDir))
				if len(parts) != 2 { // the bytes and their validators
					t.Fatalf("partial dir after the cut: %v", parts)
				}
			}
			if tt.replace {
				cs.set(want, `"v2"`)
			}
			f := newTestFetcher(t, ArtifactOptions{CacheDir: cache})
			a, err := f.Fetch(context.Background(), "big", src)
			if err != nil {
				t.Fatalf("fetch: %v (first: %v)", err, fetchErr)
			}
			if got, _ := os.ReadFile(a.Path); !bytes.Equal(got, want) {
				t.Fatal("resumed file differs from the object")
			}
			cs.mu.Lock()
			ranges, ifRange := slices.Clone(cs.ranges), slices.Clone(cs.ifRange)
			cs.mu.Unlock()
			if len(ranges) != 2 || ranges[0] != "" || ranges[1] != tt.wantRange || ifRange[1] != tt.wantIfRange {
				t.Errorf("requests' Range %q If-Range %q, want a plain GET then Range %q If-Range %q",
					ranges, ifRange, tt.wantRange, tt.wantIfRange)
			}
			sent := cs.sent.Load()
			if tt.replace {
				if sent != int64(cut+len(want)) {
					t.Errorf("sent %d bytes, want the cut part and then the new version whole (%d)", sent, cut+len(want))
				}
			} else if sent >= 2*size || sent != size {
				t.Errorf("sent %d bytes for a %d-byte object: the resume did not continue where it stopped", sent, size)
			}
		})
	}
}

func TestStalePartialStartsOver(t *testing.T) {
	// A partial file whose bytes are not a prefix of the object (a server
	// without validators replaced it): the resumed result fails
	// verification, and the fetcher downloads it whole once.
	body := payload(200_000)
	rs := &rangeServer{content: body}
	srv := httptest.NewServer(rs)
	defer srv.Close()
	f := newTestFetcher(t, ArtifactOptions{})
	src := Source{URL: srv.URL + "/a", SHA256: sha256Hex(body), AllowInsecure: true}
	e, _ := parseDigest("sha256", src.SHA256)
	stale := bytes.Repeat([]byte{'x'}, 50_000)
	if err := os.WriteFile(filepath.Join(f.opts.CacheDir, partialDir, partialKey(src.URL, e)), stale, 0o600); err != nil {
		t.Fatal(err)
	}
	a, err := f.Fetch(context.Background(), "a", src)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(a.Path); !bytes.Equal(got, body) {
		t.Fatal("content differs")
	}
	if !slices.Equal(rs.ranges, []string{"bytes=50000-", ""}) {
		t.Errorf("Range headers %q, want a resume then a whole download", rs.ranges)
	}
}

func TestPartialAlreadyComplete(t *testing.T) {
	// A run that stopped after the last byte but before the rename: the
	// next asks from the end, gets 416, and verifies what it has.
	body := payload(30_000)
	rs := &rangeServer{content: body}
	srv := httptest.NewServer(rs)
	defer srv.Close()
	f := newTestFetcher(t, ArtifactOptions{})
	src := Source{URL: srv.URL + "/a", SHA256: sha256Hex(body), AllowInsecure: true}
	e, _ := parseDigest("sha256", src.SHA256)
	if err := os.WriteFile(filepath.Join(f.opts.CacheDir, partialDir, partialKey(src.URL, e)), body, 0o600); err != nil {
		t.Fatal(err)
	}
	a, err := f.Fetch(context.Background(), "a", src)
	if err != nil || a.Size != int64(len(body)) {
		t.Fatalf("%+v %v", a, err)
	}
	if !slices.Equal(rs.ranges, []string{"bytes=30000-"}) || a.Cached {
		t.Errorf("requests %q (cached %v), want one that finds nothing left to send", rs.ranges, a.Cached)
	}
}

// TestRetries takes over a second: Retry-After counts whole seconds, and
// honouring "1" means waiting one.
func TestRetries(t *testing.T) {
	body := payload(5000)
	tests := []struct {
		name       string
		statuses   []int // answered in turn before serving the body
		retryAfter string
		maxRA      time.Duration
		wantReqs   int32
		wantErr    string
		wantIs     error
		minElapsed time.Duration
		maxElapsed time.Duration
	}{
		{name: "503 three times then 200", statuses: []int{503, 503, 503}, wantReqs: 4},
		{name: "429 then 200", statuses: []int{429}, wantReqs: 2},
		{name: "408 then 200", statuses: []int{408}, wantReqs: 2},
		{name: "500 until attempts run out", statuses: []int{500, 500, 500, 500, 500, 500}, wantReqs: 5, wantErr: "HTTP 500 Internal Server Error (after 5 attempts)"},
		{name: "404 not retried", statuses: []int{404}, wantReqs: 1, wantIs: ErrNotFound},
		{name: "403 not retried", statuses: []int{403}, wantReqs: 1, wantErr: "HTTP 403 Forbidden (after 1 attempts)"},
		{name: "Retry-After honoured", statuses: []int{503}, retryAfter: "1", wantReqs: 2, minElapsed: 900 * time.Millisecond},
		{name: "Retry-After capped", statuses: []int{503}, retryAfter: "3600", maxRA: 20 * time.Millisecond, wantReqs: 2, maxElapsed: 5 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var reqs atomic.Int32
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				n := int(reqs.Add(1))
				if n <= len(tt.statuses) {
					if tt.retryAfter != "" {
						w.Header().Set("Retry-After", tt.retryAfter)
					}
					w.WriteHeader(tt.statuses[n-1])
					return
				}
				w.Write(body)
			}))
			defer srv.Close()
			f := newTestFetcher(t, ArtifactOptions{MaxRetryAfter: tt.maxRA})
			start := time.Now()
			_, err := f.Fetch(context.Background(), "a", Source{URL: srv.URL + "/a", SHA256: sha256Hex(body), AllowInsecure: true})
			elapsed := time.Since(start)
			switch {
			case tt.wantIs != nil:
				if !errors.Is(err, tt.wantIs) {
					t.Errorf("err %v, want %v", err, tt.wantIs)
				}
			case tt.wantErr != "":
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("err %v, want %q", err, tt.wantErr)
				}
			case err != nil:
				t.Errorf("err %v", err)
			}
			if reqs.Load() != tt.wantReqs {
				t.Errorf("%d requests, want %d", reqs.Load(), tt.wantReqs)
			}
			if elapsed < tt.minElapsed || (tt.maxElapsed > 0 && elapsed > tt.maxElapsed) {
				t.Errorf("took %v, want within [%v, %v]", elapsed, tt.minElapsed, tt.maxElapsed)
			}
		})
	}
}

func TestIdleTimeout(t *testing.T) {
	// The first response stalls mid-body; the idle timeout ends that
	// attempt and the next resumes.
	body := payload(64 << 10)
	var reqs atomic.Int32
	release := make(chan struct{})
	rs := &rangeServer{content: body}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if reqs.Add(1) == 1 {
			w.Header().Set("Content-Length", fmt.Sprint(len(body)))
			w.Write(body[:1000])
			w.(http.Flusher).Flush()
			<-release
			return
		}
		rs.ServeHTTP(w, r)
	}))
	defer srv.Close()
	defer close(release) // before Close, which waits for the handler
	f := newTestFetcher(t, ArtifactOptions{Timeout: 200 * time.Millisecond})
	a, err := f.Fetch(context.Background(), "a", Source{URL: srv.URL + "/a", SHA256: sha256Hex(body), AllowInsecure: true})
	if err != nil || a.Size != int64(len(body)) {
		t.Fatalf("%+v %v", a, err)
	}
	if !slices.Equal(rs.ranges, []string{"bytes=1000-"}) {
		t.Errorf("second request's Range %q, want a resume from 1000", rs.ranges)
	}
}

func TestSchemePolicy(t *testing.T) {
	body := payload(100)
	plain := httptest.NewServer(&rangeServer{content: body})
	defer plain.Close()
	ca := newTestCA(t)
	redirect := ca.serveTLS(t, http.RedirectHandler(plain.URL+"/a", http.StatusFound))
	file := filepath.Join(t.TempDir(), "local.bin")
	os.WriteFile(file, body, 0o644)
	sum := sha256Hex(body)

	tests := []struct {
		name    string
		src     Source
		wantErr string
		wantIs  error
	}{
		{name: "http refused", src: Source{URL: plain.URL + "/a", SHA256: sum}, wantErr: "http:// needs allow_insecure"},
		{name: "http allowed", src: Source{URL: plain.URL + "/a", SHA256: sum, AllowInsecure: true}},
		{name: "https to http redirect", src: Source{URL: redirect.URL + "/a", SHA256: sum, AllowInsecure: true}, wantIs: ErrRedirect},
		{name: "http checksum URL refused", src: Source{URL: redirect.URL + "/a", ChecksumURL: plain.URL + "/sum"}, wantErr: "checksum URL: " + plain.URL + "/sum: not allowed"},
		{name: "ftp", src: Source{URL: "ftp://example.com/a", SHA256: sum}, wantErr: `scheme "ftp"`},
		{name: "no checksum", src: Source{URL: plain.URL + "/a", AllowInsecure: true}, wantErr: "exactly one of sha256, sha512"},
		{name: "two checksums", src: Source{URL: plain.URL + "/a", SHA256: sum, SHA512: sum, AllowInsecure: true}, wantErr: "exactly one of"},
		{name: "short digest", src: Source{URL: plain.URL + "/a", SHA256: "abc", AllowInsecure: true}, wantErr: "want 64 hex digits"},
		{name: "bad algo", src: Source{URL: plain.URL + "/a", ChecksumURL: plain.URL + "/s", ChecksumAlgo: "md5", AllowInsecure: true}, wantErr: `checksum algorithm "md5"`},
		{name: "file", src: Source{URL: "file://" + file, SHA256: sum}},
		{name: "file missing", src: Source{URL: "file://" + file + ".nope", SHA256: sum}, wantIs: ErrNotFound},
		{name: "file relative", src: Source{URL: "file:local.bin", SHA256: sum}, wantErr: "absolute local path"},
		{name: "signed query not in errors", src: Source{URL: "https://127.0.0.1:1/a?X-Amz-Signature=SECRET", SHA256: sum}, wantErr: "fetch https://127.0.0.1:1/a: "},
		{name: "s3 without key", src: Source{URL: "s3://bucket", SHA256: sum}, wantErr: "want s3://bucket/key"},
		{name: "s3 without IMDS", src: Source{URL: "s3://bucket/key", SHA256: sum}, wantErr: "need instance metadata"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newTestFetcher(t, ArtifactOptions{CAFile: ca.pemPath, Attempts: 1})
			_, err := f.Fetch(context.Background(), "x", tt.src)
			switch {
			case tt.wantIs != nil:
				if !errors.Is(err, tt.wantIs) {
					t.Errorf("err %v, want %v", err, tt.wantIs)
				}
			case tt.wantErr != "":
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("err %v, want %q", err, tt.wantErr)
				}
				if err != nil && strings.Contains(err.Error(), "SECRET") {
					t.Errorf("error leaks the query: %v", err)
				}
			case err != nil:
				t.Errorf("err %v", err)
			}
		})
	}
}

func TestChecksumURL(t *testing.T) {
	body := payload(7000)
	sum := sha256Hex(body)
	s512 := sha512.Sum512(body)
	sum512 := hex.EncodeToString(s512[:])
	tests := []struct {
		name    string
		file    string
		algo    string
		wantErr string
		wantIs  error
	}{
		{name: "bare digest", file: sum + "\n"},
		{name: "sha256sum of several files", file: strings.Repeat("0", 64) + "  other.tar.gz\n" + sum + "  app-1.2.tar.gz\n"},
		{name: "binary mode marker", file: sum + " *app-1.2.tar.gz\n" + strings.Repeat("1", 64) + " *x\n"},
		{name: "BSD tags", file: "SHA256 (app-1.2.tar.gz) = " + sum + "\n"},
		{name: "sha512sum", file: sum512 + "  app-1.2.tar.gz\n", algo: "sha512"},
		{name: "inferred sha512", file: sum512 + "\n"},
		{name: "no line for the file", file: sum + "  a\n" + sum + "  b\n", wantErr: `no line for "app-1.2.tar.gz"`},
		{name: "wrong digest", file: strings.Repeat("ab", 32) + "\n", wantIs: ErrChecksum},
		{name: "algo does not fit", file: sum + "\n", algo: "sha512", wantErr: "want 128 hex digits"},
		{name: "empty file", file: "# nothing\n", wantErr: "no sha256 or sha512 digest"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var sumReqs atomic.Int32
			mux := http.NewServeMux()
			mux.Handle("/dl/app-1.2.tar.gz", &rangeServer{content: body})
			mux.HandleFunc("/dl/SHA256SUMS", func(w http.ResponseWriter, r *http.Request) {
				sumReqs.Add(1)
				w.Write([]byte(tt.file))
			})
			srv := httptest.NewServer(mux)
			defer srv.Close()
			f := newTestFetcher(t, ArtifactOptions{})
			src := Source{URL: srv.URL + "/dl/app-1.2.tar.gz", ChecksumURL: srv.URL + "/dl/SHA256SUMS", ChecksumAlgo: tt.algo, AllowInsecure: true}
			a, err := f.Fetch(context.Background(), "app", src)
			switch {
			case tt.wantIs != nil:
				if !errors.Is(err, tt.wantIs) {
					t.Fatalf("err %v, want %v", err, tt.wantIs)
				}
				return
			case tt.wantErr != "":
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err %v, want %q", err, tt.wantErr)
				}
				return
			case err != nil:
				t.Fatal(err)
			}
			if got, _ := os.ReadFile(a.Path); !bytes.Equal(got, body) {
				t.Fatal("content differs")
			}
			// Again: the checksum file is read each time, the artifact is a hit.
			b, err := f.Fetch(context.Background(), "app", src)
			if err != nil || !b.Cached || sumReqs.Load() != 2 {
				t.Errorf("second fetch %+v %v, checksum file read %d times", b, err, sumReqs.Load())
			}
		})
	}
}

func TestFetchAllParallel(t *testing.T) {
	// Each item's handler waits until both requests are in flight, so the
	// test passes only if FetchAll really runs them at once.
	var inFlight, peak atomic.Int32
	arrived := make(chan struct{}, 2)
	barrier := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			n := inFlight.Add(1)
			defer inFlight.Add(-1)
			for {
				p := peak.Load()
				if n <= p || peak.CompareAndSwap(p, n) {
					break
				}
			}
			arrived <- struct{}{}
			deadline := time.After(5 * time.Second)
			for peak.Load() < 2 {
				select {
				case <-deadline:
					http.Error(w, "peer never arrived", http.StatusServiceUnavailable)
					return
				case <-time.After(time.Millisecond):
				}
			}
			next.ServeHTTP(w, r)
		})
	}
	one, two := payload(10_000), payload(20_000)
	mux := http.NewServeMux()
	mux.Handle("/one", barrier(&rangeServer{content: one}))
	mux.Handle("/two", barrier(&rangeServer{content: two}))
	srv := httptest.NewServer(mux)
	defer srv.Close()
	f := newTestFetcher(t, ArtifactOptions{Attempts: 1})
	srcs := []Source{
		{URL: srv.URL + "/one", SHA256: sha256Hex(one), AllowInsecure: true},
		{URL: srv.URL + "/two", SHA256: sha256Hex(two), AllowInsecure: true},
		{URL: srv.URL + "/missing", SHA256: sha256Hex([]byte("missing")), AllowInsecure: true},
	}
	arts, errs := f.FetchAll(context.Background(), 2, []string{"one", "two", "three"}, srcs)
	if errs[0] != nil || errs[1] != nil {
		t.Fatalf("errors %v", errs)
	}
	if arts[0].Size != int64(len(one)) || arts[1].Size != int64(len(two)) {
		t.Errorf("results out of order: %+v", arts)
	}
	if peak.Load() != 2 {
		t.Errorf("peak %d requests in flight, want 2", peak.Load())
	}
	if !errors.Is(errs[2], ErrNotFound) || !strings.Contains(errs[2].Error(), "artifact three") {
		t.Errorf("third item: %v, want not found naming it", errs[2])
	}
}

func TestSameArtifactConcurrently(t *testing.T) {
	// Two fetches of one artifact at once (two items, or bake and boot):
	// one downloads, the other waits and finds it in the cache.
	body := payload(1 << 20)
	rs := &rangeServer{content: body}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(50 * time.Millisecond)
		rs.ServeHTTP(w, r)
	}))
	defer srv.Close()
	f := newTestFetcher(t, ArtifactOptions{})
	src := Source{URL: srv.URL + "/a", SHA256: sha256Hex(body), AllowInsecure: true}
	arts, errs := f.FetchAll(context.Background(), 4, nil, []Source{src, src, src})
	cached := 0
	for i := range arts {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		if arts[i].Cached {
			cached++
		}
	}
	if rs.reqs.Load() != 1 || cached != 2 {
		t.Errorf("%d requests, %d cache hits; want 1 and 2", rs.reqs.Load(), cached)
	}
}

func TestProgress(t *testing.T) {
	body := payload(3 << 20)
	srv := httptest.NewServer(&rangeServer{content: body})
	defer srv.Close()
	var mu sync.Mutex
	var calls [][2]int64
	f := newTestFetcher(t, ArtifactOptions{Progress: func(name string, done, total int64) {
		mu.Lock()
		defer mu.Unlock()
		if name != "big" {
			t.Errorf("progress name %q", name)
		}
		calls = append(calls, [2]int64{done, total})
	}})
	if _, err := f.Fetch(context.Background(), "big", Source{URL: srv.URL + "/a", SHA256: sha256Hex(body), AllowInsecure: true}); err != nil {
		t.Fatal(err)
	}
	if len(calls) == 0 || calls[len(calls)-1] != [2]int64{int64(len(body)), int64(len(body))} {
		t.Errorf("progress calls %v, want the last to report all %d bytes", calls, len(body))
	}
}

func TestContextCanceled(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(503)
	}))
	defer srv.Close()
	f := newTestFetcher(t, ArtifactOptions{BaseBackoff: time.Hour, MaxBackoff: time.Hour})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := f.Fetch(ctx, "a", Source{URL: srv.URL, SHA256: sha256Hex(nil), AllowInsecure: true})
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 5*time.Second {
		t.Errorf("err %v after %v, want the deadline promptly", err, time.Since(start))
	}
}

func TestMaxBytes(t *testing.T) {
	body := payload(10_000)
	srv := httptest.NewServer(&rangeServer{content: body})
	defer srv.Close()
	f := newTestFetcher(t, ArtifactOptions{MaxBytes: 4096})
	_, err := f.Fetch(context.Background(), "a", Source{URL: srv.URL, SHA256: sha256Hex(body), AllowInsecure: true})
	if !errors.Is(err, ErrTooLarge) {
		t.Errorf("err %v, want ErrTooLarge", err)
	}
}
