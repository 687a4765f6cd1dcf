package fetch

import (
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"
	"go.uber.org/zap"

	"github.com/ec2init/ec2init/agent/imds"
	"github.com/ec2init/ec2init/agent/redact"
	"github.com/ec2init/ec2init/internal/backoff"
)

// ErrChecksum is a download whose digest differs from the expected one.
// Nothing of it is left in the cache.
var ErrChecksum = errors.New("checksum mismatch")

// ErrNotFound is a source that does not exist: HTTP 404/410, S3 NoSuchKey
// or NoSuchBucket, a missing local file. Never retried.
var ErrNotFound = errors.New("not found")

// Source names one remote artifact and how to verify it.
type Source struct {
	// URL is https://, http:// (only with AllowInsecure), s3://bucket/key
	// or file:///abs/path.
	URL string
	// Exactly one of SHA256, SHA512 (hex) and ChecksumURL is required.
	SHA256 string
	SHA512 string
	// ChecksumURL is a checksum file in sha256sum format ("HEX" or
	// "HEX  name" lines; BSD "SHA256 (name) = HEX" lines too), by the same
	// schemes as URL. With several lines, the one naming URL's base name
	// is used.
	ChecksumURL string
	// ChecksumAlgo is "sha256" or "sha512" for ChecksumURL; empty infers
	// it from the digest's length.
	ChecksumAlgo string
	// AllowInsecure permits http:// for URL, ChecksumURL and an http S3
	// endpoint.
	AllowInsecure bool
}

// Artifact is a verified file in the content-addressed cache.
type Artifact struct {
	// Path is the absolute host path of the verified, read-only (0400)
	// file in the cache. Callers copy or hard-link it; they must not
	// change it in place.
	Path string
	// Algo is "sha256" or "sha512"; Sum is its lowercase hex digest.
	Algo string
	Sum  string
	Size int64
	// Cached is true when nothing was downloaded (already in the cache).
	Cached bool
}

// ArtifactOptions configures an ArtifactFetcher. Zero values take the
// defaults.
type ArtifactOptions struct {
	// CacheDir is the host path of the cache (the caller has applied
	// --root); created 0700. Required.
	CacheDir string
	// CAFile is an extra PEM CA bundle for https, added to the system
	// roots (self-signed and private origins, S3 endpoints).
	CAFile string
	// S3Endpoint is an S3-compatible or VPC endpoint URL; when empty, the
	// AWS_ENDPOINT_URL_S3 environment variable is honoured.
	S3Endpoint  string
	S3PathStyle bool
	// IMDS supplies the instance role's credentials and the region for
	// s3:// sources.
	IMDS *imds.Client
	// Attempts bounds failed attempts per item (default 5). An attempt
	// that made progress on a resumable download does not count, so a
	// large file on a flaky link completes.
	Attempts int
	// BaseBackoff and MaxBackoff shape the capped exponential backoff with
	// full jitter between attempts (defaults 250ms, 20s).
	BaseBackoff time.Duration
	MaxBackoff  time.Duration
	// MaxRetryAfter caps a server's Retry-After (default 60s).
	MaxRetryAfter time.Duration
	// Timeout is how long one attempt may wait for a response or go
	// without receiving a byte (default 30s). It is not a bound on the
	// whole download, which may take as long as it makes progress.
	Timeout time.Duration
	// MaxBytes refuses an artifact larger than this; 0 is no limit.
	MaxBytes int64
	// VerifyCache re-hashes a cache hit before returning it; a corrupt
	// entry is removed and fetched again.
	VerifyCache bool
	// Progress, when set, is called from the downloading goroutine at most
	// every 100ms and once at the end; total is -1 when unknown. Without
	// it, progress goes to Log every few seconds.
	Progress func(name string, done, total int64)
	Log      *zap.Logger
	// Env reads the environment (os.Getenv when nil).
	Env func(string) string
}

// ArtifactFetcher downloads and verifies artifacts into a content-addressed
// cache. Safe for concurrent use, and between processes sharing a cache.
type ArtifactFetcher struct {
	opts   ArtifactOptions
	client *http.Client // https/http artifacts
	s3HTTP *http.Client // the S3 SDK's transport: same TLS roots, no redirects

	s3mu sync.Mutex
	s3   *s3.Client
}

