package fetch

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"

	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// TestPolicyWait: the backoff alone stays under its ceiling; a Retry-After
// is waited for (capped), with at most a quarter more of jitter.
func TestPolicyWait(t *testing.T) {
	p := policy{attempts: 5, base: 10 * time.Millisecond, max: 40 * time.Millisecond, maxRetryAfter: time.Second}
	tests := []struct {
		name     string
		failures int
		after    time.Duration
		min, max time.Duration
	}{
		{name: "first backoff", failures: 1, max: 10 * time.Millisecond},
		{name: "backoff capped", failures: 9, max: 40 * time.Millisecond},
		{name: "retry-after", failures: 1, after: 400 * time.Millisecond, min: 400 * time.Millisecond, max: 500 * time.Millisecond},
		{name: "retry-after capped", failures: 1, after: time.Hour, min: time.Second, max: 1250 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for range 200 {
				if got := p.wait(tt.failures, tt.after); got < tt.min || got > tt.max {
					t.Fatalf("wait(%d, %s) = %s, want %s to %s", tt.failures, tt.after, got, tt.min, tt.max)
				}
			}
		})
	}
}

// TestPolicyRun: what is retried and how many times, for both callers.
func TestPolicyRun(t *testing.T) {
	p := policy{attempts: 3, base: time.Microsecond, max: time.Microsecond, maxRetryAfter: time.Millisecond}
	tests := []struct {
		name         string
		err          error
		progressed   bool
		wantAttempts int
	}{
		{name: "503 retried", err: &statusError{code: 503}, wantAttempts: 3},
		{name: "408 retried", err: &statusError{code: 408}, wantAttempts: 3},
		{name: "404 not", err: &statusError{code: 404}, wantAttempts: 1},
		{name: "too large not", err: ErrTooLarge, wantAttempts: 1},
		{name: "redirect not", err: fmt.Errorf("get: %w", ErrRedirect), wantAttempts: 1},
		{name: "certificate not", err: &tls.CertificateVerificationError{Err: errors.New("bad")}, wantAttempts: 1},
		{name: "connection reset", err: errors.New("connection reset by peer"), wantAttempts: 3},
		{name: "progress does not count", err: errors.New("cut"), progressed: true, wantAttempts: 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := 0
			attempts, err := p.run(context.Background(), "x", nil, func(context.Context, context.CancelCauseFunc) (bool, error) {
				n++
				if n == 10 {
					return false, nil
				}
				return tt.progressed, tt.err
			})
			if attempts != tt.wantAttempts || n != tt.wantAttempts {
				t.Errorf("attempts %d (%d calls), want %d; err %v", attempts, n, tt.wantAttempts, err)
			}
		})
	}
}

// TestSharedTransport: an artifact fetcher shares the Fetcher's transport,
// unless a CA file asks for other roots.
func TestSharedTransport(t *testing.T) {
	shared := New(Options{}).Transport()
	if shared == nil || !shared.DisableCompression {
		t.Fatalf("Fetcher transport %+v: want the artifacts' (no transparent gzip)", shared)
	}
	ca := newTestCA(t)
	tests := []struct {
		name   string
		caFile string
		shared bool
	}{
		{name: "shared", shared: true},
		{name: "ca_file: its own", caFile: ca.pemPath},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := NewArtifactFetcher(ArtifactOptions{CacheDir: t.TempDir(), CAFile: tt.caFile, Transport: shared})
			if err != nil {
				t.Fatal(err)
			}
			if got := f.client.Transport == shared && f.s3HTTP.Transport == shared; got != tt.shared {
				t.Errorf("shared %v, want %v", got, tt.shared)
			}
		})
	}
}

func TestRetryDefaults(t *testing.T) {
	attempts, base, max, after, timeout := 0, time.Duration(0), -time.Second, 7*time.Second, time.Duration(0)
	getDefaults.fill(&attempts, &base, &max, &after, &timeout)
	if attempts != 5 || base != 200*time.Millisecond || max != 5*time.Second || after != 7*time.Second || timeout != 30*time.Second {
		t.Errorf("filled %d %v %v %v %v", attempts, base, max, after, timeout)
	}
}

// TestRetriableSDKErrors: an SDK error with an HTTP status is judged by
// it; one with status 0 failed before any answer (refused, reset) and is
// retried like any network failure. A load run with the origin refusing
// connections found signature files given up after one attempt.
func TestRetriableSDKErrors(t *testing.T) {
	sdkErr := func(status int) error {
		var resp *smithyhttp.Response
		if status != 0 {
			resp = &smithyhttp.Response{Response: &http.Response{StatusCode: status}}
		} else {
			resp = &smithyhttp.Response{Response: &http.Response{}}
		}
		return &awshttp.ResponseError{ResponseError: &smithyhttp.ResponseError{Response: resp, Err: errors.New("EOF")}}
	}
	for _, tc := range []struct {
		status int
		want   bool
	}{{0, true}, {503, true}, {404, false}, {403, false}} {
		if got, _ := retriable(context.Background(), sdkErr(tc.status)); got != tc.want {
			t.Errorf("status %d: retriable %v, want %v", tc.status, got, tc.want)
		}
	}
}
