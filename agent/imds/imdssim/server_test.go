package imdssim

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

type client struct {
	t    *testing.T
	base string
}

func (c client) do(method, path string, hdr map[string]string) (int, string, http.Header) {
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
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

func (c client) token() string {
	c.t.Helper()
	status, tok, _ := c.do("PUT", "/latest/api/token", map[string]string{TokenTTLHeader: "60"})
	if status != 200 || tok == "" {
		c.t.Fatalf("token: %d %q", status, tok)
	}
	return tok
}

func (c client) get(path, tok string) (int, string) {
	c.t.Helper()
	hdr := map[string]string{}
	if tok != "" {
		hdr[TokenHeader] = tok
	}
	status, body, _ := c.do("GET", path, hdr)
	return status, body
}

func TestServe(t *testing.T) {
	_, url := Start(t, Options{})
	c := client{t, url}
	tok := c.token()
	tests := []struct {
		path       string
		wantStatus int
		want       string
	}{
		{"/latest/meta-data/instance-id", 200, "i-0123456789abcdef0"},
		{"/latest/meta-data/placement/", 200, "availability-zone\navailability-zone-id\ngroup-name\npartition-number\nregion"},
		{"/latest/meta-data/placement", 200, "availability-zone\navailability-zone-id\ngroup-name\npartition-number\nregion"},
		{"/latest/meta-data/public-keys/", 200, "0=my-key"},
		{"/latest/meta-data/public-keys/0/", 200, "openssh-key"},
		{"/latest/meta-data/public-keys/0/openssh-key", 200, "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExampleExampleExampleExampleExampleExample my-key"},
		{"/latest/meta-data/security-groups", 200, "web\nssh-admin"},
		{"/latest/meta-data/network/interfaces/macs/", 200, "0e:1a:2b:3c:4d:5e/\n0e:1a:2b:3c:4d:5f/"},
		{"/latest//meta-data/ramdisk-id", 404, ""},
		{"/latest/meta-data/nope", 404, ""},
		{"/2009-04-04/meta-data/ami-id", 200, "ami-0abcdef1234567890"},
		{"/1.0/meta-data/local-ipv4", 200, "10.0.1.23"},
		{"/latest/", 200, "dynamic\nmeta-data\nuser-data"},
		{"/latest/user-data", 200, "#!/bin/bash\necho \"hello from user data on $(hostname)\"\n"},
		{"/latest/dynamic/instance-identity/", 200, "document\npkcs7\nrsa2048\nsignature"},
		{"/1999-01-01/meta-data/ami-id", 404, ""},
	}
	for _, tt := range tests {
		status, body := c.get(tt.path, tok)
		if status != tt.wantStatus || (status == 200 && body != tt.want) {
			t.Errorf("GET %s = %d %q, want %d %q", tt.path, status, body, tt.wantStatus, tt.want)
		}
	}
	status, body := c.get("/", tok)
	if status != 200 || !strings.HasPrefix(body, "1.0\n") || !strings.HasSuffix(body, "\nlatest") {
		t.Errorf("GET / = %d %q", status, body)
	}
}

func TestTokenProtocol(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	_, url := Start(t, Options{Now: clock})
	c := client{t, url}
	tests := []struct {
		name       string
		method     string
		hdr        map[string]string
		wantStatus int
	}{
		{"ok", "PUT", map[string]string{TokenTTLHeader: "21600"}, 200},
		{"no ttl", "PUT", nil, 400},
		{"ttl zero", "PUT", map[string]string{TokenTTLHeader: "0"}, 400},
		{"ttl too long", "PUT", map[string]string{TokenTTLHeader: "21601"}, 400},
		{"ttl not a number", "PUT", map[string]string{TokenTTLHeader: "soon"}, 400},
		{"proxied", "PUT", map[string]string{TokenTTLHeader: "60", "X-Forwarded-For": "10.0.0.1"}, 403},
		{"get on token path", "GET", map[string]string{TokenTTLHeader: "60"}, 405},
	}
	for _, tt := range tests {
		status, _, hdr := c.do(tt.method, "/latest/api/token", tt.hdr)
		if status != tt.wantStatus {
			t.Errorf("%s: status %d, want %d", tt.name, status, tt.wantStatus)
		}
		if status == 200 && hdr.Get(TokenTTLHeader) != "21600" {
			t.Errorf("%s: ttl header %q", tt.name, hdr.Get(TokenTTLHeader))
		}
	}
	if status, _ := c.get("/latest/meta-data/ami-id", ""); status != 401 {
		t.Errorf("no token, v2 required: %d, want 401", status)
	}
	if status, _ := c.get("/latest/meta-data/ami-id", "forged"); status != 401 {
		t.Errorf("forged token: %d, want 401", status)
	}
	if status, _, _ := c.do("POST", "/latest/meta-data/ami-id", nil); status != 405 {
		t.Errorf("POST: %d, want 405", status)
	}
	tok := c.token() // 60 s
	if status, _ := c.get("/latest/meta-data/ami-id", tok); status != 200 {
		t.Errorf("fresh token: %d", status)
	}
	mu.Lock()
	now = now.Add(61 * time.Second)
	mu.Unlock()
	if status, _ := c.get("/latest/meta-data/ami-id", tok); status != 401 {
		t.Errorf("expired token: %d, want 401", status)
	}
}

func TestAllowV1(t *testing.T) {
	s, url := Start(t, Options{AllowV1: true})
	c := client{t, url}
	if status, body := c.get("/latest/meta-data/instance-id", ""); status != 200 || body != "i-0123456789abcdef0" {
		t.Errorf("v1 GET = %d %q", status, body)
	}
	if s.Stats().V1Requests != 1 {
		t.Errorf("V1Requests = %d", s.Stats().V1Requests)
	}
}

func TestFaults(t *testing.T) {
	s, url := Start(t, Options{})
	c := client{t, url}
	tok := c.token()

	s.FailNext(2, 503)
	for i, want := range []int{503, 503, 200} {
		if status, _ := c.get("/latest/meta-data/ami-id", tok); status != want {
			t.Errorf("request %d: %d, want %d", i, status, want)
		}
	}
	s.FailTokenNext(1, 500)
	if status, _, _ := c.do("PUT", "/latest/api/token", map[string]string{TokenTTLHeader: "60"}); status != 500 {
		t.Errorf("failed token PUT: %d", status)
	}
	s.ExpireTokens()
	if status, _ := c.get("/latest/meta-data/ami-id", tok); status != 401 {
		t.Errorf("after ExpireTokens: %d, want 401", status)
	}
	tok = c.token()

	s.SetLatency(30 * time.Millisecond)
	begin := time.Now()
	c.get("/latest/meta-data/ami-id", tok)
	if time.Since(begin) < 30*time.Millisecond {
		t.Error("latency not applied")
	}
	s.SetLatency(0)

	s.Hang(true)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", url+"/latest/meta-data/ami-id", nil)
	req.Header.Set(TokenHeader, tok)
	if _, err := http.DefaultClient.Do(req); err == nil {
		t.Error("hung request answered")
	}
	s.Hang(false)
	if status, _ := c.get("/latest/meta-data/ami-id", tok); status != 200 {
		t.Errorf("after Hang(false): %d", status)
	}
}

func TestMutationAndStats(t *testing.T) {
	s, url := Start(t, Options{Latency: 20 * time.Millisecond})
	c := client{t, url}
	tok := c.token()
	s.Set("meta-data/instance-id", "i-0new")
	s.Set("meta-data/tags/instance/Owner", "ops")
	s.Delete("meta-data/placement")
	s.SetUserData(nil)
	checks := []struct {
		path       string
		wantStatus int
		want       string
	}{
		{"/latest/meta-data/instance-id", 200, "i-0new"},
		{"/latest/meta-data/tags/instance/", 200, "Environment\nName\nOwner\nTeam"},
		{"/latest/meta-data/placement/region", 404, ""},
		{"/latest/user-data", 404, ""},
		{"/latest/", 200, "dynamic\nmeta-data"},
	}
	for _, tt := range checks {
		if status, body := c.get(tt.path, tok); status != tt.wantStatus || (status == 200 && body != tt.want) {
			t.Errorf("GET %s = %d %q", tt.path, status, body)
		}
	}
	s.ResetStats()
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() { defer wg.Done(); c.get("/latest/meta-data/ami-id", tok) }()
	}
	wg.Wait()
	st := s.Stats()
	if st.Gets != 8 || st.ByStatus[200] != 8 || st.MaxConcurrent < 2 {
		t.Errorf("stats %+v", st)
	}
}

