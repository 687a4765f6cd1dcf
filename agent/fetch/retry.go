// The one retry loop every fetch goes through: which failures are worth
// another attempt, backoff with jitter, and a server's Retry-After.

package fetch

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"go.uber.org/zap"

	"github.com/ec2init/ec2init/agent/redact"
	"github.com/ec2init/ec2init/internal/backoff"
)

// policy is a retry schedule: up to attempts failed attempts, capped
// exponential backoff with full jitter between them (internal/backoff), and
// a server's Retry-After believed up to maxRetryAfter. Each caller keeps its
// own defaults (Options for Get, ArtifactOptions for artifacts).
type policy struct {
	attempts      int
	base, max     time.Duration
	maxRetryAfter time.Duration
	// log, when set, gets a line before each retry.
	log *zap.Logger
}

// retryDefaults are one fetch path's defaults for the retry fields its
// options share (Options for Get, ArtifactOptions for artifacts): a small
// body the boot waits for retries sooner and gives up sooner than a large
// download.
type retryDefaults struct {
	attempts                          int
	base, max, maxRetryAfter, timeout time.Duration
}

var (
	getDefaults      = retryDefaults{attempts: 5, base: 200 * time.Millisecond, max: 5 * time.Second, maxRetryAfter: 30 * time.Second, timeout: 30 * time.Second}
	artifactDefaults = retryDefaults{attempts: 5, base: 250 * time.Millisecond, max: 20 * time.Second, maxRetryAfter: 60 * time.Second, timeout: 30 * time.Second}
)

// fill sets each unset (zero or negative) field to d's value.
func (d retryDefaults) fill(attempts *int, base, max, maxRetryAfter, timeout *time.Duration) {
	if *attempts <= 0 {
		*attempts = d.attempts
	}
	for _, f := range []struct {
		v   *time.Duration
		def time.Duration
	}{{base, d.base}, {max, d.max}, {maxRetryAfter, d.maxRetryAfter}, {timeout, d.timeout}} {
		if *f.v <= 0 {
			*f.v = f.def
		}
	}
}

// wait is the delay before the next attempt after failures failed ones,
// when the server asked for after.
func (p policy) wait(failures int, after time.Duration) time.Duration {
	d := backoff.Delay(p.base, p.max, max(failures, 1), rand.Float64())
	if after = min(after, p.maxRetryAfter); after > 0 {
		// A server that says when to come back (429, 503) is believed, up
		// to a cap; the jitter (up to a quarter more) still spreads a fleet
		// told the same time.
		d = max(d, after) + time.Duration(rand.Int64N(int64(after)/4+1))
	}
	return d
}

// attemptFunc makes one attempt. cancel ends it with a cause (errIdle).
// progressed says whether it made progress a resumable download keeps;
// such an attempt is not counted as a failure.
type attemptFunc func(ctx context.Context, cancel context.CancelCauseFunc) (progressed bool, err error)

// run runs attempt until it succeeds, fails for good (retriable), or the
// failures reach p.attempts. name and u are for the log only.
func (p policy) run(ctx context.Context, name string, u *url.URL, attempt attemptFunc) (attempts int, err error) {
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
		if failures >= p.attempts {
			return attempts, err
		}
		delay := p.wait(failures, after)
		if p.log != nil {
			p.log.Info("artifact fetch will retry",
				zap.String("name", name), zap.String("url", redact.URL(u.String())),
				zap.Int("attempt", attempts), zap.Duration("delay", delay), zap.Error(redact.Error(err)))
		}
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

// retriable says whether another attempt could succeed, and the wait the
// server asked for.
func retriable(ctx context.Context, err error) (bool, time.Duration) {
	if ctx.Err() != nil {
		return false, 0
	}
	if errors.Is(err, errIdle) {
		return true, 0
	}
	var local *localError
	var se *statusError
	var cve *tls.CertificateVerificationError
	var re *awshttp.ResponseError
	switch {
	case errors.As(err, &local),
		errors.Is(err, ErrNotFound), errors.Is(err, ErrChecksum), errors.Is(err, ErrSignature), errors.Is(err, ErrRedirect),
		errors.Is(err, ErrTooLarge), errors.Is(err, errNotAllowed), errors.Is(err, errNoRole),
		errors.As(err, &cve):
		return false, 0
	case errors.As(err, &se):
		return retriableStatus(se.code), se.retryAfter
	case errors.As(err, &re) && re.HTTPStatusCode() != 0:
		return retriableStatus(re.HTTPStatusCode()), 0
	}
	// The SDK reports a connection that failed before any answer as a
	// ResponseError with status 0: that is the network, as below.
	// Connection refused or reset, a body cut short, a timeout.
	return true, 0
}

// Transient reports whether err, a fetch's final error, could pass if the
// fetch were tried again later (an origin down, refusing, overloaded) rather
// than being an answer (not found, a checksum or signature that does not
// verify, a refused redirect).
func Transient(err error) bool {
	again, _ := retriable(context.Background(), err)
	return err != nil && again
}

// parseRetryAfter reads Retry-After as seconds or an HTTP date.
func parseRetryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && s >= 0 {
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// statusError is an HTTP answer other than success.
type statusError struct {
	code       int
	retryAfter time.Duration
}

func (e *statusError) Error() string {
	return fmt.Sprintf("HTTP %d %s", e.code, http.StatusText(e.code))
}

func retriableStatus(code int) bool {
	return code == http.StatusTooManyRequests || code == http.StatusRequestTimeout || code >= 500
}
