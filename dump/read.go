package dump

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/crs-tool/crs/format"
	"github.com/crs-tool/crs/internal/redisconn"
)

// caps are what the source server can do, probed once per dump.
type caps struct {
	expireTime  bool // PEXPIRETIME (7.0+)
	memoryUsage bool // MEMORY USAGE (4.0+, may be disabled)
	fieldExpiry bool // HPEXPIRETIME (Redis 7.4+)
}

func probeCaps(ctx context.Context, c *redis.Client) (caps, error) {
	var cp caps
	var err error
	if cp.expireTime, err = probe(ctx, c, "PEXPIRETIME", "crs:probe"); err != nil {
		return cp, err
	}
	if cp.memoryUsage, err = probe(ctx, c, "MEMORY", "USAGE", "crs:probe"); err != nil {
		cp.memoryUsage = false // disabled on some managed services
	}
	if cp.fieldExpiry, err = probe(ctx, c, "HPEXPIRETIME", "crs:probe", "FIELDS", 1, "f"); err != nil {
		cp.fieldExpiry = false
	}
	return cp, nil
}

// reader reads keys of one database and emits their records.
type reader struct {
	c    *redis.Client
	db   int
	caps caps
	opts Options
	// emit hands a record to the writer, in order.
	emit func(*format.Record) error
	// vanished counts keys that were gone when read.
	vanished func()
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
			if r.isBig(p) {
				if err := flush(); err != nil {
					return err
				}
				retry, err := r.readBig(ctx, p)
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
	switch p.typ {
	case format.TypeString:
		return p.size > r.opts.PartBytes
	case format.TypeList, format.TypeSet, format.TypeHash, format.TypeZSet:
		return p.size > int64(r.opts.PartElems) || p.bytes > r.opts.PartBytes
	}
	return false
}

// probe learns each key's type, size and expiry. Keys already gone are
// counted and left out.
func (r *reader) probe(ctx context.Context, keys []string) ([]probed, error) {
	types := make([]*redis.StatusCmd, len(keys))
	var timeCmd *redis.TimeCmd
	_, err := r.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, k := range keys {
			types[i] = p.Type(ctx, k)
		}
		if !r.caps.expireTime {
			timeCmd = p.Time(ctx)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("db %d: read types: %w", r.db, err)
	}
	var nowMs int64
	if timeCmd != nil {
		nowMs = timeCmd.Val().UnixMilli()
	}
	sizes := make([]*redis.IntCmd, len(keys))
	mems := make([]*redis.IntCmd, len(keys))
	exps := make([]*redis.IntCmd, len(keys))
	_, err = r.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, k := range keys {
			var cmd string
			switch types[i].Val() {
			case "none":
				continue
			case format.TypeString:
				cmd = "STRLEN"
			case format.TypeList:
				cmd = "LLEN"
			case format.TypeSet:
				cmd = "SCARD"
			case format.TypeHash:
				cmd = "HLEN"
			case format.TypeZSet:
				cmd = "ZCARD"
			case format.TypeStream:
				cmd = "XLEN"
			}
			if cmd != "" {
				sizes[i] = redis.NewIntCmd(ctx, cmd, k)
				p.Process(ctx, sizes[i])
			}
			if cmd != "STRLEN" && r.caps.memoryUsage {
				mems[i] = redis.NewIntCmd(ctx, "MEMORY", "USAGE", k)
				p.Process(ctx, mems[i])
			}
			expCmd := "PTTL"
			if r.caps.expireTime {
				expCmd = "PEXPIRETIME"
			}
			exps[i] = redis.NewIntCmd(ctx, expCmd, k)
			p.Process(ctx, exps[i])
		}
		return nil
	})
	if err != nil && !isReplyError(err) {
		return nil, fmt.Errorf("db %d: read sizes: %w", r.db, err)
	}
	out := make([]probed, 0, len(keys))
	for i, k := range keys {
		if exps[i] == nil {
			r.vanished()
			continue
		}
		p := probed{key: k, typ: types[i].Val()}
		if sizes[i] != nil {
			n, err := sizes[i].Result()
			if err != nil && !strings.HasPrefix(err.Error(), "WRONGTYPE") {
				return nil, fmt.Errorf("db %d: key %q: %w", r.db, k, err)
			}
			p.size = n
			p.bytes = n
		}
		if mems[i] != nil {
			p.bytes, _ = mems[i].Result() // nil for a vanished key
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
		case r.caps.expireTime:
			p.exp = ms
		default:
			p.exp = nowMs + ms
		}
		out = append(out, p)
	}
	return out, nil
}

