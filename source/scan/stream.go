package scan

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/crs-tool/crs/format"
	"github.com/crs-tool/crs/internal/redisconn"
	"github.com/crs-tool/crs/rdb"
)

// groupInfo is what XINFO STREAM FULL says of a consumer group.
type groupInfo struct {
	format.Group
	pelCount int64
}

// readStream reads a stream: its metadata, groups and consumers from
// XINFO STREAM FULL, its entries with XRANGE in windows, and pending
// entries from the same reply or, for a long pending list, from XPENDING
// in windows. A stream larger than one part is emitted in parts: entries
// first, in ID order, then groups, with the metadata in the last part.
// It reports gone when the key no longer exists.
func (r *reader) readStream(ctx context.Context, p probed) (gone bool, err error) {
	err = r.atomically(ctx, p.key, func(ctx context.Context) error {
		var err error
		gone, err = r.readStreamOnce(ctx, p)
		return err
	})
	return gone, err
}

// readStreamOnce is one read of a stream.
func (r *reader) readStreamOnce(ctx context.Context, p probed) (gone bool, err error) {
	w := r.opts.PartElems
	res, err := r.c.Do(ctx, "XINFO", "STREAM", p.key, "FULL", "COUNT", w).Slice()
	if err != nil {
		if redisconn.IsNoSuchKey(err) {
			return true, nil
		}
		return false, fmt.Errorf("db %d: key %q: XINFO STREAM FULL (streams need Redis 6.0 or later on the source): %w", r.db, p.key, err)
	}
	info := pairs(res)
	meta := &format.Stream{
		LastID:       str(info["last-generated-id"]),
		EntriesAdded: -1,
		MaxDeletedID: str(info["max-deleted-entry-id"]),
	}
	if n, ok := info["entries-added"].(int64); ok {
		meta.EntriesAdded = n
	}
	groups, err := parseGroups(info["groups"])
	if err != nil {
		return false, fmt.Errorf("db %d: key %q: %w", r.db, p.key, err)
	}
	if meta.IDMP, err = r.readIDMP(ctx, p.key, info); err != nil {
		return false, err
	}

	// Pending entries whose message was deleted must be recreated on
	// load, in ID order among the entries: find them first.
	var deleted []string
	for i := range groups {
		err := r.eachPending(ctx, p.key, &groups[i], func(pend []format.Pending) error {
			ids, err := r.missing(ctx, p.key, pend)
			deleted = append(deleted, ids...)
			return err
		})
		if err != nil {
			return false, err
		}
	}
	if meta.IDMP != nil {
		// A tracked ID's entry may be gone: it is carried as deleted.
		var tracked []format.Pending
		for _, pr := range meta.IDMP.Producers {
			for _, t := range pr.IIDs {
				tracked = append(tracked, format.Pending{ID: t.ID})
			}
		}
		ids, err := r.missing(ctx, p.key, tracked)
		if err != nil {
			return false, err
		}
		deleted = append(deleted, ids...)
	}
	sort.Slice(deleted, func(i, j int) bool { return idLess(deleted[i], deleted[j]) })
	deleted = uniq(deleted)

	em := &streamEmitter{r: r, p: p, limit: w, cur: format.Stream{EntriesAdded: -1}}
	// Entries, merged with the deleted-but-pending IDs.
	start := "-"
	for {
		res, err := r.c.Do(ctx, "XRANGE", p.key, start, "+", "COUNT", w).Slice()
		if err != nil {
			return false, fmt.Errorf("db %d: key %q: XRANGE: %w", r.db, p.key, err)
		}
		ents, err := parseEntries(res)
		if err != nil {
			return false, fmt.Errorf("db %d: key %q: XRANGE: %w", r.db, p.key, err)
		}
		for _, e := range ents {
			for len(deleted) > 0 && idLess(deleted[0], e.ID) {
				if err := em.entry(ctx, format.StreamEntry{ID: deleted[0], Deleted: true}); err != nil {
					return false, err
				}
				deleted = deleted[1:]
			}
			if err := em.entry(ctx, e); err != nil {
				return false, err
			}
		}
		if len(ents) < w {
			break
		}
		start = nextID(ents[len(ents)-1].ID)
	}
	for _, id := range deleted {
		if err := em.entry(ctx, format.StreamEntry{ID: id, Deleted: true}); err != nil {
			return false, err
		}
	}
	// Groups, their consumers, and their pending entries.
	for i := range groups {
		// The group with its first window of pending entries; later
		// windows continue it under the same name.
		g := &groups[i]
		head := g.Group
		head.Pending = nil
		first := true
		err := r.eachPending(ctx, p.key, g, func(pend []format.Pending) error {
			gg := format.Group{Name: g.Name, EntriesRead: -1, Consumers: []format.Consumer{}}
			if first {
				gg, first = head, false
			}
			return em.group(ctx, gg, pend)
		})
		if err == nil && first {
			err = em.group(ctx, head, nil)
		}
		if err != nil {
			return false, err
		}
	}
	return false, em.finish(ctx, meta)
}