const (
	partialDir       = "partial"
	maxChecksumBytes = 1 << 20
	progressEvery    = 100 * time.Millisecond
	logProgressEvery = 5 * time.Second
	copyBufSize      = 1 << 20
	copyBuffers      = 4
)

// NewArtifactFetcher checks opts, prepares the cache directory and the
// HTTP transports.
func NewArtifactFetcher(opts ArtifactOptions) (*ArtifactFetcher, error) {
	if opts.CacheDir == "" || !filepath.IsAbs(opts.CacheDir) {
		return nil, fmt.Errorf("artifact cache dir %q: must be an absolute path", opts.CacheDir)
	}
	if opts.Attempts <= 0 {
		opts.Attempts = 5
	}
	if opts.BaseBackoff <= 0 {
		opts.BaseBackoff = 250 * time.Millisecond
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = 20 * time.Second
	}
	if opts.MaxRetryAfter <= 0 {
		opts.MaxRetryAfter = 60 * time.Second
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 30 * time.Second
	}
	if opts.Log == nil {
		opts.Log = zap.NewNop()
	}
	if opts.Env == nil {
		opts.Env = os.Getenv
	}
	for _, d := range []string{opts.CacheDir, filepath.Join(opts.CacheDir, partialDir)} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("artifact cache: %w", err)
		}
	}
	tlsConf, err := tlsConfig(opts.CAFile)
	if err != nil {
		return nil, err
	}
	newTransport := func() *http.Transport {
		return &http.Transport{
			Proxy:                 http.ProxyFromEnvironment,
			DialContext:           (&net.Dialer{Timeout: opts.Timeout, KeepAlive: 30 * time.Second}).DialContext,
			TLSClientConfig:       tlsConf.Clone(),
			TLSHandshakeTimeout:   opts.Timeout,
			ResponseHeaderTimeout: opts.Timeout,
			ForceAttemptHTTP2:     true,
			MaxIdleConnsPerHost:   8,
			IdleConnTimeout:       90 * time.Second,
			// Bytes must arrive as the origin stores them: the digest is of
			// those, and a resumed range must line up with the partial file.
			DisableCompression: true,
			ReadBufferSize:     64 << 10,
			WriteBufferSize:    16 << 10,
		}
	}
	return &ArtifactFetcher{
		opts: opts,
		client: &http.Client{
			Transport:     newTransport(),
			CheckRedirect: refuseDowngrade,
		},
		s3HTTP: &http.Client{
			Transport: newTransport(),
			// A signed S3 request is never replayed elsewhere.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}, nil
}

func refuseDowngrade(req *http.Request, via []*http.Request) error {
	if len(via) >= 10 {
		return fmt.Errorf("%w: too many", ErrRedirect)
	}
	if via[0].URL.Scheme == "https" && req.URL.Scheme != "https" {
		return fmt.Errorf("%w: from https to %s", ErrRedirect, safeURL(req.URL))
	}
	return nil
}

func tlsConfig(caFile string) (*tls.Config, error) {
	conf := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile == "" {
		return conf, nil
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("ca_file: %w", err)
	}
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("ca_file %s: no PEM certificate in it", caFile)
	}
	conf.RootCAs = pool
	return conf, nil
}

// expected is the digest an artifact must have.
type expected struct {
	algo string
	sum  string
}

func (e expected) newHash() hash.Hash {
	if e.algo == "sha512" {
		return sha512.New()
	}
	return sha256.New()
}

func hexLen(algo string) int {
	switch algo {
	case "sha256":
		return sha256.Size * 2
	case "sha512":
		return sha512.Size * 2
	}
	return 0
}

func parseDigest(algo, s string) (expected, error) {
	s = strings.ToLower(strings.TrimSpace(s))
	if len(s) != hexLen(algo) {
		return expected{}, fmt.Errorf("%s %q: want %d hex digits, got %d", algo, s, hexLen(algo), len(s))
	}
	if _, err := hex.DecodeString(s); err != nil {
		return expected{}, fmt.Errorf("%s %q: not hex", algo, s)
	}
	return expected{algo: algo, sum: s}, nil
}

// Fetch downloads src (unless its checksum is already in the cache),
// hashing in the same pass as it writes, resuming a partial download with
// Range, verifying, and returns the cached file. A mismatch returns an error
// wrapping ErrChecksum and leaves nothing in the cache. name is for logs and
// progress only.
func (f *ArtifactFetcher) Fetch(ctx context.Context, name string, src Source) (Artifact, error) {
	a, err := f.fetch(ctx, name, src)
	if err != nil {
		return Artifact{}, fmt.Errorf("artifact %s: %w", name, err)
	}
	return a, nil
}

