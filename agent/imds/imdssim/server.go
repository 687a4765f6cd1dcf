// Package imdssim simulates the EC2 instance metadata service over real
// HTTP: IMDSv2 session tokens, directory listings, 404s, the dated API
// versions, and injectable faults. Tests across ec2init talk to it on
// loopback, `ec2init demo` runs on it, and users try user data with it.
package imdssim

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Versions are the API versions the service lists at "/", oldest first.
// Each serves the same tree; cloud-init asks for dated ones.
var Versions = []string{
	"1.0", "2007-01-19", "2007-03-01", "2007-08-29", "2007-10-10", "2007-12-15",
	"2008-02-01", "2008-09-01", "2009-04-04", "2011-01-01", "2011-05-01", "2012-01-12",
	"2014-02-25", "2014-11-05", "2015-10-20", "2016-04-19", "2016-06-30", "2016-09-02",
	"2018-03-28", "2018-08-17", "2018-09-24", "2019-10-01", "2020-10-27", "2021-01-03",
	"2021-03-23", "2021-07-15", "2022-09-24", "2023-11-01", "latest",
}

// Header names of the IMDSv2 protocol.
const (
	TokenHeader    = "X-Aws-Ec2-Metadata-Token"
	TokenTTLHeader = "X-Aws-Ec2-Metadata-Token-Ttl-Seconds"
	maxTokenTTL    = 21600
)

// Options configures a Server.
type Options struct {
	// Tree is served; nil serves DefaultTree().
	Tree *Tree
	// AllowV1 serves requests that carry no token (IMDSv1). Off by
	// default, as on instances with HttpTokens=required.
	AllowV1 bool
	// Latency is added to every request.
	Latency time.Duration
	// Now is the clock for token expiry; nil is time.Now.
	Now func() time.Time
	// Logger, when set, is called once per request after it is answered.
	Logger func(method, path string, status int)
}

// Stats counts what the server has seen since start or ResetStats.
type Stats struct {
	Requests   int
	TokenPuts  int
	Gets       int
	V1Requests int // GETs that carried no token
	ByStatus   map[int]int
	// MaxConcurrent is the peak of requests in flight at once: it shows
	// whether a client really works in parallel.
	MaxConcurrent int
}

// Server is the simulator; it is an http.Handler and safe for concurrent
// use, including changes to the tree and faults while serving.
type Server struct {
	opts Options

	mu            sync.Mutex
	tree          *Tree
	tokens        map[string]time.Time
	latency       time.Duration
	failN         int
	failStatus    int
	failTokenN    int
	failTokenCode int
	hang          chan struct{} // non-nil while hanging; closed to release
	stats         Stats
	inFlight      int

	httpSrv *http.Server
	closed  chan struct{}
}

// New returns a server for opts; call Start to listen, or use it as a
// handler.
func New(opts Options) *Server {
	tree := opts.Tree
	if tree == nil {
		tree = DefaultTree()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Server{
		opts:    opts,
		tree:    tree,
		tokens:  map[string]time.Time{},
		latency: opts.Latency,
		stats:   Stats{ByStatus: map[int]int{}},
		closed:  make(chan struct{}),
	}
}

// Start listens on addr ("127.0.0.1:0" picks a port) and serves in the
// background. It returns the base URL, e.g. "http://127.0.0.1:41234".
func (s *Server) Start(addr string) (string, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return "", fmt.Errorf("imds simulator: %w", err)
	}
	s.httpSrv = &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := s.httpSrv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			// The listener failed under us; nothing to report it to but
			// the clients, which will see connection errors.
			_ = err
		}
	}()
	return "http://" + l.Addr().String(), nil
}

// Close stops the server and releases any hanging requests.
func (s *Server) Close() error {
	s.mu.Lock()
	select {
	case <-s.closed:
	default:
		close(s.closed)
	}
	s.mu.Unlock()
	if s.httpSrv == nil {
		return nil
	}
	return s.httpSrv.Close()
}

