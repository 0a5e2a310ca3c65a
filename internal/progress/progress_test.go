package progress

import (
	"bytes"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestLine(t *testing.T) {
	for _, tt := range []struct {
		done, total int64
		elapsed     time.Duration
		want        string
	}{
		{500, 1000, time.Second, "crsload [############............]  50.0% 500/1000 keys, 500 keys/s, ETA 1s"},
		{1000, 1000, 2 * time.Second, "crsload [########################] 100.0% 1000/1000 keys, 500 keys/s"},
		{1200, 1000, time.Second, "crsload [########################] 100.0% 1200/1000 keys, 1200 keys/s"},
		{30, 0, 3 * time.Second, "crsload 30 keys, 10 keys/s"},
		{0, 100, 0, "crsload [........................]   0.0% 0/100 keys, 0 keys/s"},
	} {
		if got := Line("crsload", tt.done, tt.total, tt.elapsed); got != tt.want {
			t.Errorf("Line(%d, %d, %v) =\n%q, want\n%q", tt.done, tt.total, tt.elapsed, got, tt.want)
		}
	}
}

// syncBuffer is a bytes.Buffer safe for the drawing goroutine and the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestShow(t *testing.T) {
	defer func(b, p time.Duration) { BarInterval, PlainInterval = b, p }(BarInterval, PlainInterval)
	BarInterval, PlainInterval = 5*time.Millisecond, 5*time.Millisecond
	for _, tt := range []struct {
		mode  string
		check func(string) bool
	}{
		{Plain, func(s string) bool {
			return strings.Contains(s, "x [") && strings.Contains(s, "\n") && !strings.Contains(s, "\r")
		}},
		{Bar, func(s string) bool { return strings.Contains(s, "\r\033[Kx [") && strings.HasSuffix(s, "\r\033[K") }},
		{None, func(s string) bool { return s == "" }},
		{Auto, func(s string) bool { return s == "" }}, // not a terminal
	} {
		var buf syncBuffer
		var c Counter
		c.SetTotal(10)
		stop := Show(&buf, tt.mode, "x", &c)
		c.Add(3)
		// Wait for a drawing where one is due; where none is, give it
		// time to (wrongly) draw.
		for deadline := time.Now().Add(5 * time.Second); tt.mode != None && tt.mode != Auto &&
			!strings.Contains(buf.String(), "3/10") && time.Now().Before(deadline); {
			time.Sleep(time.Millisecond)
		}
		if tt.mode == None || tt.mode == Auto {
			time.Sleep(20 * time.Millisecond)
		}
		stop()
		stop() // a second stop is harmless
		if out := buf.String(); !tt.check(out) {
			t.Errorf("mode %s drew %q", tt.mode, out)
		}
	}
	var nilCounter *Counter
	nilCounter.Add(1)
	nilCounter.SetTotal(1)
	if nilCounter.Done() != 0 {
		t.Error("a nil Counter counted")
	}
}
