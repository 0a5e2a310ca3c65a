package load

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
	"golang.org/x/sync/semaphore"

	"github.com/crs-tool/crs/format"
)

// loadingGroup is a consumer group crsload creates so that a stream
// exists from its first part on (XADD needs no group, but a stream with no
// entries would not exist otherwise), and destroys after the last part.
const loadingGroup = "\x00crsload\x00"

// placeholderField marks the entries crsload adds, and deletes again, to
// restore pending entries whose messages were deleted on the source.
const placeholderField = "\x00crsload-deleted\x00"

// worker writes the records it is sent, a pipeline at a time.
type worker struct {
	pool     *clients
	tgt      target
	opts     Options
	st       *Stats
	inFlight *semaphore.Weighted
	// open is the key whose later parts are still to come, if any.
	open *keyState
}

// keyState is what a worker remembers of a key between its parts.
type keyState struct {
	skip         bool     // left alone (--skip-existing)
	placeholders []string // stream entries to delete after the last part
}

func (w *worker) run(ctx context.Context, ch <-chan item) error {
	limit := max(w.opts.Pipeline, 1)
	batch := make([]item, 0, limit)
	for it := range ch {
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
		var held int64
		for _, it := range batch {
			held += it.size
		}
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
		if err := w.write(ctx, db, batch[:n]); err != nil {
			return err
		}
		batch = batch[n:]
	}
	return nil
}

// planned is one item's commands in a pipeline.
type planned struct {
	it      item
	state   *keyState
	del     *redis.IntCmd
	cmds    []*redis.Cmd
	restore *redis.Cmd // the RESTORE of a DUMP payload
	args    [][]interface{}
}

// write sends the commands for items, all for database db, in one
// pipeline (two with --skip-existing: EXISTS first).
func (w *worker) write(ctx context.Context, db int, items []item) error {
	c, err := w.pool.get(ctx, db)
	if err != nil {
		return err
	}
	var exists map[int]*redis.IntCmd
	if w.opts.SkipExisting {
		exists = make(map[int]*redis.IntCmd)
		_, err := c.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i, it := range items {
				if it.rec.Part <= 1 {
					exists[i] = p.Exists(ctx, it.rec.Key)
				}
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("db %d: exists: %w", db, err)
		}
	}
	plans := make([]planned, 0, len(items))
	for i, it := range items {
		st := w.open
		if it.rec.Part <= 1 {
			st = &keyState{}
			if e := exists[i]; e != nil && e.Val() > 0 {
				st.skip = true
				w.st.Existing++
			}
		}
		if st == nil {
			return &KeyError{Line: it.line, DB: db, Key: it.rec.Key, Err: fmt.Errorf("part %d without its first part", it.rec.Part)}
		}
		w.open = st
		if it.last {
			w.open = nil
		}
		if !st.skip {
			plans = append(plans, planned{it: it, state: st})
		}
	}
	// Build every key's commands first; a key the target cannot hold
	// stops the batch there, after what came before it is written.
	var planErr error
	for i := range plans {
		args, err := w.commands(plans[i].it, plans[i].state)
		if err != nil {
			planErr = &KeyError{Line: plans[i].it.line, DB: db, Key: plans[i].it.rec.Key, Err: err}
			plans = plans[:i]
			break
		}
		plans[i].args = args
	}
	_, err = c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i := range plans {
			pl := &plans[i]
			if w.opts.Replace && pl.it.rec.Part <= 1 {
				pl.del = p.Del(ctx, pl.it.rec.Key)
			}
			for _, a := range pl.args {
				cmd := redis.NewCmd(ctx, a...)
				p.Process(ctx, cmd)
				pl.cmds = append(pl.cmds, cmd)
				if pl.it.rec.Dump != "" && a[0] == "RESTORE" {
					pl.restore = cmd
				}
			}
		}
		return nil
	})
	// Check each command: the first failure names its key and line.
	for i := range plans {
		pl := &plans[i]
		if pl.restore != nil && pl.restore.Err() != nil && w.opts.SkipUnsupported {
			w.st.Unsupported++
			continue
		}
		for _, cmd := range pl.cmds {
			if cerr := cmd.Err(); cerr != nil {
				return &KeyError{Line: pl.it.line, DB: db, Key: pl.it.rec.Key, Cmd: cmd.Name(), Err: w.explain(pl.it.rec, cmd, cerr)}
			}
		}
		if pl.del != nil && pl.del.Val() > 0 {
			w.st.Replaced++
		}
		if pl.it.last {
			w.st.Keys++
			w.st.ByType[pl.it.rec.Type]++
		}
	}
	if err != nil && !isReplyError(err) {
		return fmt.Errorf("db %d: %w", db, err)
	}
	return planErr
}

