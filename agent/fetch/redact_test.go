package fetch

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/aws/smithy-go"
)

// leakSentinel stands for what a hostile or misconfigured S3 endpoint puts
// in its error text (or echoes of the request): it must not reach our errors.
const leakSentinel = "SENTINEL-hunter2-from-the-endpoint"

// TestS3ErrorTextNotCopied: an endpoint's error document is reduced to its
// code and HTTP status; the bucket and key are named, the Message is not.
func TestS3ErrorTextNotCopied(t *testing.T) {
	ca := newTestCA(t)
	tests := []struct {
		name   string
		status int
		body   string
		want   []string
		retry  bool
	}{
		{"access denied", http.StatusForbidden,
			`<?xml version="1.0" encoding="UTF-8"?><Error><Code>AccessDenied</Code><Message>` + leakSentinel + `</Message><RequestId>r</RequestId></Error>`,
			[]string{`s3 bucket "artifacts", key "app/a.rpm": AccessDenied (HTTP 403 Forbidden)`, "after 1 attempts"}, false},
		{"hostile code", http.StatusForbidden,
			`<Error><Code>` + leakSentinel + ` x</Code><Message>m</Message></Error>`,
			[]string{`s3 bucket "artifacts", key "app/a.rpm": an unrecognised error code (HTTP 403 Forbidden)`}, false},
		{"server error, no document", http.StatusServiceUnavailable, leakSentinel,
			[]string{`s3 bucket "artifacts", key "app/a.rpm":`, "HTTP 503", "after 3 attempts"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := ca.serveTLS(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/xml")
				w.WriteHeader(tt.status)
				fmt.Fprint(w, tt.body)
			}))
			_, client := roleIMDS(t, "test-role")
			f := newTestFetcher(t, ArtifactOptions{CAFile: ca.pemPath, S3PathStyle: true, IMDS: client, S3Endpoint: srv.URL, Attempts: 3})
			_, err := f.Fetch(context.Background(), "a", Source{URL: "s3://artifacts/app/a.rpm", SHA256: sha256Hex(nil)})
			if err == nil {
				t.Fatal("fetch succeeded")
			}
			if strings.Contains(err.Error(), leakSentinel) || strings.Contains(err.Error(), "hunter2") {
				t.Errorf("error copies the endpoint's text: %v", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("err %v\nwant it to say %q", err, w)
				}
			}
			var api smithy.APIError
			if tt.status == http.StatusForbidden && !errors.As(err, &api) {
				t.Errorf("the SDK's error left the chain: %v", err)
			}
		})
	}
}

// TestFetchErrorsRedactURLs: a presigned URL's query and a URL's userinfo
// never reach an error, including the URL net/http quotes for a redirect.
func TestFetchErrorsRedactURLs(t *testing.T) {
	ca := newTestCA(t)
	const token = "TOKEN-hunter2"
	srv := ca.serveTLS(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/denied":
			http.Error(w, "denied", http.StatusForbidden)
		case "/downgrade":
			// A signed URL elsewhere, over plain http: refused, and net/http
			// quotes the redirect's URL in its error.
			http.Redirect(w, r, "http://127.0.0.1:1/ud?X-Amz-Security-Token="+token, http.StatusFound)
		}
	}))
	tlsConf, err := tlsConfig(ca.pemPath)
	if err != nil {
		t.Fatal(err)
	}
	f := New(Options{Attempts: 1, Client: &http.Client{Transport: &http.Transport{TLSClientConfig: tlsConf}}})
	base := strings.Replace(srv.URL, "https://", "https://me:pw-hunter2@", 1)
	for _, path := range []string{"/denied", "/downgrade"} {
		t.Run(path, func(t *testing.T) {
			_, err := f.Get(context.Background(), base+path+"?X-Amz-Security-Token="+token+"&X-Amz-Signature=sig#frag")
			if err == nil {
				t.Fatal("fetch succeeded")
			}
			for _, s := range []string{"hunter2", "X-Amz", "me:", "frag"} {
				if strings.Contains(err.Error(), s) {
					t.Errorf("error leaks %q: %v", s, err)
				}
			}
			if !strings.Contains(err.Error(), srv.URL+path) {
				t.Errorf("error does not name the URL: %v", err)
			}
		})
	}
	if _, err := f.Get(context.Background(), "https://h/%zz?sig="+token); err == nil || strings.Contains(err.Error(), token) {
		t.Errorf("unparsable URL: %v", err)
	}
}
