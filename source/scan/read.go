package scan

import (
	"context"
	"fmt"
	"strconv"
	"sync"

	"github.com/redis/go-redis/v9"

	"github.com/crs-tool/crs/format"
	"github.com/crs-tool/crs/internal/dumppayload"
	"github.com/crs-tool/crs/internal/redisconn"
	"github.com/crs-tool/crs/internal/resp"
	"github.com/crs-tool/crs/internal/rtype"
)

// reader reads keys of one database and emits their records.
type reader struct {
	c    *redis.Client
	rc   *resp.Conn // the hot path: probes and whole values
	db   int
	caps redisconn.Caps
	opts Options
	// emit hands a record to the writer, in order.
	emit func(*format.Record) error
	// vanished counts keys that were gone when read.
	vanished func()
	// counts counts keys read more than once.
	counts *counters
	// afterRead, in tests, runs between the read of a key in parts and
	// the check that it did not change.
	afterRead func(key string, attempt int)
}

// probed is what the first two round trips learn of a key.
type probed struct {
	key   string
	typ   string
	size  int64 // elements, or bytes for a string
	bytes int64 // estimated bytes of the value
	exp   int64 // absolute expiry in unix ms, 0 for none
}

// readBatch reads keys in three pipelined round trips: types; sizes and
// expiries; values. Small keys are read whole, in pipelines whose
// estimated size stays under the part budget; a key larger than one part
// is read in windows and emitted as parts. Records come out in the order
// of keys. A key whose type changes while it is read is read again.
func (r *reader) readBatch(ctx context.Context, keys []string) error {
	for attempt := 0; len(keys) > 0; attempt++ {
		if attempt == 3 {
			return fmt.Errorf("db %d: key %q keeps changing type while it is read", r.db, keys[0])
		}
		ps, err := r.probe(ctx, keys)
		if err != nil {
			return err
		}
		keys = nil
		var small []probed
		budget := int64(0)
		flush := func() error {
			retry, err := r.readSmall(ctx, small)
			keys = append(keys, retry...)
			small, budget = small[:0], 0
			return err
		}
		for _, p := range ps {
			if big, vset := r.isBig(p), p.typ == format.TypeVectorSet; big || vset {
				if err := flush(); err != nil {
					return err
				}
				read := r.readBig
				if vset {
					read = r.readVectorSet
				}
				retry, err := read(ctx, p)
				if err != nil {
					return err
				}
				if retry {
					keys = append(keys, p.key)
				}
				continue
			}
			if budget+p.bytes > 4*r.opts.PartBytes && len(small) > 0 {
				if err := flush(); err != nil {
					return err
				}
			}
			small = append(small, p)
			budget += p.bytes
		}
		if err := flush(); err != nil {
			return err
		}
	}
	return nil
}

func (r *reader) isBig(p probed) bool {
	switch t, _ := rtype.Of(p.typ); {
	case p.typ == format.TypeString:
		// size is STRLEN when the probe asked it; bytes is MEMORY USAGE.
		return p.size > r.opts.PartBytes || p.bytes > r.opts.PartBytes
	case t.Elements:
		return p.size > int64(r.opts.PartElems) || p.bytes > r.opts.PartBytes
	}
	return false
}