func TestDefaultTreeConsistent(t *testing.T) {
	tree := DefaultTree()
	get := func(p string) string {
		v, _, ok := tree.Get(p)
		if !ok {
			t.Fatalf("%s missing", p)
		}
		return v
	}
	var doc struct {
		InstanceID, ImageID, Region, AvailabilityZone, PrivateIP, InstanceType string
	}
	if err := json.Unmarshal([]byte(get("dynamic/instance-identity/document")), &doc); err != nil {
		t.Fatal(err)
	}
	pairs := [][2]string{
		{doc.InstanceID, get("meta-data/instance-id")},
		{doc.ImageID, get("meta-data/ami-id")},
		{doc.Region, get("meta-data/placement/region")},
		{doc.AvailabilityZone, get("meta-data/placement/availability-zone")},
		{doc.PrivateIP, get("meta-data/local-ipv4")},
		{doc.InstanceType, get("meta-data/instance-type")},
		{get("meta-data/local-ipv4"), get("meta-data/network/interfaces/macs/" + get("meta-data/mac") + "/local-ipv4s")},
		{get("meta-data/public-ipv4"), get("meta-data/network/interfaces/macs/" + get("meta-data/mac") + "/public-ipv4s")},
	}
	for _, p := range pairs {
		if p[0] != p[1] {
			t.Errorf("inconsistent: %q vs %q", p[0], p[1])
		}
	}
	var creds map[string]string
	if err := json.Unmarshal([]byte(get("meta-data/iam/security-credentials/web-server-role")), &creds); err != nil || creds["AccessKeyId"] == "" {
		t.Errorf("credentials: %v %v", creds, err)
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct{ name, data, want string }{
		{"not a mapping", "- a\n- b\n", "line 1: want a mapping"},
		{"meta-data list", "meta-data:\n  - x\n", "line 2: meta-data must be a mapping"},
		{"nested map in list", "meta-data:\n  sg:\n    - a: b\n", "line 3: meta-data/sg: a list may hold only values"},
		{"unknown top key", "meta-data: {}\nuserdata: x\n", "line 2: unknown key \"userdata\""},
		{"no meta-data", "dynamic: {}\n", "no meta-data"},
		{"bad base64", "meta-data: {}\nuser-data-base64: '%%%'\n", "line 2: user-data-base64"},
		{"malformed yaml", "meta-data: [\n", "sim.yaml: yaml:"},
		{"slash in key", "meta-data:\n  a/b: c\n", "line 2: meta-data: key must be"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("sim.yaml", []byte(tt.data))
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "sim.yaml") {
				t.Errorf("err = %v, want %q", err, tt.want)
			}
		})
	}
	path := filepath.Join(t.TempDir(), "x.json")
	if err := os.WriteFile(path, []byte(`{"meta-data": {"instance-id": "i-1"}, "user-data-base64": "H4sIAAAAAAAA/w=="}`), 0o600); err != nil {
		t.Fatal(err)
	}
	tree, err := LoadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if v, _, _ := tree.Get("meta-data/instance-id"); v != "i-1" || len(tree.userData) == 0 || tree.userData[0] != 0x1f {
		t.Errorf("JSON file: %q %v", v, tree.userData)
	}
	if _, err := LoadFile(filepath.Join(t.TempDir(), "absent.yaml")); err == nil {
		t.Error("missing file accepted")
	}
}

func TestClone(t *testing.T) {
	a := DefaultTree()
	b := a.Clone()
	b.set("meta-data/instance-id", "i-other")
	if v, _, _ := a.Get("meta-data/instance-id"); v != "i-0123456789abcdef0" {
		t.Errorf("clone shares state: %q", v)
	}
}
