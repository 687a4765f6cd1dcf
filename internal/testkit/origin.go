package testkit

import (
	"bytes"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// Origin is a loopback HTTPS server with a self-signed certificate that
// serves files by path (with ranges, as http.ServeContent does) and counts
// the requests for each path. A client trusts it through CAPEM, written
// where the code under test reads its ca_file.
type Origin struct {
	*httptest.Server
	mu     sync.Mutex
	files  map[string][]byte
	counts map[string]int
}

// NewOrigin starts an Origin serving files (path to body; nil for none),
// closed when the test ends. The map is the Origin's from then on.
func NewOrigin(tb testing.TB, files map[string][]byte) *Origin {
	tb.Helper()
	if files == nil {
		files = map[string][]byte{}
	}
	o := &Origin{files: files, counts: map[string]int{}}
	o.Server = httptest.NewTLSServer(http.HandlerFunc(o.serve))
	tb.Cleanup(o.Close)
	return o
}

func (o *Origin) serve(w http.ResponseWriter, r *http.Request) {
	o.mu.Lock()
	o.counts[r.URL.Path]++
	body, ok := o.files[r.URL.Path]
	o.mu.Unlock()
	if !ok {
		http.NotFound(w, r)
		return
	}
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(body))
}

// Put serves body at path p from now on and returns its URL.
func (o *Origin) Put(p string, body []byte) string {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.files[p] = body
	return o.URL + p
}

// Count is how many requests path p has had.
func (o *Origin) Count(p string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.counts[p]
}

// CAPEM is the server's certificate as a PEM CA bundle.
func (o *Origin) CAPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: o.Certificate().Raw})
}

// WriteCA writes CAPEM to the host path p, making its directory, and
// returns p.
func (o *Origin) WriteCA(tb testing.TB, p string) string {
	tb.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(p, o.CAPEM(), 0o644); err != nil {
		tb.Fatal(err)
	}
	return p
}
