// Package imdssim simulates the EC2 instance metadata service over real
// HTTP: IMDSv2 session tokens, directory listings, 404s, the dated API
// versions, and injectable faults (errors, latency, hangs, token expiry).
// Tests across ec2init talk to it on loopback, `ec2init demo` runs on it,
// and users try user data and metadata tools (cloud-init, the AWS SDKs,
// ec2-metadata) against it.
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

// versions are the API versions the service lists at "/", oldest first.
// All serve the same tree: cloud-init asks for dated ones.
var versions = [...]string{
	"1.0", "2007-01-19", "2007-03-01", "2007-08-29", "2007-10-10", "2007-12-15",
	"2008-02-01", "2008-09-01", "2009-04-04", "2011-01-01", "2011-05-01", "2012-01-12",
	"2014-02-25", "2014-11-05", "2015-10-20", "2016-04-19", "2016-06-30", "2016-09-02",
	"2018-03-28", "2018-08-17", "2018-09-24", "2019-10-01", "2020-10-27", "2021-01-03",
	"2021-03-23", "2021-07-15", "2022-09-24", "2023-11-01", "latest",
}

// Versions returns the API versions served, as listed at "/".
func Versions() []string { return append([]string(nil), versions[:]...) }

// IMDSv2 protocol headers, in Go's canonical form.
const (
	TokenHeader    = "X-Aws-Ec2-Metadata-Token"
	TokenTTLHeader = "X-Aws-Ec2-Metadata-Token-Ttl-Seconds"
	// MaxTokenTTL is the longest session a token PUT may ask for (6 h).
	MaxTokenTTL = 21600
)

// StatusClientClosed is recorded (in Stats and the Logger hook) for a
// request whose client gave up before it was answered, as nginx does.
const StatusClientClosed = 499

// Options configures a Server.
type Options struct {
	// Tree is served; nil serves DefaultTree(). The server works on a
	// copy, so later changes on either side do not leak to the other.
	Tree *Tree
	// AllowV1 serves requests that carry no token (IMDSv1, HttpTokens
	// optional). Off by default, as on instances with HttpTokens required.
	AllowV1 bool
	// Latency is added to every request, token PUTs included.
	Latency time.Duration
	// Now is the clock for token expiry; nil is time.Now.
	Now func() time.Time
	// Logger, when set, is called once per request after it is answered.
	Logger func(method, path string, status int)
}

// Stats counts what a server has seen since it started or ResetStats.
type Stats struct {
	Requests   int         // every request, whatever its method or fate
	TokenPuts  int         // PUTs on the token path
	Gets       int         // GETs and HEADs on metadata paths
	V1Requests int         // of Gets, those that carried no token
	ByStatus   map[int]int // answers by status code (StatusClientClosed when abandoned)
	// ByPath counts Gets by path below the version, as requested
	// ("meta-data/instance-id"; "meta-data/" for the listing; "" for the
	// version root, "/" for the root), so a test can tell a targeted
	// fetch from a crawl.
	ByPath map[string]int
	// MaxConcurrent is the peak of requests in flight at once: it shows
	// whether a client really works in parallel.
	MaxConcurrent int
}

// Server is the simulator. It is an http.Handler, and all its methods are
// safe for concurrent use, including changes to the tree and faults while
// requests are being served.
type Server struct {
	now    func() time.Time
	logger func(method, path string, status int)

	mu           sync.Mutex
	tree         *Tree
	allowV1      bool
	tokens       map[string]time.Time // token -> expiry
	latency      time.Duration
	failN        int
	failStatus   int
	failTokN     int
	failTokState int
	hang         chan struct{} // non-nil while hanging; closed to release
	stats        Stats
	inFlight     int
	httpSrv      *http.Server

	closed    chan struct{}
	closeOnce sync.Once
}

// New returns a server for opts. Call Start to listen, or mount it as a
// handler.
func New(opts Options) *Server {
	tree := opts.Tree
	if tree == nil {
		tree = DefaultTree()
	} else {
		tree = tree.Clone()
	}
	if tree.root == nil { // the zero Tree: serve an empty one
		tree.root = newDir()
	}
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	return &Server{
		now:     now,
		logger:  opts.Logger,
		tree:    tree,
		allowV1: opts.AllowV1,
		tokens:  map[string]time.Time{},
		latency: opts.Latency,
		stats:   newStats(),
		closed:  make(chan struct{}),
	}
}

