package fetch

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"
	"go.uber.org/zap"

	"github.com/ec2init/ec2init/agent/imds"
	"github.com/ec2init/ec2init/agent/redact"
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
	// Mirrors are tried in order when URL fails (after its retries):
	// unreachable, not found, or bytes that fail verification. Every
	// source is held to the same checksum and signature.
	Mirrors []string
	// Signature, when set, is a detached signature the bytes must verify
	// against, checked in the same pass as the hash. With it the checksum
	// is optional (the artifact is then cached under its computed SHA-256).
	Signature *Signature
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
	// URL is the source the bytes came from (a mirror's, when the
	// first failed), without credentials; empty for a cache hit.
	URL string
	// Signer names the key that verified the signature ("minisign key
	// ID", "openpgp key FINGERPRINT"); empty without a signature.
	Signer string
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
	// Transport is a transport to share (Fetcher.Transport: one
	// connection pool for the boot). nil, or a CAFile (other roots),
	// builds one of the fetcher's own with Timeout.
	Transport *http.Transport
}

// ArtifactFetcher downloads and verifies artifacts into a content-addressed
// cache. Safe for concurrent use, and between processes sharing a cache.
type ArtifactFetcher struct {
	opts   ArtifactOptions
	retry  policy
	client *http.Client // https/http artifacts
	s3HTTP *http.Client // the S3 SDK's transport: same TLS roots, no redirects

	s3mu sync.Mutex
	s3   *s3.Client
	// s3Regional are clients for buckets in other regions, by region;
	// s3BucketRegion is where such a bucket was found.
	s3Regional     map[string]*s3.Client
	s3BucketRegion map[string]string
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
	artifactDefaults.fill(&opts.Attempts, &opts.BaseBackoff, &opts.MaxBackoff, &opts.MaxRetryAfter, &opts.Timeout)
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
	tr, s3tr := opts.Transport, opts.Transport
	if tr == nil || opts.CAFile != "" {
		tlsConf, err := tlsConfig(opts.CAFile)
		if err != nil {
			return nil, err
		}
		tr, s3tr = newTransport(tlsConf, opts.Timeout), newTransport(tlsConf, opts.Timeout)
	}
	return &ArtifactFetcher{
		s3Regional:     map[string]*s3.Client{},
		s3BucketRegion: map[string]string{},
		opts:           opts,
		retry:          policy{attempts: opts.Attempts, base: opts.BaseBackoff, max: opts.MaxBackoff, maxRetryAfter: opts.MaxRetryAfter, log: opts.Log},
		client: &http.Client{
			Transport:     tr,
			CheckRedirect: refuseDowngrade,
		},
		s3HTTP: &http.Client{
			Transport: s3tr,
			// A signed S3 request is never replayed elsewhere.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}, nil
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
	type target struct {
		raw string
		u   *url.URL
		rem remote
	}
	var targets []target
	for _, raw := range append([]string{src.URL}, src.Mirrors...) {
		u, rem, err := f.resolve(raw, src.AllowInsecure)
		if err != nil {
			return Artifact{}, err
		}
		targets = append(targets, target{raw, u, rem})
	}
	sig, err := f.prepareSignature(ctx, name, src)
	if err != nil {
		return Artifact{}, err
	}
	want, err := f.expectedDigest(ctx, name, src, targets[0].u)
	if err != nil {
		return Artifact{}, err
	}
	if a, ok, err := f.cached(want, sig); err != nil || ok {
		if ok {
			f.opts.Log.Debug("artifact cache hit", zap.String("name", name), zap.String(a.Algo, a.Sum))
		}
		return a, err
	}
	var errs []error
	for i, t := range targets {
		a, err := f.download(ctx, name, t.raw, t.u, t.rem, want, sig)
		if err == nil {
			return a, nil
		}
		var local *localError
		if ctx.Err() != nil || errors.As(err, &local) {
			return Artifact{}, err
		}
		errs = append(errs, err)
		if i+1 < len(targets) {
			f.opts.Log.Warn("artifact source failed; trying the next",
				zap.String("name", name), zap.String("url", redact.URL(t.u.String())),
				zap.String("next", redact.URL(targets[i+1].u.String())), zap.Error(err))
		}
	}
	if len(errs) == 1 {
		return Artifact{}, errs[0]
	}
	return Artifact{}, fmt.Errorf("all %d sources failed: %w", len(errs), errors.Join(errs...))
}

// cached returns the verified artifact from the cache, if there: by its
// checksum, or (signature only) by what the signature verified before.
// With a signature, a cached file is verified against it once.
func (f *ArtifactFetcher) cached(want expected, sig *sigCheck) (Artifact, bool, error) {
	byIndex := false
	if want.sum == "" {
		e, _, ok := f.signedLookup(sig)
		if !ok {
			return Artifact{}, false, nil
		}
		want, byIndex = e, true
	}
	a, ok, err := f.lookup(want)
	if err != nil || !ok || sig == nil {
		return a, ok, err
	}
	if e, signer, ok := f.signedLookup(sig); ok && e == want && signer != "" && !f.opts.VerifyCache {
		a.Signer = signer
		return a, true, nil
	}
	signer, err := sig.verifyFile(a.Path)
	switch {
	case err != nil && byIndex:
		// The index points at content the signature no longer verifies:
		// fetch again.
		return Artifact{}, false, nil
	case err != nil:
		return Artifact{}, false, err
	}
	if err := f.signedRecord(sig, want, signer); err != nil {
		return Artifact{}, false, err
	}
	a.Signer = signer
	return a, true, nil
}

// download fetches one source into the cache, under the partial file's
// lock.
func (f *ArtifactFetcher) download(ctx context.Context, name, raw string, u *url.URL, rem remote, want expected, sig *sigCheck) (Artifact, error) {
	pk := want
	if want.sum == "" {
		pk = expected{algo: "signed", sum: sig.id}
	}
	key := partialKey(raw, pk)
	unlock, err := lockFile(ctx, filepath.Join(f.opts.CacheDir, partialDir, key+".lock"))
	if err != nil {
		return Artifact{}, err
	}
	defer unlock()
	// Another process or goroutine may have finished it while we waited.
	if a, ok, err := f.cached(want, sig); err != nil || ok {
		return a, err
	}
	d := &download{
		f:       f,
		name:    name,
		url:     u,
		rem:     rem,
		want:    want,
		sig:     sig,
		partial: filepath.Join(f.opts.CacheDir, partialDir, key),
	}
	a, err := d.run(ctx)
	if err != nil {
		return Artifact{}, err
	}
	if sig != nil {
		if err := f.signedRecord(sig, expected{algo: a.Algo, sum: a.Sum}, d.signer); err != nil {
			return Artifact{}, err
		}
		a.Signer = d.signer
	}
	a.URL = redact.URL(u.String())
	return a, nil
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
