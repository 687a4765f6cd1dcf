package software

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/ec2init/ec2init/agent/config"
	"github.com/ec2init/ec2init/agent/fetch"
)

// outageFetcher refuses connections for its first `down` rounds, then
// serves; an item whose checksum never verifies fails at once.
type outageFetcher struct {
	mu     sync.Mutex
	down   int
	rounds map[string]int
}

func (f *outageFetcher) FetchAll(_ context.Context, _ int, names []string, _ []fetch.Source) ([]fetch.Artifact, []error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	got, errs := make([]fetch.Artifact, len(names)), make([]error, len(names))
	for i, n := range names {
		f.rounds[n]++
		switch {
		case n == "bad":
			errs[i] = fmt.Errorf("verify: %w", fetch.ErrChecksum)
		case f.rounds[n] <= f.down:
			errs[i] = errors.New("dial tcp 127.0.0.1:443: connect: connection refused")
		default:
			got[i] = fetch.Artifact{Path: "/cache/" + n}
		}
	}
	return got, errs
}

func (f *outageFetcher) ResolveVersion(context.Context, string, string, bool) (fetch.Resolved, error) {
	return fetch.Resolved{}, errors.New("unused")
}

// TestRetryForOutlastsAnOutage: items whose origin refuses connections
// are fetched again until retry_for has passed; a checksum that does not
// verify is an answer, never tried again; retry_for 0 gives up at once.
func TestRetryForOutlastsAnOutage(t *testing.T) {
	names := []string{"app", "bad"}
	srcs := make([]fetch.Source, len(names))
	for _, tc := range []struct {
		name     string
		retryFor time.Duration
		appOK    bool
		rounds   int
	}{
		{"outlasted", time.Minute, true, 3},
		{"retry_for 0", 0, false, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &outageFetcher{down: 2, rounds: map[string]int{}}
			c := &Config{Parallel: 2, RetryFor: config.Duration(tc.retryFor)}
			got, errs := fetchOutlasting(context.Background(), f, c, names, srcs, zap.NewNop(), func(int) time.Duration { return time.Millisecond })
			if (errs[0] == nil) != tc.appOK || (tc.appOK && got[0].Path != "/cache/app") {
				t.Errorf("app: %v %v", got[0], errs[0])
			}
			if !errors.Is(errs[1], fetch.ErrChecksum) || f.rounds["bad"] != 1 {
				t.Errorf("bad: %v after %d rounds: a failed verification is not tried again", errs[1], f.rounds["bad"])
			}
			if f.rounds["app"] != tc.rounds {
				t.Errorf("app fetched %d times, want %d", f.rounds["app"], tc.rounds)
			}
		})
	}
}