func newStats() Stats { return Stats{ByStatus: map[int]int{}, ByPath: map[string]int{}} }

// Start listens on addr ("127.0.0.1:0" picks a free port) and serves in
// the background until Close. It returns the base URL, such as
// "http://127.0.0.1:41234", to use as the IMDS endpoint.
func (s *Server) Start(addr string) (url string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.httpSrv != nil {
		return "", errors.New("imds simulator: already started")
	}
	select {
	case <-s.closed:
		return "", errors.New("imds simulator: closed")
	default:
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return "", fmt.Errorf("imds simulator: %w", err)
	}
	srv := &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second}
	s.httpSrv = srv
	// Serve returns ErrServerClosed after Close; any other error means
	// the listener died, which clients see as refused connections.
	go func() { _ = srv.Serve(l) }()
	return "http://" + l.Addr().String(), nil
}

// Close stops listening, drops connections and releases hanging requests.
// It is safe to call more than once.
func (s *Server) Close() error {
	s.closeOnce.Do(func() { close(s.closed) })
	s.mu.Lock()
	srv := s.httpSrv
	s.mu.Unlock()
	if srv == nil {
		return nil
	}
	if err := srv.Close(); err != nil {
		return fmt.Errorf("imds simulator: %w", err)
	}
	return nil
}

// TB is the part of testing.TB that Start needs; declaring it here keeps
// the "testing" package out of production binaries.
type TB interface {
	Helper()
	Cleanup(func())
	Fatalf(format string, args ...any)
}

// Start runs a simulator on a loopback port for the length of a test or
// benchmark and returns it with its base URL; cleanup closes it.
func Start(tb TB, opts Options) (*Server, string) {
	tb.Helper()
	s := New(opts)
	url, err := s.Start("127.0.0.1:0")
	if err != nil {
		tb.Fatalf("start IMDS simulator: %v", err)
	}
	tb.Cleanup(func() { _ = s.Close() })
	return s, url
}

// Set stores value at path ("meta-data/instance-id"), creating
// directories as needed; see Tree.Set.
func (s *Server) Set(path, value string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tree.Set(path, value)
}

// Delete removes path and everything below it; see Tree.Delete.
func (s *Server) Delete(path string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tree.Delete(path)
}

// SetUserData replaces the user data; nil means the instance has none.
func (s *Server) SetUserData(b []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tree.SetUserData(b)
}

// Tree returns a copy of the tree as it is now served.
func (s *Server) Tree() *Tree {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tree.Clone()
}

// SetAllowV1 switches between HttpTokens optional (true) and required.
func (s *Server) SetAllowV1(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.allowV1 = on
}

// FailNext makes the next n metadata GETs that pass the token check answer
// status (e.g. 500, 503, 429) instead; token PUTs are not affected. It
// replaces any failures still pending; n <= 0 cancels them.
func (s *Server) FailNext(n, status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failN, s.failStatus = max(n, 0), status
}

// FailTokenNext makes the next n token PUTs answer status; 403 is how a
// service with the token endpoint disabled answers.
func (s *Server) FailTokenNext(n, status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failTokN, s.failTokState = max(n, 0), status
}

// SetLatency changes the delay added to every request from now on.
func (s *Server) SetLatency(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.latency = d
}

// ExpireTokens invalidates every token issued so far, as if their TTL had
// passed: a request with one gets 401 and the client must PUT again.
func (s *Server) ExpireTokens() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.tokens)
}

// Hang(true) makes requests, token PUTs included, block until their client
// gives up, Hang(false) releases them, or the server closes.
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
	st.ByPath = make(map[string]int, len(s.stats.ByPath))
	for k, v := range s.stats.ByPath {
		st.ByPath[k] = v
	}
	return st
}

// ResetStats zeroes the counters; MaxConcurrent restarts from the requests
// in flight now.
func (s *Server) ResetStats() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stats = newStats()
	s.stats.MaxConcurrent = s.inFlight
}

