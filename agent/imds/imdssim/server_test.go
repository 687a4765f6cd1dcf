package imdssim

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// client speaks plain HTTP to a simulator, as any IMDS client would.
type client struct {
	t    *testing.T
	base string
}

type response struct {
	status int
	body   string
	header http.Header
}

func (c client) do(method, path string, hdr map[string]string) response {
	c.t.Helper()
	req, err := http.NewRequest(method, c.base+path, nil)
	if err != nil {
		c.t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatal(err)
	}
	return response{resp.StatusCode, string(b), resp.Header}
}

func (c client) token(ttl int) string {
	c.t.Helper()
	r := c.do("PUT", "/latest/api/token", map[string]string{TokenTTLHeader: strconv.Itoa(ttl)})
	if r.status != 200 || r.body == "" {
		c.t.Fatalf("token PUT: %d %q", r.status, r.body)
	}
	return r.body
}

func (c client) get(path, token string) response {
	c.t.Helper()
	hdr := map[string]string{}
	if token != "" {
		hdr[TokenHeader] = token
	}
	return c.do("GET", path, hdr)
}

func TestServeTree(t *testing.T) {
	_, url := Start(t, Options{})
	c := client{t, url}
	tok := c.token(60)
	tree := DefaultTree()
	doc, _, _ := tree.Get("dynamic/instance-identity/document")
	placement := "availability-zone\navailability-zone-id\ngroup-name\npartition-number\nregion"
	tests := []struct {
		path   string
		status int
		want   string
	}{
		{"/", 200, strings.Join(Versions(), "\n")},
		{"/latest/", 200, "dynamic\nmeta-data\nuser-data"},
		{"/latest", 200, "dynamic\nmeta-data\nuser-data"},
		{"/latest/meta-data/instance-id", 200, "i-0123456789abcdef0"},
		{"/latest/meta-data/placement/", 200, placement},
		{"/latest/meta-data/placement", 200, placement},
		{"/latest/meta-data/public-keys/", 200, "0=my-key"},
		{"/latest/meta-data/public-keys/0/", 200, "openssh-key"},
		{"/latest/meta-data/public-keys/0", 200, "openssh-key"},
		{"/latest/meta-data/public-keys/0=my-key/", 404, ""},
		{"/latest/meta-data/public-keys/1/", 404, ""},
		{"/latest/meta-data/public-keys/0/openssh-key", 200, "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMzQVFf8SEsTOaSh9k6xXNw0lvUVChO60dzmWnknVXPk my-key"},
		{"/latest/meta-data/block-device-mapping/", 200, "ami\nebs1\nephemeral0\nroot"},
		{"/latest/meta-data/security-groups", 200, "web\nssh-admin"},
		{"/latest/meta-data/network/interfaces/macs/", 200, "0e:1a:2b:3c:4d:5e/\n0e:1a:2b:3c:4d:5f/"},
		{"/latest/meta-data/network/interfaces/macs/0e:1a:2b:3c:4d:5f/local-ipv4s", 200, "10.0.2.45\n10.0.2.46"},
		{"/latest/meta-data/iam/security-credentials/", 200, "web-server-role"},
		{"/latest/meta-data/events/recommendations/rebalance", 404, ""},
		{"/latest/meta-data/tags/instance", 200, "Environment\nName\nTeam"},
		{"/latest/dynamic/", 200, "fws/\ninstance-identity/"},
		{"/latest/dynamic/instance-identity", 200, "document\npkcs7\nrsa2048\nsignature"},
		{"/latest/dynamic/instance-identity/document", 200, doc},
		{"/latest/user-data", 200, "#!/bin/bash\necho \"hello from user data on $(hostname)\"\n"},
		{"/latest/user-data/x", 404, ""},
		// ec2-metadata asks for these with a doubled slash.
		{"/latest//meta-data/reservation-id", 200, "r-0fedcba9876543210"},
		{"//latest/meta-data/ami-id", 200, "ami-0abcdef1234567890"},
		{"/latest/meta-data/nope", 404, ""},
		{"/latest/meta-datax", 404, ""},
		{"/latest/nope", 404, ""},
		{"/1999-01-01/meta-data/ami-id", 404, ""},
		{"/nope", 404, ""},
	}
	for _, tt := range tests {
		r := c.get(tt.path, tok)
		if r.status != tt.status || (r.status == 200 && r.body != tt.want) {
			t.Errorf("GET %s = %d %q, want %d %q", tt.path, r.status, r.body, tt.status, tt.want)
		}
		if r.status == 200 && !strings.HasPrefix(r.header.Get("Content-Type"), "text/plain") && tt.path != "/latest/user-data" {
			t.Errorf("GET %s: Content-Type %q", tt.path, r.header.Get("Content-Type"))
		}
		if r.status == 404 && !strings.Contains(r.body, "404 - Not Found") {
			t.Errorf("GET %s: 404 body %q", tt.path, r.body)
		}
	}
	// Every version listed serves the same tree; cloud-init picks dated ones.
	for _, v := range Versions() {
		if r := c.get("/"+v+"/meta-data/instance-id", tok); r.status != 200 || r.body != "i-0123456789abcdef0" {
			t.Errorf("version %s: %d %q", v, r.status, r.body)
		}
		if r := c.get("/"+v+"/", tok); r.body != "dynamic\nmeta-data\nuser-data" {
			t.Errorf("version %s root: %q", v, r.body)
		}
	}
	for _, v := range []string{"1.0", "2009-04-04", "2016-09-02", "2018-09-24", "2021-03-23", "latest"} {
		if !isVersion(v) {
			t.Errorf("version %s not served", v)
		}
	}
}