// probe learns each key's type, size and expiry. Keys already gone are
// counted and left out. With MEMORY USAGE (nearly every server) this is
// one round trip of three commands a key; without it, a second round trip
// asks each key's length by its type.
func (r *reader) probe(ctx context.Context, keys []string) ([]probed, error) {
	if !r.caps.MemoryUsage || !r.caps.ExpireTime {
		return r.probeSlow(ctx, keys)
	}
	for _, k := range keys {
		r.rc.Begin("TYPE", 1).Str(k)
		r.rc.Begin("MEMORY", 2).Str("USAGE").Str(k)
		r.rc.Begin("PEXPIRETIME", 1).Str(k)
	}
	out := make([]probed, 0, len(keys))
	var p probed
	gone := false
	err := r.rc.ExecValues(ctx, func(i int, v resp.Value) error {
		k := keys[i/3]
		if v.Kind == resp.KindError && i%3 != 0 {
			return fmt.Errorf("db %d: key %q: %s", r.db, k, v.Str)
		}
		switch i % 3 {
		case 0:
			if v.Kind != resp.KindStatus {
				return fmt.Errorf("db %d: key %q: TYPE: %s", r.db, k, v.Str)
			}
			p, gone = probed{key: k, typ: v.Str}, v.Str == "none"
		case 1:
			gone = gone || v.Nil // gone between TYPE and MEMORY USAGE
			p.bytes = v.Int
		case 2:
			switch {
			case gone || v.Int == -2:
				r.vanished()
				return nil
			case v.Int > 0:
				p.exp = v.Int
			}
			out = append(out, p)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, r.countLarge(ctx, out)
}

// probeSlow is probe for servers without MEMORY USAGE or PEXPIRETIME.
func (r *reader) probeSlow(ctx context.Context, keys []string) ([]probed, error) {
	types := make([]*redis.StatusCmd, len(keys))
	mems := make([]*redis.IntCmd, len(keys))
	exps := make([]*redis.IntCmd, len(keys))
	expCmd := "PTTL"
	if r.caps.ExpireTime {
		expCmd = "PEXPIRETIME"
	}
	var timeCmd *redis.TimeCmd
	_, err := r.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		if !r.caps.ExpireTime {
			timeCmd = p.Time(ctx)
		}
		for i, k := range keys {
			types[i] = p.Type(ctx, k)
			if r.caps.MemoryUsage {
				mems[i] = redis.NewIntCmd(ctx, "MEMORY", "USAGE", k)
				p.Process(ctx, mems[i])
				exps[i] = redis.NewIntCmd(ctx, expCmd, k)
				p.Process(ctx, exps[i])
			}
		}
		return nil
	})
	if err != nil && !redisconn.IsReplyError(err) {
		return nil, fmt.Errorf("db %d: read types: %w", r.db, err)
	}
	var nowMs int64
	if timeCmd != nil {
		nowMs = timeCmd.Val().UnixMilli()
	}
	sizes := make([]*redis.IntCmd, len(keys))
	if !r.caps.MemoryUsage {
		_, err = r.c.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i, k := range keys {
				if types[i].Val() == "none" {
					continue
				}
				if cmd := rtype.Len(types[i].Val()); cmd != "" {
					sizes[i] = redis.NewIntCmd(ctx, cmd, k)
					p.Process(ctx, sizes[i])
				}
				exps[i] = redis.NewIntCmd(ctx, expCmd, k)
				p.Process(ctx, exps[i])
			}
			return nil
		})
		if err != nil && !redisconn.IsReplyError(err) {
			return nil, fmt.Errorf("db %d: read sizes: %w", r.db, err)
		}
	}
	out := make([]probed, 0, len(keys))
	for i, k := range keys {
		t, err := types[i].Result()
		if err != nil {
			return nil, fmt.Errorf("db %d: key %q: TYPE: %w", r.db, k, err)
		}
		if t == "none" {
			r.vanished()
			continue
		}
		p := probed{key: k, typ: t}
		if sizes[i] != nil {
			n, err := sizes[i].Result()
			if err != nil && !redisconn.IsWrongType(err) {
				return nil, fmt.Errorf("db %d: key %q: %w", r.db, k, err)
			}
			p.size, p.bytes = n, n
		}
		if mems[i] != nil {
			n, err := mems[i].Result()
			if err == redis.Nil {
				r.vanished() // gone between TYPE and MEMORY USAGE
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("db %d: key %q: MEMORY USAGE: %w", r.db, k, err)
			}
			p.bytes = n
		}
		ms, err := exps[i].Result()
		if err != nil {
			return nil, fmt.Errorf("db %d: read expiry of %q: %w", r.db, k, err)
		}
		switch {
		case ms == -2:
			r.vanished()
			continue
		case ms == -1:
		case r.caps.ExpireTime:
			p.exp = ms
		default:
			p.exp = nowMs + ms
		}
		out = append(out, p)
	}
	return out, r.countLarge(ctx, out)
}

