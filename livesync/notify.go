package livesync

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/crs-tool/crs/internal/progress"
	"github.com/crs-tool/crs/load"
	"github.com/crs-tool/crs/rdb"
	"github.com/crs-tool/crs/records"
)

// Notifications are a source's keyspace notifications (package repl's
// Subscription is one).
type Notifications interface {
	// Next returns the next notification; a lost subscription is an
	// error (notifications may have been lost).
	Next() (db int, key string, barrier bool, err error)
	// Barrier asks for a notification with barrier set, which comes
	// after every one published before it.
	Barrier() error
	Close() error
}

// ErrLostNotifications is wrapped when the subscription ended mid-sync:
// changes may have been missed, and the target may be stale.
var ErrLostNotifications = errors.New("keyspace notifications were lost")

// RunNotify syncs the target with a source that refuses replication:
// subscribed to its keyspace notifications first, it copies every key
// (copy, read with SCAN), then reads again every key notified as changed,
// until ^C or through a cutover. This converges once writes pause; it is
// not a snapshot, and a lost subscription stops it (the target may then
// be stale: crs sync --replace starts over).
func RunNotify(ctx context.Context, opts Options, copy records.Input, src Source, sub Notifications, stderr io.Writer) (err error) {
	defer sub.Close()
	defer func() { opts.Board.end(err) }()
	a := &applier{opts: opts, src: src, out: stderr, began: time.Now(), notify: true,
		changed: map[dbKey]int64{}, infos: map[string]*cmdInfo{},
		st: Stats{ByCommand: map[string]int64{}, Skipped: map[string]int64{}}}
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
	d := &dirtySet{keys: map[dbKey]struct{}{}, barrier: make(chan struct{}, 1), wake: make(chan struct{}, 1), ended: make(chan struct{})}
	go d.collect(sub)
	a.st.Phase = "copy"
	a.say("crs sync: phase 1: copying every key of %s with SCAN, while its keyspace notifications say what changes meanwhile", src.Describe())
	lo := opts.Load
	lo.Quiet = opts.Quiet || opts.JSON
	lo.Progress = opts.Progress
	lo.Counter = &progress.Counter{}
	if err := load.Run(ctx, lo, copy, stderr); err != nil {
		return fmt.Errorf("the copy: %w", err)
	}
	a.st.Loaded = lo.Counter.Done()
	a.st.Phase = "streaming"
	a.say("crs sync: phase 2: reading again every key notified as changed")
	err = a.notified(ctx, d, sub)
	a.finishWith(a.st, a.pos, "", err)
	return err
}

// dirtySet is the keys notified as changed and not read again yet.
type dirtySet struct {
	mu      sync.Mutex
	keys    map[dbKey]struct{}
	oldest  time.Time
	err     error
	barrier chan struct{}
	wake    chan struct{}
	ended   chan struct{} // closed when the subscription has ended
}

// collect adds every notified key, until the subscription ends.
func (d *dirtySet) collect(sub Notifications) {
	for {
		db, key, barrier, err := sub.Next()
		d.mu.Lock()
		switch {
		case err != nil:
			d.err = err
		case barrier:
		default:
			if len(d.keys) == 0 {
				d.oldest = time.Now()
			}
			d.keys[dbKey{db, key}] = struct{}{}
		}
		d.mu.Unlock()
		if barrier {
			d.barrier <- struct{}{}
		}
		select {
		case d.wake <- struct{}{}:
		default:
		}
		if err != nil {
			close(d.ended)
			return
		}
	}
}

// take returns the keys waiting and empties the set; the error that
// ended the subscription, if any.
func (d *dirtySet) take() (map[dbKey]struct{}, time.Duration, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	keys, err := d.keys, d.err
	var age time.Duration
	if len(keys) > 0 {
		age = time.Since(d.oldest)
	}
	d.keys = map[dbKey]struct{}{}
	return keys, age, err
}

