package target

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/crs-tool/crs/format"
	"github.com/crs-tool/crs/internal/redisconn"
	"github.com/crs-tool/crs/internal/resp"
)

// loadingGroup is a consumer group crsload creates so that a stream
// exists from its first part on (a stream with no entries would not exist
// otherwise), and destroys after the last part.
const loadingGroup = "\x00crsload\x00"

// placeholderField marks the entries crsload adds, and deletes again, to
// restore pending entries whose messages were deleted on the source.
const placeholderField = "\x00crsload-deleted\x00"

// A Writer writes records to one server of a target, a pipeline at a
// time, on its own connections (one per database): each record by the
// commands of its type (or one RESTORE of a payload it encodes), a key in
// parts part by part, its expiry after its last part. A lost connection
// is retried with back-off; a cluster's MOVED and ASK are followed. The
// loader runs several on each server; crs sync's repairs go through them
// too.
type Writer struct {
	// line is the last line up to which every record this writer was
	// given is written, its keys whole (the checkpoint's).
	line     *atomic.Int64
	keyFirst int // the line of the first part of the key in progress
	conn     redisconn.Options
	tgt      Target
	srv      Server
	o        WriterOptions
	st       *WriteStats
	conns    map[connKey]*resp.Conn
	// asking makes begin send ASKING before each command: the plans are
	// going to the node a slot is being migrated to (an ASK redirection).
	asking bool
	// open is the key whose later parts are still to come, if any.
	open *keyState
	// sent describes each command of the pipeline being built.
	sent []sentCmd
}

// NewWriter returns a writer to node (one of t's Nodes), a server srv
// describes. line is where it keeps the line up to which every record it
// was given is written, its keys whole; it counts what it writes in st.
func NewWriter(t Target, node redisconn.Options, srv Server, o WriterOptions, line *atomic.Int64, st *WriteStats) *Writer {
	if st.ByType == nil {
		st.ByType = map[string]int64{}
	}
	return &Writer{line: line, conn: node, tgt: t, srv: srv, o: o, st: st}
}

// sentCmd is one command in a pipeline: its name and the plan it writes.
type sentCmd struct {
	name string
	plan int32
	kind int8
}

const (
	cmdWrite   = iota
	cmdDel     // DEL before a replaced key
	cmdExists  // EXISTS for --skip-existing
	cmdRestore // RESTORE of a DUMP payload
	cmdEncoded // RESTORE of a payload crs encoded
	cmdRedo    // DEL before a key is sent again after a lost connection
	cmdAsking  // ASKING before a command sent after an ASK redirection
	cmdWait    // WAIT for a replica, on a Sentinel-managed master
)

// keyState is what a Writer remembers of a key between its parts.
type keyState struct {
	skip         bool              // left alone (--skip-existing)
	placeholders []string          // stream entries to delete after the last part, after a real one
	lead         int64             // stream placeholders before the first real entry, trimmed after the last part
	entries      int64             // a stream's real entries written
	vset         *format.VectorSet // a vector set's parameters, from its first part
}

func (w *Writer) close() {
	for _, c := range w.conns {
		c.Close()
	}
}

