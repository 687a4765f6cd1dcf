package imds

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// tokenHeader carries the session token on a metadata request.
const tokenHeader = "X-Aws-Ec2-Metadata-Token"

// tokenTTLHeader is the token's lifetime in seconds, in the PUT's answer.
const tokenTTLHeader = "X-Aws-Ec2-Metadata-Token-Ttl-Seconds"

// tokenMargin is how long a cached token must still live to be handed out:
// one that expires mid-request would only cost a 401 and a new PUT.
const tokenMargin = 10 * time.Second

// tokenCache shares one IMDSv2 session token between the processes of one
// boot (each stage is its own process under systemd): the first PUT's
// answer is kept in a root-only file, and a later process's token PUT is
// answered from it while it lives. It works under the SDK's own token
// handling, at the HTTP layer: the SDK still decides when it needs a token
// and drops one a 401 refuses; the cache drops it too.
type tokenCache struct {
	path     string
	endpoint string
	now      func() time.Time
	mu       sync.Mutex
}

// cachedToken is the file's content. The token is a secret: the file is
// 0600 and its content is never logged.
type cachedToken struct {
	Endpoint string    `json:"endpoint"`
	Token    string    `json:"token"`
	Expires  time.Time `json:"expires"`
}

func isTokenPut(req *http.Request) bool {
	return req.Method == http.MethodPut && strings.HasSuffix(req.URL.Path, "/api/token")
}

// answer returns a token PUT's answer from the cache, nil when it has no
// live token for this endpoint.
func (c *tokenCache) answer(req *http.Request) *http.Response {
	c.mu.Lock()
	defer c.mu.Unlock()
	data, err := os.ReadFile(c.path)
	if err != nil {
		return nil
	}
	var tok cachedToken
	if json.Unmarshal(data, &tok) != nil || tok.Token == "" || tok.Endpoint != c.endpoint {
		return nil
	}
	left := tok.Expires.Sub(c.now())
	if left < tokenMargin {
		return nil
	}
	body := []byte(tok.Token)
	h := http.Header{}
	// Whole seconds, rounded down: the SDK's expiry is never later than
	// the service's.
	h.Set(tokenTTLHeader, strconv.Itoa(int(left/time.Second)))
	return &http.Response{
		Status: "200 OK", StatusCode: http.StatusOK, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: h, Body: io.NopCloser(bytes.NewReader(body)), ContentLength: int64(len(body)), Request: req,
	}
}

// keep stores a token the service just issued. Best effort: a boot that
// cannot write /run only asks for more tokens.
func (c *tokenCache) keep(resp *http.Response) {
	ttl, err := strconv.Atoi(resp.Header.Get(tokenTTLHeader))
	if err != nil || ttl <= 0 || resp.ContentLength > 4096 {
		return
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4096))
	resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(body))
	resp.ContentLength = int64(len(body))
	if err != nil || len(body) == 0 {
		return
	}
	data, err := json.Marshal(cachedToken{Endpoint: c.endpoint, Token: string(body),
		Expires: c.now().Add(time.Duration(ttl) * time.Second)})
	if err != nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.write(data)
}

// refused drops the cached token when the service refused it (401): it
// expired early or the service restarted.
func (c *tokenCache) refused(req *http.Request) {
	sent := req.Header.Get(tokenHeader)
	if sent == "" {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	data, err := os.ReadFile(c.path)
	if err != nil {
		return
	}
	var tok cachedToken
	if json.Unmarshal(data, &tok) == nil && tok.Token == sent {
		os.Remove(c.path)
	}
}

// write replaces the file atomically, 0600 from its creation. No fsync:
// it lives under /run, and losing it costs one PUT.
func (c *tokenCache) write(data []byte) {
	dir := filepath.Dir(c.path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(c.path)+".tmp-")
	if err != nil {
		return
	}
	tmp := f.Name()
	_, werr := f.Write(data)
	cerr := f.Close()
	if werr != nil || cerr != nil || os.Rename(tmp, c.path) != nil {
		os.Remove(tmp)
	}
}
