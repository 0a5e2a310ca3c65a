package livesync

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/crs-tool/crs/internal/progress"
	"github.com/crs-tool/crs/internal/redisconn"
	"github.com/crs-tool/crs/internal/report"
	"github.com/crs-tool/crs/records"
)

// dbKey is a key of a source database.
type dbKey struct {
	db  int
	key string
}

// applier applies the stream.
type applier struct {
	opts     Options
	link     Link
	src      Source
	t        *targetSide
	caps     redisconn.Caps
	counters bool // the target has stream counters (entries-read, 7.0+)
	notify   bool // a sync by notifications: no position on the target
	out      io.Writer
	mode     string

	pos     Position // what the target holds
	key     string   // the hash on the target that holds it
	srcKey  string   // the link's master, for Source's Offsets and PauseWrites
	reach   chan int64
	reached chan error
	resume  chan struct{}
	mu      sync.Mutex
	shown   Stats // a copy of st for the controller, under mu
	// checkpoints is how many positions the target holds (one per shard)
	// for the cutover's counts.
	checkpoints int
	st          Stats
	began       time.Time
	inSync      bool // at the last progress line
	wasInSync   bool
	infos       map[string]*cmdInfo
	// changed holds the keys written during the sync and not found equal
	// on both sides since, with the offset of their last write (see
	// compare.go); many is set once there were too many to hold.
	changed map[dbKey]int64
	cmp     *comparing // a comparison read on the source, not yet on the target
	// skip holds the keys repaired (read again from the source) and the
	// source's offset at each read: commands on them up to it are left
	// out (see repair).
	skip map[dbKey]int64
	// watch is the target's own expiries (nil in a sync by notifications,
	// or where the target refuses CONFIG); shard this link's index there.
	watch *expiryWatch
	shard int
	// loadExpired are the keys (of the target) the snapshot's load left
	// out as already expired, to be read again like those the target
	// expires.
	loadExpired []dbKey
	// recheck are keys (of the source) a repair found expiring as it read
	// them, to be read again (see writeKeys).
	recheck []dbKey
	many    bool // more keys changed than are remembered
	// claimed are the streams a group read (XCLAIM … LASTID) touched, and
	// whether the target's checkpoint names each yet (see lagging.go).
	claimed map[dbKey]bool
	one     int // oneDB's answer, once asked
	oneOnce sync.Once
	// rereads are, under a selection by type or size, the keys each
	// command of the batch being applied writes (see applyJudged).
	rereads [][]dbKey
	last    struct {
		at      time.Time
		applied int64
	}
}

// stream applies commands until the link fails or ctx ends; asked to
// reach an offset (the cutover), it applies up to it, says so, and waits
// for ctx to end.
func (a *applier) stream(ctx context.Context) error {
	cmds, errc := a.reader(ctx)
	tick := time.NewTicker(a.opts.Every)
	defer tick.Stop()
	cmp := time.NewTicker(compareEvery)
	defer cmp.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-cmp.C:
			// A comparison that cannot be made now (a server lost: the
			// link says so) leaves its keys for later, and the cutover.
			if err := a.compareStep(ctx); err != nil {
				a.cmp = nil
			}
		case cmd, ok := <-cmds:
			if err := a.received(ctx, cmd, ok, cmds, errc); err != nil {
				return err
			}
		case <-tick.C:
			if err := a.progress(ctx); err != nil {
				return err
			}
			a.publish()
		case until := <-a.reach:
			err := a.catchUp(ctx, until, cmds, errc)
			a.reached <- err
			if err != nil {
				return err
			}
			// The controller checks the target while this waits; after a
			// rehearsal, or a check that failed, the sync goes on.
			select {
			case <-ctx.Done():
				return nil
			case <-a.resume:
			}
		}
	}
}

// received applies cmd and what has arrived after it, or, when the
// reader has ended (!ok), returns the error that ended it.
func (a *applier) received(ctx context.Context, cmd *records.Command, ok bool, cmds <-chan *records.Command, errc <-chan error) error {
	if !ok {
		err := <-errc
		// A master made a replica drops its own replicas: say why.
		if derr := a.src.Demoted(ctx); derr != nil && ctx.Err() == nil {
			return fmt.Errorf("%w: %w", ErrStopped, derr)
		}
		return fmt.Errorf("%s: %w", a.link.Name(), err)
	}
	batch, err := a.gather(ctx, cmd, cmds)
	if err != nil {
		return err
	}
	return a.apply(ctx, batch)
}