// Run writes the batches that ch brings until it is closed or group is
// done (another writer failed). Writes run under ctx, the caller's own: a
// batch under way when another writer fails is finished and its replies
// read, so that the summary counts every key written; an interrupt (ctx
// done) stops it at once.
func (w *Writer) Run(ctx, group context.Context, ch <-chan Item) error {
	defer w.close()
	limit := max(w.o.Pipeline, 1)
	batch := make([]Item, 0, limit)
	for it := range ch {
		if err := group.Err(); err != nil {
			return err
		}
		batch = append(batch[:0], it)
		// Take whatever else is already waiting, up to the limit.
	fill:
		for len(batch) < limit {
			select {
			case it, ok := <-ch:
				if !ok {
					break fill
				}
				batch = append(batch, it)
			default:
				break fill
			}
		}
		err := w.flush(ctx, batch)
		var held, done int64
		for _, it := range batch {
			held += it.Size
			if it.Last {
				done++
			}
			if err == nil {
				if it.Rec.Part <= 1 {
					w.keyFirst = it.Line
				}
				if it.Last {
					w.line.Store(int64(it.Line)) // every key up to here is whole
				} else if w.line.Load() < int64(w.keyFirst-1) {
					w.line.Store(int64(w.keyFirst - 1))
				}
			}
		}
		if w.o.Written != nil {
			w.o.Written(done)
		}
		if w.o.InFlight != nil {
			w.o.InFlight.Release(held)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// flush writes a batch, one pipeline per run of records for one database.
func (w *Writer) flush(ctx context.Context, batch []Item) error {
	for len(batch) > 0 {
		db := batch[0].DB
		n := 1
		for n < len(batch) && batch[n].DB == db {
			n++
		}
		if err := w.writeRetrying(ctx, db, batch[:n]); err != nil {
			return err
		}
		batch = batch[n:]
	}
	return nil
}

// connError marks a failure of the connection (the server went away, the
// network dropped), which may pass; the server's own refusals do not.
type connError struct{ error }

func (e connError) Unwrap() error { return e.error }

// dialError is a failure to connect as writeRetrying sees it: one to
// retry, unless the server refused what no retry changes.
func dialError(err error) error {
	var f final
	if errors.As(err, &f) {
		return err
	}
	return connError{err}
}

// writeRetrying writes items, and when the connection fails, reconnects
// and sends them again with backoff for up to RetryFor. A resend rewrites
// each whole key (or first part) from scratch, after a DEL; a batch that
// holds a later part of a list, string or stream cannot be sent twice
// without doubling it, so that fails at once, saying how to finish.
func (w *Writer) writeRetrying(ctx context.Context, db int, items []Item) error {
	open := w.open
	plans, err := w.plan(ctx, db, items)
	deadline := time.Now().Add(w.o.RetryFor)
	backoff := 100 * time.Millisecond
	for attempt := 0; ; attempt++ {
		if err == nil {
			err = w.send(ctx, db, plans, attempt > 0 || redo(plans))
		}
		var ce connError
		if err == nil || !errors.As(err, &ce) {
			return err
		}
		// The connection failed: what it confirmed is written, and is
		// counted if the batch is not sent again.
		if it, ok := notResendable(plans); ok && plans != nil {
			w.tally(plans)
			return fmt.Errorf("%w; it was writing line %d, a later part of key %q, which cannot be sent twice: load the dump again with --replace", err, it.Line, it.Rec.Key)
		}
		if time.Now().Add(backoff).After(deadline) {
			w.tally(plans)
			return fmt.Errorf("%w (gave up after retrying for %s)", err, w.o.RetryFor)
		}
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
			w.tally(plans)
			return ctx.Err()
		}
		backoff = min(2*backoff, 2*time.Second)
		w.st.Retries++
		err = nil
		if plans == nil { // the EXISTS round trip failed: plan again
			w.open = open
			plans, err = w.plan(ctx, db, items)
		}
	}
}

// notResendable returns a record whose commands would double if sent twice.
func notResendable(plans []planned) (Item, bool) {
	for _, pl := range plans {
		r := pl.it.Rec
		if r.Part > 1 && format.PartsAppend(r.Type) {
			return pl.it, true
		}
	}
	return Item{}, false
}

// planned is one Item on its way into a pipeline.
type planned struct {
	it      Item
	state   *keyState
	failed  bool // the target refused its DUMP payload (--skip-unsupported)
	existed bool // DEL found it (--replace)
	// cmds counts the commands sent for it in the last attempt, replies
	// the replies read back; refused is set by an error reply. Only a
	// plan whose every command was answered without one is counted, so
	// that a summary after a failure says what was written.
	cmds, replies int
	refused       bool
	encoded       bool // written as RESTORE of a payload crs encoded
	// redirect is the node a cluster sent the key to (MOVED, or ASK with
	// ask set): none of its commands ran where they were sent.
	redirect string
	ask      bool
}

// tally counts the plans of the last attempt that the target confirmed.
func (w *Writer) tally(plans []planned) {
	for i := range plans {
		pl := &plans[i]
		if pl.replies < pl.cmds || pl.cmds == 0 || pl.refused {
			continue
		}
		switch {
		case pl.failed:
			w.st.Unsupported++
			continue
		case pl.existed:
			w.st.Replaced++
		}
		if pl.it.Last {
			if pl.encoded {
				w.st.Restored++
			}
			w.st.Keys++
			w.st.ByType[pl.it.Rec.Type]++
		}
	}
}

// begin starts a command for plan p.
func (w *Writer) begin(c *resp.Conn, p int, kind int8, name string, args int) *resp.Conn {
	if w.asking {
		w.sent = append(w.sent, sentCmd{name: "ASKING", plan: int32(p), kind: cmdAsking})
		c.Begin("ASKING", 0)
	}
	w.sent = append(w.sent, sentCmd{name: name, plan: int32(p), kind: kind})
	return c.Begin(name, args)
}

// plan decides, for items all of database db, which keys to write (with
// --skip-existing, after an EXISTS round trip) and carries each key's
// state across its parts.
func (w *Writer) plan(ctx context.Context, db int, items []Item) ([]planned, error) {
	c, err := w.connFor(ctx, db)
	if err != nil {
		return nil, dialError(err)
	}
	var existing map[int]bool
	if w.o.SkipExisting {
		w.sent = w.sent[:0]
		for i, it := range items {
			if it.Rec.Part <= 1 {
				w.begin(c, i, cmdExists, "EXISTS", 1).Str(it.Rec.Key)
			}
		}
		existing = make(map[int]bool)
		err := c.Exec(ctx, func(j int, r resp.Reply) error {
			if r.Kind == resp.KindError {
				return fmt.Errorf("db %d: EXISTS: %w", db, r.Err())
			}
			existing[int(w.sent[j].plan)] = r.Int > 0
			return nil
		})
		if errors.Is(err, resp.ErrLost) {
			delete(w.conns, connKey{db: db})
			return nil, connError{err}
		}
		if err != nil {
			return nil, err
		}
	}
	plans := make([]planned, 0, len(items))
	for i, it := range items {
		st := w.open
		if it.Rec.Part <= 1 {
			st = &keyState{}
			if existing[i] {
				st.skip = true
				w.st.Existing++
			}
		}
		if st == nil {
			return nil, &KeyError{Line: it.Line, DB: db, Key: it.Rec.Key, Err: fmt.Errorf("part %d without its first part", it.Rec.Part)}
		}
		w.open = st
		if it.Last {
			w.open = nil
		}
		if !st.skip {
			plans = append(plans, planned{it: it, state: st})
		}
	}
	return plans, nil
}

// send writes the planned keys in one pipeline. A resend first deletes
// each whole key or first part it writes, so that nothing is doubled.
func (w *Writer) send(ctx context.Context, db int, plans []planned, resend bool) error {
	c, err := w.connFor(ctx, db)
	if err != nil {
		return dialError(err)
	}
	err = w.sendOn(ctx, c, db, plans, resend)
	if errors.Is(err, resp.ErrLost) {
		c.Close()
		delete(w.conns, connKey{db: db})
		return connError{err}
	}
	if err != nil {
		return err
	}
	return w.redirected(ctx, db, plans)
}

// sendOn writes the planned keys on c in one pipeline and counts what the
// server confirmed; keys a cluster redirected are left marked.
func (w *Writer) sendOn(ctx context.Context, c *resp.Conn, db int, plans []planned, resend bool) error {
	// Build every key's commands; a key the target cannot hold stops the
	// batch before any of its commands, after what came before it.
	w.sent = w.sent[:0]
	var planErr error
	var err error
	for i := range plans {
		pl := &plans[i]
		pl.cmds, pl.replies, pl.refused, pl.failed, pl.encoded, pl.redirect = 0, 0, false, false, false, ""
		if err := w.check(pl.it); err != nil {
			planErr = &KeyError{Line: pl.it.Line, DB: db, Key: pl.it.Rec.Key, Err: err}
			plans = plans[:i]
			break
		}
		switch {
		case resend && pl.it.Rec.Part <= 1:
			w.begin(c, i, cmdRedo, "DEL", 1).Str(pl.it.Rec.Key)
			pl.state.placeholders, pl.state.lead, pl.state.entries = nil, 0, 0
		case w.o.Replace && pl.it.Rec.Part <= 1:
			w.begin(c, i, cmdDel, "DEL", 1).Str(pl.it.Rec.Key)
		}
		w.commands(c, i, pl.it, pl.state)
	}
	// On a Sentinel-managed master, a batch counts once a replica has it:
	// a failover promotes a replica, and what only the old master held is
	// lost with it.
	if w.o.WaitReplicas > 0 && len(plans) > 0 {
		w.begin(c, 0, cmdWait, "WAIT", 2).Int(int64(w.o.WaitReplicas)).Int(5000)
	}
	for _, sc := range w.sent {
		plans[sc.plan].cmds++
	}
	// Every reply is read and judged, so that after a refusal the keys
	// the target did take are still counted; the first refusal is the
	// error.
	var refusal error
	// --rate: the commands of this round trip, against every writer's.
	if err := w.o.Limiter.Wait(ctx, len(w.sent)); err != nil {
		return err
	}
	var failedOver string
	err = c.Exec(ctx, func(j int, r resp.Reply) error {
		sc := w.sent[j]
		pl := &plans[sc.plan]
		pl.replies++
		pl.encoded = pl.encoded || sc.kind == cmdEncoded || sc.kind == cmdRestore
		switch {
		case sc.kind == cmdDel:
			pl.existed = r.Int > 0
		case sc.kind == cmdWait && r.Kind != resp.KindError:
			if r.Int < int64(w.o.WaitReplicas) {
				failedOver = "no replica acknowledged the batch"
			}
		case r.Kind == resp.KindError && redisconn.IsReadOnly(r.Err()):
			failedOver = "the master is a replica now"
		case r.Kind != resp.KindError:
		case w.noteRedirection(r.Text, pl):
		case sc.kind == cmdRestore && w.o.SkipUnsupported && !redisconn.IsBusyKey(r.Err()):
			pl.failed = true
		case !pl.failed:
			pl.refused = true
			if refusal == nil {
				refusal = &KeyError{Line: pl.it.Line, DB: db, Key: pl.it.Rec.Key, Cmd: sc.name, Err: w.explain(pl.it.Rec, sc, r.Err())}
			}
		}
		return nil
	})
	if errors.Is(err, resp.ErrLost) {
		return err
	}
	if failedOver != "" {
		// A failover under way: the batch goes again, to the master the
		// sentinels name once it is over.
		return fmt.Errorf("%w: %s (a failover?)", resp.ErrLost, failedOver)
	}
	w.tally(plans)
	switch {
	case err != nil:
		return err
	case refusal != nil:
		return refusal
	}
	return planErr
}

// explain adds what the user needs to a refused command.
func (w *Writer) explain(rec *format.Record, sc sentCmd, err error) error {
	if (sc.kind == cmdEncoded || sc.kind == cmdRestore) && redisconn.IsBusyKey(err) {
		// The target was empty, or the key deleted first: this load wrote
		// it already (the input holds it twice), or another client did.
		return fmt.Errorf("%w: the target already holds it: written earlier by this load (the input holds it twice) or by another client since the load began (%v)", ErrDuplicateKey, err)
	}
	if sc.kind == cmdEncoded {
		return fmt.Errorf("the target (%s %s) refused the payload crs encoded for this %s key (RDB version %d): %w; this is a bug in crs: please report it; --load-by commands writes keys without such payloads",
			w.srv.Engine, w.srv.Version, rec.Type, w.o.Encoder.Version, err)
	}
	if sc.kind == cmdRestore {
		return fmt.Errorf("the target (%s %s) refused the DUMP payload of this %s key, made with RDB version %d: %w (use --skip-unsupported to skip such keys and count them)",
			w.srv.Engine, w.srv.Version, rec.Type, rec.RDBVersion, err)
	}
	return err
}

// check reports data in it that the target has no command for.
func (w *Writer) check(it Item) error {
	r := it.Rec
	if len(r.FieldExpire) > 0 && !w.srv.FieldExpiry && !w.o.DropFieldExpiry {
		return fmt.Errorf("%w: %d hash field expiries, and %s %s has no HPEXPIREAT (Redis 7.4+); use --drop-field-expiry to load the fields without them", ErrTargetLacks, len(r.FieldExpire), w.srv.Engine, w.srv.Version)
	}
	if r.Stream == nil {
		return nil
	}
	if w.o.DropStreamCounters && !w.srv.AtLeast(7, 0) && dropCounters(r.Stream) && it.Last {
		w.st.DroppedCount++
	}
	if m := r.Stream.IDMP; m != nil && !w.srv.IDMP {
		switch {
		case !format.IDMPState(m):
			r.Stream.IDMP = nil // the defaults, nothing tracked: nothing lost
		case w.o.DropStreamIDMP:
			r.Stream.IDMP = nil
			w.st.DroppedIDMP++
		default:
			return fmt.Errorf("%w: the stream's idempotent-producer state (idmp-duration %d, idmp-maxsize %d, %d tracked IDs) needs XCFGSET and XIDMPRECORD (Redis 8.6.2+); the target is %s %s; use --drop-stream-idmp to load the stream without it", ErrTargetLacks, m.Duration, m.MaxSize, max(m.Tracked, 0), w.srv.Engine, w.srv.Version)
		}
	}
	for _, g := range r.Stream.Groups {
		if g.LastDeliveredID != "" && g.EntriesRead >= 0 && !w.srv.AtLeast(7, 0) {
			return fmt.Errorf("%w: group %q has an entries-read counter, which needs XGROUP CREATE ... ENTRIESREAD (Redis 7.0+); the target is %s %s", ErrTargetLacks, g.Name, w.srv.Engine, w.srv.Version)
		}
	}
	if s := r.Stream; it.Last && s.LastID != "" && (s.EntriesAdded >= 0 || s.MaxDeletedID != "") && !w.srv.AtLeast(7, 0) {
		return fmt.Errorf("%w: the stream's entries-added and max-deleted-entry-id need XSETID ... ENTRIESADDED MAXDELETEDID (Redis 7.0+); the target is %s %s", ErrTargetLacks, w.srv.Engine, w.srv.Version)
	}
	return nil
}

// redo reports whether plans hold the first record of a resumed writer,
// which may have been half written when the load stopped: it goes from
// scratch, as after a lost connection.
func redo(plans []planned) bool {
	for _, pl := range plans {
		if pl.it.Redo {
			return true
		}
	}
	return false
}