func (f *ArtifactFetcher) fetch(ctx context.Context, name string, src Source) (Artifact, error) {
	u, rem, err := f.resolve(src.URL, src.AllowInsecure)
	if err != nil {
		return Artifact{}, err
	}
	want, err := f.expectedDigest(ctx, name, src, u)
	if err != nil {
		return Artifact{}, err
	}
	if a, ok, err := f.lookup(want); err != nil || ok {
		if ok {
			f.opts.Log.Debug("artifact cache hit", zap.String("name", name), zap.String(want.algo, want.sum))
		}
		return a, err
	}
	key := partialKey(src.URL, want)
	unlock, err := lockFile(ctx, filepath.Join(f.opts.CacheDir, partialDir, key+".lock"))
	if err != nil {
		return Artifact{}, err
	}
	defer unlock()
	// Another process or goroutine may have finished it while we waited.
	if a, ok, err := f.lookup(want); err != nil || ok {
		return a, err
	}
	d := &download{
		f:       f,
		name:    name,
		url:     u,
		rem:     rem,
		want:    want,
		partial: filepath.Join(f.opts.CacheDir, partialDir, key),
	}
	return d.run(ctx)
}

// FetchAll fetches items in parallel, at most parallel at once (1 when
// less). Results and errors are in input order; names[i] names srcs[i]
// (its URL when names is short).
func (f *ArtifactFetcher) FetchAll(ctx context.Context, parallel int, names []string, srcs []Source) ([]Artifact, []error) {
	if parallel < 1 {
		parallel = 1
	}
	arts := make([]Artifact, len(srcs))
	errs := make([]error, len(srcs))
	sem := make(chan struct{}, parallel)
	var wg sync.WaitGroup
	for i, src := range srcs {
		name := src.URL
		if i < len(names) && names[i] != "" {
			name = names[i]
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			errs[i] = fmt.Errorf("artifact %s: %w", name, ctx.Err())
			continue
		}
		wg.Go(func() {
			defer func() { <-sem }()
			arts[i], errs[i] = f.Fetch(ctx, name, src)
		})
	}
	wg.Wait()
	return arts, errs
}

// cachePath is where a verified artifact with digest e lives.
func (f *ArtifactFetcher) cachePath(e expected) string {
	return filepath.Join(f.opts.CacheDir, e.algo, e.sum)
}

// lookup returns the cached artifact for e, if present.
func (f *ArtifactFetcher) lookup(e expected) (Artifact, bool, error) {
	p := f.cachePath(e)
	fi, err := os.Lstat(p)
	if errors.Is(err, os.ErrNotExist) {
		return Artifact{}, false, nil
	}
	if err != nil {
		return Artifact{}, false, fmt.Errorf("artifact cache: %w", err)
	}
	if !fi.Mode().IsRegular() {
		// Only this code writes the cache; anything else there is foreign.
		return Artifact{}, false, fmt.Errorf("artifact cache: %s is not a regular file", p)
	}
	if f.opts.VerifyCache {
		sum, err := hashFileSum(p, e)
		if err != nil {
			return Artifact{}, false, fmt.Errorf("artifact cache: %w", err)
		}
		if sum != e.sum {
			f.opts.Log.Warn("corrupt artifact cache entry removed", zap.String("path", p), zap.String("actual", sum))
			if err := os.Remove(p); err != nil {
				return Artifact{}, false, fmt.Errorf("artifact cache: %w", err)
			}
			return Artifact{}, false, nil
		}
	}
	return Artifact{Path: p, Algo: e.algo, Sum: e.sum, Size: fi.Size(), Cached: true}, true, nil
}