// eachPending calls fn with g's pending entries, a window at a time: from
// XINFO's reply when it holds them all, else from XPENDING.
func (r *reader) eachPending(ctx context.Context, key string, g *groupInfo, fn func([]format.Pending) error) error {
	if int64(len(g.Pending)) >= g.pelCount {
		if len(g.Pending) == 0 {
			return nil
		}
		return fn(g.Pending)
	}
	start := "-"
	for {
		var now *redis.TimeCmd
		var pend *redis.XPendingExtCmd
		_, err := r.c.Pipelined(ctx, func(pp redis.Pipeliner) error {
			now = pp.Time(ctx)
			pend = pp.XPendingExt(ctx, &redis.XPendingExtArgs{Stream: key, Group: g.Name, Start: start, End: "+", Count: int64(r.opts.PartElems)})
			return nil
		})
		if err != nil {
			return fmt.Errorf("db %d: key %q group %q: XPENDING: %w", r.db, key, g.Name, err)
		}
		nowMs := now.Val().UnixMilli()
		var out []format.Pending
		for _, x := range pend.Val() {
			out = append(out, format.Pending{ID: x.ID, Consumer: x.Consumer, DeliveryTimeMs: nowMs - x.Idle.Milliseconds(), DeliveryCount: x.RetryCount})
		}
		if len(out) > 0 {
			if err := fn(out); err != nil {
				return err
			}
		}
		if len(out) < r.opts.PartElems {
			return nil
		}
		start = nextID(out[len(out)-1].ID)
	}
}