func TestHead(t *testing.T) {
	_, url := Start(t, Options{AllowV1: true})
	r := client{t, url}.do("HEAD", "/latest/meta-data/local-ipv4", nil)
	if r.status != 200 || r.body != "" || r.header.Get("Content-Length") != "9" {
		t.Errorf("HEAD = %d %q, Content-Length %q", r.status, r.body, r.header.Get("Content-Length"))
	}
}

func TestTokenPut(t *testing.T) {
	_, url := Start(t, Options{})
	c := client{t, url}
	ttl := func(s string) map[string]string { return map[string]string{TokenTTLHeader: s} }
	tests := []struct {
		name      string
		method    string
		path      string
		hdr       map[string]string
		status    int
		wantAllow string
	}{
		{"ok", "PUT", "/latest/api/token", ttl("21600"), 200, ""},
		{"shortest", "PUT", "/latest/api/token", ttl("1"), 200, ""},
		{"no ttl", "PUT", "/latest/api/token", nil, 400, ""},
		{"ttl zero", "PUT", "/latest/api/token", ttl("0"), 400, ""},
		{"ttl too long", "PUT", "/latest/api/token", ttl("21601"), 400, ""},
		{"ttl negative", "PUT", "/latest/api/token", ttl("-5"), 400, ""},
		{"ttl not a number", "PUT", "/latest/api/token", ttl("soon"), 400, ""},
		{"proxied", "PUT", "/latest/api/token", map[string]string{TokenTTLHeader: "60", "X-Forwarded-For": "10.0.0.1"}, 403, ""},
		{"GET on token path", "GET", "/latest/api/token", ttl("60"), 405, "PUT"},
		{"POST on token path", "POST", "/latest/api/token", ttl("60"), 405, "PUT"},
		{"PUT on metadata", "PUT", "/latest/meta-data/ami-id", ttl("60"), 405, "GET, HEAD"},
		{"POST on metadata", "POST", "/latest/meta-data/", nil, 405, "GET, HEAD"},
		{"DELETE on root", "DELETE", "/", nil, 405, "GET, HEAD"},
	}
	for _, tt := range tests {
		r := c.do(tt.method, tt.path, tt.hdr)
		if r.status != tt.status {
			t.Errorf("%s: status %d, want %d", tt.name, r.status, tt.status)
		}
		if got := r.header.Get("Allow"); got != tt.wantAllow {
			t.Errorf("%s: Allow %q, want %q", tt.name, got, tt.wantAllow)
		}
		if r.status == 200 {
			if r.header.Get(TokenTTLHeader) != tt.hdr[TokenTTLHeader] || len(r.body) < 40 {
				t.Errorf("%s: ttl header %q, token %q", tt.name, r.header.Get(TokenTTLHeader), r.body)
			}
		}
	}
	if a, b := c.token(60), c.token(60); a == b {
		t.Error("two PUTs gave the same token")
	}
}

