package scan

import (
	"context"
	"fmt"

	"github.com/crs-tool/crs/format"
	"github.com/crs-tool/crs/internal/redisconn"
	"github.com/crs-tool/crs/internal/rtype"
)

// window reads the next piece of a large value. It returns a record
// holding that piece (nil or empty when there is none) and whether it was
// the last.
type window func(ctx context.Context) (rec *format.Record, last bool, err error)

// windowElems is how many elements one window of p reads: at most
// PartElems, and fewer when elements are large, so a window stays near
// PartBytes.
func (r *reader) windowElems(p probed) int {
	n := int64(r.opts.PartElems)
	if p.size > 0 && p.bytes > 0 {
		per := max(p.bytes/p.size, 1)
		n = min(n, max(r.opts.PartBytes/per, 1))
	}
	return int(n)
}

// readBig reads a key in windows (GETRANGE, LRANGE, SSCAN, HSCAN, ZRANGE
// by rank) and emits each as a part, holding one window at a time, so
// memory does not grow with the key. It reports retry when the key turned
// out to have another type before anything was emitted.
func (r *reader) readBig(ctx context.Context, p probed) (retry bool, err error) {
	err = r.atomically(ctx, p.key, func(ctx context.Context) error {
		var err error
		retry, err = r.readBigOnce(ctx, p)
		return err
	})
	return retry, err
}

// readBigOnce is one read of a key in windows. The expiry is read again:
// under WATCH, so that it belongs to the same instant as the value.
func (r *reader) readBigOnce(ctx context.Context, p probed) (retry bool, err error) {
	if r.caps.ExpireTime {
		ms, err := r.c.Do(ctx, "PEXPIRETIME", p.key).Int64()
		if err != nil {
			return false, fmt.Errorf("db %d: key %q: %w", r.db, p.key, err)
		}
		p.exp = max(ms, 0)
	}
	if p.size == 0 && p.typ != format.TypeString {
		// Probed with MEMORY USAGE only: count the elements, to size the
		// windows.
		n, err := r.c.Do(ctx, rtype.Len(p.typ), p.key).Int64()
		if err != nil && !redisconn.IsWrongType(err) {
			return false, fmt.Errorf("db %d: key %q: %w", r.db, p.key, err)
		}
		p.size = n
	}
	next := r.windows(p)
	var held *format.Record
	part := 0
	emit := func(more bool) error {
		part++
		held.Part, held.More = part, more
		if part == 1 {
			held.ExpireAtMs = p.exp
			if !more {
				held.Part = 0 // it fit in one record after all
			}
		}
		return r.emit(held)
	}
	for {
		rec, last, err := next(ctx)
		if err != nil {
			if redisconn.IsWrongType(err) {
				if part == 0 && held == nil {
					return true, nil
				}
				return false, fmt.Errorf("db %d: key %q changed type while it was read in parts", r.db, p.key)
			}
			return false, fmt.Errorf("db %d: read key %q: %w", r.db, p.key, err)
		}
		if rec != nil && !emptyValue(rec) {
			if held != nil {
				if err := emit(true); err != nil {
					return false, err
				}
			}
			held = rec
		}
		if last {
			break
		}
	}
	if held == nil {
		r.vanished()
		return false, nil
	}
	return false, emit(false)
}

func emptyValue(rec *format.Record) bool {
	return rec.Str == "" && len(rec.Elems) == 0 && len(rec.Hash) == 0 && len(rec.ZSet) == 0
}

// windows returns the window function for p's type.
func (r *reader) windows(p probed) window {
	n := r.windowElems(p)
	newRec := func() *format.Record { return &format.Record{DB: r.db, Key: p.key, Type: p.typ} }
	switch p.typ {
	case format.TypeString:
		var off int64
		size := r.opts.PartBytes
		return func(ctx context.Context) (*format.Record, bool, error) {
			s, err := r.c.GetRange(ctx, p.key, off, off+size-1).Result()
			off += int64(len(s))
			rec := newRec()
			rec.Str = s
			return rec, int64(len(s)) < size, err
		}
	case format.TypeList, format.TypeZSet:
		var start int64
		return func(ctx context.Context) (*format.Record, bool, error) {
			args := []interface{}{"LRANGE", p.key, start, start + int64(n) - 1}
			if p.typ == format.TypeZSet {
				args = []interface{}{"ZRANGE", p.key, start, start + int64(n) - 1, "WITHSCORES"}
			}
			items, err := r.c.Do(ctx, args...).StringSlice()
			if err != nil {
				return nil, false, err
			}
			rec := newRec()
			if err := setItems(rec, items); err != nil {
				return nil, false, err
			}
			got := len(rec.Elems) + len(rec.ZSet)
			start += int64(got)
			return rec, got < n, nil
		}
	case format.TypeSet, format.TypeHash:
		cmd := "SSCAN"
		if p.typ == format.TypeHash {
			cmd = "HSCAN"
		}
		var cursor uint64
		return func(ctx context.Context) (*format.Record, bool, error) {
			// SCAN may return a member twice if the key changes meanwhile;
			// SADD and HSET make that harmless on load.
			res, err := r.c.Do(ctx, cmd, p.key, cursor, "COUNT", n).Slice()
			if err != nil {
				return nil, false, err
			}
			items, next, err := scanReply(res)
			if err != nil {
				return nil, false, err
			}
			cursor = next
			rec := newRec()
			if err := setItems(rec, items); err != nil {
				return nil, false, err
			}
			if r.caps.FieldExpiry && len(rec.Hash) > 0 {
				if err := r.readFieldExpiry(ctx, []*format.Record{rec}); err != nil {
					return nil, false, err
				}
			}
			return rec, cursor == 0, nil
		}
	}
	return func(context.Context) (*format.Record, bool, error) {
		return nil, true, fmt.Errorf("cannot read a %s in parts", p.typ)
	}
}

// scanReply splits a SCAN-family reply into its items and next cursor.
func scanReply(res []interface{}) ([]string, uint64, error) {
	if len(res) != 2 {
		return nil, 0, fmt.Errorf("scan reply has %d items", len(res))
	}
	cur, ok := res[0].(string)
	if !ok {
		return nil, 0, fmt.Errorf("scan cursor is %T", res[0])
	}
	var next uint64
	if _, err := fmt.Sscan(cur, &next); err != nil {
		return nil, 0, fmt.Errorf("scan cursor %q: %w", cur, err)
	}
	raw, ok := res[1].([]interface{})
	if !ok {
		return nil, 0, fmt.Errorf("scan items are %T", res[1])
	}
	items := make([]string, len(raw))
	for i, v := range raw {
		if items[i], ok = v.(string); !ok {
			return nil, 0, fmt.Errorf("scan item is %T", v)
		}
	}
	return items, next, nil
}