// countLarge asks the element count of keys whose size in bytes allows
// more than PartElems elements (an element takes at least 2 bytes), so
// that --part-elems holds; most keys are far smaller and skip this.
func (r *reader) countLarge(ctx context.Context, ps []probed) error {
	var idx []int
	for i, p := range ps {
		if p.size == 0 && p.typ != format.TypeString && p.typ != format.TypeStream && rtype.Len(p.typ) != "" && p.bytes > 2*int64(r.opts.PartElems) {
			idx = append(idx, i)
		}
	}
	if len(idx) == 0 {
		return nil
	}
	cmds := make([]*redis.IntCmd, len(idx))
	_, err := r.c.Pipelined(ctx, func(pp redis.Pipeliner) error {
		for j, i := range idx {
			cmds[j] = redis.NewIntCmd(ctx, rtype.Len(ps[i].typ), ps[i].key)
			pp.Process(ctx, cmds[j])
		}
		return nil
	})
	if err != nil && !redisconn.IsReplyError(err) {
		return fmt.Errorf("db %d: read sizes: %w", r.db, err)
	}
	for j, i := range idx {
		ps[i].size, _ = cmds[j].Result() // a WRONGTYPE is caught when the value is read
	}
	return nil
}

// readSmall reads whole values of keys in one pipeline (two for hashes
// with field expiries) and emits a record for each. It returns the keys
// whose type changed since they were probed.
func (r *reader) readSmall(ctx context.Context, ps []probed) (retry []string, err error) {
	if len(ps) == 0 {
		return nil, nil
	}
	for _, k := range ps {
		t, native := rtype.Of(k.typ)
		switch {
		case native && len(t.Read) > 0:
			r.rc.Begin(t.Read[0], len(t.Read)).Str(k.key)
			for _, a := range t.Read[1:] {
				r.rc.Str(a)
			}
		case native:
			r.rc.Begin("PING", 0) // a stream, read by readStream below; keeps replies in step
		default:
			r.rc.Begin("DUMP", 1).Str(k.key)
		}
	}
	recs := make([]*format.Record, len(ps))
	err = r.rc.ExecValues(ctx, func(i int, v resp.Value) error {
		k := ps[i]
		if k.typ == format.TypeStream {
			return nil
		}
		rec := &format.Record{DB: r.db, Key: k.key, Type: k.typ, ExpireAtMs: k.exp}
		ok, err := fillValue(rec, v)
		if err != nil {
			if redisconn.IsWrongType(err) {
				retry = append(retry, k.key)
				return nil
			}
			return fmt.Errorf("db %d: read key %q: %w", r.db, k.key, err)
		}
		if !ok {
			r.vanished()
			return nil
		}
		recs[i] = rec
		return nil
	})
	if err != nil {
		return nil, err
	}
	if r.caps.FieldExpiry {
		if err := r.readFieldExpiry(ctx, recs); err != nil {
			return nil, err
		}
	}
	for i, k := range ps {
		if k.typ == format.TypeStream {
			gone, err := r.readStream(ctx, k)
			if err != nil {
				return nil, err
			}
			if gone {
				r.vanished()
			}
			continue
		}
		if recs[i] != nil {
			if err := r.emit(recs[i]); err != nil {
				return nil, err
			}
		}
	}
	return retry, nil
}