func TestTokenRequired(t *testing.T) {
	s, url := Start(t, Options{})
	c := client{t, url}
	if r := c.get("/latest/meta-data/ami-id", ""); r.status != 401 {
		t.Errorf("no token, v2 required: %d, want 401", r.status)
	}
	if r := c.get("/", ""); r.status != 401 {
		t.Errorf("root without token: %d, want 401", r.status)
	}
	if r := c.get("/latest/meta-data/ami-id", "forged"); r.status != 401 {
		t.Errorf("forged token: %d, want 401", r.status)
	}
	s.SetAllowV1(true)
	if r := c.get("/latest/meta-data/ami-id", ""); r.status != 200 || r.body != "ami-0abcdef1234567890" {
		t.Errorf("v1 allowed: %d %q", r.status, r.body)
	}
	// A bad token is refused even where IMDSv1 is allowed.
	if r := c.get("/latest/meta-data/ami-id", "forged"); r.status != 401 {
		t.Errorf("forged token, v1 allowed: %d, want 401", r.status)
	}
	if st := s.Stats(); st.V1Requests != 3 || st.Gets != 5 || st.ByStatus[401] != 4 || st.ByStatus[200] != 1 {
		t.Errorf("stats %+v", st)
	}
}

func TestAllowV1Option(t *testing.T) {
	s, url := Start(t, Options{AllowV1: true})
	if r := (client{t, url}).get("/latest/meta-data/instance-id", ""); r.status != 200 || r.body != "i-0123456789abcdef0" {
		t.Errorf("v1 GET = %d %q", r.status, r.body)
	}
	if s.Stats().V1Requests != 1 {
		t.Errorf("V1Requests = %d", s.Stats().V1Requests)
	}
}

// fakeClock is an injectable clock the test moves by hand.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (f *fakeClock) Now() time.Time { f.mu.Lock(); defer f.mu.Unlock(); return f.now }
func (f *fakeClock) Add(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.now = f.now.Add(d)
}

func TestTokenExpiry(t *testing.T) {
	clock := &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	_, url := Start(t, Options{Now: clock.Now})
	c := client{t, url}
	tok := c.token(60)
	steps := []struct {
		advance time.Duration
		status  int
		ttlLeft string
	}{
		{0, 200, "60"},
		{59*time.Second + 500*time.Millisecond, 200, "1"},
		{500 * time.Millisecond, 401, ""}, // exactly at its TTL
		{time.Hour, 401, ""},
	}
	for i, st := range steps {
		clock.Add(st.advance)
		r := c.get("/latest/meta-data/ami-id", tok)
		if r.status != st.status || r.header.Get(TokenTTLHeader) != st.ttlLeft {
			t.Errorf("step %d: %d, ttl left %q; want %d, %q", i, r.status, r.header.Get(TokenTTLHeader), st.status, st.ttlLeft)
		}
	}
	if r := c.get("/latest/meta-data/ami-id", c.token(60)); r.status != 200 {
		t.Errorf("new token: %d", r.status)
	}
}

func TestExpireTokens(t *testing.T) {
	s, url := Start(t, Options{})
	c := client{t, url}
	old := c.token(21600)
	s.ExpireTokens()
	if r := c.get("/latest/meta-data/ami-id", old); r.status != 401 {
		t.Errorf("after ExpireTokens: %d, want 401", r.status)
	}
	if r := c.get("/latest/meta-data/ami-id", c.token(21600)); r.status != 200 {
		t.Errorf("token issued after ExpireTokens: %d", r.status)
	}
}