func hashFileSum(p string, e expected) (string, error) {
	file, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer file.Close()
	h := e.newHash()
	if _, err := io.Copy(h, file); err != nil {
		return "", fmt.Errorf("hash %s: %w", p, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// partialKey names a partial download by what it is (the source) and what
// it must become (the digest), so a changed checksum never resumes bytes of
// another version.
func partialKey(rawURL string, e expected) string {
	h := sha256.Sum256([]byte(rawURL + "\x00" + e.algo + ":" + e.sum))
	return hex.EncodeToString(h[:])
}

// expectedDigest returns the source's digest: inline, or read from its
// checksum file.
func (f *ArtifactFetcher) expectedDigest(ctx context.Context, name string, src Source, u *url.URL) (expected, error) {
	n := 0
	for _, s := range []string{src.SHA256, src.SHA512, src.ChecksumURL} {
		if s != "" {
			n++
		}
	}
	if n != 1 {
		return expected{}, errors.New("exactly one of sha256, sha512 and a checksum URL is required")
	}
	switch {
	case src.SHA256 != "":
		return parseDigest("sha256", src.SHA256)
	case src.SHA512 != "":
		return parseDigest("sha512", src.SHA512)
	}
	switch src.ChecksumAlgo {
	case "", "sha256", "sha512":
	default:
		return expected{}, fmt.Errorf("checksum algorithm %q: want sha256 or sha512", src.ChecksumAlgo)
	}
	cu, rem, err := f.resolve(src.ChecksumURL, src.AllowInsecure)
	if err != nil {
		return expected{}, fmt.Errorf("checksum URL: %w", err)
	}
	body, err := f.getSmall(ctx, name, cu, rem)
	if err != nil {
		return expected{}, fmt.Errorf("checksum file: %w", err)
	}
	e, err := parseChecksumFile(body, src.ChecksumAlgo, path.Base(u.Path))
	if err != nil {
		return expected{}, fmt.Errorf("checksum file %s: %w", safeURL(cu), err)
	}
	return e, nil
}

// getSmall reads a small object whole (a checksum file), with retries.
func (f *ArtifactFetcher) getSmall(ctx context.Context, name string, u *url.URL, rem remote) ([]byte, error) {
	var body []byte
	attempts, err := f.retry(ctx, name, u, func(ctx context.Context, cancel context.CancelCauseFunc) (bool, error) {
		// The idle timeout, as for artifacts; a checksum file is small
		// enough for it to bound the whole transfer.
		timer := time.AfterFunc(f.opts.Timeout, func() { cancel(errIdle) })
		defer timer.Stop()
		resp, err := rem.open(ctx, u, 0, validator{})
		if err != nil {
			return false, err
		}
		defer resp.body.Close()
		body, err = readCapped(resp.body, maxChecksumBytes)
		return false, err
	})
	if err != nil {
		return nil, &Error{URL: safeURL(u), Attempts: attempts, Err: err}
	}
	return body, nil
}

// retry runs attempt until it succeeds, fails for good, or the failures
// reach Attempts. attempt reports whether it made progress, which a
// resumable download keeps; such an attempt is not counted as a failure.
func (f *ArtifactFetcher) retry(ctx context.Context, name string, u *url.URL, attempt func(context.Context, context.CancelCauseFunc) (progressed bool, err error)) (attempts int, err error) {
	failures := 0
	for {
		attempts++
		actx, cancel := context.WithCancelCause(ctx)
		progressed, err := attempt(actx, cancel)
		if cause := context.Cause(actx); err != nil && errors.Is(cause, errIdle) && ctx.Err() == nil {
			err = fmt.Errorf("%w: %w", cause, err)
		}
		cancel(nil)
		if err == nil {
			return attempts, nil
		}
		if errors.Is(err, errRestart) && ctx.Err() == nil {
			continue
		}
		again, after := retriable(ctx, err)
		if !again {
			return attempts, err
		}
		if !progressed {
			failures++
		}
		if failures >= f.opts.Attempts {
			return attempts, err
		}
		delay := backoff.Delay(f.opts.BaseBackoff, f.opts.MaxBackoff, max(failures, 1), rand.Float64())
		if after > 0 {
			delay = max(delay, min(after, f.opts.MaxRetryAfter))
		}
		f.opts.Log.Info("artifact fetch will retry",
			zap.String("name", name), zap.String("url", safeURL(u)),
			zap.Int("attempt", attempts), zap.Duration("delay", delay), zap.Error(redact.Error(err)))
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return attempts, ctx.Err()
		}
	}
}

// errIdle cancels an attempt that received nothing for Timeout.
var errIdle = errors.New("no data received within the timeout")

// safeURL is u for logs and errors, as agent/redact shows every URL: no
// user info, no query (a presigned URL's signature is a credential), no
// fragment.
func safeURL(u *url.URL) string { return redact.URL(u.String()) }

// meta is what a partial download needs to resume safely, kept next to it.
type meta struct {
	URL          string `json:"url"`
	ETag         string `json:"etag,omitempty"`
	LastModified string `json:"last_modified,omitempty"`
	Total        int64  `json:"total"`
}

// download is one artifact's transfer into its partial file.
type download struct {
	f       *ArtifactFetcher
	name    string
	url     *url.URL
	rem     remote
	want    expected
	partial string

	file  *os.File
	w     *hashWriter
	meta  meta
	start time.Time
	// fresh counts bytes received over the network in this Fetch.
	fresh int64
	// restarted is set once a resumed download failed verification and
	// was started over from byte 0.
	restarted bool
	resumedAt int64
}

func (d *download) metaPath() string { return d.partial + ".json" }

func (d *download) run(ctx context.Context) (Artifact, error) {
	file, err := os.OpenFile(d.partial, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return Artifact{}, fmt.Errorf("partial file: %w", err)
	}
	d.file = file
	defer func() {
		if d.file != nil {
			d.file.Close()
		}
	}()
	d.meta = meta{URL: safeURL(d.url), Total: -1}
	if b, err := os.ReadFile(d.metaPath()); err == nil {
		var m meta
		if json.Unmarshal(b, &m) == nil && m.URL == d.meta.URL {
			d.meta = m
		}
	}
	d.start = time.Now()
	d.w = &hashWriter{file: d.file, h: d.want.newHash(), off: -1}
	attempts, err := d.f.retry(ctx, d.name, d.url, d.attempt)
	if err != nil {
		if errors.Is(err, ErrChecksum) || errors.Is(err, ErrNotFound) || errors.Is(err, ErrTooLarge) {
			d.discard()
		}
		return Artifact{}, &Error{URL: safeURL(d.url), Attempts: attempts, Err: err}
	}
	return d.commit()
}

// attempt makes one request, from the end of the partial file, and ends
// with a complete file whose digest matched, or an error.
func (d *download) attempt(ctx context.Context, cancel context.CancelCauseFunc) (progressed bool, err error) {
	if err := d.sync(); err != nil {
		return false, err
	}
	have := d.w.off
	if have > 0 {
		d.resumedAt = have
	}
	if d.meta.Total >= 0 && have == d.meta.Total {
		// Complete from an earlier run that stopped before verifying.
		return false, d.verify()
	}
	timer := time.AfterFunc(d.f.opts.Timeout, func() { cancel(errIdle) })
	defer timer.Stop()
	resp, err := d.rem.open(ctx, d.url, have, validator{ETag: d.meta.ETag, LastModified: d.meta.LastModified})
	var rng *rangeError
	switch {
	case errors.As(err, &rng):
		if rng.total >= 0 && rng.total == have {
			return false, d.verify()
		}
		// The partial file is longer than the object, or the answer says
		// nothing useful: start over.
		d.meta.Total = -1
		return false, errors.Join(d.reset(), fmt.Errorf("range not satisfiable at %d: starting over", have))
	case errors.Is(err, errChanged):
		return false, errors.Join(d.reset(), err)
	case err != nil:
		return false, err
	}
	defer resp.body.Close()
	if resp.start == 0 && have > 0 {
		d.f.opts.Log.Info("artifact server ignored the range; starting over",
			zap.String("name", d.name), zap.Int64("had", have))
		if err := d.reset(); err != nil {
			return false, err
		}
		d.resumedAt = 0
	} else if resp.start != have {
		return false, errors.Join(d.reset(), fmt.Errorf("server answered range %d- from %d", have, resp.start))
	}
	if resp.total >= 0 && d.f.opts.MaxBytes > 0 && resp.total > d.f.opts.MaxBytes {
		return false, fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, resp.total, d.f.opts.MaxBytes)
	}
	if d.meta.ETag != resp.v.ETag || d.meta.LastModified != resp.v.LastModified || d.meta.Total != resp.total {
		d.meta.ETag, d.meta.LastModified, d.meta.Total = resp.v.ETag, resp.v.LastModified, resp.total
		if b, err := json.Marshal(d.meta); err == nil {
			// Best effort: without it a later resume just lacks If-Range
			// and the digest still decides.
			_ = os.WriteFile(d.metaPath(), b, 0o600)
		}
	}
	if resp.total > d.w.off {
		if err := preallocate(d.file, d.w.off, resp.total-d.w.off); err != nil {
			return false, err
		}
	}
	err = d.copy(resp.body, resp.total, timer)
	// Progress is a longer partial file than before this attempt: a server
	// that cuts every whole response at the same point makes none.
	progressed = d.w.off > have
	if err != nil {
		return progressed, err
	}
	if resp.total >= 0 && d.w.off != resp.total {
		return progressed, fmt.Errorf("%w: got %d of %d bytes", io.ErrUnexpectedEOF, d.w.off, resp.total)
	}
	return progressed, d.verify()
}

// sync makes the hash state match the partial file on disk: after a
// failed write, or on the first attempt with bytes left by an earlier run.
func (d *download) sync() error {
	fi, err := d.file.Stat()
	if err != nil {
		return &localError{fmt.Errorf("partial file: %w", err)}
	}
	if d.w.off == fi.Size() {
		return nil
	}
	d.w.h.Reset()
	if _, err := io.Copy(d.w.h, io.NewSectionReader(d.file, 0, fi.Size())); err != nil {
		return &localError{fmt.Errorf("partial file: %w", err)}
	}
	d.w.off = fi.Size()
	return nil
}

// reset empties the partial file and its validators.
func (d *download) reset() error {
	if err := d.file.Truncate(0); err != nil {
		return &localError{fmt.Errorf("partial file: %w", err)}
	}
	d.w.h.Reset()
	d.w.off = 0
	d.meta = meta{URL: d.meta.URL, Total: -1}
	_ = os.Remove(d.metaPath())
	return nil
}

// verify compares the digest of the complete partial file. A mismatch after
// a resume starts over once from byte 0 (the origin may have replaced the
// file between the two parts); otherwise it is final.
func (d *download) verify() error {
	sum := hex.EncodeToString(d.w.h.Sum(nil))
	if sum == d.want.sum {
		return nil
	}
	if d.resumedAt > 0 && !d.restarted {
		d.restarted = true
		d.resumedAt = 0
		d.f.opts.Log.Warn("resumed artifact failed verification; downloading it whole",
			zap.String("name", d.name), zap.String("url", safeURL(d.url)))
		return errors.Join(d.reset(), errRestart)
	}
	return fmt.Errorf("%w: %s is %s, want %s", ErrChecksum, d.want.algo, sum, d.want.sum)
}

// errRestart asks for another attempt from byte 0, at once.
var errRestart = errors.New("starting the download over")

// discard removes the partial file and its metadata.
func (d *download) discard() {
	d.file.Close()
	d.file = nil
	_ = os.Remove(d.partial)
	_ = os.Remove(d.metaPath())
}

// commit moves the verified partial file into the cache, read-only, by
// rename after fsync, so the cache only ever holds complete verified files.
func (d *download) commit() (Artifact, error) {
	dst := d.f.cachePath(d.want)
	if err := d.file.Chmod(0o400); err != nil {
		return Artifact{}, fmt.Errorf("partial file: %w", err)
	}
	if err := d.file.Sync(); err != nil {
		return Artifact{}, fmt.Errorf("partial file: %w", err)
	}
	if err := d.file.Close(); err != nil {
		return Artifact{}, fmt.Errorf("partial file: %w", err)
	}
	d.file = nil
	dir := filepath.Dir(dst)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return Artifact{}, fmt.Errorf("artifact cache: %w", err)
	}
	if err := os.Rename(d.partial, dst); err != nil {
		return Artifact{}, fmt.Errorf("artifact cache: %w", err)
	}
	_ = os.Remove(d.metaPath())
	if err := syncDir(dir); err != nil {
		return Artifact{}, err
	}
	elapsed := time.Since(d.start)
	d.f.opts.Log.Info("artifact fetched",
		zap.String("name", d.name), zap.String("url", safeURL(d.url)),
		zap.String(d.want.algo, d.want.sum), zap.Int64("bytes", d.w.off),
		zap.Int64("downloaded", d.fresh), zap.Int64("resumed_at", d.resumedAt),
		zap.Duration("elapsed", elapsed), zap.Float64("mib_per_s", mibPerSec(d.fresh, elapsed)))
	return Artifact{Path: dst, Algo: d.want.algo, Sum: d.want.sum, Size: d.w.off}, nil
}