// missing returns the IDs of pend whose entries are gone from the stream.
func (r *reader) missing(ctx context.Context, key string, pend []format.Pending) ([]string, error) {
	cmds := make([]*redis.XMessageSliceCmd, len(pend))
	_, err := r.c.Pipelined(ctx, func(pp redis.Pipeliner) error {
		for i, x := range pend {
			cmds[i] = pp.XRangeN(ctx, key, x.ID, x.ID, 1)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("db %d: key %q: XRANGE: %w", r.db, key, err)
	}
	var ids []string
	for i, c := range cmds {
		if len(c.Val()) == 0 {
			ids = append(ids, pend[i].ID)
		}
	}
	return ids, nil
}

// streamEmitter gathers a stream's entries and groups into parts of at
// most limit items each.
type streamEmitter struct {
	r     *reader
	p     probed
	limit int
	cur   format.Stream
	items int
	part  int
	// The highest entry ID and the entries emitted: a stream read in
	// parts while it grew (--allow-changing) can hold entries past the
	// metadata read first, which finish then raises to match.
	maxMs, maxSeq uint64
	entries       int64
}

func (e *streamEmitter) entry(ctx context.Context, x format.StreamEntry) error {
	if err := e.room(); err != nil {
		return err
	}
	e.cur.Entries = append(e.cur.Entries, x)
	e.items++
	e.entries++
	if ms, seq := parseID(x.ID); ms > e.maxMs || (ms == e.maxMs && seq > e.maxSeq) {
		e.maxMs, e.maxSeq = ms, seq
	}
	return nil
}

// group adds g (or, with pending, more of its pending entries) to the
// current part.
func (e *streamEmitter) group(ctx context.Context, g format.Group, pend []format.Pending) error {
	for {
		if err := e.room(); err != nil {
			return err
		}
		take := min(len(pend), max(e.limit-e.items, 1))
		g.Pending = append([]format.Pending{}, pend[:take]...)
		e.cur.Groups = append(e.cur.Groups, g)
		e.items += 1 + take
		pend = pend[take:]
		if len(pend) == 0 {
			return nil
		}
		// The rest continues the same group in the next part.
		g = format.Group{Name: g.Name, EntriesRead: -1, Consumers: []format.Consumer{}}
	}
}

// room emits the current part when it is full.
func (e *streamEmitter) room() error {
	if e.items < e.limit {
		return nil
	}
	return e.flush(true)
}

func (e *streamEmitter) flush(more bool) error {
	e.part++
	st := e.cur
	rec := &format.Record{DB: e.r.db, Key: e.p.key, Type: format.TypeStream, Stream: &st, Part: e.part, More: more}
	if e.part == 1 {
		rec.ExpireAtMs = e.p.exp
		if !more {
			rec.Part = 0
		}
	}
	e.cur = format.Stream{EntriesAdded: -1}
	e.items = 0
	return e.r.emit(rec)
}

// finish emits the last part, which carries the stream's metadata.
func (e *streamEmitter) finish(ctx context.Context, meta *format.Stream) error {
	e.cur.LastID, e.cur.EntriesAdded, e.cur.MaxDeletedID, e.cur.IDMP = meta.LastID, meta.EntriesAdded, meta.MaxDeletedID, meta.IDMP
	if ms, seq := parseID(meta.LastID); e.entries > 0 && (e.maxMs > ms || (e.maxMs == ms && e.maxSeq > seq)) {
		e.cur.LastID = fmt.Sprintf("%d-%d", e.maxMs, e.maxSeq)
	}
	if e.cur.EntriesAdded >= 0 && e.cur.EntriesAdded < e.entries {
		e.cur.EntriesAdded = e.entries
	}
	return e.flush(false)
}

// pairs turns a RESP2 name, value, name, value... array into a map.
func pairs(v interface{}) map[string]interface{} {
	a, _ := v.([]interface{})
	m := make(map[string]interface{}, len(a)/2)
	for i := 0; i+1 < len(a); i += 2 {
		if k, ok := a[i].(string); ok {
			m[k] = a[i+1]
		}
	}
	return m
}

func str(v interface{}) string {
	s, _ := v.(string)
	return s
}

func parseGroups(v interface{}) ([]groupInfo, error) {
	list, _ := v.([]interface{})
	out := make([]groupInfo, 0, len(list))
	for _, gv := range list {
		m := pairs(gv)
		g := groupInfo{Group: format.Group{
			Name:            str(m["name"]),
			LastDeliveredID: str(m["last-delivered-id"]),
			EntriesRead:     -1,
			Consumers:       []format.Consumer{},
		}}
		if n, ok := m["entries-read"].(int64); ok {
			g.EntriesRead = n
		}
		g.pelCount, _ = m["pel-count"].(int64)
		pend, _ := m["pending"].([]interface{})
		for _, pv := range pend {
			a, _ := pv.([]interface{})
			if len(a) != 4 {
				return nil, fmt.Errorf("group %q: pending entry of %d items", g.Name, len(a))
			}
			t, _ := a[2].(int64)
			n, _ := a[3].(int64)
			g.Pending = append(g.Pending, format.Pending{ID: str(a[0]), Consumer: str(a[1]), DeliveryTimeMs: t, DeliveryCount: n})
		}
		cons, _ := m["consumers"].([]interface{})
		for _, cv := range cons {
			cm := pairs(cv)
			c := format.Consumer{Name: str(cm["name"])}
			c.SeenTimeMs, _ = cm["seen-time"].(int64)
			c.ActiveTimeMs, _ = cm["active-time"].(int64)
			if c.ActiveTimeMs < 0 {
				c.ActiveTimeMs = 0
			}
			g.Consumers = append(g.Consumers, c)
		}
		out = append(out, g)
	}
	return out, nil
}

// parseEntries reads an XRANGE reply. go-redis's XMessage keeps fields in
// a map, which loses their order and repeated names, so read it raw.
func parseEntries(res []interface{}) ([]format.StreamEntry, error) {
	out := make([]format.StreamEntry, 0, len(res))
	for _, v := range res {
		a, _ := v.([]interface{})
		if len(a) != 2 {
			return nil, fmt.Errorf("entry of %d items", len(a))
		}
		raw, _ := a[1].([]interface{})
		e := format.StreamEntry{ID: str(a[0]), Fields: make([]string, len(raw))}
		for i, f := range raw {
			var ok bool
			if e.Fields[i], ok = f.(string); !ok {
				return nil, fmt.Errorf("entry %s: field is %T", e.ID, f)
			}
		}
		out = append(out, e)
	}
	return out, nil
}

// parseID splits "ms-seq".
func parseID(id string) (ms, seq uint64) {
	a, b, _ := strings.Cut(id, "-")
	ms, _ = strconv.ParseUint(a, 10, 64)
	seq, _ = strconv.ParseUint(b, 10, 64)
	return ms, seq
}

func idLess(a, b string) bool {
	am, as := parseID(a)
	bm, bs := parseID(b)
	return am < bm || (am == bm && as < bs)
}

// nextID is the smallest ID after id, for an exclusive range start that
// works before Redis 6.2 too.
func nextID(id string) string {
	ms, seq := parseID(id)
	if seq == ^uint64(0) {
		return strconv.FormatUint(ms+1, 10) + "-0"
	}
	return strconv.FormatUint(ms, 10) + "-" + strconv.FormatUint(seq+1, 10)
}

func uniq(ids []string) []string {
	out := ids[:0]
	for i, id := range ids {
		if i == 0 || id != ids[i-1] {
			out = append(out, id)
		}
	}
	return out
}

// readIDMP reads a stream's idempotent-producer state (Redis 8.6): its
// settings and counters from XINFO STREAM, and, where it tracks IDs, the
// IDs themselves from the stream's DUMP payload, which no other command
// shows. It returns nil for a server without idempotent producers.
func (r *reader) readIDMP(ctx context.Context, key string, info map[string]interface{}) (*format.IDMP, error) {
	dur, ok := info["idmp-duration"].(int64)
	if !ok {
		return nil, nil
	}
	num := func(name string) int64 {
		if n, ok := info[name].(int64); ok {
			return n
		}
		return -1
	}
	m := &format.IDMP{Duration: dur, MaxSize: num("idmp-maxsize"), Tracked: num("iids-tracked"), Added: num("iids-added"), Duplicates: num("iids-duplicates"), Producers: []format.Producer{}}
	if m.Tracked <= 0 {
		return m, nil
	}
	payload, err := r.c.Dump(ctx, key).Result()
	if err != nil {
		return nil, fmt.Errorf("db %d: key %q: DUMP, to read the producer IDs the stream tracks: %w", r.db, key, err)
	}
	var last *format.IDMP
	err = rdb.DecodePayload([]byte(payload), r.db, key, rdb.Options{}, func(rec *format.Record) error {
		if rec.Stream != nil && rec.Stream.IDMP != nil {
			last = rec.Stream.IDMP
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("db %d: key %q: the DUMP payload: %w", r.db, key, err)
	}
	if last == nil {
		return nil, fmt.Errorf("db %d: key %q: XINFO says it tracks %d producer IDs, and its DUMP payload holds none", r.db, key, m.Tracked)
	}
	m.Producers = last.Producers
	return m, nil
}
