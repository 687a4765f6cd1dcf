package phonehome

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/ec2init/ec2init/agent/fetch"
	"github.com/ec2init/ec2init/agent/imds"
	"github.com/ec2init/ec2init/modules/modtest"
)

// recorder is a local HTTPS server that keeps what is POSTed to it.
type recorder struct {
	*httptest.Server
	mu    sync.Mutex
	posts []url.Values
	paths []string
	code  int
}

func newRecorder(t *testing.T, code int) *recorder {
	r := &recorder{code: code}
	r.Server = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		v, _ := url.ParseQuery(string(b))
		r.mu.Lock()
		if req.Method == http.MethodPost && req.Header.Get("Content-Type") == "application/x-www-form-urlencoded" {
			r.posts = append(r.posts, v)
		}
		r.paths = append(r.paths, req.URL.RequestURI())
		r.mu.Unlock()
		w.WriteHeader(r.code)
	}))
	t.Cleanup(r.Close)
	return r
}

func TestPhoneHome(t *testing.T) {
	// Real host keys, made by ssh-keygen, when it is installed.
	keys := map[string]string{}
	dir := t.TempDir()
	keygen, _ := exec.LookPath("ssh-keygen")
	for _, k := range []string{"rsa", "ed25519"} {
		keys["pub_key_"+k] = "ssh-" + k + " AAAA fake\n"
		if keygen == "" {
			continue
		}
		full := filepath.Join(dir, k)
		if out, err := exec.Command(keygen, "-q", "-t", k, "-b", "1024", "-N", "", "-f", full).CombinedOutput(); err != nil {
			t.Fatalf("ssh-keygen: %v %s", err, out)
		}
		b, err := os.ReadFile(full + ".pub")
		if err != nil {
			t.Fatal(err)
		}
		keys["pub_key_"+k] = string(b)
	}
	tests := []struct {
		name      string
		cfg       string // %s is the server's URL
		code      int
		want      map[string]string // "key" = the host key's content
		wantPath  string
		wantErr   string
		wantPosts int
	}{
		{"all", "phone_home: {url: '%s/$INSTANCE_ID/?token=s3cret', tries: 2}", 200,
			map[string]string{"instance_id": "i-0abc", "hostname": "ip-10-0-1-23", "fqdn": "ip-10-0-1-23.ec2.internal",
				"pub_key_rsa": "key", "pub_key_ed25519": "key", "pub_key_ecdsa": "N/A"}, "/i-0abc/?token=s3cret", "", 1},
		{"some keys", "phone_home: {url: '%s/${INSTANCE_ID}', post: [instance_id, fqdn]}", 200,
			map[string]string{"instance_id": "i-0abc", "fqdn": "ip-10-0-1-23.ec2.internal"}, "/i-0abc", "", 1},
		{"tries not a number", "phone_home: {url: '%s/x', post: [hostname], tries: many}", 200,
			map[string]string{"hostname": "ip-10-0-1-23"}, "/x", "", 1},
		{"server fails: every try", "phone_home: {url: '%s/x?token=s3cret', post: [instance_id], tries: 3}", 503,
			map[string]string{"instance_id": "i-0abc"}, "/x?token=s3cret", "HTTP 503", 3},
		{"unknown variable", "phone_home: {url: '%s/$HOSTNAME'}", 200, nil, "", "unknown variable $HOSTNAME", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newRecorder(t, tt.code)
			e, _ := modtest.Env(t)
			e.Instance = &imds.Instance{InstanceID: "i-0abc", LocalHostname: "ip-10-0-1-23.ec2.internal"}
			e.Fetcher = fetch.New(fetch.Options{Client: srv.Client(), BaseBackoff: time.Millisecond, MaxBackoff: time.Millisecond})
			core, logs := observer.New(zap.DebugLevel)
			e.Log = zap.New(core)
			for k, content := range keys {
				modtest.Put(t, e, "/etc/ssh/ssh_host_"+strings.TrimPrefix(k, "pub_key_")+"_key.pub", content)
			}
			err := PhoneHome{}.Run(context.Background(), e, modtest.Config(t, strings.ReplaceAll(tt.cfg, "%s", srv.URL)))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
			} else if err != nil {
				t.Fatal(err)
			}
			if err != nil && strings.Contains(err.Error(), "s3cret") {
				t.Errorf("error shows the URL's secret: %v", err)
			}
			for _, l := range logs.All() {
				if strings.Contains(l.Message+" "+strings.Join(fieldStrings(l.Context), " "), "s3cret") {
					t.Errorf("log shows the URL's secret: %v", l)
				}
			}
			if len(srv.posts) != tt.wantPosts {
				t.Fatalf("posts %v, want %d", srv.posts, tt.wantPosts)
			}
			for i, got := range srv.posts {
				if srv.paths[i] != tt.wantPath {
					t.Errorf("posted to %q, want %q", srv.paths[i], tt.wantPath)
				}
				if len(got) != len(tt.want) {
					t.Errorf("posted %v, want keys of %v", got, tt.want)
				}
				for k, want := range tt.want {
					if want == "key" {
						want = keys[k]
					}
					if got.Get(k) != want {
						t.Errorf("%s = %q, want %q", k, got.Get(k), want)
					}
				}
			}
		})
	}
}

func fieldStrings(fs []zap.Field) []string {
	var out []string
	for _, f := range fs {
		out = append(out, f.String)
		if f.Interface != nil {
			if s, ok := f.Interface.(interface{ Error() string }); ok {
				out = append(out, s.Error())
			}
		}
	}
	return out
}

func TestSchema(t *testing.T) {
	for doc, want := range map[string]string{
		"phone_home: {post: all}\n":                    `u.yaml:1:13: error: phone_home: missing required key "url"`,
		"phone_home: {url: 'https://x', post: [pw]}\n": `u.yaml:1:39: error: phone_home.post[0]: expected one of`,
	} {
		if got := modtest.Diagnostics(t, doc, PhoneHome{}); !strings.Contains(got, want) {
			t.Errorf("%q: diagnostics %q, want %q", doc, got, want)
		}
	}
}