func mibPerSec(n int64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / (1 << 20) / d.Seconds()
}

func syncDir(dir string) error {
	df, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("artifact cache: %w", err)
	}
	defer df.Close()
	if err := df.Sync(); err != nil {
		return fmt.Errorf("artifact cache: sync %s: %w", dir, err)
	}
	return nil
}

// copy streams body into the partial file and the hash in one pass. A
// reader goroutine (TLS decryption, the socket) fills large buffers while
// this one hashes and writes the previous, so the network and the disk
// overlap on separate cores; large buffers make a stream of small TLS
// records cost few syscalls.
func (d *download) copy(body io.ReadCloser, total int64, idle *time.Timer) error {
	type chunk struct {
		buf []byte
		n   int
		err error
	}
	free := make(chan []byte, copyBuffers)
	for range copyBuffers {
		free <- make([]byte, copyBufSize)
	}
	filled := make(chan chunk, copyBuffers)
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			var buf []byte
			select {
			case buf = <-free:
			case <-stop:
				return
			}
			n, err := fill(body, buf, idle, d.f.opts.Timeout)
			select {
			case filled <- chunk{buf, n, err}:
			case <-stop:
				return
			}
			if err != nil {
				return
			}
		}
	}()
	// On an early return, closing the body ends a blocked read, so the
	// reader has stopped touching the body and the timer when copy returns.
	defer func() {
		close(stop)
		body.Close()
		<-done
	}()
	rep := d.newReporter(total)
	for c := range filled {
		if c.n > 0 {
			if d.f.opts.MaxBytes > 0 && d.w.off+int64(c.n) > d.f.opts.MaxBytes {
				return fmt.Errorf("%w: limit %d bytes", ErrTooLarge, d.f.opts.MaxBytes)
			}
			if _, err := d.w.Write(c.buf[:c.n]); err != nil {
				return &localError{fmt.Errorf("partial file: %w", err)}
			}
			d.fresh += int64(c.n)
			rep.report(d.w.off, false)
		}
		if c.err == io.EOF {
			rep.report(d.w.off, true)
			return nil
		}
		if c.err != nil {
			return fmt.Errorf("after %d bytes: %w", d.w.off, c.err)
		}
		free <- c.buf
	}
	return nil
}

