package livesync

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/crs-tool/crs/internal/progress"
	"github.com/crs-tool/crs/load"
	"github.com/crs-tool/crs/records"
)

// Shard is one replication link of a sync: the source's, or one master's
// of a cluster source, each applied on its own, in parallel.
type Shard struct {
	Link Link
	// Snapshot is the link's snapshot, nil when it continues from a
	// position the target holds.
	Snapshot records.Input
	Start    Position
	// Key is the hash on the target that holds the link's position
	// (CheckpointKey for one server; one per master of a cluster).
	Key string
	// Source names the link's server to Source's Offsets and
	// PauseWrites ("" for one server, a master's address in a cluster).
	Source string
}

// Run syncs the target with the source: it loads each shard's snapshot,
// then applies the links' commands, each link on its own and all at once,
// until ^C or through a cutover, which pauses every master of the source
// and waits for each link to reach that master's offset. It prints
// progress and a summary to stderr.
func Run(ctx context.Context, opts Options, shards []Shard, src Source, stderr io.Writer) (err error) {
	defer func() { opts.Board.end(err) }()
	c := &controller{opts: opts, src: src, out: stderr, began: time.Now()}
	c.mode = progress.Resolve(opts.Progress, stderr)
	if opts.Quiet {
		c.mode = progress.None
	}
	for _, sh := range shards {
		defer sh.Link.Close()
		// A Next waiting for the source ends when ctx does.
		defer context.AfterFunc(ctx, func() { sh.Link.Close() })()
		a := &applier{opts: opts, link: sh.Link, src: src, out: stderr, pos: sh.Start, began: c.began,
			key: sh.Key, srcKey: sh.Source, reach: make(chan int64, 1), reached: make(chan error, 1), resume: make(chan struct{}, 1),
			changed: map[dbKey]int64{}, skip: map[dbKey]int64{}, infos: map[string]*cmdInfo{}, mode: c.mode,
			st: Stats{ByCommand: map[string]int64{}, Skipped: map[string]int64{}, Resumed: sh.Snapshot == nil}}
		if a.t, err = openTarget(ctx, opts.Load.Conn); err != nil {
			return err
		}
		defer a.t.close()
		if err := a.probeTarget(ctx); err != nil {
			return err
		}
		if a.st.Resumed {
			if err := a.readClaimed(ctx); err != nil {
				return err
			}
		}
		c.shards = append(c.shards, a)
	}
	c.a = c.shards[0]
	watch, why, err := watchExpiries(ctx, c.a.t, c.route)
	switch {
	case err != nil:
		return err
	case why != nil:
		c.a.say("crs sync: BEWARE: the target's keyspace notifications cannot be turned on (%v): a key the target expires on its own clock while crs lags behind the source, where the source keeps it alive or writes it just before it expires, is not read again, and only the cutover's check finds it", why)
	default:
		defer watch.close(context.WithoutCancel(ctx))
		c.watch = watch
		for _, l := range watch.said {
			if l != "" {
				c.a.say("crs sync: %s", l)
			}
		}
		for i, a := range c.shards {
			a.watch, a.shard = watch, i
		}
	}
	for i, sh := range shards {
		if err := c.shards[i].start(ctx, sh, i > 0); err != nil {
			return err
		}
	}
	c.a.say("crs sync: phase 2: applying the source's writes as they come")
	err = c.run(ctx)
	c.finish(err)
	return err
}

