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
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	sdkimds "github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"
	"go.uber.org/zap"

	"github.com/ec2init/ec2init/internal/backoff"
)

// ErrNotFound means IMDS has no such path: an absent optional value, never
// retried and, for optional fields, never an error.
var ErrNotFound = errors.New("not present in instance metadata")

// ErrDisabled means the token PUT was answered 403: the instance's metadata
// options disable IMDS (or a policy blocks it). As cloud-init does, this is
// final, never a reason to try without a token.
var ErrDisabled = errors.New("instance metadata service is disabled (token request answered 403)")

// Client reads the instance metadata service. It is safe for concurrent use.
type Client struct {
	cfg Config
	sdk *sdkimds.Client
	log *zap.Logger
	// v1 is set once a service without tokens answered a token-less
	// request (AllowV1 only), so later requests do not ask for a token
	// again; a 401 clears it.
	v1 atomic.Bool
	// warnedV1 holds the paths already requested without a token: each
	// is warned about once.
	warnedV1 sync.Map
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
	retryer := retry.NewStandard(func(o *retry.StandardOptions) {
		o.MaxAttempts = cfg.MaxAttempts
		o.MaxBackoff = cfg.MaxBackoff
		o.Backoff = jitterBackoff{base: cfg.BaseBackoff, max: cfg.MaxBackoff}
		// The SDK's retry quota protects shared AWS endpoints; IMDS is ours
		// alone, and a burst of 5xx at boot must not exhaust the budget.
		o.RateLimiter = ratelimit.None
	})
	var tokens *tokenCache
	if cfg.TokenCache != "" {
		tokens = &tokenCache{path: cfg.TokenCache, endpoint: strings.TrimRight(cfg.Endpoint, "/"), now: time.Now}
	}
	sdk := sdkimds.New(sdkimds.Options{
		Endpoint: strings.TrimRight(cfg.Endpoint, "/"),
		// The SDK's own fallback also answers a 403 (IMDS disabled) and a
		// 5xx with token-less requests, silently; the client decides
		// itself when IMDSv1 is acceptable (see GetRaw).
		EnableFallback:           aws.FalseTernary,
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
			max:    cfg.MaxResponseBytes,
			tokens: tokens,
		},
	})
	return &Client{cfg: cfg, sdk: sdk, log: cfg.Log}, nil
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
//
// Every request carries an IMDSv2 token. With AllowV1, and only when the
// service shows it has no tokens (the PUT answered 404 or 405, or no answer
// came), the request is sent again without one, and each such path is
// logged once. A 403 on the PUT is ErrDisabled, whatever AllowV1 says.
func (c *Client) GetRaw(ctx context.Context, path string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.CallTimeout)
	defer cancel()
	urlPath := "/" + strings.TrimPrefix(path, "/")
	if c.cfg.AllowV1 && c.v1.Load() {
		b, tr, err := c.get(ctx, urlPath, true)
		if err == nil {
			return b, nil
		}
		if tr.status() != http.StatusUnauthorized {
			return nil, c.wrap(ctx, path, err, tr)
		}
		// The service wants tokens now (HttpTokens turned required).
		c.v1.Store(false)
	}
	b, tr, err := c.get(ctx, urlPath, false)
	if err == nil {
		return b, nil
	}
	if tr.tokenForbidden() {
		return nil, &Error{Path: path, Endpoint: c.cfg.Endpoint, Token: true, Status: http.StatusForbidden, Err: ErrDisabled}
	}
	if !c.cfg.AllowV1 || !tr.tokenUnsupported() || ctx.Err() != nil {
		return nil, c.wrap(ctx, path, err, tr)
	}
	b, tr, err = c.get(ctx, urlPath, true)
	if s := tr.status(); s != 0 && s != http.StatusUnauthorized {
		c.v1.Store(true)
	}
	if err != nil {
		return nil, c.wrap(ctx, path, err, tr)
	}
	return b, nil
}

// get makes one SDK call (retries included) for urlPath, without the
// token provider when v1; the trace says what the exchanges were.
func (c *Client) get(ctx context.Context, urlPath string, v1 bool) ([]byte, *trace, error) {
	tr := &trace{}
	ctx = context.WithValue(ctx, traceKey{}, tr)
	opts := []func(*middleware.Stack) error{rawPath(urlPath)}
	if v1 {
		if _, seen := c.warnedV1.LoadOrStore(urlPath, true); !seen {
			c.log.Warn("IMDSv1 request without a token: "+urlPath,
				zap.String("path", urlPath), zap.String("endpoint", c.cfg.Endpoint))
		}
		opts = append(opts, withoutToken)
	}
	out, err := c.sdk.GetMetadata(ctx, &sdkimds.GetMetadataInput{}, sdkimds.WithAPIOptions(opts...))
	if err != nil {
		return nil, tr, err
	}
	defer out.Content.Close()
	b, err := io.ReadAll(out.Content)
	if err != nil {
		return nil, tr, err
	}
	return b, tr, nil
}

// tokenProviderID is the SDK's middleware that adds the IMDSv2 token (in
// the finalize step) and re-enables it on a 401 (in the deserialize step).
const tokenProviderID = "APITokenProvider"

// withoutToken takes the token provider off one call's stack: an IMDSv1
// request, with the SDK's retries, limits and path rewriting kept.
func withoutToken(stack *middleware.Stack) error {
	if _, err := stack.Finalize.Remove(tokenProviderID); err != nil {
		return fmt.Errorf("imds: no token provider to remove: %w", err)
	}
	if _, err := stack.Deserialize.Remove(tokenProviderID); err != nil {
		return fmt.Errorf("imds: no token provider to remove: %w", err)
	}
	return nil
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

// status is the last data request's HTTP status, 0 when none answered.
func (tr *trace) status() int {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return tr.lastStatus
}

// tokenForbidden reports a token PUT answered 403: IMDS is disabled.
func (tr *trace) tokenForbidden() bool {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return tr.tokenFailed && !tr.tokenOK && tr.tokenStatus == http.StatusForbidden
}

// tokenUnsupported reports the token PUT failing the way a service without
// IMDSv2 makes it fail: 404 or 405, or no answer at all (a hop limit of 1
// drops the reply to a container). Other statuses (400, 5xx) are errors to
// report, not evidence that tokens are not offered.
func (tr *trace) tokenUnsupported() bool {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	if !tr.tokenFailed || tr.tokenOK {
		return false
	}
	switch tr.tokenStatus {
	case http.StatusNotFound, http.StatusMethodNotAllowed:
		return true
	case 0:
		return tr.tokenErr != nil && !errors.Is(tr.tokenErr, errBodyTooLarge)
	}
	return false
}

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
	case errors.Is(err, ErrDisabled):
		return ErrDisabled.Error()
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
	tokens *tokenCache // nil: no token shared between processes
}

func (l *limitedHTTPClient) Do(req *http.Request) (*http.Response, error) {
	var resp *http.Response
	var err error
	if l.tokens != nil && isTokenPut(req) {
		resp = l.tokens.answer(req)
	}
	if resp == nil {
		resp, err = l.client.Do(req)
		if err == nil && l.tokens != nil {
			switch {
			case resp.StatusCode == http.StatusOK && isTokenPut(req):
				l.tokens.keep(resp)
			case resp.StatusCode == http.StatusUnauthorized:
				l.tokens.refused(req)
			}
		}
	}
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