func TestFaults(t *testing.T) {
	s, url := Start(t, Options{})
	c := client{t, url}
	tok := c.token(60)

	s.FailNext(2, 503)
	// A refused token does not use up a failure: faults follow the check.
	if r := c.get("/latest/meta-data/ami-id", ""); r.status != 401 {
		t.Errorf("no token during FailNext: %d", r.status)
	}
	tok2 := c.token(60) // token PUTs are not failed by FailNext
	for i, want := range []int{503, 503, 200, 200} {
		if r := c.get("/latest/meta-data/ami-id", tok2); r.status != want {
			t.Errorf("GET %d: %d, want %d", i, r.status, want)
		}
	}
	s.FailNext(3, 429)
	s.FailNext(0, 0) // cancels
	if r := c.get("/latest/meta-data/ami-id", tok); r.status != 200 {
		t.Errorf("after cancel: %d", r.status)
	}

	s.FailTokenNext(2, 500)
	for i, want := range []int{500, 500, 200} {
		r := c.do("PUT", "/latest/api/token", map[string]string{TokenTTLHeader: "60"})
		if r.status != want {
			t.Errorf("PUT %d: %d, want %d", i, r.status, want)
		}
	}
	if r := c.get("/latest/meta-data/ami-id", tok); r.status != 200 {
		t.Errorf("GET during FailTokenNext: %d", r.status)
	}
	st := s.Stats()
	if st.ByStatus[503] != 2 || st.ByStatus[500] != 2 || st.TokenPuts != 5 {
		t.Errorf("stats %+v", st)
	}
}

func TestParseFail(t *testing.T) {
	tests := []struct {
		spec      string
		n, status int
		ok        bool
	}{
		{"3:503", 3, 503, true},
		{"1:429", 1, 429, true},
		{"5", 5, 500, true},
		{" 2:500 ", 2, 500, true},
		{"0:503", 0, 503, true},
		{"x:503", 0, 0, false},
		{"3:200", 0, 0, false},
		{"-1:503", 0, 0, false},
		{"", 0, 0, false},
	}
	for _, tt := range tests {
		n, status, err := ParseFail(tt.spec)
		if (err == nil) != tt.ok || n != tt.n || status != tt.status {
			t.Errorf("ParseFail(%q) = %d, %d, %v", tt.spec, n, status, err)
		}
	}
}

func TestLatency(t *testing.T) {
	const d = 40 * time.Millisecond
	s, url := Start(t, Options{Latency: d})
	c := client{t, url}
	begin := time.Now()
	tok := c.token(60)
	if took := time.Since(begin); took < d {
		t.Errorf("token PUT took %v, want >= %v", took, d)
	}
	s.SetLatency(2 * d)
	begin = time.Now()
	c.get("/latest/meta-data/ami-id", tok)
	if took := time.Since(begin); took < 2*d {
		t.Errorf("GET took %v, want >= %v", took, 2*d)
	}
	s.SetLatency(0)
	begin = time.Now()
	c.get("/latest/meta-data/ami-id", tok)
	if took := time.Since(begin); took > time.Second {
		t.Errorf("GET without latency took %v", took)
	}
}

func TestHang(t *testing.T) {
	s, url := Start(t, Options{})
	c := client{t, url}
	tok := c.token(60)
	s.Hang(true)

	// The client gives up: its call ends, the server records it.
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", url+"/latest/meta-data/ami-id", nil)
	req.Header.Set(TokenHeader, tok)
	begin := time.Now()
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
		t.Fatal("hung request answered")
	} else if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err = %v", err)
	}
	if took := time.Since(begin); took > 2*time.Second {
		t.Errorf("cancel took %v", took)
	}
	waitFor(t, "abandoned request recorded", func() bool { return s.Stats().ByStatus[StatusClientClosed] == 1 })

	// Hang(false) releases a request already waiting.
	done := make(chan response, 1)
	go func() { done <- c.get("/latest/meta-data/ami-id", tok) }()
	waitFor(t, "request in flight", func() bool { return s.Stats().Requests == 3 })
	select {
	case r := <-done:
		t.Fatalf("answered while hanging: %d", r.status)
	case <-time.After(50 * time.Millisecond):
	}
	s.Hang(false)
	if r := <-done; r.status != 200 {
		t.Errorf("released request: %d", r.status)
	}
}

