// Package fetch is the one way ec2init brings remote bytes onto the
// instance: https by default, retries with backoff and jitter, size caps,
// and no redirect that downgrades https to http. Fetcher.Get reads small
// bodies (user-data #include); ArtifactFetcher downloads software
// artifacts from https, s3 and file URLs (and their mirrors) into a
// verified, content-addressed cache, resuming, hashing and checking a
// detached signature as it goes; ResolveVersion finds the newest version
// from a manifest or an S3 prefix.
package fetch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"time"

	"github.com/ec2init/ec2init/agent/redact"
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
	// (up to MaxRetryAfter, default 30s) is waited for when longer, with up
	// to a quarter more of jitter. The loop is the artifacts' (policy).
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
	retry  policy
}

// New returns a Fetcher for opts. Its defaults (5 attempts, backoff from
// 200ms to 5s, Retry-After up to 30s, 30s per attempt) are those of a small
// body a boot waits for; ArtifactOptions has its own for large downloads.
func New(opts Options) *Fetcher {
	if opts.MaxBytes <= 0 {
		opts.MaxBytes = 64 << 20
	}
	getDefaults.fill(&opts.Attempts, &opts.BaseBackoff, &opts.MaxBackoff, &opts.MaxRetryAfter, &opts.Timeout)
	client := opts.Client
	if client == nil {
		// The system roots cannot fail to load: tlsConfig reads no file.
		tlsConf, _ := tlsConfig("")
		client = &http.Client{Transport: newTransport(tlsConf, opts.Timeout)}
	}
	c := *client
	c.Timeout = opts.Timeout
	if c.CheckRedirect == nil {
		c.CheckRedirect = refuseDowngrade
	}
	return &Fetcher{opts: opts, client: &c, retry: policy{
		attempts: opts.Attempts, base: opts.BaseBackoff, max: opts.MaxBackoff, maxRetryAfter: opts.MaxRetryAfter,
	}}
}

// Transport is the fetcher's HTTP transport (nil for an Options.Client
// that has none of its own), for an ArtifactFetcher to share through
// ArtifactOptions.Transport.
func (f *Fetcher) Transport() *http.Transport {
	tr, _ := f.client.Transport.(*http.Transport)
	return tr
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
	var body []byte
	attempts, err := f.retry.run(ctx, "", u, func(ctx context.Context, _ context.CancelCauseFunc) (bool, error) {
		var err error
		body, err = f.once(ctx, u)
		return false, err
	})
	if err != nil {
		return nil, &Error{URL: redact.URL(u.String()), Attempts: attempts, Err: err}
	}
	return body, nil
}

// once makes one attempt; a failure is classified by retriable.
func (f *Fetcher) once(ctx context.Context, u *url.URL) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, err
	}
	resp, err := f.client.Do(req)
	if err != nil {
		// The *url.Error quotes the whole URL (or the redirect's), query
		// and all.
		return nil, redact.Error(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, &statusError{code: resp.StatusCode, retryAfter: parseRetryAfter(resp.Header.Get("Retry-After"), time.Now())}
	}
	return readCapped(resp.Body, f.opts.MaxBytes)
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