// isReplyError reports whether err is a reply from the server to one
// command (checked per command above), not a connection failure.
func isReplyError(err error) bool {
	var re redis.Error
	return errors.As(err, &re)
}

// explain adds what the user needs to a refused command.
func (w *worker) explain(rec *format.Record, cmd *redis.Cmd, err error) error {
	if rec.Dump != "" && strings.EqualFold(cmd.Name(), "restore") {
		return fmt.Errorf("the target (%s %s) refused the DUMP payload of this %s key, made with RDB version %d: %w (use --skip-unsupported to skip such keys and count them)",
			w.tgt.Engine, w.tgt.Version, rec.Type, rec.RDBVersion, err)
	}
	return err
}

// commands returns the commands that write the item's record, and those that
// finish its key when it is the key's last record.
func (w *worker) commands(it item, st *keyState) ([][]interface{}, error) {
	r := it.rec
	var out [][]interface{}
	expireSet := false
	switch {
	case r.Dump != "":
		if it.exp > 0 && w.tgt.AtLeast(5, 0) {
			out = append(out, []interface{}{"RESTORE", r.Key, it.exp, r.Dump, "ABSTTL"})
			expireSet = true
		} else {
			out = append(out, []interface{}{"RESTORE", r.Key, 0, r.Dump})
		}
	case r.Type == format.TypeString:
		switch {
		case r.Part > 1:
			out = append(out, []interface{}{"APPEND", r.Key, r.Str})
		case it.exp > 0 && it.last && w.tgt.AtLeast(6, 2):
			out = append(out, []interface{}{"SET", r.Key, r.Str, "PXAT", it.exp})
			expireSet = true
		default:
			out = append(out, []interface{}{"SET", r.Key, r.Str})
		}
	case r.Type == format.TypeList || r.Type == format.TypeSet:
		cmd := "RPUSH"
		if r.Type == format.TypeSet {
			cmd = "SADD"
		}
		out = appendChunked(out, cmd, r.Key, len(r.Elems), 1, func(i int) []interface{} { return []interface{}{r.Elems[i]} })
	case r.Type == format.TypeHash:
		cmd := "HSET"
		if !w.tgt.AtLeast(4, 0) {
			cmd = "HMSET"
		}
		out = appendChunked(out, cmd, r.Key, len(r.Hash), 2, func(i int) []interface{} { return []interface{}{r.Hash[i].Name, r.Hash[i].Value} })
		fe, err := w.fieldExpiry(r)
		if err != nil {
			return nil, err
		}
		out = append(out, fe...)
	case r.Type == format.TypeZSet:
		out = appendChunked(out, "ZADD", r.Key, len(r.ZSet), 2, func(i int) []interface{} { return []interface{}{formatScore(r.ZSet[i].Score), r.ZSet[i].Member} })
	case r.Type == format.TypeStream:
		s, err := w.streamCommands(it, st)
		if err != nil {
			return nil, err
		}
		out = append(out, s...)
	}
	if it.last && it.exp > 0 && !expireSet {
		out = append(out, []interface{}{"PEXPIREAT", r.Key, it.exp})
	}
	return out, nil
}

// appendChunked adds cmd key followed by n items (each of width
// arguments), split into commands of at most elemsPerCommand items.
func appendChunked(out [][]interface{}, cmd, key string, n, width int, item func(int) []interface{}) [][]interface{} {
	for i := 0; i < n; i += elemsPerCommand {
		end := min(i+elemsPerCommand, n)
		args := make([]interface{}, 0, 2+width*(end-i))
		args = append(args, cmd, key)
		for j := i; j < end; j++ {
			args = append(args, item(j)...)
		}
		out = append(out, args)
	}
	return out
}

// fieldExpiry returns HPEXPIREAT commands for r's field expiries, one per
// distinct instant.
func (w *worker) fieldExpiry(r *format.Record) ([][]interface{}, error) {
	if len(r.FieldExpire) == 0 {
		return nil, nil
	}
	if !w.tgt.fieldExpiry {
		if w.opts.DropFieldExpiry {
			w.st.DroppedField += int64(len(r.FieldExpire))
			return nil, nil
		}
		return nil, fmt.Errorf("%w: %d hash field expiries, and %s %s has no HPEXPIREAT (Redis 7.4+); use --drop-field-expiry to load the fields without them", ErrTargetLacks, len(r.FieldExpire), w.tgt.Engine, w.tgt.Version)
	}
	byTime := make(map[int64][]interface{})
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
	var out [][]interface{}
	for _, at := range order {
		fields := byTime[at]
		args := append([]interface{}{"HPEXPIREAT", r.Key, at, "FIELDS", len(fields)}, fields...)
		out = append(out, args)
	}
	return out, nil
}