// notified reads again, until ctx ends or a cutover completes, every key
// notified as changed.
func (a *applier) notified(ctx context.Context, d *dirtySet, sub Notifications) error {
	tick := time.NewTicker(a.opts.Every)
	defer tick.Stop()
	w := waiter{opts: a.opts, say: a.say}
	if a.opts.Cutover {
		w.ask(false)
	}
	var behind time.Duration
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-a.opts.CutoverNow:
			a.say("crs sync: cutover asked for: it begins once the target is in step")
			w.ask(false)
		case <-a.opts.Rehearse:
			a.say("crs sync: rehearsal asked for: a cutover's pause and check begin once the target is in step, then the sync goes on")
			w.ask(true)
		case <-d.wake:
			keys, age, err := d.take()
			if err != nil {
				return fmt.Errorf("%w: %w; the target may be stale: crs sync --replace starts over", ErrLostNotifications, err)
			}
			taken := time.Now()
			if err := a.reread(ctx, keys); err != nil {
				return err
			}
			// How long the oldest of these waited to be on the target.
			behind = max(behind, age+time.Since(taken))
		case <-tick.C:
			if err := a.src.Steady(ctx); err != nil {
				return fmt.Errorf("%w: %w", ErrStopped, err)
			}
			d.mu.Lock()
			waiting := len(d.keys)
			d.mu.Unlock()
			a.st.LagBytes, a.st.LagMs = int64(waiting), behind.Milliseconds()
			// In step: the changes wait less than a second (a pass over
			// the keys notified takes that long) and few enough keys
			// wait that the cutover's last pass is short.
			a.inSync = behind < time.Second && waiting <= notifyInStep
			a.st.InSync = a.inSync
			if a.inSync && !a.wasInSync {
				a.wasInSync = true
				a.say("crs sync: in sync: %d keys wait to be read again, the oldest for %d ms, %.1fs after the start", waiting, behind.Milliseconds(), time.Since(a.began).Seconds())
			}
			a.showStats(a.st)
			a.opts.Board.update([]LinkStats{{Link: "notifications", Stats: a.st}}, a.st)
			behind = 0
			rehearse, start, err := w.ready(a.st)
			if err != nil {
				return err
			}
			if !start {
				continue
			}
			done, err := a.notifyCutover(ctx, d, sub, rehearse)
			if done {
				return nil
			}
			if err = w.after(rehearse, err); err != nil {
				return err
			}
		}
	}
}

// notifyInStep is the most keys waiting to be read again for a sync by
// notifications to count as in step.
const notifyInStep = 10_000

// reread copies keys again from the source: DUMP, decoded, loaded over
// the target's; a key gone from the source is deleted from the target.
func (a *applier) reread(ctx context.Context, keys map[dbKey]struct{}) error {
	taken := make([]dbKey, 0, len(keys))
	for k := range keys {
		if _, ok := a.mapDB(k.db); ok && (!a.selectsKeys() || a.takes(k.key)) {
			taken = append(taken, k)
			a.remember(k.db, 0, k.key)
		}
	}
	return a.eachSourceBatch(ctx, taken, false, func(_, to int, part, names []string, dumps []records.Dumped, _ []int64) error {
		gone, _, err := a.writeKeys(ctx, to, names, dumps)
		if err != nil {
			return err
		}
		if !a.notify { // commands judged (see applyJudged), counted as applied
			a.st.ReadAgain += int64(len(part))
			return nil
		}
		a.st.Applied += int64(len(part))
		a.st.ByCommand["reread"] += int64(len(part) - gone)
		if gone > 0 {
			a.st.ByCommand["deleted"] += int64(gone)
		}
		return nil
	})
}

// parts are the decoder's options: records of bounded size.
func (a *applier) parts() rdb.Options {
	return rdb.Options{PartElems: a.opts.PartElems, PartBytes: a.opts.PartBytes}
}

