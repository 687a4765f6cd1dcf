package redact

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

func TestURL(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{"https://host/p/a.rpm", "https://host/p/a.rpm"},
		{"https://user:pass@host/p/a.rpm?sig=x#frag", "https://host/p/a.rpm"},
		{"https://b.s3.amazonaws.com/ud?X-Amz-Security-Token=TOKEN&X-Amz-Signature=SIG", "https://b.s3.amazonaws.com/ud"},
		{"https://host/a?", "https://host/a"},
		{"https://host:8443/a#only-a-fragment", "https://host:8443/a"},
		{"s3://bucket/key/a.tgz", "s3://bucket/key/a.tgz"},
		{"file:///srv/a", "file:///srv/a"},
		{"password:hunter2", "password:..."},
		{"https://h/%zz?sig=SECRET", Unparsable},
		{"https://host/p", "https://host/p"}, // idempotent on its own output
	}
	for _, tt := range tests {
		if got := URL(tt.in); got != tt.want {
			t.Errorf("URL(%q) = %q, want %q", tt.in, got, tt.want)
		}
		if got := URL(URL(tt.in)); tt.want != Unparsable && got != tt.want {
			t.Errorf("URL(URL(%q)) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestOrigin(t *testing.T) {
	tests := []struct{ in, want string }{
		{"https://h", "https://h"},
		{"HTTPS://me:pw@h/secret-path?sig=x", "https://h/..."},
		{"https://h/?sig=x", "https://h/..."},
		{"password:hunter2", "password:..."},
		{"https://h/%zz", Unparsable},
	}
	for _, tt := range tests {
		if got := Origin(tt.in); got != tt.want {
			t.Errorf("Origin(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestText(t *testing.T) {
	tests := []struct{ in, want string }{
		{"no url here", "no url here"},
		{`Get "https://u:PW@h/a?X-Amz-Security-Token=TOKEN": dial tcp: refused`, `Get "https://h/a": dial tcp: refused`},
		{"from (https://h/a?sig=SIG).", "from (https://h/a)."},
		{"two: http://h/1?a=SECRET and s3://b/k#SECRET", "two: http://h/1 and s3://b/k"},
		{"redirect to http://h/x?token=SECRET, refused", "redirect to http://h/x, refused"},
	}
	for _, tt := range tests {
		if got := Text(tt.in); got != tt.want {
			t.Errorf("Text(%q)\n = %q\nwant %q", tt.in, got, tt.want)
		}
	}
}

type codeErr struct{ msg string }

func (e *codeErr) Error() string { return e.msg }

func TestError(t *testing.T) {
	if Error(nil) != nil {
		t.Error("Error(nil) != nil")
	}
	inner := &codeErr{"fetch https://me:PW@h/a?X-Amz-Security-Token=TOKEN failed"}
	tests := []struct {
		name string
		err  error
	}{
		{"plain", inner},
		{"wrapped", fmt.Errorf("include 1: %w", inner)},
		{"url.Error", &url.Error{Op: "Get", URL: "https://me:PW@h/a?X-Amz-Security-Token=TOKEN", Err: inner}},
		{"twice", Error(Error(inner))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Error(tt.err)
			for _, secret := range []string{"TOKEN", "PW", "me:"} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("%v: leaks %q", err, secret)
				}
			}
			var ce *codeErr
			if !errors.As(err, &ce) || !errors.Is(err, inner) {
				t.Errorf("chain lost: %v", err)
			}
			var ue *url.Error
			if errors.As(err, &ue) && ue.URL != "https://h/a" {
				t.Errorf("url.Error.URL = %q", ue.URL)
			}
		})
	}
}

// TestErrorNetHTTP: net/http's own error for a failed request quotes the
// whole request URL; through Error it does not.
func TestErrorNetHTTP(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	addr := srv.URL
	srv.Close() // nothing listens: the request fails in net/http
	req, err := http.NewRequestWithContext(context.Background(), http.MethodGet,
		strings.Replace(addr, "://", "://me:PW@", 1)+"/ud?X-Amz-Security-Token=TOKEN", nil)
	if err != nil {
		t.Fatal(err)
	}
	_, raw := http.DefaultClient.Do(req)
	if raw == nil || !strings.Contains(raw.Error(), "TOKEN") {
		t.Skipf("net/http no longer quotes the URL: %v", raw)
	}
	if got := Error(raw).Error(); strings.Contains(got, "TOKEN") || strings.Contains(got, "PW") {
		t.Errorf("leaks: %s", got)
	}
}