// fill reads into buf until it is full, the body ends, or an error; each
// read that brings bytes re-arms the idle timer.
func fill(r io.Reader, buf []byte, idle *time.Timer, timeout time.Duration) (int, error) {
	n := 0
	for n < len(buf) {
		m, err := r.Read(buf[n:])
		if m > 0 {
			idle.Reset(timeout)
		}
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// preallocate reserves the rest of the file's blocks without changing its
// size (which must stay the count of bytes had, for resuming): a full disk
// fails now rather than after the download, and the file gets few extents.
// Filesystems without fallocate just go on.
func preallocate(file *os.File, off, n int64) error {
	const keepSize = 0x01 // FALLOC_FL_KEEP_SIZE
	err := syscall.Fallocate(int(file.Fd()), keepSize, off, n)
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		return &localError{fmt.Errorf("partial file: %d more bytes: %w", n, err)}
	}
	return nil
}

// hashWriter writes at off into the partial file and into h, so the bytes
// on disk before off and the bytes hashed are always the same.
type hashWriter struct {
	file *os.File
	h    hash.Hash
	off  int64
}

func (w *hashWriter) Write(p []byte) (int, error) {
	n, err := w.file.WriteAt(p, w.off)
	w.h.Write(p[:n])
	w.off += int64(n)
	return n, err
}

// reporter throttles progress to the callback or the log.
type reporter struct {
	d     *download
	total int64
	last  time.Time
	every time.Duration
}

func (d *download) newReporter(total int64) *reporter {
	every := progressEvery
	if d.f.opts.Progress == nil {
		every = logProgressEvery
	}
	return &reporter{d: d, total: total, last: time.Now(), every: every}
}

func (r *reporter) report(done int64, final bool) {
	now := time.Now()
	if !final && now.Sub(r.last) < r.every {
		return
	}
	r.last = now
	if p := r.d.f.opts.Progress; p != nil {
		p(r.d.name, done, r.total)
		return
	}
	if !final {
		r.d.f.opts.Log.Info("artifact download progress",
			zap.String("name", r.d.name), zap.Int64("bytes", done), zap.Int64("total", r.total),
			zap.Float64("mib_per_s", mibPerSec(r.d.fresh, now.Sub(r.d.start))))
	}
}

// localError is a failure on this host (disk full, permissions): another
// network attempt would not help.
type localError struct{ err error }

func (e *localError) Error() string { return e.err.Error() }
func (e *localError) Unwrap() error { return e.err }