// notifyCutover pauses the source's writes (or, where CLIENT PAUSE is
// refused, asks for the writers to be stopped and waits for the changes
// to stop), takes every notification published before the pause, reads
// those keys again and checks the target. Done, it has the source refuse
// writes and ends the pause; a rehearsal, or a check that failed, ends
// the pause and the sync goes on.
func (a *applier) notifyCutover(ctx context.Context, d *dirtySet, sub Notifications, rehearsal bool) (done bool, err error) {
	what := "cutover"
	if rehearsal {
		what = "rehearsal"
		a.st.Rehearsals++
	} else {
		a.st.Cutovers++
	}
	a.st.Phase = what
	pausedAt := time.Now()
	paused := true
	if _, err := a.src.PauseWrites(ctx, a.opts.Pause); err != nil {
		if rehearsal {
			return false, fmt.Errorf("the source's writes cannot be paused for a rehearsal: %w", err)
		}
		paused = false
		a.say("crs sync: cutover: the source's writes cannot be paused (%v): stop the writers now; the cutover goes on once no change has come for 2s", err)
		if err := a.waitQuiet(ctx, d); err != nil {
			return false, err
		}
		pausedAt = time.Now()
	}
	deadline := pausedAt.Add(a.opts.Pause)
	defer func() {
		if done {
			return
		}
		a.st.Phase = "streaming"
		if !paused {
			return
		}
		if uerr := a.src.Unpause(context.WithoutCancel(ctx)); uerr == nil && err != nil && !errors.Is(err, ErrDifferent) {
			err = fmt.Errorf("%w (the %s ended the pause: the source takes writes again)", err, what)
		}
	}()
	if paused {
		a.say("crs sync: %s: the source's writes are paused (for %s at most)", what, a.opts.Pause)
	}
	// Every notification published before the pause is in the set once
	// the barrier's answer comes.
	if err := sub.Barrier(); err != nil {
		return false, err
	}
	select {
	case <-ctx.Done():
		return false, ctx.Err()
	case <-d.barrier:
	case <-d.ended:
	}
	keys, _, err := d.take()
	if err != nil {
		return false, fmt.Errorf("%w: %w", ErrLostNotifications, err)
	}
	if err := a.reread(ctx, keys); err != nil {
		return false, err
	}
	caughtUp := time.Since(pausedAt)
	if err := a.check(ctx, a.changed); err != nil {
		return false, err
	}
	if a.opts.VerifyAll != nil {
		if err := a.opts.VerifyAll(ctx); err != nil {
			return false, err
		}
	}
	ready := time.Since(pausedAt)
	if paused && time.Now().After(deadline) {
		return false, fmt.Errorf("the pause of %s ran out during the check (it took %s), so writes may have reached the source after it: give a longer --pause", a.opts.Pause, ready.Round(time.Millisecond))
	}
	if rehearsal {
		a.say("crs sync: rehearsal passed: the target caught up %d ms after the pause began and was checked after %d ms (%d keys compared, 0 differ%s); the pause is over and the sync goes on", caughtUp.Milliseconds(), ready.Milliseconds(), a.st.Verified, a.countsSaid())
		return false, nil
	}
	done = true
	a.st.PausedMs = ready.Milliseconds()
	a.st.Phase = "done"
	a.say("crs sync: cutover done: the target caught up %d ms after the pause began and was checked and ready after %d ms (%d keys changed during the sync compared, 0 differ%s)", caughtUp.Milliseconds(), ready.Milliseconds(), a.st.Verified, a.countsSaid())
	if paused {
		a.st.HeldMs = a.release(ctx, pausedAt, deadline)
	} else {
		a.say("crs sync: point the clients at the target now")
	}
	return true, nil
}

// waitQuiet waits until no change has been notified for 2s, reading
// again those that are.
func (a *applier) waitQuiet(ctx context.Context, d *dirtySet) error {
	quiet := time.NewTimer(2 * time.Second)
	defer quiet.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-quiet.C:
			return nil
		case <-d.wake:
			keys, _, err := d.take()
			if err != nil {
				return fmt.Errorf("%w: %w", ErrLostNotifications, err)
			}
			if len(keys) > 0 {
				quiet.Reset(2 * time.Second)
			}
			if err := a.reread(ctx, keys); err != nil {
				return err
			}
		}
	}
}
