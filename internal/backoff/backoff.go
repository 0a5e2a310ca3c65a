// Package backoff holds a tool back while a server is busier than a
// limit: it reads the server's CPU time (INFO cpu, used_cpu_sys plus
// used_cpu_user) every quarter of a second, and while the server used
// more than the limit over the last second (in percent of one core; a
// Redis server runs commands on one), Wait blocks. The server's own
// figure counts every client's load, which is what a production server
// must be spared from.
package backoff

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/crs-tool/crs/internal/redisconn"
)

// Every is how often the server is asked.
const Every = 250 * time.Millisecond

// window is how many samples the CPU use is measured over (a second).
const window = 4

// Watch watches one server. A nil *Watch holds nothing back.
type Watch struct {
	c     *redis.Client
	limit float64
	stop  context.CancelFunc
	done  chan struct{}
	mu    sync.Mutex
	under chan struct{} // closed while the server is under the limit
	over  bool
	since time.Time
	held  time.Duration
	peak  float64
}

// Start watches the server o names, holding back at limit percent of one
// core; nil for limit <= 0.
func Start(ctx context.Context, o redisconn.Options, limit float64) (*Watch, error) {
	if limit <= 0 {
		return nil, nil
	}
	c, _, err := redisconn.Open(ctx, o, 0, 1)
	if err != nil {
		return nil, err
	}
	if _, err := cpuSeconds(ctx, c); err != nil {
		c.Close()
		return nil, fmt.Errorf("--max-server-cpu: %w", err)
	}
	wctx, cancel := context.WithCancel(context.Background())
	w := &Watch{c: c, limit: limit, stop: cancel, done: make(chan struct{}), under: make(chan struct{})}
	close(w.under)
	go w.run(wctx)
	return w, nil
}

// cpuSeconds is the CPU time the server has used.
func cpuSeconds(ctx context.Context, c *redis.Client) (float64, error) {
	info, err := c.Info(ctx, "cpu").Result()
	if err != nil {
		return 0, fmt.Errorf("info cpu: %w", err)
	}
	f := redisconn.InfoFields(info)
	sys, err1 := strconv.ParseFloat(f["used_cpu_sys"], 64)
	user, err2 := strconv.ParseFloat(f["used_cpu_user"], 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("info cpu: no used_cpu_sys and used_cpu_user")
	}
	return sys + user, nil
}

func (w *Watch) run(ctx context.Context) {
	defer close(w.done)
	type sample struct {
		at  time.Time
		cpu float64
	}
	var samples []sample
	t := time.NewTicker(Every)
	defer t.Stop()
	for {
		cpu, err := cpuSeconds(ctx, w.c)
		now := time.Now()
		if err != nil {
			// A server that stops answering INFO holds nothing back: the
			// tool's own requests say what is wrong.
			w.set(false, 0)
		} else {
			samples = append(samples, sample{now, cpu})
			if len(samples) > window+1 {
				samples = samples[1:]
			}
			if first := samples[0]; len(samples) > 1 && now.Sub(first.at) > 0 {
				pct := 100 * (cpu - first.cpu) / now.Sub(first.at).Seconds()
				w.set(pct > w.limit, pct)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// set records whether the server is over the limit.
func (w *Watch) set(over bool, pct float64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.peak = max(w.peak, pct)
	switch {
	case over && !w.over:
		w.over, w.since, w.under = true, time.Now(), make(chan struct{})
	case !over && w.over:
		w.over = false
		w.held += time.Since(w.since)
		close(w.under)
	}
}

// Wait returns at once while the server is under the limit, and blocks
// while it is over, until it is under again or ctx ends.
func (w *Watch) Wait(ctx context.Context) error {
	if w == nil {
		return nil
	}
	w.mu.Lock()
	under := w.under
	w.mu.Unlock()
	select {
	case <-under:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Held returns how long Wait held callers back in all.
func (w *Watch) Held() time.Duration {
	if w == nil {
		return 0
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.over {
		return w.held + time.Since(w.since)
	}
	return w.held
}

// Peak returns the highest CPU use measured, in percent of one core.
func (w *Watch) Peak() float64 {
	if w == nil {
		return 0
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.peak
}

// Close stops watching; a caller held back goes on.
func (w *Watch) Close() {
	if w == nil {
		return
	}
	w.stop()
	<-w.done
	w.set(false, 0)
	w.c.Close()
}