// ServeHTTP answers one request as IMDS would.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.inFlight++
	s.stats.Requests++
	s.stats.MaxConcurrent = max(s.stats.MaxConcurrent, s.inFlight)
	latency, hang := s.latency, s.hang
	s.mu.Unlock()

	rec := &statusRecorder{ResponseWriter: w}
	defer func() {
		status := rec.status
		if status == 0 {
			status = StatusClientClosed // returned without answering
		}
		s.mu.Lock()
		s.inFlight--
		s.stats.ByStatus[status]++
		s.mu.Unlock()
		if s.logger != nil {
			s.logger(r.Method, r.URL.Path, status)
		}
	}()

	if latency > 0 {
		t := time.NewTimer(latency)
		defer t.Stop()
		select {
		case <-t.C:
		case <-r.Context().Done():
			return
		case <-s.closed:
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
	s.route(rec, r)
}

func (s *Server) route(w http.ResponseWriter, r *http.Request) {
	// Clients join paths carelessly (ec2-metadata asks for
	// "latest//meta-data/ramdisk-id"); IMDS tolerates doubled slashes.
	path := strings.TrimPrefix(collapseSlashes(r.URL.Path), "/")
	if path == "" {
		s.get(w, r, "/", func(*Tree) ([]byte, bool) {
			return []byte(strings.Join(versions[:], "\n")), true
		})
		return
	}
	version, rest, _ := strings.Cut(path, "/")
	if !isVersion(version) {
		s.get(w, r, path, func(*Tree) ([]byte, bool) { return nil, false })
		return
	}
	if rest == "api/token" {
		s.token(w, r)
		return
	}
	s.get(w, r, rest, func(t *Tree) ([]byte, bool) {
		switch top, _, _ := strings.Cut(rest, "/"); top {
		case "":
			// The version root lists its parts without slashes.
			var items []string
			for _, name := range []string{"dynamic", "meta-data"} {
				if _, ok := t.root.children[name]; ok {
					items = append(items, name)
				}
			}
			if t.userData != nil {
				items = append(items, "user-data")
			}
			return []byte(strings.Join(items, "\n")), true
		case "user-data":
			return t.userData, t.userData != nil && strings.Trim(rest, "/") == "user-data"
		case "meta-data", "dynamic":
			v, _, ok := t.Get(rest)
			return []byte(v), ok
		}
		return nil, false
	})
}

// get answers a metadata read: method, token and injected failures first,
// then what find returns from the tree (under the lock, so the bytes are
// copied before a concurrent Set).
func (s *Server) get(w http.ResponseWriter, r *http.Request, statPath string, find func(*Tree) ([]byte, bool)) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		httpError(w, http.StatusMethodNotAllowed)
		return
	}
	token := r.Header.Get(TokenHeader)
	s.mu.Lock()
	s.stats.Gets++
	s.stats.ByPath[statPath]++
	status, remaining := 0, time.Duration(0)
	switch {
	case token == "":
		s.stats.V1Requests++
		if !s.allowV1 {
			status = http.StatusUnauthorized
		}
	default:
		// A bad token is refused even when IMDSv1 is allowed.
		exp, ok := s.tokens[token]
		remaining = exp.Sub(s.now())
		if !ok || remaining <= 0 {
			status = http.StatusUnauthorized
		}
	}
	if status == 0 && s.failN > 0 {
		s.failN--
		status = s.failStatus
	}
	var body []byte
	found := false
	if status == 0 {
		body, found = find(s.tree)
		body = append([]byte(nil), body...)
	}
	s.mu.Unlock()

	setCommonHeaders(w)
	switch {
	case status != 0:
		httpError(w, status)
		return
	case !found:
		httpError(w, http.StatusNotFound)
		return
	}
	if token != "" {
		// IMDS tells a token holder how long the session has left.
		w.Header().Set(TokenTTLHeader, strconv.Itoa(int((remaining+time.Second-1)/time.Second)))
	}
	w.Header().Set("Content-Type", "text/plain")
	if strings.Trim(statPath, "/") == "user-data" {
		w.Header().Set("Content-Type", "application/octet-stream")
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodGet {
		_, _ = w.Write(body)
	}
}