// start loads the shard's snapshot (into a target holding the earlier
// shards' keys, after), and records its position.
func (a *applier) start(ctx context.Context, sh Shard, after bool) error {
	if sh.Snapshot == nil {
		a.say("crs sync: continuing from offset %d of %s (%s), as the target recorded", sh.Start.Offset, sh.Link.Name(), a.src.Describe())
		return nil
	}
	a.st.Phase = "snapshot"
	a.say("crs sync: phase 1: loading the snapshot of %s (%s) at offset %d", sh.Link.Name(), a.src.Describe(), sh.Start.Offset)
	lo := a.opts.Load
	lo.Quiet = a.opts.Quiet || a.opts.JSON
	lo.Counter = &progress.Counter{}
	// A key already expired by the target's clock is left out; the source
	// may have renewed it since its snapshot (see repair).
	lo.Expired = func(db int, key string) { a.loadExpired = append(a.loadExpired, dbKey{db, key}) }
	// A cluster's masters hold different keys: the first load checks that
	// the target is empty, the later ones add to it.
	lo.Replace = lo.Replace || after
	if err := load.Run(ctx, lo, sh.Snapshot, a.out); err != nil {
		return fmt.Errorf("the snapshot of %s: %w", sh.Link.Name(), err)
	}
	a.st.Loaded = lo.Counter.Done()
	return a.writeCheckpoint(ctx)
}

// controller runs the shards' appliers, shows their progress as one, and
// cuts over.
type controller struct {
	opts      Options
	src       Source
	out       io.Writer
	mode      string
	began     time.Time
	shards    []*applier
	a         *applier // the first shard's, which speaks and checks for all
	watch     *expiryWatch
	wasInSync bool
	pausedMs  int64
	heldMs    int64
	phase     string
}

// run applies the links until one fails, ctx ends or a cutover completes.
func (c *controller) run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	g, gctx := errgroup.WithContext(ctx)
	for _, a := range c.shards {
		a.st.Phase = "streaming"
		g.Go(func() error { return a.stream(gctx) })
	}
	err := c.control(gctx)
	cancel()
	gerr := g.Wait()
	switch {
	case err == nil:
		return nil // the cutover is done; the appliers were stopped
	case gerr != nil && gctx.Err() != nil && ctx.Err() == nil:
		return gerr
	case gerr != nil && err == gctx.Err():
		return gerr
	}
	return err
}

// control prints progress each tick and cuts over (or rehearses a
// cutover) when asked, once every link is in step. A cutover whose check
// fails ends its pause and the sync goes on, to try again once in step,
// CutoverAttempts times in all.
func (c *controller) control(ctx context.Context) error {
	tick := time.NewTicker(c.opts.Every)
	defer tick.Stop()
	w := waiter{opts: c.opts, say: c.a.say}
	if c.opts.Cutover {
		w.ask(false)
	}
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-c.opts.CutoverNow:
			c.a.say("crs sync: cutover asked for: it begins once the target is in step")
			w.ask(false)
		case <-c.opts.Rehearse:
			c.a.say("crs sync: rehearsal asked for: a cutover's pause and check begin once the target is in step, then the sync goes on")
			w.ask(true)
		case <-tick.C:
			st := c.stats()
			c.a.showStats(st)
			c.publish(st)
			if st.InSync && !c.wasInSync {
				c.wasInSync = true
				c.a.say("crs sync: in sync: lag %d ms at offset %d (%d bytes on the wire), %.1fs after the start", st.LagMs, st.Offset, st.LagBytes, time.Since(c.began).Seconds())
			}
			rehearse, start, err := w.ready(st)
			if err != nil {
				return err
			}
			if !start {
				continue
			}
			done, err := c.cutover(ctx, rehearse)
			c.publish(c.stats())
			if done {
				return nil
			}
			if err = w.after(rehearse, err); err != nil {
				return err
			}
		}
	}
}

// waiter keeps what was asked of the cutover: whether one is asked for
// (or a rehearsal), since when, and how many failed.
type waiter struct {
	opts      Options
	say       func(format string, args ...any)
	asked     time.Time // when a cutover was asked for (zero: none)
	rehearse  bool      // a rehearsal is asked for
	failed    int
	lastWords time.Time
}

func (w *waiter) ask(rehearsal bool) {
	if rehearsal {
		w.rehearse = true
	} else if w.asked.IsZero() {
		w.asked = time.Now()
	}
}