func TestCloseReleasesHang(t *testing.T) {
	s := New(Options{AllowV1: true})
	url, err := s.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Start("127.0.0.1:0"); err == nil {
		t.Error("second Start succeeded")
	}
	s.Hang(true)
	errc := make(chan error, 1)
	go func() {
		resp, err := http.Get(url + "/latest/meta-data/ami-id")
		if err == nil {
			resp.Body.Close()
		}
		errc <- err
	}()
	waitFor(t, "request in flight", func() bool { return s.Stats().Requests == 1 })
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-errc:
	case <-time.After(5 * time.Second):
		t.Fatal("Close left a request hanging")
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := http.Get(url + "/"); err == nil {
		t.Error("served after Close")
	}
}

func TestMaxConcurrent(t *testing.T) {
	s, url := Start(t, Options{Latency: 100 * time.Millisecond, AllowV1: true})
	c := client{t, url}
	c.get("/latest/meta-data/ami-id", "")
	c.get("/latest/meta-data/ami-id", "")
	if mc := s.Stats().MaxConcurrent; mc != 1 {
		t.Errorf("sequential: MaxConcurrent %d, want 1", mc)
	}
	s.ResetStats()
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() { defer wg.Done(); c.get("/latest/meta-data/ami-id", "") }()
	}
	wg.Wait()
	st := s.Stats()
	if st.Gets != 8 || st.ByStatus[200] != 8 || st.MaxConcurrent < 4 {
		t.Errorf("parallel: %+v", st)
	}
}

func TestStatsAndLogger(t *testing.T) {
	var mu sync.Mutex
	var logged []string
	s, url := Start(t, Options{Logger: func(method, path string, status int) {
		mu.Lock()
		defer mu.Unlock()
		logged = append(logged, method+" "+path+" "+strconv.Itoa(status))
	}})
	c := client{t, url}
	tok := c.token(60)
	c.get("/latest/meta-data/instance-id", tok)
	c.get("/2021-03-23/meta-data/instance-id", tok)
	c.get("/latest/meta-data/", tok)
	c.get("/latest/meta-data/nope", tok)
	c.do("POST", "/latest/meta-data/", nil)
	st := s.Stats()
	want := Stats{Requests: 6, TokenPuts: 1, Gets: 4, MaxConcurrent: 1,
		ByStatus: map[int]int{200: 4, 404: 1, 405: 1},
		ByPath:   map[string]int{"meta-data/instance-id": 2, "meta-data/": 1, "meta-data/nope": 1}}
	if !equalStats(st, want) {
		t.Errorf("stats\n %+v\nwant\n %+v", st, want)
	}
	mu.Lock()
	got := strings.Join(logged, "; ")
	mu.Unlock()
	if wantLog := "PUT /latest/api/token 200; GET /latest/meta-data/instance-id 200; GET /2021-03-23/meta-data/instance-id 200; " +
		"GET /latest/meta-data/ 200; GET /latest/meta-data/nope 404; POST /latest/meta-data/ 405"; got != wantLog {
		t.Errorf("log:\n %s\nwant\n %s", got, wantLog)
	}
	s.ResetStats()
	if st := s.Stats(); st.Requests != 0 || len(st.ByStatus) != 0 || len(st.ByPath) != 0 {
		t.Errorf("after reset: %+v", st)
	}
}

func equalStats(a, b Stats) bool {
	if a.Requests != b.Requests || a.TokenPuts != b.TokenPuts || a.Gets != b.Gets || a.V1Requests != b.V1Requests ||
		a.MaxConcurrent != b.MaxConcurrent || len(a.ByStatus) != len(b.ByStatus) || len(a.ByPath) != len(b.ByPath) {
		return false
	}
	for k, v := range b.ByStatus {
		if a.ByStatus[k] != v {
			return false
		}
	}
	for k, v := range b.ByPath {
		if a.ByPath[k] != v {
			return false
		}
	}
	return true
}

