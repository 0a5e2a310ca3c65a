// Package progress shows how far a dump or a load has come, on standard
// error: a bar redrawn in place on a terminal, or a plain line every few
// seconds for logs.
//
// The tools count into a Counter from any goroutine; Show draws it until
// the returned stop function is called.
package progress

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/term"
)

// Modes of Show.
const (
	Auto  = "auto"  // Bar on a terminal, else None
	Bar   = "bar"   // one line redrawn in place
	Plain = "plain" // a line every Interval, for logs
	None  = "none"  // nothing
)

// Counter counts keys done of an expected total. Its methods may be
// called on a nil Counter, which counts nothing.
type Counter struct {
	done, total atomic.Int64
}

// Add counts n more keys done.
func (c *Counter) Add(n int64) {
	if c != nil {
		c.done.Add(n)
	}
}

// SetTotal sets the number of keys expected; 0 means unknown.
func (c *Counter) SetTotal(n int64) {
	if c != nil {
		c.total.Store(n)
	}
}

// Total is the number of keys expected, 0 when unknown.
func (c *Counter) Total() int64 {
	if c == nil {
		return 0
	}
	return c.total.Load()
}

// Done is the number of keys counted so far.
func (c *Counter) Done() int64 {
	if c == nil {
		return 0
	}
	return c.done.Load()
}

// CheckMode returns an error unless mode is one of the modes.
func CheckMode(mode string) error {
	switch mode {
	case Auto, Bar, Plain, None:
		return nil
	}
	return fmt.Errorf("--progress must be auto, bar, plain or none, not %q", mode)
}

// Resolve turns Auto into Bar when w is a terminal and None otherwise.
func Resolve(mode string, w io.Writer) string {
	if mode != Auto {
		return mode
	}
	if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		return Bar
	}
	return None
}

// Intervals between two drawings.
var (
	BarInterval   = 200 * time.Millisecond
	PlainInterval = 5 * time.Second
)

// Show draws c on w in mode (Auto is resolved against w) under the name
// label, until stop is called. stop erases the bar, so that a summary
// printed next starts on a clean line.
func Show(w io.Writer, mode, label string, c *Counter) (stop func()) {
	mode = Resolve(mode, w)
	if mode != Bar && mode != Plain {
		return func() {}
	}
	every := BarInterval
	if mode == Plain {
		every = PlainInterval
	}
	start := time.Now()
	quit := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-quit:
				if mode == Bar {
					fmt.Fprint(w, "\r\033[K")
				}
				return
			case <-t.C:
				line := Line(label, c.done.Load(), c.total.Load(), time.Since(start))
				if mode == Bar {
					fmt.Fprint(w, "\r\033[K"+line)
				} else {
					fmt.Fprintln(w, line)
				}
			}
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			close(quit)
			wg.Wait()
		})
	}
}

// barWidth is the width of the bar, in cells.
const barWidth = 24

// Line is one drawing: the label, a bar and percentage when the total is
// known, keys done, the rate and the time left.
func Line(label string, done, total int64, elapsed time.Duration) string {
	var b strings.Builder
	b.WriteString(label)
	rate := 0.0
	if s := elapsed.Seconds(); s > 0 {
		rate = float64(done) / s
	}
	if total > 0 {
		frac := min(float64(done)/float64(total), 1)
		full := int(frac * barWidth)
		fmt.Fprintf(&b, " [%s%s] %5.1f%% %d/%d keys", strings.Repeat("#", full), strings.Repeat(".", barWidth-full), 100*frac, done, total)
	} else {
		fmt.Fprintf(&b, " %d keys", done)
	}
	fmt.Fprintf(&b, ", %.0f keys/s", rate)
	if total > done && rate > 0 {
		left := time.Duration(float64(total-done) / rate * float64(time.Second))
		fmt.Fprintf(&b, ", ETA %s", left.Round(time.Second))
	}
	return b.String()
}