// readFieldExpiry fills FieldExpire of the hash records with
// HPEXPIRETIME, one pipeline for all of them.
func (r *reader) readFieldExpiry(ctx context.Context, recs []*format.Record) error {
	cmds := make([]*redis.Cmd, len(recs))
	any := false
	_, err := r.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, rec := range recs {
			if rec == nil || rec.Type != format.TypeHash || len(rec.Hash) == 0 {
				continue
			}
			args := make([]interface{}, 0, 4+len(rec.Hash))
			args = append(args, "HPEXPIRETIME", rec.Key, "FIELDS", len(rec.Hash))
			for _, f := range rec.Hash {
				args = append(args, f.Name)
			}
			cmds[i] = p.Do(ctx, args...)
			any = true
		}
		return nil
	})
	if !any {
		return nil
	}
	if err != nil && !redisconn.IsReplyError(err) {
		return fmt.Errorf("db %d: read field expiries: %w", r.db, err)
	}
	for i, cmd := range cmds {
		if cmd == nil {
			continue
		}
		ms, err := cmd.Int64Slice()
		if err != nil {
			return fmt.Errorf("db %d: read field expiries of %q: %w", r.db, recs[i].Key, err)
		}
		setFieldExpiry(recs[i], ms)
	}
	return nil
}

// setFieldExpiry keeps the fields whose HPEXPIRETIME reply is an expiry
// (-1 is none; -2 is a field gone since the value was read).
func setFieldExpiry(rec *format.Record, ms []int64) {
	for j, at := range ms {
		if j < len(rec.Hash) && at > 0 {
			rec.FieldExpire = append(rec.FieldExpire, format.FieldExpiry{Field: rec.Hash[j].Name, AtMs: at})
		}
	}
}

// fillValue sets rec's value from a read reply. It reports false when the
// key was gone: Redis never keeps an empty list, set, hash or zset.
func fillValue(rec *format.Record, v resp.Value) (bool, error) {
	if v.Kind == resp.KindError {
		return false, resp.ServerError(v.Str)
	}
	if rec.Type == format.TypeString || !format.IsNative(rec.Type) {
		if v.Nil {
			return false, nil
		}
		if v.Kind != resp.KindBulk {
			return false, fmt.Errorf("unexpected reply %q", v.Kind)
		}
		if rec.Type == format.TypeString {
			rec.Str = v.Str
			return true, nil
		}
		var err error
		rec.Dump = v.Str
		rec.RDBVersion, err = dumppayload.Version(v.Str)
		return err == nil, err
	}
	items, err := v.Strings()
	if err != nil {
		return false, err
	}
	if len(items) == 0 {
		return false, nil
	}
	return true, setItems(rec, items)
}

// setItems sets a list, set, hash or zset value (or part) from a reply.
func setItems(rec *format.Record, items []string) error {
	switch rec.Type {
	case format.TypeList, format.TypeSet:
		rec.Elems = items
	case format.TypeHash:
		if len(items)%2 != 0 {
			return fmt.Errorf("hash reply has %d items", len(items))
		}
		rec.Hash = make([]format.Field, len(items)/2)
		for i := range rec.Hash {
			rec.Hash[i] = format.Field{Name: items[2*i], Value: items[2*i+1]}
		}
	case format.TypeZSet:
		if len(items)%2 != 0 {
			return fmt.Errorf("zset reply has %d items", len(items))
		}
		rec.ZSet = make([]format.Member, len(items)/2)
		for i := range rec.ZSet {
			f, err := strconv.ParseFloat(items[2*i+1], 64)
			if err != nil {
				return fmt.Errorf("score %q of member %q: %w", items[2*i+1], items[2*i], err)
			}
			rec.ZSet[i] = format.Member{Member: items[2*i], Score: f}
		}
	}
	return nil
}

// counters counts, for one database's workers, the keys read in parts
// that changed while they were read.
type counters struct {
	mu       sync.Mutex
	reread   int64 // keys read again because they changed
	changing int64 // keys written as last read though they kept changing
}

func (c *counters) note(extra int, changed bool) {
	if c == nil || (extra == 0 && !changed) {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if extra > 0 {
		c.reread++
	}
	if changed {
		c.changing++
	}
}
