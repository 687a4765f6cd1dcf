// The one retry loop: attempts, backoff with jitter, Retry-After.

package fetch

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/url"
	"time"

	"go.uber.org/zap"

	"github.com/ec2init/ec2init/agent/redact"
	"github.com/ec2init/ec2init/internal/backoff"
)

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
