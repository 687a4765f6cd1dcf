package imds

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	sdkimds "github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/ec2init/ec2init/internal/backoff"
)

// ErrNotFound means IMDS has no such path: an absent optional value, never
// retried and, for optional fields, never an error.
var ErrNotFound = errors.New("not present in instance metadata")

// Client reads the instance metadata service. It is safe for concurrent use.
type Client struct {
	cfg Config
	sdk *sdkimds.Client
}

// New builds a client from cfg (see Config.Defaults).
func New(cfg Config) (*Client, error) {
	cfg = cfg.Defaults()
	if cfg.Endpoint == "" {
		ep, _, err := ResolveEndpoint("", "", cfg.EndpointMode, func(string) string { return "" })
		if err != nil {
			return nil, err
		}
		cfg.Endpoint = ep
	}
	if err := ValidateEndpoint(cfg.Endpoint); err != nil {
		return nil, fmt.Errorf("imds endpoint: %w", err)
	}
	fallback := aws.FalseTernary
	if cfg.AllowV1 {
		fallback = aws.TrueTernary
	}
	retryer := retry.NewStandard(func(o *retry.StandardOptions) {
		o.MaxAttempts = cfg.MaxAttempts
		o.MaxBackoff = cfg.MaxBackoff
		o.Backoff = jitterBackoff{base: cfg.BaseBackoff, max: cfg.MaxBackoff}
		// The SDK's retry quota protects shared AWS endpoints; IMDS is ours
		// alone, and a burst of 5xx at boot must not exhaust the budget.
		o.RateLimiter = ratelimit.None
	})
	sdk := sdkimds.New(sdkimds.Options{
		Endpoint:                 strings.TrimRight(cfg.Endpoint, "/"),
		EnableFallback:           fallback,
		Retryer:                  retryer,
		DisableDefaultMaxBackoff: true,
		DisableDefaultTimeout:    true,
		HTTPClient: &limitedHTTPClient{
			client: &http.Client{
				Timeout: cfg.RequestTimeout,
				Transport: &http.Transport{
					Proxy:               nil, // IMDS is link-local: never through a proxy
					DialContext:         (&net.Dialer{Timeout: cfg.RequestTimeout}).DialContext,
					MaxIdleConnsPerHost: cfg.Concurrency,
					IdleConnTimeout:     30 * time.Second,
				},
				// IMDS never redirects; following one would leak the token.
				CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
			},
			max: cfg.MaxResponseBytes,
		},
	})
	return &Client{cfg: cfg, sdk: sdk}, nil
}

// Endpoint returns the base URL in use.
func (c *Client) Endpoint() string { return c.cfg.Endpoint }

// Get returns the value at path, relative to latest/meta-data/ (a trailing
// slash asks for a directory listing).
func (c *Client) Get(ctx context.Context, path string) (string, error) {
	b, err := c.GetRaw(ctx, "latest/meta-data/"+strings.TrimPrefix(path, "/"))
	return string(b), err
}

// UserData returns the raw user data; ErrNotFound when the instance has none.
func (c *Client) UserData(ctx context.Context) ([]byte, error) {
	return c.GetRaw(ctx, "latest/user-data")
}

// GetRaw fetches any path below the service root, e.g. "latest/dynamic/..."
// or "2009-04-04/meta-data/". The path is sent as given (no cleaning), so
// callers that mimic other tools get exactly those tools' requests.
func (c *Client) GetRaw(ctx context.Context, path string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.CallTimeout)
	defer cancel()
	tr := &trace{}
	ctx = context.WithValue(ctx, traceKey{}, tr)
	urlPath := "/" + strings.TrimPrefix(path, "/")
	out, err := c.sdk.GetMetadata(ctx, &sdkimds.GetMetadataInput{}, sdkimds.WithAPIOptions(rawPath(urlPath)))
	if err != nil {
		return nil, c.wrap(ctx, path, err, tr)
	}
	defer out.Content.Close()
	b, err := io.ReadAll(out.Content)
	if err != nil {
		return nil, c.wrap(ctx, path, err, tr)
	}
	return b, nil
}

// rawPath replaces the SDK's meta-data path with any path under the root.
// The SDK offers no generic GET, and going around it would lose its token
// handling, so the request path is rewritten after its serializer ran.
func rawPath(p string) func(*middleware.Stack) error {
	return func(stack *middleware.Stack) error {
		return stack.Serialize.Insert(middleware.SerializeMiddlewareFunc("ec2initRawPath",
			func(ctx context.Context, in middleware.SerializeInput, next middleware.SerializeHandler) (middleware.SerializeOutput, middleware.Metadata, error) {
				if req, ok := in.Request.(*smithyhttp.Request); ok {
					req.URL.Path = p
					req.URL.RawPath = ""
				}
				return next.HandleSerialize(ctx, in)
			}), "OperationSerializer", middleware.After)
	}
}

// Error is a failed IMDS request, described briefly enough for one log or
// error line.
type Error struct {
	Path     string
	Endpoint string
	// Token is set when the failure was getting an IMDSv2 session token.
	Token bool
	// Status is the final HTTP status, 0 when none was received.
	Status int
	Err    error
}