// ready reports whether a cutover (or a rehearsal) begins now, the target
// being in step or not (st), and fails once a cutover has waited past
// CutoverTimeout.
func (w *waiter) ready(st Stats) (rehearse, now bool, err error) {
	cutover := !w.asked.IsZero()
	switch {
	case !cutover && !w.rehearse:
		return false, false, nil
	case st.InSync:
		return !cutover, true, nil
	case cutover && w.opts.CutoverTimeout > 0 && time.Since(w.asked) > w.opts.CutoverTimeout:
		return false, false, fmt.Errorf("%w: the cutover waited %s (--cutover-timeout) for the target to get in step, and it did not: the lag is %d bytes, %d ms (writes outpace the sync, or a big key is read again and again); the target records where it stands", ErrStopped, w.opts.CutoverTimeout, st.LagBytes, st.LagMs)
	case time.Since(w.lastWords) >= 10*time.Second && time.Since(w.asked) >= 10*time.Second:
		w.lastWords = time.Now()
		w.say("crs sync: the cutover waits for the target to get in step: lag %d bytes, %d ms (it gives up at --cutover-timeout %s)", st.LagBytes, st.LagMs, w.opts.CutoverTimeout)
	}
	return false, false, nil
}

// after takes the outcome of a rehearsal or a cutover not done: a check
// that failed is counted and the sync goes on, up to CutoverAttempts.
func (w *waiter) after(rehearsal bool, err error) error {
	if rehearsal {
		w.rehearse = false
	}
	switch {
	case err == nil:
		return nil
	case !errors.Is(err, ErrDifferent):
		return err
	case rehearsal:
		w.say("crs sync: rehearsal FAILED its check: %v; the sync goes on", err)
		return nil
	}
	w.failed++
	if w.failed >= max(w.opts.CutoverAttempts, 1) {
		return fmt.Errorf("%w; %d cutovers failed their check (--cutover-attempts)", err, w.failed)
	}
	w.say("crs sync: cutover %d of at most %d failed its check: %v; the sync goes on and tries again once in step", w.failed, max(w.opts.CutoverAttempts, 1), err)
	return nil
}

// route names the shard whose link carries key of the target (-1: none).
func (c *controller) route(k dbKey) int {
	if len(c.shards) == 1 {
		return 0
	}
	for _, key := range c.opts.Reshape.Sources(k.key) {
		owner := c.src.Owner(key)
		for i, a := range c.shards {
			if a.srcKey == owner {
				return i
			}
		}
	}
	return -1
}

// publish puts each link's progress and st, the sum, on the board.
func (c *controller) publish(st Stats) {
	if c.opts.Board == nil {
		return
	}
	links := make([]LinkStats, len(c.shards))
	for i, a := range c.shards {
		a.mu.Lock()
		name := a.srcKey // a cluster's master; one server's link is named by it
		if name == "" {
			name = a.link.Name()
		}
		links[i] = LinkStats{Link: name, Stats: a.shown}
		a.mu.Unlock()
	}
	c.opts.Board.update(links, st)
}

// stats adds up the shards' progress.
func (c *controller) stats() Stats {
	st := Stats{Phase: "streaming", InSync: true, ByCommand: map[string]int64{}, Skipped: map[string]int64{}}
	for _, a := range c.shards {
		a.mu.Lock()
		s := a.shown
		a.mu.Unlock()
		st.InSync = st.InSync && s.InSync
		st.Loaded += s.Loaded
		st.Applied += s.Applied
		st.Transactions += s.Transactions
		st.NotSelected += s.NotSelected
		st.ReadAgain += s.ReadAgain
		st.Repaired += s.Repaired
		st.Compared += s.Compared
		st.Expired += s.Expired
		st.Unrepaired += s.Unrepaired
		st.Covered += s.Covered
		st.Redirected += s.Redirected
		st.PerSecond += s.PerSecond
		st.LagBytes += s.LagBytes
		st.LagMs = max(st.LagMs, s.LagMs)
		st.Offset, st.SourceOffset = s.Offset, s.SourceOffset
		st.Resumed = st.Resumed || s.Resumed
		for k, v := range s.ByCommand {
			st.ByCommand[k] += v
		}
		for k, v := range s.Skipped {
			st.Skipped[k] += v
		}
		for k, v := range s.LeftOut {
			if st.LeftOut == nil {
				st.LeftOut = map[string]int64{}
			}
			st.LeftOut[k] += v
		}
		st.TooBig = append(st.TooBig, s.TooBig...)
	}
	if len(c.shards) > 1 {
		st.Offset, st.SourceOffset = 0, 0
	}
	if c.phase != "" {
		st.Phase = c.phase
	}
	st.PausedMs, st.HeldMs = c.pausedMs, c.heldMs
	st.Cutovers, st.Rehearsals = c.a.st.Cutovers, c.a.st.Rehearsals
	st.Verified, st.Differences, st.Expiring = c.a.st.Verified, c.a.st.Differences, c.a.st.Expiring
	return st
}

