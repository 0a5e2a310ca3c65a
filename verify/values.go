package verify

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/crs-tool/crs/format"
	"github.com/redis/go-redis/v9"
)

// queueValues queues the commands that read back rec's elements, the
// first at offset off of its key, and returns the offset after them.
func (v *verifier) queueValues(ctx context.Context, p redis.Pipeliner, q *pending, rec *format.Record, off int64) int64 {
	do := func(args ...interface{}) { q.values = append(q.values, p.Do(ctx, args...)) }
	switch {
	case rec.Dump != "":
	case rec.Type == format.TypeString:
		if len(rec.Str) > 0 {
			do("GETRANGE", rec.Key, off, off+int64(len(rec.Str))-1)
		}
		return off + int64(len(rec.Str))
	case rec.Type == format.TypeList:
		if len(rec.Elems) > 0 {
			do("LRANGE", rec.Key, off, off+int64(len(rec.Elems))-1)
		}
		return off + int64(len(rec.Elems))
	case rec.Type == format.TypeSet:
		if v.caps.MultiMember && len(rec.Elems) > 0 {
			args := []interface{}{"SMISMEMBER", rec.Key}
			for _, m := range rec.Elems {
				args = append(args, m)
			}
			do(args...)
		} else {
			for _, m := range rec.Elems {
				do("SISMEMBER", rec.Key, m)
			}
		}
	case rec.Type == format.TypeHash:
		if len(rec.Hash) > 0 {
			args := []interface{}{"HMGET", rec.Key}
			for _, f := range rec.Hash {
				args = append(args, f.Name)
			}
			do(args...)
		}
		if n := len(rec.FieldExpire); n > 0 && v.caps.FieldExpiry {
			args := []interface{}{"HPEXPIRETIME", rec.Key, "FIELDS", n}
			for _, f := range rec.FieldExpire {
				args = append(args, f.Field)
			}
			q.fieldExp = p.Do(ctx, args...)
		}
	case rec.Type == format.TypeZSet:
		if v.caps.MultiMember && len(rec.ZSet) > 0 {
			args := []interface{}{"ZMSCORE", rec.Key}
			for _, m := range rec.ZSet {
				args = append(args, m.Member)
			}
			do(args...)
		} else {
			for _, m := range rec.ZSet {
				do("ZSCORE", rec.Key, m.Member)
			}
		}
	case rec.Type == format.TypeVectorSet:
		queueVectorSet(ctx, p, q, rec)
	case rec.Type == format.TypeStream:
		if first, last, ok := entryRange(rec.Stream); ok {
			do("XRANGE", rec.Key, first, last)
		}
		if rec.Stream.LastID != "" {
			q.xinfo = p.Do(ctx, "XINFO", "STREAM", rec.Key)
		}
	}
	return off
}

// values checks the elements of one record.
func (v *verifier) values(rec *format.Record, q *pending) error {
	for _, c := range q.values {
		if err := c.Err(); err != nil && err != redis.Nil { // nil: missing, judged below
			return fmt.Errorf("%s: %w", strings.ToUpper(c.Name()), err)
		}
	}
	val := func(i int) interface{} { return q.values[i].(*redis.Cmd).Val() }
	switch {
	case rec.Dump != "":
		return nil // a module value: its type and expiry are checked
	case rec.Type == format.TypeString:
		if len(rec.Str) > 0 {
			got, _ := val(0).(string)
			if got != rec.Str {
				v.differ(rec.DB, rec.Key, "value differs at byte %d", v.offset+int64(firstDiff(got, rec.Str)))
			}
		}
		v.offset += int64(len(rec.Str))
		v.count += int64(len(rec.Str))
	case rec.Type == format.TypeList:
		if len(rec.Elems) > 0 {
			got, _ := val(0).([]interface{})
			for i := range rec.Elems {
				if i >= len(got) || got[i] != rec.Elems[i] {
					v.differ(rec.DB, rec.Key, "element %d differs", v.offset+int64(i))
					break
				}
			}
		}
		v.offset += int64(len(rec.Elems))
		v.count += int64(len(rec.Elems))
	case rec.Type == format.TypeSet:
		in := func(i int) bool {
			if v.caps.MultiMember {
				got, _ := val(0).([]interface{})
				return i < len(got) && got[i] == int64(1)
			}
			return val(i) == int64(1)
		}
		for i, m := range rec.Elems {
			if !in(i) {
				v.differ(rec.DB, rec.Key, "member %q missing", m)
				break
			}
		}
		v.count += int64(len(rec.Elems))
	case rec.Type == format.TypeHash:
		if len(rec.Hash) > 0 {
			got, _ := val(0).([]interface{})
			for i, f := range rec.Hash {
				if i >= len(got) || got[i] != f.Value {
					v.differ(rec.DB, rec.Key, "field %q differs", f.Name)
					return nil
				}
			}
		}
		v.count += int64(len(rec.Hash))
		return v.fieldExpiries(rec, q)
	case rec.Type == format.TypeZSet:
		score := func(i int) string {
			if v.caps.MultiMember {
				got, _ := val(0).([]interface{})
				if i < len(got) {
					s, _ := got[i].(string)
					return s
				}
				return ""
			}
			s, _ := val(i).(string)
			return s
		}
		for i, m := range rec.ZSet {
			s := score(i)
			f, err := strconv.ParseFloat(s, 64)
			if err != nil || (f != m.Score && !(math.IsInf(f, 0) && f == m.Score)) {
				v.differ(rec.DB, rec.Key, "member %q: score %v, target %s", m.Member, m.Score, orMissing(s))
				break
			}
		}
		v.count += int64(len(rec.ZSet))
	case rec.Type == format.TypeVectorSet:
		v.vectorSetValues(rec, q)
	case rec.Type == format.TypeStream:
		return v.stream(rec, q)
	}
	return nil
}

// fieldExpiries compares a hash record's field expiries.
func (v *verifier) fieldExpiries(rec *format.Record, q *pending) error {
	if len(rec.FieldExpire) == 0 {
		return nil
	}
	if q.fieldExp == nil {
		v.differ(rec.DB, rec.Key, "%d hash field expiries in the dump; the target has no HPEXPIRETIME (Redis 7.4+) to hold them", len(rec.FieldExpire))
		return nil
	}
	got, err := q.fieldExp.Int64Slice()
	if err != nil {
		return fmt.Errorf("HPEXPIRETIME: %w", err)
	}
	for i, f := range rec.FieldExpire {
		switch {
		case i >= len(got) || got[i] < 0:
			v.differ(rec.DB, rec.Key, "field %q expires at %s in the dump, target never", f.Field, at(f.AtMs))
			return nil
		case absDiff(got[i], f.AtMs) > v.opts.Tolerance.Milliseconds():
			v.differ(rec.DB, rec.Key, "field %q expires at %s in the dump, target at %s", f.Field, at(f.AtMs), at(got[i]))
			return nil
		}
	}
	return nil
}
