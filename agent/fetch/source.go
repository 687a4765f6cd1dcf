package fetch

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/ec2init/ec2init/agent/redact"
)

// remote reads one kind of source from an offset.
type remote interface {
	// open returns the object's bytes from offset on (offset 0: all of
	// them). v holds the validators of the bytes already had, so the
	// source can tell a changed object. A source that cannot or will not
	// resume answers from 0 (response.start says which).
	open(ctx context.Context, u *url.URL, offset int64, v validator) (*response, error)
}

// validator identifies one version of a remote object.
type validator struct {
	ETag         string
	LastModified string
}

type response struct {
	body  io.ReadCloser
	start int64 // offset of the body's first byte
	total int64 // the whole object's size; -1 when unknown
	v     validator
}

// rangeError is a resume offset past the object's end (HTTP 416); total is
// the object's size when the server said it, else -1.
type rangeError struct{ total int64 }

func (e *rangeError) Error() string { return fmt.Sprintf("range not satisfiable (size %d)", e.total) }

// errChanged is an object that changed since the partial bytes were read.
var errChanged = errors.New("the object changed since the partial download; starting over")

// errNotAllowed is a source the policy refuses.
var errNotAllowed = errors.New("not allowed")

// resolve parses raw and picks its remote, applying the scheme policy.
func (f *ArtifactFetcher) resolve(raw string, allowInsecure bool) (*url.URL, remote, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme == "" {
		return nil, nil, fmt.Errorf("source %s is not a URL", redact.URL(raw))
	}
	switch u.Scheme {
	case "https":
		return u, httpRemote{c: f.client}, nil
	case "http":
		if !allowInsecure {
			return nil, nil, fmt.Errorf("%s: %w: http:// needs allow_insecure", redact.URL(u.String()), errNotAllowed)
		}
		return u, httpRemote{c: f.client}, nil
	case "file":
		if (u.Host != "" && u.Host != "localhost") || !filepath.IsAbs(u.Path) {
			return nil, nil, fmt.Errorf("%s: a file URL needs an absolute local path (file:///path)", redact.URL(u.String()))
		}
		return u, fileRemote{}, nil
	case "s3":
		if u.Host == "" || strings.TrimPrefix(u.Path, "/") == "" {
			return nil, nil, fmt.Errorf("%s: want s3://bucket/key", redact.URL(u.String()))
		}
		return u, s3Remote{f: f, allowInsecure: allowInsecure}, nil
	}
	return nil, nil, fmt.Errorf("%s: %w: scheme %q (want https, s3 or file)", redact.URL(u.String()), errNotAllowed, u.Scheme)
}

type httpRemote struct{ c *http.Client }

func (r httpRemote) open(ctx context.Context, u *url.URL, offset int64, v validator) (*response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", redact.URL(u.String()), err)
	}
	if offset > 0 {
		req.Header.Set("Range", fmt.Sprintf("bytes=%d-", offset))
		// If-Range makes a changed object come back whole (200) rather than
		// a range of the new version appended to the old one. A weak ETag
		// is not allowed there.
		if v.ETag != "" && !strings.HasPrefix(v.ETag, "W/") {
			req.Header.Set("If-Range", v.ETag)
		} else if v.LastModified != "" {
			req.Header.Set("If-Range", v.LastModified)
		}
	}
	resp, err := r.c.Do(req)
	if err != nil {
		// Go strips a password from the *url.Error, not a signed query.
		err = redact.Error(err)
		var cve *tls.CertificateVerificationError
		if errors.As(err, &cve) {
			return nil, fmt.Errorf("%w (an origin with a private CA needs ca_file)", err)
		}
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			// Drain a little so the connection can be reused.
			_, _ = io.CopyN(io.Discard, resp.Body, 4<<10)
			resp.Body.Close()
		}
	}()
	out := &response{body: resp.Body, total: -1, v: validator{
		ETag:         resp.Header.Get("ETag"),
		LastModified: resp.Header.Get("Last-Modified"),
	}}
	switch resp.StatusCode {
	case http.StatusOK:
		out.total = resp.ContentLength
	case http.StatusPartialContent:
		start, total, err := parseContentRange(resp.Header.Get("Content-Range"))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", redact.URL(u.String()), err)
		}
		out.start, out.total = start, total
	case http.StatusRequestedRangeNotSatisfiable:
		total := int64(-1)
		if cr, ok := strings.CutPrefix(resp.Header.Get("Content-Range"), "bytes */"); ok {
			if n, err := strconv.ParseInt(cr, 10, 64); err == nil {
				total = n
			}
		}
		return nil, &rangeError{total: total}
	case http.StatusNotFound, http.StatusGone:
		return nil, fmt.Errorf("HTTP %d: %w", resp.StatusCode, ErrNotFound)
	default:
		return nil, &statusError{code: resp.StatusCode, retryAfter: parseRetryAfter(resp.Header.Get("Retry-After"), time.Now())}
	}
	ok = true
	return out, nil
}

// parseContentRange reads "bytes START-END/TOTAL" (TOTAL may be "*").
func parseContentRange(s string) (start, total int64, err error) {
	rest, ok := strings.CutPrefix(s, "bytes ")
	span, size, ok2 := strings.Cut(rest, "/")
	first, _, ok3 := strings.Cut(span, "-")
	if !ok || !ok2 || !ok3 {
		return 0, 0, fmt.Errorf("bad Content-Range %q", s)
	}
	if start, err = strconv.ParseInt(first, 10, 64); err != nil || start < 0 {
		return 0, 0, fmt.Errorf("bad Content-Range %q", s)
	}
	total = -1
	if size != "*" {
		if total, err = strconv.ParseInt(size, 10, 64); err != nil {
			return 0, 0, fmt.Errorf("bad Content-Range %q", s)
		}
	}
	return start, total, nil
}

type fileRemote struct{}

func (fileRemote) open(_ context.Context, u *url.URL, offset int64, v validator) (*response, error) {
	file, err := os.Open(u.Path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%s: %w", u.Path, ErrNotFound)
	}
	if err != nil {
		return nil, &localError{err}
	}
	fi, err := file.Stat()
	if err == nil && !fi.Mode().IsRegular() {
		err = fmt.Errorf("%s: not a regular file", u.Path)
	}
	if err != nil {
		file.Close()
		return nil, &localError{err}
	}
	cur := validator{LastModified: fi.ModTime().UTC().Format(time.RFC3339Nano)}
	if offset > 0 && v.LastModified != "" && v.LastModified != cur.LastModified {
		file.Close()
		return nil, errChanged
	}
	if offset > fi.Size() {
		file.Close()
		return nil, &rangeError{total: fi.Size()}
	}
	if _, err := file.Seek(offset, io.SeekStart); err != nil {
		file.Close()
		return nil, &localError{err}
	}
	return &response{body: file, start: offset, total: fi.Size(), v: cur}, nil
}