// publish keeps a copy of the applier's counts for the controller.
func (a *applier) publish() {
	s := a.st
	s.ByCommand, s.Skipped = maps.Clone(a.st.ByCommand), maps.Clone(a.st.Skipped)
	s.LeftOut, s.TooBig = maps.Clone(a.st.LeftOut), slices.Clone(a.st.TooBig)
	s.Offset = a.pos.Offset
	a.mu.Lock()
	a.shown = s
	a.mu.Unlock()
}

// cutover pauses the source's writes, has each link applied up to its
// master's offset at the pause and checks the target. Done, it removes
// the positions, has the source refuse writes from then on and ends the
// pause (done is true). A rehearsal, or a check that failed, ends the
// pause and lets the links go on.
func (c *controller) cutover(ctx context.Context, rehearsal bool) (done bool, err error) {
	c.phase = "cutover"
	what := "cutover"
	if rehearsal {
		what, c.phase = "rehearsal", "rehearsal"
		c.a.st.Rehearsals++
	} else {
		c.a.st.Cutovers++
	}
	pausedAt := time.Now()
	offsets, err := c.src.PauseWrites(ctx, c.opts.Pause)
	if err != nil {
		return false, err
	}
	deadline := pausedAt.Add(c.opts.Pause)
	reached := 0
	defer func() {
		if done {
			return
		}
		c.phase = "streaming"
		if uerr := c.src.Unpause(context.WithoutCancel(ctx)); uerr == nil && err != nil && !errors.Is(err, ErrDifferent) {
			err = fmt.Errorf("%w (the %s ended the pause: the source takes writes again)", err, what)
		}
		for _, a := range c.shards[:reached] {
			a.resume <- struct{}{}
		}
	}()
	c.a.say("crs sync: %s: the source's writes are paused (for %s at most); applying up to its offset %s", what, c.opts.Pause, describeOffsets(offsets))
	for _, a := range c.shards {
		a.reach <- offsets[a.srcKey]
	}
	timeout := time.NewTimer(time.Until(deadline))
	defer timeout.Stop()
	for _, a := range c.shards {
		select {
		case <-ctx.Done():
			return false, ctx.Err()
		case <-timeout.C:
			return false, fmt.Errorf("the pause of %s ran out before the target caught up; give a longer --pause", c.opts.Pause)
		case err := <-a.reached:
			if err != nil {
				return false, err
			}
			reached++
		}
	}
	// Keys the target expired on its own clock up to now are read again.
	if c.watch != nil {
		if err := c.watch.barrier(ctx); err != nil {
			return false, err
		}
		for _, a := range c.shards {
			if err := a.repairExpired(ctx); err != nil {
				return false, err
			}
		}
	}
	caughtUp := time.Since(pausedAt)
	// One check for all: every key any link wrote and did not find equal
	// while streaming.
	changed := c.a.changed
	if len(c.shards) > 1 {
		changed = map[dbKey]int64{}
		for _, a := range c.shards {
			c.a.many = c.a.many || a.many
			maps.Copy(changed, a.changed)
		}
	}
	c.a.checkpoints = len(c.shards)
	if err := c.a.check(ctx, changed); err != nil {
		return false, err
	}
	if c.opts.VerifyAll != nil {
		if err := c.opts.VerifyAll(ctx); err != nil {
			return false, err
		}
	}
	ready := time.Since(pausedAt)
	if time.Now().After(deadline) {
		return false, fmt.Errorf("the pause of %s ran out during the check (it took %s), so writes may have reached the source after it: give a longer --pause", c.opts.Pause, ready.Round(time.Millisecond))
	}
	if rehearsal {
		// Every key was equal as of the pause: those changed after it
		// are what the next check compares.
		for _, a := range c.shards {
			clear(a.changed)
		}
		c.a.say("crs sync: rehearsal passed: the target caught up %d ms after the pause began and was checked after %d ms (%d keys compared, 0 differ%s); the pause is over and the sync goes on", caughtUp.Milliseconds(), ready.Milliseconds(), c.a.st.Verified, c.a.countsSaid())
		return false, nil
	}
	for _, a := range c.shards {
		if err := a.dropCheckpoint(ctx); err != nil {
			return false, err
		}
	}
	done = true
	c.pausedMs, c.phase = ready.Milliseconds(), "done"
	compared := int64(0)
	for _, a := range c.shards {
		compared += a.st.Compared
	}
	c.a.say("crs sync: cutover done at offset %s: the target caught up %d ms after the pause began and was checked and ready after %d ms (of the keys changed during the sync, %d compared in the pause and %d while streaming, 0 differ%s)",
		describeOffsets(offsets), caughtUp.Milliseconds(), ready.Milliseconds(), c.a.st.Verified, compared, c.a.countsSaid())
	c.heldMs = c.a.release(ctx, pausedAt, deadline)
	return true, nil
}

