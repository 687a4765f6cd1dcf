package backoff

import (
	"testing"
	"time"
)

func TestDelay(t *testing.T) {
	base, max := 50*time.Millisecond, 2*time.Second
	tests := []struct {
		attempt int
		r       float64
		want    time.Duration
	}{
		{1, 1, 50 * time.Millisecond},
		{2, 1, 100 * time.Millisecond},
		{3, 0.5, 100 * time.Millisecond},
		{6, 1, 1600 * time.Millisecond},
		{7, 1, 2 * time.Second},
		{40, 1, 2 * time.Second},
		{40, 0, 0},
	}
	for _, tt := range tests {
		if got := Delay(base, max, tt.attempt, tt.r); got != tt.want {
			t.Errorf("Delay(attempt %d, r %v) = %v, want %v", tt.attempt, tt.r, got, tt.want)
		}
	}
}
