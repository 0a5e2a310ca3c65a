// Package ratelimit holds a rate: Wait blocks until n more events fit in
// it (a token bucket of one second's worth), sleeping on a timer, never
// spinning, and returns at once when the context ends.
package ratelimit

import (
	"context"
	"sync"
	"time"
)

// Limiter allows Rate events a second on average, in bursts of at most a
// tenth of a second's worth. A nil *Limiter allows everything.
type Limiter struct {
	gate   Gate
	mu     sync.Mutex
	rate   float64 // events a second
	tokens float64
	last   time.Time
	now    func() time.Time
}

// New returns a limiter of rate events a second, or nil (no limit) for
// rate <= 0.
func New(rate float64) *Limiter {
	if rate <= 0 {
		return nil
	}
	return &Limiter{rate: rate, now: time.Now}
}

// Gate holds events back for another reason than the rate (a server
// busier than a limit).
type Gate interface {
	Wait(ctx context.Context) error
}

// WithGate returns l (an unlimited limiter when l is nil) that also
// waits for g before each event.
func WithGate(l *Limiter, g Gate) *Limiter {
	if l == nil {
		l = &Limiter{now: time.Now}
	}
	l.gate = g
	return l
}

// burst is the most events that go at once after a pause.
func (l *Limiter) burst() float64 { return max(l.rate/10, 1) }

// Wait blocks until n events fit in the rate, then takes them.
func (l *Limiter) Wait(ctx context.Context, n int) error {
	if l == nil || n <= 0 {
		return nil
	}
	if l.gate != nil {
		if err := l.gate.Wait(ctx); err != nil {
			return err
		}
	}
	if l.rate <= 0 {
		return nil
	}
	wait := l.reserve(n)
	if wait <= 0 {
		return nil
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// reserve takes n events and returns how long the caller must wait
// before they happen.
func (l *Limiter) reserve(n int) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	if l.last.IsZero() {
		l.last, l.tokens = now, l.burst()
	}
	l.tokens = min(l.tokens+now.Sub(l.last).Seconds()*l.rate, l.burst())
	l.last = now
	l.tokens -= float64(n) // may go below zero: the caller waits it out
	if l.tokens >= 0 {
		return 0
	}
	return time.Duration(-l.tokens / l.rate * float64(time.Second))
}
