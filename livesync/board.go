package livesync

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Board holds what a running sync last reported, link by link, for
// watchers outside it: Prometheus metrics (Collector), a status page
// (Status) and a health check (Healthy). The sync updates it each
// progress tick (Options.Every); a nil Board is not updated.
type Board struct {
	mu      sync.Mutex
	links   []LinkStats
	total   Stats
	updated time.Time
	ended   error // why the sync ended, or errDone
	over    bool
}

// LinkStats is one replication link's progress: the source server (a
// cluster's master) it reads, and its counts.
type LinkStats struct {
	Link string `json:"link"`
	Stats
}

// NewBoard returns an empty board.
func NewBoard() *Board { return &Board{} }

var errDone = errors.New("the sync is over")

// update records the progress of a tick.
func (b *Board) update(links []LinkStats, total Stats) {
	if b == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.links, b.total, b.updated = links, total, time.Now()
}

// end records that the sync ended, with err (nil: done).
func (b *Board) end(err error) {
	if b == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.over, b.ended = true, err
	if err == nil {
		b.ended = errDone
	}
}

// Status is what the progress line says, as one JSON-ready value.
type Status struct {
	Time    string      `json:"time"`
	Running bool        `json:"running"`
	Error   string      `json:"error,omitempty"`
	Total   Stats       `json:"total"`
	Links   []LinkStats `json:"links"`
	Updated string      `json:"updated,omitempty"`
}

// Status returns the board's state now.
func (b *Board) Status() Status {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := Status{Time: time.Now().UTC().Format(time.RFC3339Nano), Running: !b.over, Total: b.total, Links: b.links}
	if b.ended != nil && b.ended != errDone {
		s.Error = b.ended.Error()
	}
	if !b.updated.IsZero() {
		s.Updated = b.updated.UTC().Format(time.RFC3339Nano)
	}
	return s
}

// Healthy fails when the sync has stopped, has not reported for stale
// (it is stuck), or, once it was in step, lags more than maxLag behind
// its source.
func (b *Board) Healthy(maxLag, stale time.Duration) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case b.over && b.ended != errDone:
		return fmt.Errorf("the sync stopped: %v", b.ended)
	case b.over:
		return errDone
	case !b.updated.IsZero() && time.Since(b.updated) > stale:
		return fmt.Errorf("no progress reported for %s", time.Since(b.updated).Round(time.Second))
	case b.total.Phase == "streaming" && maxLag > 0 && time.Duration(b.total.LagMs)*time.Millisecond > maxLag:
		return fmt.Errorf("the target lags %d ms behind the source (more than %s)", b.total.LagMs, maxLag)
	}
	return nil
}

// Collector returns the board as Prometheus metrics, read at each scrape.
func (b *Board) Collector() prometheus.Collector { return boardCollector{b} }

type boardCollector struct{ b *Board }

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc("crs_sync_"+name, help, labels, nil)
}

// The sync's metrics, per link (the source server it reads) where they
// are a link's.
var (
	mPhase       = desc("phase", "1 for the phase the link is in: snapshot, streaming, cutover, done.", "link", "phase")
	mInSync      = desc("in_sync", "1 when the link is in step with its source (the oldest byte not applied arrived under 100 ms ago).", "link")
	mApplied     = desc("applied_offset_bytes", "The replication offset of the source up to which the target holds its writes.", "link")
	mSource      = desc("source_offset_bytes", "The source's replication offset, as it last said.", "link")
	mLagBytes    = desc("lag_bytes", "Bytes of the source's write stream not applied to the target yet.", "link")
	mLagSeconds  = desc("lag_seconds", "How long ago the oldest byte of the source's write stream not applied yet arrived.", "link")
	mCommands    = desc("commands_applied_total", "Commands of the source's write stream applied to the target, by name.", "link", "command")
	mTx          = desc("transactions_total", "Transactions (MULTI ... EXEC, with the position) written to the target.", "link")
	mReread      = desc("keys_reread_total", "Keys read again from the source: selection, for --type or --max-key-bytes; expired, keys the target expired on its own clock while the source held them.", "link", "reason")
	mCompared    = desc("keys_compared_total", "Keys changed during the sync found equal on both sides while streaming.", "link")
	mSnapshot    = desc("snapshot_keys", "Keys loaded from the link's snapshot.", "link")
	mResumed     = desc("resumed", "1 when the link continued from the position the target recorded (no snapshot).", "link")
	mCutovers    = desc("cutover_attempts_total", "Cutovers begun (their pause and check).")
	mRehearsals  = desc("cutover_rehearsals_total", "Cutovers rehearsed (SIGUSR2): the pause and the check, then the sync goes on.")
	mHeld        = desc("cutover_writes_held_seconds", "How long the last cutover held the source's writes.")
	mChecked     = desc("cutover_check_seconds", "How long after the last cutover's pause began the target was checked and ready.")
	mDifferences = desc("cutover_differences", "Differences the last cutover's check found (0: it passed).")
	mUp          = desc("running", "1 while the sync runs, 0 once it has ended.")
)

func (c boardCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{mPhase, mInSync, mApplied, mSource, mLagBytes, mLagSeconds, mCommands, mTx, mReread, mCompared, mSnapshot, mResumed, mCutovers, mRehearsals, mHeld, mChecked, mDifferences, mUp} {
		ch <- d
	}
}

func (c boardCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.b.Status()
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
	}
	for _, l := range s.Links {
		phase := l.Phase
		if s.Total.Phase != "" && s.Total.Phase != "streaming" {
			phase = s.Total.Phase // the cutover's, or done: every link's
		}
		if phase == "" {
			phase = "snapshot"
		}
		gauge(mPhase, 1, l.Link, phase)
		gauge(mInSync, flag(l.InSync), l.Link)
		gauge(mApplied, float64(l.Offset), l.Link)
		gauge(mSource, float64(l.SourceOffset), l.Link)
		gauge(mLagBytes, float64(l.LagBytes), l.Link)
		gauge(mLagSeconds, float64(l.LagMs)/1000, l.Link)
		for cmd, n := range l.ByCommand {
			counter(mCommands, float64(n), l.Link, cmd)
		}
		counter(mTx, float64(l.Transactions), l.Link)
		counter(mReread, float64(l.ReadAgain), l.Link, "selection")
		counter(mReread, float64(l.Repaired), l.Link, "expired")
		counter(mCompared, float64(l.Compared), l.Link)
		gauge(mSnapshot, float64(l.Loaded), l.Link)
		gauge(mResumed, flag(l.Resumed), l.Link)
	}
	counter(mCutovers, float64(s.Total.Cutovers))
	counter(mRehearsals, float64(s.Total.Rehearsals))
	gauge(mHeld, float64(s.Total.HeldMs)/1000)
	gauge(mChecked, float64(s.Total.PausedMs)/1000)
	gauge(mDifferences, float64(s.Total.Differences))
	gauge(mUp, flag(s.Running))
}

func flag(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
