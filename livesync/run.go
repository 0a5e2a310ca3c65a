package livesync

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/crs-tool/crs/internal/progress"
	"github.com/crs-tool/crs/internal/redisconn"
	"github.com/crs-tool/crs/internal/report"
	"github.com/crs-tool/crs/load"
	"github.com/crs-tool/crs/records"
)

// Run syncs the target with the source: it loads snapshot (nil when the
// link continues from a position the target holds), then applies the
// link's commands from start until ^C, or through a cutover. It prints
// progress and a summary to stderr.
func Run(ctx context.Context, opts Options, snapshot records.Input, start Position, link Link, src Source, stderr io.Writer) (err error) {
	defer link.Close()
	// A Next waiting for the source ends when ctx does.
	defer context.AfterFunc(ctx, func() { link.Close() })()
	a := &applier{opts: opts, link: link, src: src, out: stderr, pos: start, began: time.Now(),
		changed: map[dbKey]struct{}{}, infos: map[string]*cmdInfo{},
		st: Stats{ByCommand: map[string]int64{}, Skipped: map[string]int64{}, Resumed: snapshot == nil}}
	a.mode = progress.Resolve(opts.Progress, stderr)
	if opts.Quiet {
		a.mode = progress.None
	}
	if a.t, err = openTarget(ctx, opts.Load.Conn); err != nil {
		return err
	}
	defer a.t.close()
	if err := a.probeTarget(ctx); err != nil {
		return err
	}
	if snapshot != nil {
		a.st.Phase = "snapshot"
		a.say("crs sync: phase 1: loading the snapshot of %s (%s) at offset %d", link.Name(), src.Describe(), start.Offset)
		lo := opts.Load
		lo.Quiet = opts.Quiet || opts.JSON
		lo.Progress = opts.Progress
		lo.Counter = &progress.Counter{}
		if err := load.Run(ctx, lo, snapshot, stderr); err != nil {
			return fmt.Errorf("the snapshot: %w", err)
		}
		a.st.Loaded = lo.Counter.Done()
		if err := a.writeCheckpoint(ctx); err != nil {
			return err
		}
	} else {
		a.say("crs sync: continuing from offset %d of %s (%s), as the target recorded", start.Offset, link.Name(), src.Describe())
	}
	a.st.Phase = "streaming"
	a.say("crs sync: phase 2: applying the source's writes as they come")
	err = a.stream(ctx)
	a.finish(err)
	return err
}

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

	pos       Position // what the target holds
	st        Stats
	began     time.Time
	inSync    bool // at the last progress line
	wasInSync bool
	infos     map[string]*cmdInfo
	changed   map[dbKey]struct{}
	many      bool // more keys changed than are remembered
	last      struct {
		at      time.Time
		applied int64
	}
}

// stream applies commands until the link fails, ctx ends or a cutover
// completes.
func (a *applier) stream(ctx context.Context) error {
	cmds, errc := a.reader(ctx)
	tick := time.NewTicker(a.opts.Every)
	defer tick.Stop()
	cutover := a.opts.Cutover
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case cmd, ok := <-cmds:
			if !ok {
				return fmt.Errorf("%s: %w", a.link.Name(), <-errc)
			}
			batch, err := a.gather(ctx, cmd, cmds)
			if err != nil {
				return err
			}
			if err := a.apply(ctx, batch); err != nil {
				return err
			}
		case <-a.opts.CutoverNow:
			a.say("crs sync: cutover asked for: it begins once the target is in step")
			cutover = true
		case <-tick.C:
			if err := a.progress(ctx, len(cmds)); err != nil {
				return err
			}
			if cutover && a.inSync && len(cmds) == 0 {
				return a.cutover(ctx, cmds, errc)
			}
		}
	}
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

// progress prints where the sync is, and notes the moment it is in step.
func (a *applier) progress(ctx context.Context, queued int) error {
	if err := a.src.Steady(ctx); err != nil {
		return fmt.Errorf("%w: %w", ErrStopped, err)
	}
	off, err := a.src.Offset(ctx)
	if err != nil {
		return err
	}
	now := time.Now()
	a.st.SourceOffset, a.st.Offset = off, a.pos.Offset
	a.st.LagBytes = max(off-a.pos.Offset, 0)
	a.st.LagMs = a.link.Behind().Milliseconds()
	if !a.last.at.IsZero() {
		a.st.PerSecond = float64(a.st.Applied-a.last.applied) / now.Sub(a.last.at).Seconds()
	}
	a.last.at, a.last.applied = now, a.st.Applied
	// In step: what the link has received is applied, or arrived less
	// than inStep ago; what the source's offset is ahead by is on the
	// wire.
	behind := a.link.Behind()
	a.inSync = behind < inStep && a.st.LagBytes < 1<<20
	a.st.InSync = a.inSync
	if a.inSync && !a.wasInSync {
		a.wasInSync = true
		a.say("crs sync: in sync: lag %d ms at offset %d (%d bytes on the wire), %.1fs after the start", behind.Milliseconds(), a.pos.Offset, a.st.LagBytes, time.Since(a.began).Seconds())
	}
	a.show()
	return nil
}

// show draws the progress line.
func (a *applier) show() {
	switch {
	case a.opts.JSON:
		report.JSON(a.out, "crs sync", a.st, nil)
	case a.mode == progress.Bar:
		fmt.Fprint(a.out, "\r\033[K"+a.line())
	case a.mode == progress.Plain:
		fmt.Fprintln(a.out, a.line())
	}
}

func (a *applier) line() string {
	if a.notify {
		return fmt.Sprintf("crs sync: %s: %d keys read again as notified, %d waiting, the oldest for %d ms", a.st.Phase, a.st.Applied, a.st.LagBytes, a.st.LagMs)
	}
	return fmt.Sprintf("crs sync: %s: %d commands applied (%.0f/s), lag %d bytes, %d ms; offset %d", a.st.Phase, a.st.Applied, a.st.PerSecond, a.st.LagBytes, a.st.LagMs, a.pos.Offset)
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

// finish prints the summary.
func (a *applier) finish(err error) {
	a.st.Offset = a.pos.Offset
	if a.opts.JSON {
		report.JSON(a.out, "crs sync", a.st, err)
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
		fmt.Fprintf(&b, "read %d keys again as notified changed%s", a.st.Applied, report.TypeCounts(a.st.ByCommand))
	} else {
		fmt.Fprintf(&b, "applied %d commands%s in %d transactions, up to offset %d", a.st.Applied, report.TypeCounts(a.st.ByCommand), a.st.Transactions, a.pos.Offset)
	}
	if a.st.Loaded > 0 {
		fmt.Fprintf(&b, ", after a snapshot of %d keys", a.st.Loaded)
	}
	var skipped int64
	for _, n := range a.st.Skipped {
		skipped += n
	}
	if skipped > 0 {
		fmt.Fprintf(&b, "; SKIPPED %d commands the target lacks (--skip-unsupported)%s", skipped, report.TypeCounts(a.st.Skipped))
	}
	if err != nil && a.notify {
		b.WriteString("; a sync by notifications cannot continue where it stopped: crs sync --replace starts over")
	}
	if err != nil && a.pos.ReplID != "" {
		b.WriteString("; the target records where it stands: the same crs sync continues from there")
	}
	fmt.Fprintln(a.out, b.String())
}
