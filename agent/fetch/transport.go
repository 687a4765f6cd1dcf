// The HTTP transport every fetch uses: TLS roots, timeouts, and the
// redirect policy.

package fetch

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/ec2init/ec2init/agent/redact"
)

// newTransport is the transport of every fetch: timeout bounds the dial,
// the TLS handshake and the wait for a response's headers.
func newTransport(tlsConf *tls.Config, timeout time.Duration) *http.Transport {
	return &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:       tlsConf.Clone(),
		TLSHandshakeTimeout:   timeout,
		ResponseHeaderTimeout: timeout,
		ForceAttemptHTTP2:     true,
		MaxIdleConnsPerHost:   8,
		IdleConnTimeout:       90 * time.Second,
		// Bytes must arrive as the origin stores them: an artifact's digest
		// is of those, and a resumed range must line up with the partial
		// file. (Go would otherwise ask for gzip and decompress unseen.)
		DisableCompression: true,
		ReadBufferSize:     64 << 10,
		WriteBufferSize:    16 << 10,
	}
}

// refuseDowngrade is the redirect policy: at most 10, and never from https
// to anything else.
func refuseDowngrade(req *http.Request, via []*http.Request) error {
	if len(via) >= 10 {
		return fmt.Errorf("%w: too many", ErrRedirect)
	}
	if via[0].URL.Scheme == "https" && req.URL.Scheme != "https" {
		return fmt.Errorf("%w: from https to %s", ErrRedirect, redact.URL(req.URL.String()))
	}
	return nil
}

// tlsConfig is TLS 1.2 or later, with the system roots plus caFile's.
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