// reader reads the link's commands into a channel, in order; at the end
// it closes the channel after putting the error in errc.
func (a *applier) reader(ctx context.Context) (<-chan *records.Command, <-chan error) {
	cmds := make(chan *records.Command, 4096)
	errc := make(chan error, 1)
	go func() {
		defer close(cmds)
		for {
			cmd, err := a.link.Next()
			if err != nil {
				errc <- err
				return
			}
			select {
			case cmds <- cmd:
			case <-ctx.Done():
				errc <- ctx.Err()
				return
			}
		}
	}()
	return cmds, errc
}

// inStep is the lag under which the target counts as in step with the
// source: a cutover then has at most that much to apply.
const inStep = 100 * time.Millisecond

// perTransaction is the most commands applied in one transaction on the
// target (a source's MULTI/EXEC is never split).
const perTransaction = 512

// gather adds to first what has already arrived, up to perTransaction
// commands, and always to the end of a transaction of the source.
func (a *applier) gather(ctx context.Context, first *records.Command, cmds <-chan *records.Command) ([]*records.Command, error) {
	batch := []*records.Command{first}
	inTx := isName(first, "multi")
	for {
		var cmd *records.Command
		var ok bool
		if inTx {
			select {
			case cmd, ok = <-cmds:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		} else {
			if len(batch) >= perTransaction {
				return batch, nil
			}
			select {
			case cmd, ok = <-cmds:
			default:
				return batch, nil
			}
		}
		if !ok {
			// The link ended inside a transaction: what arrived of it is
			// not applied (a replica would not either).
			if inTx {
				return trimTx(batch), nil
			}
			return batch, nil
		}
		batch = append(batch, cmd)
		switch {
		case isName(cmd, "multi"):
			inTx = true
		case isName(cmd, "exec"):
			inTx = false
		}
	}
}

// trimTx drops an unfinished transaction from the end of batch.
func trimTx(batch []*records.Command) []*records.Command {
	for i := len(batch) - 1; i >= 0; i-- {
		if isName(batch[i], "multi") {
			return batch[:i]
		}
	}
	return batch
}

func isName(cmd *records.Command, name string) bool { return strings.EqualFold(cmd.Args[0], name) }

// askWithin bounds the source's reads of a progress step.
const askWithin = 3 * time.Second

// progress notes where the link is: the lag behind its master, and
// whether it is in step.
func (a *applier) progress(ctx context.Context) error {
	// A source that does not answer within askWithin is asked again at
	// the next tick: the link says when it is gone (closed, or silent
	// for --timeout), and the stream must not wait for a stopped source
	// here meanwhile (it waited out every retry of every read, minutes).
	actx, cancel := context.WithTimeout(ctx, askWithin)
	defer cancel()
	if err := a.src.Steady(actx); err != nil && actx.Err() == nil {
		return fmt.Errorf("%w: %w", ErrStopped, err)
	}
	offsets, err := a.src.Offsets(actx)
	if err != nil {
		if derr := a.src.Demoted(actx); derr != nil && actx.Err() == nil {
			return fmt.Errorf("%w: %w", ErrStopped, derr)
		}
		return nil // the lag waits
	}
	off := offsets[a.srcKey]
	now := time.Now()
	a.st.SourceOffset, a.st.Offset = off, a.pos.Offset
	a.st.LagBytes = max(off-a.pos.Offset, 0)
	a.st.LagMs = a.link.Behind().Milliseconds()
	if !a.last.at.IsZero() {
		a.st.PerSecond = float64(a.st.Applied-a.last.applied) / now.Sub(a.last.at).Seconds()
	}
	a.last.at, a.last.applied = now, a.st.Applied
	// In step: what the link has received and not applied yet (queued
	// here or not) arrived less than inStep ago, and less than a MiB is
	// on the wire. A writer at full rate always has some commands queued.
	a.inSync = a.link.Behind() < inStep && a.st.LagBytes < 1<<20
	a.st.InSync = a.inSync
	return nil
}

// showStats draws the progress line of st.
func (a *applier) showStats(st Stats) {
	switch {
	case a.opts.JSON:
		report.JSON(a.out, "crs sync", st, nil)
	case a.mode == progress.Bar:
		fmt.Fprint(a.out, "\r\033[K"+a.line(st))
	case a.mode == progress.Plain:
		fmt.Fprintln(a.out, a.line(st))
	}
}

func (a *applier) line(st Stats) string {
	if a.notify {
		return fmt.Sprintf("crs sync: %s: %d keys read again as notified, %d waiting, the oldest for %d ms", st.Phase, st.Applied, st.LagBytes, st.LagMs)
	}
	return fmt.Sprintf("crs sync: %s: %d commands applied (%.0f/s), lag %d bytes, %d ms; offset %d", st.Phase, st.Applied, st.PerSecond, st.LagBytes, st.LagMs, st.Offset)
}

// say prints a line (not under --quiet or --json).
func (a *applier) say(format string, args ...any) {
	if a.opts.Quiet || a.opts.JSON {
		return
	}
	if a.mode == progress.Bar {
		fmt.Fprint(a.out, "\r\033[K")
	}
	fmt.Fprintf(a.out, format+"\n", args...)
}

// finishWith prints the summary of st, which brought the target to pos
// (where says the offsets of every master).
func (a *applier) finishWith(st Stats, pos Position, where string, err error) {
	st.Offset = pos.Offset
	if a.opts.Summary != nil {
		report.JSON(a.opts.Summary, "crs sync", st, err)
	}
	if a.opts.JSON {
		report.JSON(a.out, "crs sync", st, err)
		return
	}
	if a.opts.Quiet && err == nil {
		return
	}
	if a.mode == progress.Bar {
		fmt.Fprint(a.out, "\r\033[K")
	}
	var b strings.Builder
	switch {
	case err == nil:
		b.WriteString("crs sync: done: ")
	case errors.Is(err, context.Canceled):
		b.WriteString("crs sync: stopped: ")
	default:
		b.WriteString("crs sync: FAILED: ")
	}
	if a.notify {
		fmt.Fprintf(&b, "read %d keys again as notified changed%s", st.Applied, report.TypeCounts(st.ByCommand))
	} else {
		fmt.Fprintf(&b, "applied %d commands%s in %d transactions, up to offset %s", st.Applied, report.TypeCounts(st.ByCommand), st.Transactions, where)
	}
	if st.Loaded > 0 {
		fmt.Fprintf(&b, ", after a snapshot of %d keys", st.Loaded)
	}
	if skipped := sum(st.Skipped); skipped > 0 {
		fmt.Fprintf(&b, "; SKIPPED %d commands the target lacks (--skip-unsupported)%s", skipped, report.TypeCounts(st.Skipped))
	}
	if st.NotSelected > 0 {
		fmt.Fprintf(&b, "; left out %d commands on keys the selection does not take", st.NotSelected)
	}
	if st.Redirected > 0 {
		fmt.Fprintf(&b, "; %d commands followed the target cluster's redirections (a slot moving or moved)", st.Redirected)
	}
	if st.ReadAgain > 0 {
		fmt.Fprintf(&b, "; as --type or --max-key-bytes judges a key by what it holds, the %d keys they wrote were read again from the source", st.ReadAgain)
	}
	if n := sum(st.LeftOut); n > 0 {
		fmt.Fprintf(&b, "; left out %d reads of keys the selection does not take%s", n, report.TypeCounts(st.LeftOut))
	}
	if st.Repaired > 0 {
		fmt.Fprintf(&b, "; %d keys the target expired on its own clock, or lacked when the source renewed them, were read again from the source (%d commands on them covered by those reads)", st.Repaired, st.Covered)
	}
	if st.HeldMs > 0 {
		fmt.Fprintf(&b, "; the cutover held the source's writes %d ms (target ready after %d ms)", st.HeldMs, st.PausedMs)
	}
	if st.Rehearsals > 0 {
		fmt.Fprintf(&b, "; %d rehearsals", st.Rehearsals)
	}
	if len(st.TooBig) > 0 {
		fmt.Fprintf(&b, "; LEFT OUT as larger than --max-key-bytes: %s", strings.Join(st.TooBig, ", "))
	}
	if err != nil && a.notify {
		b.WriteString("; a sync by notifications cannot continue where it stopped: crs sync --replace starts over")
	}
	if err != nil && pos.ReplID != "" && a.checkpointed() {
		b.WriteString("; the target records where it stands: the same crs sync continues from there")
	}
	fmt.Fprintln(a.out, b.String())
}

// sum adds up the counts of m.
func sum(m map[string]int64) int64 {
	var n int64
	for _, v := range m {
		n += v
	}
	return n
}