func TestMutateWhileServing(t *testing.T) {
	s, url := Start(t, Options{AllowV1: true})
	c := client{t, url}

	// Writers and readers at once: the race detector checks the locking.
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Add(2)
		go func() {
			defer wg.Done()
			for j := range 20 {
				s.Set("meta-data/tags/instance/T"+strconv.Itoa(i), strconv.Itoa(j))
				s.Delete("meta-data/tags/instance/Gone" + strconv.Itoa(i))
				s.SetLatency(0)
				s.FailNext(0, 0)
			}
		}()
		go func() {
			defer wg.Done()
			for range 20 {
				if r := c.get("/latest/meta-data/tags/instance/", ""); r.status != 200 {
					t.Errorf("listing during writes: %d", r.status)
				}
			}
		}()
	}
	wg.Wait()

	s.Set("meta-data/instance-id", "i-0new")
	s.Delete("meta-data/placement")
	s.Set("meta-data/public-keys/0/openssh-key", "ssh-ed25519 AAAA rotated")
	gz := []byte{0x1f, 0x8b, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xff, 0x00} // binary user data
	s.SetUserData(gz)
	big := strings.Repeat("x", 10<<20) // for clients' bounded reads
	s.Set("meta-data/huge", big)
	checks := []struct {
		path   string
		status int
		want   string
	}{
		{"/latest/meta-data/instance-id", 200, "i-0new"},
		{"/latest/meta-data/tags/instance/", 200, "Environment\nName\nT0\nT1\nT2\nT3\nTeam"},
		{"/latest/meta-data/tags/instance/T3", 200, "19"},
		{"/latest/meta-data/placement/region", 404, ""},
		{"/latest/meta-data/public-keys/0/openssh-key", 200, "ssh-ed25519 AAAA rotated"},
		{"/latest/user-data", 200, string(gz)},
		{"/latest/meta-data/huge", 200, big},
	}
	for _, tt := range checks {
		if r := c.get(tt.path, ""); r.status != tt.status || (r.status == 200 && r.body != tt.want) {
			t.Errorf("GET %s = %d (%d bytes)", tt.path, r.status, len(r.body))
		}
	}
	if r := c.get("/latest/user-data", ""); r.header.Get("Content-Length") != "11" {
		t.Errorf("user data Content-Length %q", r.header.Get("Content-Length"))
	}
	s.SetUserData(nil)
	if r := c.get("/latest/user-data", ""); r.status != 404 {
		t.Errorf("no user data: %d", r.status)
	}
	if r := c.get("/latest/", ""); r.body != "dynamic\nmeta-data" {
		t.Errorf("version root without user data: %q", r.body)
	}
	if !bytes.Equal(s.Tree().UserData(), nil) {
		t.Error("Tree() copy still has user data")
	}
}

func TestServerCopiesTree(t *testing.T) {
	tree := DefaultTree()
	s, url := Start(t, Options{Tree: tree, AllowV1: true})
	tree.Set("meta-data/instance-id", "i-caller")
	s.Set("meta-data/ami-id", "ami-server")
	c := client{t, url}
	if r := c.get("/latest/meta-data/instance-id", ""); r.body != "i-0123456789abcdef0" {
		t.Errorf("caller's change leaked into the server: %q", r.body)
	}
	if v, _, _ := tree.Get("meta-data/ami-id"); v != "ami-0abcdef1234567890" {
		t.Errorf("server's change leaked into the caller's tree: %q", v)
	}
	if v, _, _ := s.Tree().Get("meta-data/ami-id"); v != "ami-server" {
		t.Errorf("Tree() = %q", v)
	}

	// A zero Tree serves an empty instance rather than crashing.
	_, url = Start(t, Options{Tree: &Tree{}, AllowV1: true})
	c = client{t, url}
	if r := c.get("/latest/", ""); r.status != 200 || r.body != "" {
		t.Errorf("empty tree root: %d %q", r.status, r.body)
	}
	if r := c.get("/latest/meta-data/", ""); r.status != 404 {
		t.Errorf("empty tree meta-data: %d", r.status)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
