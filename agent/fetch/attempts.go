package fetch

import "context"

// GetAttempts is Get with attempts (when > 0) in place of
// Options.Attempts, for a caller whose configuration names its own retry
// count (chef's omnibus_url_retries). Everything else is Get's.
func (f *Fetcher) GetAttempts(ctx context.Context, rawURL string, attempts int) ([]byte, error) {
	if attempts <= 0 {
		return f.Get(ctx, rawURL)
	}
	g := *f
	g.retry.attempts = attempts
	return g.Get(ctx, rawURL)
}