func (e *Error) Error() string {
	what := "GET " + e.Path
	if e.Token {
		what = "IMDSv2 token"
	}
	return fmt.Sprintf("instance metadata at %s: %s: %s", e.Endpoint, what, cause(e.Err, e.Status))
}

func (e *Error) Unwrap() error { return e.Err }

// IsTokenError reports whether err is a failure to get an IMDSv2 token:
// the service is absent, disabled, or refuses sessions.
func IsTokenError(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Token
}

// wrap classifies a failed call from what its HTTP exchanges recorded:
// the SDK's error chain does not unwrap to the cause, and the cause is
// what an operator needs.
func (c *Client) wrap(ctx context.Context, path string, err error, tr *trace) error {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	tokenFailed := tr.tokenFailed && !tr.tokenOK
	if tr.lastStatus == http.StatusNotFound && !tokenFailed {
		return fmt.Errorf("%s: %w", path, ErrNotFound)
	}
	e := &Error{Path: path, Endpoint: c.cfg.Endpoint, Err: err}
	switch {
	case tokenFailed:
		e.Token, e.Status = true, tr.tokenStatus
		if tr.tokenErr != nil {
			e.Err = tr.tokenErr
		}
	case tr.lastErr != nil:
		e.Err = tr.lastErr
	default:
		e.Status = tr.lastStatus
	}
	if ctx.Err() != nil && e.Status == 0 && !errors.Is(e.Err, errBodyTooLarge) {
		e.Err = ctx.Err()
	}
	return e
}

// trace records one call's HTTP exchanges, token and data requests alike.
type trace struct {
	mu          sync.Mutex
	tokenOK     bool
	tokenFailed bool
	tokenStatus int
	tokenErr    error
	lastStatus  int
	lastErr     error
}

type traceKey struct{}

func (tr *trace) record(req *http.Request, resp *http.Response, err error) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	isToken := req.Method == http.MethodPut && strings.HasSuffix(req.URL.Path, "/api/token")
	switch {
	case isToken && err == nil && resp.StatusCode == http.StatusOK:
		tr.tokenOK = true
	case isToken:
		tr.tokenFailed, tr.tokenErr, tr.tokenStatus = true, err, 0
		if err == nil {
			tr.tokenStatus = resp.StatusCode
		}
	case err != nil:
		tr.lastErr, tr.lastStatus = err, 0
	default:
		tr.lastErr, tr.lastStatus = nil, resp.StatusCode
	}
}

// cause turns the SDK's long error chain into the part an operator needs.
func cause(err error, status int) string {
	var ne *net.OpError
	var de *net.DNSError
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return "timed out"
	case errors.Is(err, context.Canceled):
		return "canceled"
	case errors.Is(err, errBodyTooLarge):
		return errBodyTooLarge.Error()
	case status != 0:
		return fmt.Sprintf("HTTP %d %s", status, http.StatusText(status))
	case errors.As(err, &de):
		return "cannot resolve host " + de.Name
	case errors.As(err, &ne):
		if ne.Timeout() {
			return "timed out connecting"
		}
		return strings.TrimPrefix(ne.Err.Error(), "connect: ")
	}
	msg := err.Error()
	if strings.Contains(msg, "malformed HTTP") || strings.Contains(msg, "server gave HTTP response") {
		return "the endpoint does not speak HTTP like IMDS"
	}
	if strings.Contains(msg, "Client.Timeout") || strings.Contains(msg, "timeout") {
		return "timed out"
	}
	if strings.Contains(msg, "EOF") || strings.Contains(msg, "connection reset") {
		return "connection closed by the endpoint (not IMDS?)"
	}
	return msg
}

// jitterBackoff is capped exponential backoff with full jitter, so many
// instances booting together don't retry in lock-step.
type jitterBackoff struct{ base, max time.Duration }

func (b jitterBackoff) BackoffDelay(attempt int, _ error) (time.Duration, error) {
	return backoff.Delay(b.base, b.max, attempt, rand.Float64()), nil
}

var errBodyTooLarge = errors.New("response larger than the configured limit")

// limitedHTTPClient caps response bodies: the SDK reads them whole into
// memory, and a misbehaving endpoint must not make the agent allocate
// without bound.
type limitedHTTPClient struct {
	client *http.Client
	max    int64
}

func (l *limitedHTTPClient) Do(req *http.Request) (*http.Response, error) {
	resp, err := l.client.Do(req)
	if err == nil && resp.ContentLength > l.max {
		resp.Body.Close()
		resp, err = nil, fmt.Errorf("%s: %w", req.URL.Path, errBodyTooLarge)
	}
	if tr, ok := req.Context().Value(traceKey{}).(*trace); ok {
		tr.record(req, resp, err)
	}
	if err != nil {
		return nil, err
	}
	resp.Body = &limitedBody{rc: resp.Body, left: l.max}
	return resp, nil
}

type limitedBody struct {
	rc   io.ReadCloser
	left int64
}

func (b *limitedBody) Read(p []byte) (int, error) {
	if b.left <= 0 {
		// Probe one byte: a body of exactly the limit is fine.
		var one [1]byte
		if n, _ := b.rc.Read(one[:]); n > 0 {
			return 0, errBodyTooLarge
		}
		return 0, io.EOF
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.rc.Read(p)
	b.left -= int64(n)
	return n, err
}

func (b *limitedBody) Close() error { return b.rc.Close() }
