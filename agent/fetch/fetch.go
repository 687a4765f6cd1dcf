// Package fetch is the one way ec2init brings remote bytes onto the
// instance: https by default, retries with backoff and jitter, size caps,
// and no redirect that downgrades https to http. Fetcher.Get reads small
// bodies (user-data #include); ArtifactFetcher downloads software
// artifacts from https, s3 and file URLs into a verified,
// content-addressed cache, resuming and hashing as it goes.
package fetch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"time"

	"github.com/ec2init/ec2init/agent/redact"
	"github.com/ec2init/ec2init/internal/backoff"
)

// Options tunes a Fetcher. Zero values take the defaults.
type Options struct {
	// AllowHTTP permits plain http:// URLs (never a redirect to one from
	// https).
	AllowHTTP bool
	// AllowFile permits file:// URLs, read from the local disk.
	AllowFile bool
	// MaxBytes caps a body (default 64 MiB).
	MaxBytes int64
	// Attempts per URL (default 5), with backoff from BaseBackoff doubling
	// up to MaxBackoff, fully jittered; a Retry-After the server sends
	// (up to MaxRetryAfter, default 30s) wins over the backoff.
	Attempts      int
	BaseBackoff   time.Duration
	MaxBackoff    time.Duration
	MaxRetryAfter time.Duration
	// Timeout bounds one attempt (default 30s).
	Timeout time.Duration
	// Client overrides the HTTP client (tests); its CheckRedirect is kept
	// only if set.
	Client *http.Client
}

// Fetcher fetches URLs under one policy. Safe for concurrent use.
type Fetcher struct {
	opts   Options
	client *http.Client
}

// New returns a Fetcher for opts.
func New(opts Options) *Fetcher {
	if opts.MaxBytes <= 0 {
		opts.MaxBytes = 64 << 20
	}
	if opts.Attempts <= 0 {
		opts.Attempts = 5
	}
	if opts.MaxRetryAfter <= 0 {
		opts.MaxRetryAfter = 30 * time.Second
	}
	if opts.BaseBackoff <= 0 {
		opts.BaseBackoff = 200 * time.Millisecond
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = 5 * time.Second
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 30 * time.Second
	}
	client := opts.Client
	if client == nil {
		client = &http.Client{}
	}
	c := *client
	c.Timeout = opts.Timeout
	if c.CheckRedirect == nil {
		c.CheckRedirect = refuseDowngrade
	}
	return &Fetcher{opts: opts, client: &c}
}

// Error is a failed fetch; it names the URL without credentials.
type Error struct {
	URL      string
	Attempts int
	Err      error
}

// Error redacts every URL in the text (a redirect target, a URL in a
// wrapped net/http error), not only the one it names.
func (e *Error) Error() string {
	return redact.Text(fmt.Sprintf("fetch %s: %v (after %d attempts)", e.URL, e.Err, e.Attempts))
}

func (e *Error) Unwrap() error { return e.Err }

// ErrRedirect is a redirect the policy refuses (a downgrade to http, or a
// loop).
var ErrRedirect = errors.New("refused redirect")

// ErrTooLarge is returned when a body exceeds Options.MaxBytes.
var ErrTooLarge = errors.New("body larger than the configured limit")

// Get returns the whole body at rawURL.
func (f *Fetcher) Get(ctx context.Context, rawURL string) ([]byte, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, errors.New("fetch: not a valid URL") // its text may be a secret
	}
	switch {
	case u.Scheme == "https":
	case u.Scheme == "http" && f.opts.AllowHTTP:
	case u.Scheme == "file" && f.opts.AllowFile:
		return f.readFile(u)
	default:
		return nil, &Error{URL: redact.URL(u.String()), Err: fmt.Errorf("scheme %q not allowed", u.Scheme)}
	}
	var last error
	for attempt := 1; attempt <= f.opts.Attempts; attempt++ {
		body, retry, after, err := f.once(ctx, u)
		if err == nil {
			return body, nil
		}
		last = err
		if !retry || attempt == f.opts.Attempts {
			return nil, &Error{URL: redact.URL(u.String()), Attempts: attempt, Err: err}
		}
		// A server that says when to come back (429, 503) is believed, up
		// to a cap; the jitter still spreads a fleet told the same time.
		wait := backoff.Delay(f.opts.BaseBackoff, f.opts.MaxBackoff, attempt, rand.Float64())
		if after = min(after, f.opts.MaxRetryAfter); after > 0 {
			wait = after + time.Duration(rand.Int64N(int64(after)/4+1))
		}
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return nil, &Error{URL: redact.URL(u.String()), Attempts: attempt, Err: ctx.Err()}
		}
	}
	return nil, &Error{URL: redact.URL(u.String()), Attempts: f.opts.Attempts, Err: last}
}

// once makes one attempt; retry says whether another could succeed, after
// when the server said.
func (f *Fetcher) once(ctx context.Context, u *url.URL) (body []byte, retry bool, after time.Duration, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, false, 0, err
	}
	resp, err := f.client.Do(req)
	if err != nil {
		// A refused redirect or a canceled context will not improve. The
		// *url.Error quotes the whole URL (or the redirect's), query and all.
		return nil, ctx.Err() == nil && !errors.Is(err, ErrRedirect), 0, redact.Error(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		retry = resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500
		after = parseRetryAfter(resp.Header.Get("Retry-After"), time.Now())
		return nil, retry, after, fmt.Errorf("HTTP %d %s", resp.StatusCode, http.StatusText(resp.StatusCode))
	}
	body, err = readCapped(resp.Body, f.opts.MaxBytes)
	return body, err != nil && !errors.Is(err, ErrTooLarge), 0, err
}

func (f *Fetcher) readFile(u *url.URL) ([]byte, error) {
	file, err := os.Open(u.Path)
	if err != nil {
		return nil, &Error{URL: redact.URL(u.String()), Attempts: 1, Err: err}
	}
	defer file.Close()
	b, err := readCapped(file, f.opts.MaxBytes)
	if err != nil {
		return nil, &Error{URL: redact.URL(u.String()), Attempts: 1, Err: err}
	}
	return b, nil
}

func readCapped(r io.Reader, max int64) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > max {
		return nil, ErrTooLarge
	}
	return b, nil
}