// streamCommands rebuilds a stream part: entries with XADD at their IDs
// (and placeholders for deleted entries still pending), groups with
// XGROUP CREATE and CREATECONSUMER, pending entries with XCLAIM ... FORCE
// at their delivery time and count; after the last part, the placeholders
// are deleted and XSETID restores the last ID and counters.
func (w *worker) streamCommands(it item, st *keyState) ([][]interface{}, error) {
	r, s := it.rec, it.rec.Stream
	var out [][]interface{}
	if r.Part <= 1 {
		out = append(out, []interface{}{"XGROUP", "CREATE", r.Key, loadingGroup, "$", "MKSTREAM"})
	}
	for _, e := range s.Entries {
		if e.Deleted {
			out = append(out, []interface{}{"XADD", r.Key, e.ID, placeholderField, ""})
			st.placeholders = append(st.placeholders, e.ID)
			continue
		}
		args := make([]interface{}, 0, 3+len(e.Fields))
		args = append(args, "XADD", r.Key, e.ID)
		for _, f := range e.Fields {
			args = append(args, f)
		}
		out = append(out, args)
	}
	for _, g := range s.Groups {
		if g.LastDeliveredID != "" {
			args := []interface{}{"XGROUP", "CREATE", r.Key, g.Name, g.LastDeliveredID}
			if g.EntriesRead >= 0 {
				if !w.tgt.AtLeast(7, 0) {
					return nil, fmt.Errorf("%w: group %q has an entries-read counter, which needs XGROUP CREATE ... ENTRIESREAD (Redis 7.0+); the target is %s %s", ErrTargetLacks, g.Name, w.tgt.Engine, w.tgt.Version)
				}
				args = append(args, "ENTRIESREAD", g.EntriesRead)
			}
			out = append(out, args)
		}
		if len(g.Consumers) > 0 && !w.tgt.AtLeast(6, 2) {
			return nil, fmt.Errorf("%w: group %q has consumers, which need XGROUP CREATECONSUMER (Redis 6.2+); the target is %s %s", ErrTargetLacks, g.Name, w.tgt.Engine, w.tgt.Version)
		}
		for _, c := range g.Consumers {
			out = append(out, []interface{}{"XGROUP", "CREATECONSUMER", r.Key, g.Name, c.Name})
		}
		// One XCLAIM for each run of entries with the same consumer,
		// delivery time and count.
		for i := 0; i < len(g.Pending); {
			p := g.Pending[i]
			args := []interface{}{"XCLAIM", r.Key, g.Name, p.Consumer, 0}
			j := i
			for ; j < len(g.Pending) && j-i < elemsPerCommand; j++ {
				q := g.Pending[j]
				if q.Consumer != p.Consumer || q.DeliveryTimeMs != p.DeliveryTimeMs || q.DeliveryCount != p.DeliveryCount {
					break
				}
				args = append(args, q.ID)
			}
			args = append(args, "TIME", p.DeliveryTimeMs, "RETRYCOUNT", p.DeliveryCount, "FORCE", "JUSTID")
			out = append(out, args)
			i = j
		}
	}
	if !it.last {
		return out, nil
	}
	if len(st.placeholders) > 0 {
		args := []interface{}{"XDEL", r.Key}
		for _, id := range st.placeholders {
			args = append(args, id)
		}
		out = append(out, args)
	}
	if s.LastID != "" {
		args := []interface{}{"XSETID", r.Key, s.LastID}
		if s.EntriesAdded >= 0 || s.MaxDeletedID != "" {
			if !w.tgt.AtLeast(7, 0) {
				return nil, fmt.Errorf("%w: the stream's entries-added and max-deleted-entry-id need XSETID ... ENTRIESADDED MAXDELETEDID (Redis 7.0+); the target is %s %s", ErrTargetLacks, w.tgt.Engine, w.tgt.Version)
			}
			if s.EntriesAdded >= 0 {
				args = append(args, "ENTRIESADDED", s.EntriesAdded)
			}
			if s.MaxDeletedID != "" {
				args = append(args, "MAXDELETEDID", s.MaxDeletedID)
			}
		}
		out = append(out, args)
	}
	out = append(out, []interface{}{"XGROUP", "DESTROY", r.Key, loadingGroup})
	return out, nil
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