// maxTokens bounds the token table of a long-running server: past it,
// expired tokens are swept on the next PUT.
const maxTokens = 1024

func (s *Server) token(w http.ResponseWriter, r *http.Request) {
	setCommonHeaders(w)
	if r.Method != http.MethodPut {
		w.Header().Set("Allow", "PUT")
		httpError(w, http.StatusMethodNotAllowed)
		return
	}
	s.mu.Lock()
	s.stats.TokenPuts++
	fail := 0
	if s.failTokN > 0 {
		s.failTokN--
		fail = s.failTokState
	}
	s.mu.Unlock()
	if fail != 0 {
		httpError(w, fail)
		return
	}
	// IMDS refuses proxied token requests: that is what stops an SSRF
	// through a proxy on the instance from getting a session.
	if len(r.Header.Values("X-Forwarded-For")) > 0 {
		httpError(w, http.StatusForbidden)
		return
	}
	ttl, ok := parseTTL(r.Header.Get(TokenTTLHeader))
	if !ok {
		httpError(w, http.StatusBadRequest)
		return
	}
	var raw [40]byte
	if _, err := rand.Read(raw[:]); err != nil {
		httpError(w, http.StatusInternalServerError)
		return
	}
	token := base64.StdEncoding.EncodeToString(raw[:])
	s.mu.Lock()
	now := s.now()
	if len(s.tokens) >= maxTokens {
		for k, exp := range s.tokens {
			if !now.Before(exp) {
				delete(s.tokens, k)
			}
		}
	}
	s.tokens[token] = now.Add(time.Duration(ttl) * time.Second)
	s.mu.Unlock()
	w.Header().Set(TokenTTLHeader, strconv.Itoa(ttl))
	w.Header().Set("Content-Type", "text/plain")
	w.Header().Set("Content-Length", strconv.Itoa(len(token)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write([]byte(token))
}

// parseTTL accepts whole seconds, 1 to MaxTokenTTL, digits only.
func parseTTL(s string) (int, bool) {
	if s == "" || len(s) > 6 || strings.Trim(s, "0123456789") != "" {
		return 0, false
	}
	n, err := strconv.Atoi(s)
	return n, err == nil && n >= 1 && n <= MaxTokenTTL
}

// ParseFail reads a fault spec "N:STATUS" ("3:503": fail the next three
// metadata GETs with 503) for FailNext; "N" alone means status 500.
func ParseFail(spec string) (n, status int, err error) {
	count, code, hasCode := strings.Cut(strings.TrimSpace(spec), ":")
	if !hasCode {
		code = "500"
	}
	n, err1 := strconv.Atoi(count)
	status, err2 := strconv.Atoi(code)
	if err1 != nil || err2 != nil || n < 0 || status < 400 || status > 599 {
		return 0, 0, fmt.Errorf("fault %q: want N:STATUS with STATUS 400-599, e.g. 3:503", spec)
	}
	return n, status, nil
}

func isVersion(v string) bool {
	for _, known := range versions {
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

func setCommonHeaders(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Server", "EC2ws")
	h.Set("Accept-Ranges", "none")
}

// httpError answers as IMDS does: a small XHTML page titled with the
// status.
func httpError(w http.ResponseWriter, status int) {
	text := fmt.Sprintf("%d - %s", status, http.StatusText(status))
	body := "<?xml version=\"1.0\" encoding=\"iso-8859-1\"?>\n" +
		"<!DOCTYPE html PUBLIC \"-//W3C//DTD XHTML 1.0 Transitional//EN\"\n" +
		"\t\"http://www.w3.org/TR/xhtml1/DTD/xhtml1-transitional.dtd\">\n" +
		"<html xmlns=\"http://www.w3.org/1999/xhtml\" xml:lang=\"en\" lang=\"en\">\n" +
		" <head>\n  <title>" + text + "</title>\n </head>\n" +
		" <body>\n  <h1>" + text + "</h1>\n </body>\n</html>\n"
	w.Header().Set("Content-Type", "text/html")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write([]byte(body))
}

// statusRecorder remembers the status written, for Stats and the Logger.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}