// readSmall reads whole values of keys in one pipeline (two for hashes
// with field expiries) and emits a record for each. It returns the keys
// whose type changed since they were probed.
func (r *reader) readSmall(ctx context.Context, ps []probed) (retry []string, err error) {
	if len(ps) == 0 {
		return nil, nil
	}
	vals := make([]*redis.Cmd, len(ps))
	_, err = r.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, k := range ps {
			var args []interface{}
			switch k.typ {
			case format.TypeString:
				args = []interface{}{"GET", k.key}
			case format.TypeList:
				args = []interface{}{"LRANGE", k.key, 0, -1}
			case format.TypeSet:
				args = []interface{}{"SMEMBERS", k.key}
			case format.TypeHash:
				args = []interface{}{"HGETALL", k.key}
			case format.TypeZSet:
				args = []interface{}{"ZRANGE", k.key, 0, -1, "WITHSCORES"}
			case format.TypeStream:
				continue // read by readStream below
			default:
				args = []interface{}{"DUMP", k.key}
			}
			vals[i] = p.Do(ctx, args...)
		}
		return nil
	})
	if err != nil && !isReplyError(err) {
		return nil, fmt.Errorf("db %d: read values: %w", r.db, err)
	}
	recs := make([]*format.Record, len(ps))
	for i, k := range ps {
		if k.typ == format.TypeStream {
			continue
		}
		rec := &format.Record{DB: r.db, Key: k.key, Type: k.typ, ExpireAtMs: k.exp}
		ok, err := fillValue(rec, vals[i])
		if err != nil {
			if strings.HasPrefix(err.Error(), "WRONGTYPE") {
				retry = append(retry, k.key)
				continue
			}
			return nil, fmt.Errorf("db %d: read key %q: %w", r.db, k.key, err)
		}
		if !ok {
			r.vanished()
			continue
		}
		recs[i] = rec
	}
	if r.caps.fieldExpiry {
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
	if err != nil && !isReplyError(err) {
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

// isReplyError reports whether err is a reply from the server (such as
// WRONGTYPE for one command of a pipeline), not a connection failure.
func isReplyError(err error) bool {
	var re redis.Error
	return errors.As(err, &re)
}

// fillValue sets rec's value from a read reply. It reports false when the
// key was gone: Redis never keeps an empty list, set, hash or zset.
func fillValue(rec *format.Record, cmd *redis.Cmd) (bool, error) {
	if rec.Type == format.TypeString || !format.IsNative(rec.Type) {
		s, err := cmd.Text()
		if err == redis.Nil {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		if rec.Type == format.TypeString {
			rec.Str = s
			return true, nil
		}
		rec.Dump = s
		rec.RDBVersion, err = rdbVersion(s)
		return err == nil, err
	}
	items, err := cmd.StringSlice()
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

// rdbVersion reads the RDB version from the footer of a DUMP payload: a
// 2-byte little-endian version, then an 8-byte CRC-64.
func rdbVersion(payload string) (int, error) {
	if len(payload) < 10 {
		return 0, fmt.Errorf("DUMP payload of %d bytes is too short", len(payload))
	}
	return int(binary.LittleEndian.Uint16([]byte(payload[len(payload)-10:]))), nil
}

// probe reports whether the server has the command, by calling it.
func probe(ctx context.Context, c *redis.Client, args ...interface{}) (bool, error) {
	err := c.Do(ctx, args...).Err()
	switch {
	case err == nil || err == redis.Nil:
		return true, nil
	case redisconn.IsUnknownCommand(err):
		return false, nil
	case isReplyError(err):
		return true, nil // it exists; the probe's arguments just did not suit it
	}
	return false, fmt.Errorf("%s: %w", args[0], err)
}
