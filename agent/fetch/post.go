package fetch

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/ec2init/ec2init/agent/redact"
)

// PostForm posts form, form-encoded, to rawURL (http only when AllowHTTP)
// and returns the answer's body. A 2xx answer is success; the retries,
// size cap and redaction are Get's, with attempts (when > 0) in place of
// Options.Attempts. Redirects are not followed for a POST.
func (f *Fetcher) PostForm(ctx context.Context, rawURL string, form url.Values, attempts int) ([]byte, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, errors.New("post: not a valid URL") // its text may be a secret
	}
	if !(u.Scheme == "https" || u.Scheme == "http" && f.opts.AllowHTTP) {
		return nil, &Error{URL: redact.URL(u.String()), Err: fmt.Errorf("scheme %q not allowed", u.Scheme)}
	}
	p := f.retry
	if attempts > 0 {
		p.attempts = attempts
	}
	body := form.Encode()
	client := *f.client
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	var out []byte
	n, err := p.run(ctx, "", u, func(ctx context.Context, _ context.CancelCauseFunc) (bool, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), strings.NewReader(body))
		if err != nil {
			return false, err
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		resp, err := client.Do(req)
		if err != nil {
			return false, redact.Error(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode < 200 || resp.StatusCode > 299 {
			return false, &statusError{code: resp.StatusCode, retryAfter: parseRetryAfter(resp.Header.Get("Retry-After"), time.Now())}
		}
		out, err = readCapped(resp.Body, f.opts.MaxBytes)
		return false, err
	})
	if err != nil {
		return nil, &Error{URL: redact.URL(u.String()), Attempts: n, Err: err}
	}
	return out, nil
}
