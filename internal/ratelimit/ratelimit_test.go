package ratelimit

import (
	"context"
	"testing"
	"time"
)

// TestLimiter drives a limiter on a clock of its own, advanced by the
// waits it asks for: what it lets through in a second is the rate, give
// or take a burst, whatever the batch size.
func TestLimiter(t *testing.T) {
	for _, tt := range []struct {
		rate  float64
		batch int
	}{{10, 1}, {1000, 1}, {50000, 1}, {50000, 256}, {1000, 7}} {
		l := New(tt.rate)
		clock := time.Unix(0, 0)
		l.now = func() time.Time { return clock }
		events := 0
		for clock.Sub(time.Unix(0, 0)) < time.Second {
			clock = clock.Add(l.reserve(tt.batch))
			events += tt.batch
		}
		if lo, hi := tt.rate*0.95, tt.rate*1.1+float64(tt.batch); float64(events) < lo || float64(events) > hi {
			t.Errorf("rate %v in batches of %d: %d events in a second", tt.rate, tt.batch, events)
		}
	}
	if err := (*Limiter)(nil).Wait(context.Background(), 5); err != nil {
		t.Error(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := New(1).Wait(ctx, 100); err != context.Canceled {
		t.Errorf("Wait after cancel: %v", err)
	}
}
