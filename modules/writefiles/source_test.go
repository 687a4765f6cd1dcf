package writefiles

import (
	"context"
	"strings"
	"testing"

	"github.com/ec2init/ec2init/agent/fetch"
	"github.com/ec2init/ec2init/internal/testkit"
	"github.com/ec2init/ec2init/modules/modtest"
)

// TestSource: the content comes from source.uri through the agent's
// fetcher, written as fetched (encoding is content's); a failed fetch
// falls back to content, as cloud-init's read_url_or_decode does, and with
// no content the item fails while the others are written.
func TestSource(t *testing.T) {
	o := testkit.NewOrigin(t, nil)
	good := o.Put("/app.conf", []byte("from the origin\n"))
	missing := o.URL + "/missing"
	e := newEnv(t)
	e.Fetcher = fetch.New(fetch.Options{Client: o.Client(), Attempts: 1})
	cfg := modtest.Config(t, `write_files:
- {path: /etc/a, source: {uri: "`+good+`", headers: {Authorization: "Bearer x"}}, content: aW5saW5l, encoding: b64}
- {path: /etc/b, source: {uri: "`+missing+`"}, content: aW5saW5l, encoding: b64, permissions: '0600'}
- {path: /etc/c, source: {uri: "`+missing+`"}}
- {path: /etc/d, content: plain}
`)
	err := (WriteFiles{}).Run(context.Background(), e, cfg)
	if err == nil || !strings.Contains(err.Error(), "write_files[2] /etc/c: source:") || !strings.Contains(err.Error(), "no content to fall back to") {
		t.Errorf("error %v, want item 2's missing source", err)
	}
	for p, want := range map[string]string{"/etc/a": "from the origin\n", "/etc/b": "inline", "/etc/c": "<absent>", "/etc/d": "plain"} {
		if got := modtest.Get(t, e, p); got != want {
			t.Errorf("%s = %q, want %q", p, got, want)
		}
	}
	if o.Count("/app.conf") != 1 {
		t.Errorf("origin fetched %d times", o.Count("/app.conf"))
	}
}
