// Package imds is ec2init's client for the EC2 instance metadata service.
//
// It wraps the AWS SDK's feature/ec2/imds client (IMDSv2 tokens, refresh on
// expiry and 401) and adds what a boot agent needs on top: endpoint
// resolution with a documented precedence, a retry policy tuned for a
// service that is usually one hop away, a bounded response size, a parallel
// crawler of the whole tree, and a typed Instance.
package imds

import (
	"fmt"
	"net/url"
	"strings"
	"time"

	"go.uber.org/zap"
)

// EndpointEnv is the environment variable the AWS SDKs and CLI read for the
// IMDS endpoint; ec2init honours it so one setting serves every tool.
const EndpointEnv = "AWS_EC2_METADATA_SERVICE_ENDPOINT"

// EndpointModeEnv selects the default endpoint's address family.
const EndpointModeEnv = "AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE"

// Default endpoints, as documented by EC2.
const (
	DefaultIPv4Endpoint = "http://169.254.169.254"
	DefaultIPv6Endpoint = "http://[fd00:ec2::254]"
)

// Config tunes the client. The zero value is usable: Defaults fills it.
type Config struct {
	// Endpoint is the base URL of the service. Empty means the default of
	// EndpointMode.
	Endpoint string
	// EndpointMode is "ipv4" (default) or "ipv6".
	EndpointMode string
	// AllowV1 permits falling back to IMDSv1 (no token) when the service
	// does not offer tokens: the token PUT answered 404 or 405, or never
	// answered (a hop limit of 1 drops the reply in a container). A 403 means
	// IMDS is disabled and is never a reason to fall back. Off by default:
	// IMDSv1 is open to SSRF.
	AllowV1 bool
	// Log receives the client's warnings (each IMDSv1 path requested, once;
	// keys rejected from the metadata). Nil logs nothing.
	Log *zap.Logger
	// RequestTimeout bounds one HTTP attempt.
	RequestTimeout time.Duration
	// CallTimeout bounds one value fetch, retries included.
	CallTimeout time.Duration
	// MaxAttempts is the number of tries of one fetch (first try included).
	MaxAttempts int
	// BaseBackoff and MaxBackoff shape the capped exponential backoff with
	// full jitter between attempts.
	BaseBackoff time.Duration
	MaxBackoff  time.Duration
	// Concurrency bounds the number of requests a crawl keeps in flight.
	Concurrency int
	// TokenCache is a file (a host path, under /run: root-only, 0600) in
	// which the IMDSv2 session token is shared by the processes of one
	// boot, with its expiry: a later stage reuses the first one's token
	// rather than asking for its own. A 401 drops it. Empty: every client
	// asks its own.
	TokenCache string
	// MaxResponseBytes caps a response body; IMDS values are small, so a
	// larger body means something else answers at the endpoint.
	MaxResponseBytes int64
}

// Defaults returns c with every unset field given its default.
func (c Config) Defaults() Config {
	if c.Log == nil {
		c.Log = zap.NewNop()
	}
	if c.EndpointMode == "" {
		c.EndpointMode = "ipv4"
	}
	if c.RequestTimeout <= 0 {
		c.RequestTimeout = 2 * time.Second
	}
	if c.CallTimeout <= 0 {
		c.CallTimeout = 15 * time.Second
	}
	if c.MaxAttempts <= 0 {
		c.MaxAttempts = 5
	}
	if c.BaseBackoff <= 0 {
		c.BaseBackoff = 50 * time.Millisecond
	}
	if c.MaxBackoff <= 0 {
		c.MaxBackoff = 2 * time.Second
	}
	if c.Concurrency <= 0 {
		c.Concurrency = 16
	}
	if c.MaxResponseBytes <= 0 {
		c.MaxResponseBytes = 1 << 20
	}
	return c
}

// EndpointSource says where a resolved endpoint came from, for diagnostics.
type EndpointSource string

// Endpoint sources in order of precedence.
const (
	SourceFlag    EndpointSource = "flag"
	SourceEnv     EndpointSource = "environment " + EndpointEnv
	SourceConfig  EndpointSource = "config imds.endpoint"
	SourceDefault EndpointSource = "default"
)

// ResolveEndpoint picks the endpoint by precedence: the command-line flag,
// then the environment, then the config file, then the mode's default.
func ResolveEndpoint(flag, configValue, mode string, getenv func(string) string) (string, EndpointSource, error) {
	candidates := []struct {
		value  string
		source EndpointSource
	}{
		{flag, SourceFlag},
		{getenv(EndpointEnv), SourceEnv},
		{configValue, SourceConfig},
	}
	for _, c := range candidates {
		if v := strings.TrimSpace(c.value); v != "" {
			if err := ValidateEndpoint(v); err != nil {
				return "", c.source, fmt.Errorf("imds endpoint from %s: %w", c.source, err)
			}
			return strings.TrimRight(v, "/"), c.source, nil
		}
	}
	if mode == "" {
		mode = getenv(EndpointModeEnv)
	}
	switch strings.ToLower(mode) {
	case "", "ipv4":
		return DefaultIPv4Endpoint, SourceDefault, nil
	case "ipv6":
		return DefaultIPv6Endpoint, SourceDefault, nil
	default:
		return "", SourceDefault, fmt.Errorf("imds endpoint mode %q: want ipv4 or ipv6", mode)
	}
}

// ValidateEndpoint rejects what cannot be an IMDS base URL, so a typo fails
// with a clear message before any request is made.
func ValidateEndpoint(endpoint string) error {
	u, err := url.Parse(endpoint)
	if err != nil {
		return fmt.Errorf("%q is not a URL: %w", endpoint, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("%q: scheme must be http or https", endpoint)
	}
	if u.Host == "" {
		return fmt.Errorf("%q: no host", endpoint)
	}
	if u.Path != "" && u.Path != "/" {
		return fmt.Errorf("%q: must not have a path (the client adds latest/...)", endpoint)
	}
	return nil
}
