// Package backoff is the retry delay policy shared by every client in
// ec2init: capped exponential backoff with full jitter, so a fleet launched
// at once does not retry in lock-step.
package backoff

import "time"

// Delay is the wait before retry number attempt (1-based): a ceiling that
// doubles from base up to max, scaled by r in [0,1).
func Delay(base, max time.Duration, attempt int, r float64) time.Duration {
	ceiling := base
	for i := 1; i < attempt && ceiling < max; i++ {
		ceiling *= 2
	}
	if ceiling > max {
		ceiling = max
	}
	return time.Duration(r * float64(ceiling))
}