// release ends the cutover's pause once the target is ready: the source
// first made to refuse every write, so that none it still gets (those the
// pause holds included) is taken and left behind; where it cannot be (a
// managed service refuses CONFIG), the pause runs its course. It returns
// how long the writes were held.
func (a *applier) release(ctx context.Context, pausedAt, deadline time.Time) int64 {
	undo, err := a.src.RefuseWrites(ctx)
	if err != nil {
		a.say("crs sync: the source cannot be made to refuse writes (%v): its writes stay paused until %s, %s after the pause began; point the clients at the target before then: a write that reaches the source after it is not carried to the target", err, deadline.Format("15:04:05.000"), a.opts.Pause)
		return deadline.Sub(pausedAt).Milliseconds()
	}
	uerr := a.src.Unpause(ctx)
	held := time.Since(pausedAt)
	if uerr != nil {
		a.say("crs sync: the pause could not be ended (%v): it runs out by itself at %s", uerr, deadline.Format("15:04:05.000"))
		held = deadline.Sub(pausedAt)
	}
	a.say("crs sync: the source's writes were held %d ms; it now refuses every write (NOREPLICAS), those the pause held included: point the clients at the target now (to let the old source take writes again: %s)", held.Milliseconds(), undo)
	return held.Milliseconds()
}

// describeOffsets renders the offsets of one server ("123") or of a
// cluster's masters ("a:1 123, b:2 456").
func describeOffsets(offsets map[string]int64) string {
	if len(offsets) == 1 {
		for _, v := range offsets {
			return fmt.Sprint(v)
		}
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(offsets)) {
		parts = append(parts, fmt.Sprintf("%s %d", k, offsets[k]))
	}
	return strings.Join(parts, ", ")
}

// catchUp applies the stream until the position reaches until.
func (a *applier) catchUp(ctx context.Context, until int64, cmds <-chan *records.Command, errc <-chan error) error {
	for a.pos.Offset < until {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case cmd, ok := <-cmds:
			if err := a.received(ctx, cmd, ok, cmds, errc); err != nil {
				return err
			}
		}
	}
	a.publish()
	return nil
}

// finish prints the summary of all shards.
func (c *controller) finish(err error) {
	for _, a := range c.shards {
		a.publish()
	}
	st := c.stats()
	offsets := map[string]int64{}
	for _, a := range c.shards {
		offsets[a.srcKey] = a.pos.Offset
	}
	c.a.finishWith(st, Position{ReplID: c.a.pos.ReplID, Offset: st.Offset}, describeOffsets(offsets), err)
}
