package load

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sync/semaphore"

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

// worker writes the records it is sent, a pipeline at a time, on its own
// connections (one per target database).
type worker struct {
	conn     redisconn.Options
	tgt      serverInfo
	opts     Options
	st       *Stats
	inFlight *semaphore.Weighted
	conns    map[connKey]*resp.Conn
	// moved tells the target that a cluster answered MOVED.
	moved func(ctx context.Context)
	// asking makes begin send ASKING before each command: the plans are
	// going to the node a slot is being migrated to (an ASK redirection).
	asking bool
	// open is the key whose later parts are still to come, if any.
	open *keyState
	// sent describes each command of the pipeline being built.
	sent []sentCmd
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
	cmdRedo    // DEL before a key is sent again after a lost connection
	cmdAsking  // ASKING before a command sent after an ASK redirection
)

// keyState is what a worker remembers of a key between its parts.
type keyState struct {
	skip         bool     // left alone (--skip-existing)
	placeholders []string // stream entries to delete after the last part
}

func (w *worker) close() {
	for _, c := range w.conns {
		c.Close()
	}
}

// run writes the batches that ch brings until it is closed or group is
// done (another writer failed). Writes run under ctx, the caller's own: a
// batch under way when another writer fails is finished and its replies
// read, so that the summary counts every key written; an interrupt (ctx
// done) stops it at once.
func (w *worker) run(ctx, group context.Context, ch <-chan item) error {
	defer w.close()
	limit := max(w.opts.Pipeline, 1)
	batch := make([]item, 0, limit)
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
			held += it.size
			if it.last {
				done++
			}
		}
		w.opts.Counter.Add(done)
		w.inFlight.Release(held)
		if err != nil {
			return err
		}
	}
	return nil
}