// TB is the part of testing.TB that Start needs, so this package does not
// import "testing" into production binaries.
type TB interface {
	Helper()
	Cleanup(func())
	Fatalf(format string, args ...any)
}

// Start runs a simulator on a loopback port for the length of a test.
func Start(tb TB, opts Options) (*Server, string) {
	tb.Helper()
	s := New(opts)
	url, err := s.Start("127.0.0.1:0")
	if err != nil {
		tb.Fatalf("start IMDS simulator: %v", err)
	}
	tb.Cleanup(func() { s.Close() })
	return s, url
}

// Set stores a value at path ("meta-data/instance-id"), creating
// directories as needed.
func (s *Server) Set(path, value string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tree.set(path, value)
}

// Delete removes path and everything below it.
func (s *Server) Delete(path string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tree.remove(path)
}

// SetUserData replaces the user data; nil means the instance has none.
func (s *Server) SetUserData(b []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tree.userData = append([]byte(nil), b...)
	if b == nil {
		s.tree.userData = nil
	}
}

// FailNext makes the next n metadata requests answer status.
func (s *Server) FailNext(n, status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failN, s.failStatus = n, status
}

// FailTokenNext makes the next n token requests answer status.
func (s *Server) FailTokenNext(n, status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failTokenN, s.failTokenCode = n, status
}

// SetLatency changes the delay added to every request.
func (s *Server) SetLatency(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.latency = d
}

// ExpireTokens invalidates every token issued so far, as if their TTL had
// passed: the next request with one gets 401.
func (s *Server) ExpireTokens() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tokens = map[string]time.Time{}
}

// Hang makes requests block until the client gives up (on) or releases
// them (off).
func (s *Server) Hang(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case on && s.hang == nil:
		s.hang = make(chan struct{})
	case !on && s.hang != nil:
		close(s.hang)
		s.hang = nil
	}
}

// Stats returns a copy of the counters.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stats
	st.ByStatus = make(map[int]int, len(s.stats.ByStatus))
	for k, v := range s.stats.ByStatus {
		st.ByStatus[k] = v
	}
	return st
}

// ResetStats zeroes the counters.
func (s *Server) ResetStats() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stats = Stats{ByStatus: map[int]int{}}
}

// ServeHTTP answers one request as IMDS would.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.inFlight++
	s.stats.Requests++
	if s.inFlight > s.stats.MaxConcurrent {
		s.stats.MaxConcurrent = s.inFlight
	}
	latency, hang := s.latency, s.hang
	s.mu.Unlock()
	rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
	defer func() {
		s.mu.Lock()
		s.inFlight--
		s.stats.ByStatus[rec.status]++
		s.mu.Unlock()
		if s.opts.Logger != nil {
			s.opts.Logger(r.Method, r.URL.Path, rec.status)
		}
	}()

	if latency > 0 {
		select {
		case <-time.After(latency):
		case <-r.Context().Done():
			return
		}
	}
	if hang != nil {
		select {
		case <-hang:
		case <-r.Context().Done():
			return
		case <-s.closed:
			return
		}
	}
	s.serve(rec, r)
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	path := strings.TrimPrefix(collapseSlashes(r.URL.Path), "/")
	if path == "" {
		s.answerGet(w, r, func() (string, bool) { return strings.Join(Versions, "\n"), true })
		return
	}
	version, rest, _ := strings.Cut(path, "/")
	if !isVersion(version) {
		s.answerGet(w, r, func() (string, bool) { return "", false })
		return
	}
	if rest == "api/token" {
		s.token(w, r)
		return
	}
	s.answerGet(w, r, func() (string, bool) {
		s.mu.Lock()
		defer s.mu.Unlock()
		switch {
		case rest == "":
			items := []string{"dynamic", "meta-data"}
			if s.tree.userData != nil {
				items = append(items, "user-data")
			}
			return strings.Join(items, "\n"), true
		case rest == "user-data" || rest == "user-data/":
			return string(s.tree.userData), s.tree.userData != nil
		case strings.HasPrefix(rest, "meta-data") || strings.HasPrefix(rest, "dynamic"):
			v, _, ok := s.tree.Get(rest)
			return v, ok
		}
		return "", false
	})
}