// flush writes a batch, one pipeline per run of records for one database.
func (w *worker) flush(ctx context.Context, batch []item) error {
	for len(batch) > 0 {
		db := batch[0].db
		n := 1
		for n < len(batch) && batch[n].db == db {
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

// writeRetrying writes items, and when the connection fails, reconnects
// and sends them again with backoff for up to RetryFor. A resend rewrites
// each whole key (or first part) from scratch, after a DEL; a batch that
// holds a later part of a list, string or stream cannot be sent twice
// without doubling it, so that fails at once, saying how to finish.
func (w *worker) writeRetrying(ctx context.Context, db int, items []item) error {
	open := w.open
	plans, err := w.plan(ctx, db, items)
	deadline := time.Now().Add(w.opts.RetryFor)
	backoff := 100 * time.Millisecond
	for attempt := 0; ; attempt++ {
		if err == nil {
			err = w.send(ctx, db, plans, attempt > 0)
		}
		var ce connError
		if err == nil || !errors.As(err, &ce) {
			return err
		}
		// The connection failed: what it confirmed is written, and is
		// counted if the batch is not sent again.
		if it, ok := notResendable(plans); ok && plans != nil {
			w.tally(plans)
			return fmt.Errorf("%w; it was writing line %d, a later part of key %q, which cannot be sent twice: load the dump again with --replace", err, it.line, it.rec.Key)
		}
		if time.Now().Add(backoff).After(deadline) {
			w.tally(plans)
			return fmt.Errorf("%w (gave up after retrying for %s)", err, w.opts.RetryFor)
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
func notResendable(plans []planned) (item, bool) {
	for _, pl := range plans {
		r := pl.it.rec
		if r.Part > 1 && (r.Type == format.TypeList || r.Type == format.TypeString || r.Type == format.TypeStream) {
			return pl.it, true
		}
	}
	return item{}, false
}

// connKey names a connection of a worker: its own node's (addr "") or
// another node's that a cluster redirected a key to.
type connKey struct {
	addr string
	db   int
}

func (w *worker) connFor(ctx context.Context, db int) (*resp.Conn, error) {
	return w.connTo(ctx, connKey{db: db})
}

func (w *worker) connTo(ctx context.Context, k connKey) (*resp.Conn, error) {
	if c := w.conns[k]; c != nil {
		return c, nil
	}
	conn := w.conn
	if k.addr != "" {
		conn = conn.At(k.addr)
	}
	o, err := conn.RESP(k.db)
	if err != nil {
		return nil, err
	}
	c, err := resp.Dial(ctx, o)
	if err != nil {
		return nil, &redisconn.Error{Addr: conn.Address(), Err: err}
	}
	if w.conns == nil {
		w.conns = make(map[connKey]*resp.Conn)
	}
	w.conns[k] = c
	return c, nil
}

// planned is one item on its way into a pipeline.
type planned struct {
	it      item
	state   *keyState
	failed  bool // the target refused its DUMP payload (--skip-unsupported)
	existed bool // DEL found it (--replace)
	// cmds counts the commands sent for it in the last attempt, replies
	// the replies read back; refused is set by an error reply. Only a
	// plan whose every command was answered without one is counted, so
	// that a summary after a failure says what was written.
	cmds, replies int
	refused       bool
	// redirect is the node a cluster sent the key to (MOVED, or ASK with
	// ask set): none of its commands ran where they were sent.
	redirect string
	ask      bool
}

// tally counts the plans of the last attempt that the target confirmed.
func (w *worker) tally(plans []planned) {
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
		if pl.it.last {
			w.st.Keys++
			w.st.ByType[pl.it.rec.Type]++
		}
	}
}

// begin starts a command for plan p.
func (w *worker) begin(c *resp.Conn, p int, kind int8, name string, args int) *resp.Conn {
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
func (w *worker) plan(ctx context.Context, db int, items []item) ([]planned, error) {
	c, err := w.connFor(ctx, db)
	if err != nil {
		return nil, connError{err}
	}
	var existing map[int]bool
	if w.opts.SkipExisting {
		w.sent = w.sent[:0]
		for i, it := range items {
			if it.rec.Part <= 1 {
				w.begin(c, i, cmdExists, "EXISTS", 1).Str(it.rec.Key)
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
		if it.rec.Part <= 1 {
			st = &keyState{}
			if existing[i] {
				st.skip = true
				w.st.Existing++
			}
		}
		if st == nil {
			return nil, &KeyError{Line: it.line, DB: db, Key: it.rec.Key, Err: fmt.Errorf("part %d without its first part", it.rec.Part)}
		}
		w.open = st
		if it.last {
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
func (w *worker) send(ctx context.Context, db int, plans []planned, resend bool) error {
	c, err := w.connFor(ctx, db)
	if err != nil {
		return connError{err}
	}
	err = w.sendOn(ctx, c, db, plans, resend)
	if errors.Is(err, resp.ErrLost) {
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
func (w *worker) sendOn(ctx context.Context, c *resp.Conn, db int, plans []planned, resend bool) error {
	// Build every key's commands; a key the target cannot hold stops the
	// batch before any of its commands, after what came before it.
	w.sent = w.sent[:0]
	var planErr error
	var err error
	for i := range plans {
		pl := &plans[i]
		pl.cmds, pl.replies, pl.refused, pl.failed, pl.redirect = 0, 0, false, false, ""
		if err := w.check(pl.it); err != nil {
			planErr = &KeyError{Line: pl.it.line, DB: db, Key: pl.it.rec.Key, Err: err}
			plans = plans[:i]
			break
		}
		switch {
		case resend && pl.it.rec.Part <= 1:
			w.begin(c, i, cmdRedo, "DEL", 1).Str(pl.it.rec.Key)
			pl.state.placeholders = nil
		case w.opts.Replace && pl.it.rec.Part <= 1:
			w.begin(c, i, cmdDel, "DEL", 1).Str(pl.it.rec.Key)
		}
		w.commands(c, i, pl.it, pl.state)
	}
	for _, sc := range w.sent {
		plans[sc.plan].cmds++
	}
	// Every reply is read and judged, so that after a refusal the keys
	// the target did take are still counted; the first refusal is the
	// error.
	var refusal error
	err = c.Exec(ctx, func(j int, r resp.Reply) error {
		sc := w.sent[j]
		pl := &plans[sc.plan]
		pl.replies++
		switch {
		case sc.kind == cmdDel:
			pl.existed = r.Int > 0
		case r.Kind != resp.KindError:
		case redirection(r.Text, pl):
		case sc.kind == cmdRestore && w.opts.SkipUnsupported:
			pl.failed = true
		case !pl.failed:
			pl.refused = true
			if refusal == nil {
				refusal = &KeyError{Line: pl.it.line, DB: db, Key: pl.it.rec.Key, Cmd: sc.name, Err: w.explain(pl.it.rec, sc, r.Err())}
			}
		}
		return nil
	})
	if errors.Is(err, resp.ErrLost) {
		return err
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

// redirection reports whether a refusal is a cluster's MOVED or ASK, and
// notes where it sends the plan's key.
func redirection(text string, pl *planned) bool {
	kind, rest, _ := strings.Cut(text, " ")
	if kind != "MOVED" && kind != "ASK" {
		return false
	}
	_, addr, _ := strings.Cut(rest, " ") // "<slot> <host:port>"
	pl.redirect, pl.ask, pl.refused = addr, kind == "ASK", true
	return true
}

// redirected writes again, on the nodes a cluster named, the keys it
// redirected (MOVED after a slot moved, ASK while it moves), each from
// scratch after a DEL, as after a lost connection; a later part of a
// key cannot be, and fails saying how to finish. It follows up to five
// redirections of a key.
func (w *worker) redirected(ctx context.Context, db int, plans []planned) error {
	for hop := 0; hop < 5; hop++ {
		groups := map[connKey][]planned{}
		asks := map[connKey]bool{}
		for _, pl := range plans {
			if pl.redirect == "" {
				continue
			}
			r := pl.it.rec
			if r.Part > 1 {
				return &KeyError{Line: pl.it.line, DB: db, Key: r.Key, Err: fmt.Errorf("the cluster moved the key's slot to %s between its parts; load the dump again with --replace", pl.redirect)}
			}
			k := connKey{addr: pl.redirect, db: db}
			pl.redirect = ""
			groups[k] = append(groups[k], pl)
			asks[k] = pl.ask
		}
		if len(groups) == 0 {
			return nil
		}
		w.st.Redirects++
		for k := range groups {
			if !asks[k] && w.moved != nil {
				w.moved(ctx)
				break
			}
		}
		plans = plans[:0:0]
		for k, g := range groups {
			c, err := w.connTo(ctx, k)
			if err != nil {
				return err
			}
			w.asking = asks[k]
			err = w.sendOn(ctx, c, db, g, true)
			w.asking = false
			if err != nil {
				if errors.Is(err, resp.ErrLost) {
					delete(w.conns, k)
				}
				return err
			}
			plans = append(plans, g...)
		}
	}
	return fmt.Errorf("the cluster redirected keys more than five times: is it resharding in a loop?")
}

// explain adds what the user needs to a refused command.
func (w *worker) explain(rec *format.Record, sc sentCmd, err error) error {
	if sc.kind == cmdRestore {
		return fmt.Errorf("the target (%s %s) refused the DUMP payload of this %s key, made with RDB version %d: %w (use --skip-unsupported to skip such keys and count them)",
			w.tgt.Engine, w.tgt.Version, rec.Type, rec.RDBVersion, err)
	}
	return err
}

// check reports data in it that the target has no command for.
func (w *worker) check(it item) error {
	r := it.rec
	if len(r.FieldExpire) > 0 && !w.tgt.FieldExpiry && !w.opts.DropFieldExpiry {
		return fmt.Errorf("%w: %d hash field expiries, and %s %s has no HPEXPIREAT (Redis 7.4+); use --drop-field-expiry to load the fields without them", ErrTargetLacks, len(r.FieldExpire), w.tgt.Engine, w.tgt.Version)
	}
	if r.Stream == nil {
		return nil
	}
	if w.opts.DropStreamCounters && !w.tgt.AtLeast(7, 0) && dropCounters(r.Stream) && it.last {
		w.st.DroppedCount++
	}
	for _, g := range r.Stream.Groups {
		if g.LastDeliveredID != "" && g.EntriesRead >= 0 && !w.tgt.AtLeast(7, 0) {
			return fmt.Errorf("%w: group %q has an entries-read counter, which needs XGROUP CREATE ... ENTRIESREAD (Redis 7.0+); the target is %s %s", ErrTargetLacks, g.Name, w.tgt.Engine, w.tgt.Version)
		}
		if len(g.Consumers) > 0 && !w.tgt.AtLeast(6, 2) {
			return fmt.Errorf("%w: group %q has consumers, which need XGROUP CREATECONSUMER (Redis 6.2+); the target is %s %s", ErrTargetLacks, g.Name, w.tgt.Engine, w.tgt.Version)
		}
	}
	if s := r.Stream; it.last && s.LastID != "" && (s.EntriesAdded >= 0 || s.MaxDeletedID != "") && !w.tgt.AtLeast(7, 0) {
		return fmt.Errorf("%w: the stream's entries-added and max-deleted-entry-id need XSETID ... ENTRIESADDED MAXDELETEDID (Redis 7.0+); the target is %s %s", ErrTargetLacks, w.tgt.Engine, w.tgt.Version)
	}
	return nil
}

// dropCounters removes from a stream record what a target before 7.0
// cannot set (--drop-stream-counters): entries-added, max-deleted-entry-id
// and the groups' entries-read. It reports whether the record had any; a
// record sent again has none left, so a stream is counted once.
func dropCounters(s *format.Stream) bool {
	had := s.EntriesAdded >= 0 || s.MaxDeletedID != ""
	s.EntriesAdded, s.MaxDeletedID = -1, ""
	for i := range s.Groups {
		had = had || s.Groups[i].EntriesRead >= 0
		s.Groups[i].EntriesRead = -1
	}
	return had
}

// commands writes to c the commands for plan p's record, and those that
// finish its key when it is the key's last record. check has passed.
func (w *worker) commands(c *resp.Conn, p int, it item, st *keyState) {
	r := it.rec
	expireSet := false
	switch {
	case r.Dump != "":
		if it.exp > 0 && w.tgt.AtLeast(5, 0) {
			w.begin(c, p, cmdRestore, "RESTORE", 4).Str(r.Key).Int(it.exp).Str(r.Dump).Str("ABSTTL")
			expireSet = true
		} else {
			w.begin(c, p, cmdRestore, "RESTORE", 3).Str(r.Key).Int(0).Str(r.Dump)
		}
	case r.Type == format.TypeString:
		switch {
		case r.Part > 1:
			w.begin(c, p, cmdWrite, "APPEND", 2).Str(r.Key).Str(r.Str)
		case it.exp > 0 && it.last && w.tgt.AtLeast(6, 2):
			w.begin(c, p, cmdWrite, "SET", 4).Str(r.Key).Str(r.Str).Str("PXAT").Int(it.exp)
			expireSet = true
		default:
			w.begin(c, p, cmdWrite, "SET", 2).Str(r.Key).Str(r.Str)
		}
	case r.Type == format.TypeList || r.Type == format.TypeSet:
		cmd := "RPUSH"
		if r.Type == format.TypeSet {
			cmd = "SADD"
		}
		for i := 0; i < len(r.Elems); i += elemsPerCommand {
			part := r.Elems[i:min(i+elemsPerCommand, len(r.Elems))]
			w.begin(c, p, cmdWrite, cmd, 1+len(part)).Str(r.Key)
			for _, e := range part {
				c.Str(e)
			}
		}
	case r.Type == format.TypeHash:
		cmd := "HSET"
		if !w.tgt.AtLeast(4, 0) {
			cmd = "HMSET"
		}
		for i := 0; i < len(r.Hash); i += elemsPerCommand {
			part := r.Hash[i:min(i+elemsPerCommand, len(r.Hash))]
			w.begin(c, p, cmdWrite, cmd, 1+2*len(part)).Str(r.Key)
			for _, f := range part {
				c.Str(f.Name).Str(f.Value)
			}
		}
		w.fieldExpiry(c, p, r)
	case r.Type == format.TypeZSet:
		for i := 0; i < len(r.ZSet); i += elemsPerCommand {
			part := r.ZSet[i:min(i+elemsPerCommand, len(r.ZSet))]
			w.begin(c, p, cmdWrite, "ZADD", 1+2*len(part)).Str(r.Key)
			for _, m := range part {
				c.Str(formatScore(m.Score)).Str(m.Member)
			}
		}
	case r.Type == format.TypeStream:
		w.streamCommands(c, p, it, st)
	}
	if it.last && it.exp > 0 && !expireSet {
		w.begin(c, p, cmdWrite, "PEXPIREAT", 2).Str(r.Key).Int(it.exp)
	}
}

// fieldExpiry writes HPEXPIREAT commands for r's field expiries, one per
// distinct instant, or counts them as dropped (--drop-field-expiry).
func (w *worker) fieldExpiry(c *resp.Conn, p int, r *format.Record) {
	if len(r.FieldExpire) == 0 {
		return
	}
	if !w.tgt.FieldExpiry {
		w.st.DroppedField += int64(len(r.FieldExpire))
		return
	}
	byTime := make(map[int64][]string)
	var order []int64
	for _, f := range r.FieldExpire {
		if f.AtMs <= 0 {
			continue // dropped by --ttl=none
		}
		if _, ok := byTime[f.AtMs]; !ok {
			order = append(order, f.AtMs)
		}
		byTime[f.AtMs] = append(byTime[f.AtMs], f.Field)
	}
	for _, at := range order {
		fields := byTime[at]
		w.begin(c, p, cmdWrite, "HPEXPIREAT", 4+len(fields)).Str(r.Key).Int(at).Str("FIELDS").Int(int64(len(fields)))
		for _, f := range fields {
			c.Str(f)
		}
	}
}

// streamCommands rebuilds a stream part: entries with XADD at their IDs
// (and placeholders for deleted entries still pending), groups with
// XGROUP CREATE and CREATECONSUMER, pending entries with XCLAIM ... FORCE
// at their delivery time and count; after the last part, the placeholders
// are deleted and XSETID restores the last ID and counters.
func (w *worker) streamCommands(c *resp.Conn, p int, it item, st *keyState) {
	r, s := it.rec, it.rec.Stream
	if r.Part <= 1 {
		w.begin(c, p, cmdWrite, "XGROUP", 5).Str("CREATE").Str(r.Key).Str(loadingGroup).Str("$").Str("MKSTREAM")
	}
	for _, e := range s.Entries {
		if e.Deleted {
			w.begin(c, p, cmdWrite, "XADD", 4).Str(r.Key).Str(e.ID).Str(placeholderField).Str("")
			st.placeholders = append(st.placeholders, e.ID)
			continue
		}
		w.begin(c, p, cmdWrite, "XADD", 2+len(e.Fields)).Str(r.Key).Str(e.ID)
		for _, f := range e.Fields {
			c.Str(f)
		}
	}
	for _, g := range s.Groups {
		if g.LastDeliveredID != "" {
			if g.EntriesRead >= 0 {
				w.begin(c, p, cmdWrite, "XGROUP", 6).Str("CREATE").Str(r.Key).Str(g.Name).Str(g.LastDeliveredID).Str("ENTRIESREAD").Int(g.EntriesRead)
			} else {
				w.begin(c, p, cmdWrite, "XGROUP", 4).Str("CREATE").Str(r.Key).Str(g.Name).Str(g.LastDeliveredID)
			}
		}
		for _, cs := range g.Consumers {
			w.begin(c, p, cmdWrite, "XGROUP", 4).Str("CREATECONSUMER").Str(r.Key).Str(g.Name).Str(cs.Name)
		}
		// One XCLAIM for each run of entries with the same consumer,
		// delivery time and count.
		for i := 0; i < len(g.Pending); {
			pe := g.Pending[i]
			j := i
			for j < len(g.Pending) && j-i < elemsPerCommand {
				q := g.Pending[j]
				if q.Consumer != pe.Consumer || q.DeliveryTimeMs != pe.DeliveryTimeMs || q.DeliveryCount != pe.DeliveryCount {
					break
				}
				j++
			}
			w.begin(c, p, cmdWrite, "XCLAIM", 4+(j-i)+6).Str(r.Key).Str(g.Name).Str(pe.Consumer).Int(0)
			for _, q := range g.Pending[i:j] {
				c.Str(q.ID)
			}
			c.Str("TIME").Int(pe.DeliveryTimeMs).Str("RETRYCOUNT").Int(pe.DeliveryCount).Str("FORCE").Str("JUSTID")
			i = j
		}
	}
	if !it.last {
		return
	}
	if len(st.placeholders) > 0 {
		w.begin(c, p, cmdWrite, "XDEL", 1+len(st.placeholders)).Str(r.Key)
		for _, id := range st.placeholders {
			c.Str(id)
		}
	}
	if s.LastID != "" {
		n := 2
		if s.EntriesAdded >= 0 {
			n += 2
		}
		if s.MaxDeletedID != "" {
			n += 2
		}
		w.begin(c, p, cmdWrite, "XSETID", n).Str(r.Key).Str(s.LastID)
		if s.EntriesAdded >= 0 {
			c.Str("ENTRIESADDED").Int(s.EntriesAdded)
		}
		if s.MaxDeletedID != "" {
			c.Str("MAXDELETEDID").Str(s.MaxDeletedID)
		}
	}
	w.begin(c, p, cmdWrite, "XGROUP", 3).Str("DESTROY").Str(r.Key).Str(loadingGroup)
}

// formatScore writes a score the way Redis reads it back exactly: the
// shortest decimal form, and "inf" / "-inf".
func formatScore(f float64) string {
	switch {
	case math.IsInf(f, 1):
		return "inf"
	case math.IsInf(f, -1):
		return "-inf"
	}
	return strconv.FormatFloat(f, 'g', -1, 64)
}