// answerGet applies what every metadata GET shares: method, token and
// injected failures, then serves what get finds.
func (s *Server) answerGet(w http.ResponseWriter, r *http.Request, get func() (string, bool)) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "OPTIONS, GET, HEAD")
		httpError(w, http.StatusMethodNotAllowed)
		return
	}
	s.mu.Lock()
	s.stats.Gets++
	token := r.Header.Get(TokenHeader)
	status := 0
	switch {
	case token == "":
		s.stats.V1Requests++
		if !s.opts.AllowV1 {
			status = http.StatusUnauthorized
		}
	case !s.validToken(token):
		status = http.StatusUnauthorized
	}
	if status == 0 && s.failN > 0 {
		s.failN--
		status = s.failStatus
	}
	s.mu.Unlock()
	if status != 0 {
		httpError(w, status)
		return
	}
	body, ok := get()
	if !ok {
		httpError(w, http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Type", "text/plain")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	if r.Method == http.MethodGet {
		_, _ = w.Write([]byte(body))
	}
}

// validToken must be called with s.mu held.
func (s *Server) validToken(token string) bool {
	exp, ok := s.tokens[token]
	return ok && s.opts.Now().Before(exp)
}

func (s *Server) token(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPut {
		w.Header().Set("Allow", "OPTIONS, PUT")
		httpError(w, http.StatusMethodNotAllowed)
		return
	}
	s.mu.Lock()
	s.stats.TokenPuts++
	fail := 0
	if s.failTokenN > 0 {
		s.failTokenN--
		fail = s.failTokenCode
	}
	s.mu.Unlock()
	if fail != 0 {
		httpError(w, fail)
		return
	}
	// A proxied request is refused, which is what makes tokens resist SSRF.
	if r.Header.Get("X-Forwarded-For") != "" {
		httpError(w, http.StatusForbidden)
		return
	}
	ttl, err := strconv.Atoi(r.Header.Get(TokenTTLHeader))
	if err != nil || ttl < 1 || ttl > maxTokenTTL {
		httpError(w, http.StatusBadRequest)
		return
	}
	var raw [32]byte
	if _, err := rand.Read(raw[:]); err != nil {
		httpError(w, http.StatusInternalServerError)
		return
	}
	token := base64.RawURLEncoding.EncodeToString(raw[:])
	s.mu.Lock()
	s.tokens[token] = s.opts.Now().Add(time.Duration(ttl) * time.Second)
	s.mu.Unlock()
	w.Header().Set(TokenTTLHeader, strconv.Itoa(ttl))
	w.Header().Set("Content-Type", "text/plain")
	_, _ = w.Write([]byte(token))
}

func isVersion(v string) bool {
	for _, known := range Versions {
		if v == known {
			return true
		}
	}
	return false
}

func collapseSlashes(p string) string {
	for strings.Contains(p, "//") {
		p = strings.ReplaceAll(p, "//", "/")
	}
	return p
}

// httpError answers like IMDS: a short HTML page titled with the status.
func httpError(w http.ResponseWriter, status int) {
	text := fmt.Sprintf("%d - %s", status, http.StatusText(status))
	w.Header().Set("Content-Type", "text/html")
	w.WriteHeader(status)
	fmt.Fprintf(w, "<?xml version=\"1.0\" encoding=\"iso-8859-1\"?>\n<html><head><title>%s</title></head><body><h1>%s</h1></body></html>\n", text, text)
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.status = code
	r.ResponseWriter.WriteHeader(code)
}
