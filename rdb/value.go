package rdb

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/crs-tool/crs/format"
)

// Value types.
const (
	typeString          = 0
	typeList            = 1
	typeSet             = 2
	typeZSet            = 3
	typeHash            = 4
	typeZSet2           = 5
	typeModulePreGA     = 6
	typeModule2         = 7
	typeHashZipmap      = 9
	typeListZiplist     = 10
	typeSetIntset       = 11
	typeZSetZiplist     = 12
	typeHashZiplist     = 13
	typeListQuicklist   = 14
	typeStreamListpacks = 15
	typeHashListpack    = 16
	typeZSetListpack    = 17
	typeListQuicklist2  = 18
	typeStreamListpack2 = 19
	typeSetListpack     = 20
	typeStreamListpack3 = 21
	typeHashMetaPreGA   = 22
	typeHashLpExPreGA   = 23
	typeHashMeta        = 24
	typeHashLpEx        = 25
	typeStreamListpack4 = 26 // with idempotent producers (Redis 8.6)

	// Valkey 9 (RDB 80) numbers its hash with field expiries 22, which
	// Redis used for 7.4 release candidates.
	typeValkeyHashExpiry = 22
)

// valkeyVersions is the first of Valkey's own RDB versions (Valkey 9
// writes VALKEY080), whose types typeSince does not list.
const valkeyVersions = 80

// typeSince is the RDB version that first holds value type t, as Redis
// numbers them: a file of an older version holding it is corrupt (Redis
// 6.0 and 7.0 refuse it; 8.x read it, find nothing, and skip the key).
func typeSince(t byte) int {
	switch {
	case t == typeListQuicklist:
		return 7 // Redis 3.2
	case t == typeZSet2 || t == typeModulePreGA || t == typeModule2:
		return 8 // Redis 4.0
	case t == typeStreamListpacks:
		return 9 // Redis 5.0
	case t >= typeHashListpack && t <= typeStreamListpack2:
		return 10 // Redis 7.0
	case t == typeSetListpack || t == typeStreamListpack3:
		return 11 // Redis 7.2
	case t >= typeHashMetaPreGA && t <= typeHashLpEx:
		return 12 // Redis 7.4
	case t == typeStreamListpack4:
		return 13 // Redis 8.6
	}
	return 1
}

// builder cuts one key's value into records of at most PartElems
// elements or about PartBytes bytes, emitting each as it fills.
type builder struct {
	opts  Options
	emit  func(*format.Record) error
	rec   *format.Record
	part  int
	elems int
	bytes int
	skip  bool // the key has expired: read, but emit nothing
	stats *Stats
	full  bool // the record is full; it goes as a part once more follows
	db    int
	key   string
	typ   string
	exp   int64
}

func (b *builder) start() {
	b.rec = &format.Record{DB: b.db, Key: b.key, Type: b.typ}
	switch b.typ {
	case format.TypeStream:
		b.rec.Stream = &format.Stream{EntriesAdded: -1}
	case format.TypeVectorSet:
		b.rec.VectorSet = &format.VectorSet{}
	}
	b.elems, b.bytes = 0, 0
}

// next makes room for one more element: a full record goes out as a
// part, now that more is known to follow.
func (b *builder) next() error {
	if !b.full {
		return nil
	}
	b.full = false
	return b.flush(true)
}

// grew accounts for an element of n bytes just added.
func (b *builder) grew(n int) error {
	b.elems++
	b.bytes += n
	b.full = b.elems >= b.opts.PartElems || b.bytes >= b.opts.PartBytes
	return nil
}

// finish emits the last record of the key: nothing for an empty value,
// which no server holds and Redis 8 skips on loading, counted and named.
func (b *builder) finish() error {
	if b.elems == 0 && b.part == 0 {
		if b.stats != nil && !b.skip {
			b.stats.EmptyKeys++
			if len(b.stats.EmptyKeyNames) < 10 {
				b.stats.EmptyKeyNames = append(b.stats.EmptyKeyNames, fmt.Sprintf("%q (db %d)", b.key, b.db))
			}
		}
		return nil
	}
	b.full = false
	return b.flush(false)
}

// flush emits the record being built: as a part when more follows or an
// earlier part was emitted, else whole.
func (b *builder) flush(more bool) error {
	rec := b.rec
	if more || b.part > 0 {
		b.part++
		rec.Part, rec.More = b.part, more
	}
	if b.part <= 1 {
		rec.ExpireAtMs = b.exp
	}
	b.start()
	if b.skip {
		return nil
	}
	if err := b.emit(rec); err != nil {
		return emitError{err}
	}
	return nil
}

func (b *builder) elem(s string) error {
	if err := b.next(); err != nil {
		return err
	}
	if b.rec.Elems == nil {
		b.rec.Elems = make([]string, 0, firstCap)
	}
	b.rec.Elems = append(b.rec.Elems, s)
	return b.grew(len(s))
}

// firstCap is the room a record's first element gets: most small
// collections fit, in one allocation rather than four (1, 2, 4, 8).
const firstCap = 8

func (b *builder) field(name, value string, expireAt int64) error {
	// A field whose expiry has passed is one a server loading the file
	// drops.
	if expireAt > 0 && b.opts.NowMs > 0 && expireAt <= b.opts.NowMs {
		if b.stats != nil && !b.skip {
			b.stats.ExpiredFields++
		}
		return nil
	}
	if err := b.next(); err != nil {
		return err
	}
	if b.rec.Hash == nil {
		b.rec.Hash = make([]format.Field, 0, firstCap)
	}
	b.rec.Hash = append(b.rec.Hash, format.Field{Name: name, Value: value})
	if expireAt > 0 {
		b.rec.FieldExpire = append(b.rec.FieldExpire, format.FieldExpiry{Field: name, AtMs: expireAt})
	}
	return b.grew(len(name) + len(value))
}

func (b *builder) member(m string, score float64) error {
	if math.IsNaN(score) {
		return fmt.Errorf("sorted set member %q has a NaN score", m)
	}
	if err := b.next(); err != nil {
		return err
	}
	if b.rec.ZSet == nil {
		b.rec.ZSet = make([]format.Member, 0, firstCap)
	}
	b.rec.ZSet = append(b.rec.ZSet, format.Member{Member: m, Score: score})
	return b.grew(len(m) + 8)
}

// pairs feeds a walker's elements to fn two at a time.
func pairs(fn func(a, b string) error) (func(string) error, func() error) {
	var first string
	odd := false
	return func(s string) error {
			if !odd {
				first, odd = s, true
				return nil
			}
			odd = false
			return fn(first, s)
		}, func() error {
			if odd {
				return fmt.Errorf("an odd number of elements where pairs belong")
			}
			return nil
		}
}

// key reads one key of value type t and emits its records.
func (d *Decoder) key(t byte, expire int64, meta []string, emit func(*format.Record) error) error {
	at := d.in.off - 1
	kb, err := d.in.str()
	if err != nil {
		return err
	}
	if t > typeStreamListpack4 || t == 8 {
		by := d.info.Engine + " " + d.info.ServerVersion
		if d.info.ServerVersion == "" {
			by = "a server that does not say its version"
		}
		return &Error{Offset: at, Err: fmt.Errorf("db %d key %q: value type %d, which crs does not read yet (the file is %s RDB version %d, written by %s)", d.db, kb, t, d.info.Engine, d.info.Version, by)}
	}
	if since := typeSince(t); d.info.Version < valkeyVersions && d.info.Version < since {
		return &Error{Offset: at, Err: fmt.Errorf("db %d key %q: value type %d first appears in RDB version %d, and the file says it is version %d: the servers of its version refuse it (the file is corrupt)", d.db, kb, t, since, d.info.Version)}
	}
	if len(meta) > 0 {
		if !d.opts.DropKeyMeta {
			return fmt.Errorf("db %d key %q carries module key metadata (%s), which crs cannot carry: --drop-key-metadata reads the key without it, counting it", d.db, kb, strings.Join(meta, ", "))
		}
		d.Stats.KeyMeta++
		if len(d.Stats.KeyMetaKeys) < 10 {
			d.Stats.KeyMetaKeys = append(d.Stats.KeyMetaKeys, fmt.Sprintf("%q (db %d): %s", kb, d.db, strings.Join(meta, ", ")))
		}
	}
	b := &builder{opts: d.opts, emit: emit, db: d.db, key: owned(kb), exp: expire, stats: &d.Stats}
	if expire > 0 && d.opts.NowMs > 0 && expire <= d.opts.NowMs {
		b.skip = true
		d.Stats.Expired++
	}
	if err := d.value(t, b); err != nil {
		var e *Error
		switch {
		case isEmitError(err):
			return err
		case errors.As(err, &e):
			return &Error{Offset: e.Offset, Err: fmt.Errorf("db %d key %q: %w", d.db, b.key, e.Err)}
		}
		return fmt.Errorf("db %d key %q: %w", d.db, b.key, err)
	}
	return nil
}

// value reads the value of type t into b.
func (d *Decoder) value(t byte, b *builder) error {
	b.typ = nativeType(t)
	if d.opts.Skim && skimmed(t) {
		return d.skimValue(t, b)
	}
	if d.passable && skimmed(t) {
		if ok, err := d.payloadValue(t, b); ok {
			return err
		}
	}
	switch b.typ {
	case format.TypeString:
		return d.stringValue(b)
	case format.TypeStream:
		return d.stream(t, b)
	case "":
		if t == typeModule2 || t == typeModulePreGA {
			return d.module(t, b)
		}
		return fmt.Errorf("unknown value type %d", t)
	}
	b.start()
	if err := d.collection(t, b); err != nil {
		return err
	}
	return b.finish()
}

// nativeType is the format's type of RDB value type t, or "" for a
// module value (or a type crs does not know).
func nativeType(t byte) string {
	switch t {
	case typeString:
		return format.TypeString
	case typeList, typeListZiplist, typeListQuicklist, typeListQuicklist2:
		return format.TypeList
	case typeSet, typeSetIntset, typeSetListpack:
		return format.TypeSet
	case typeZSet, typeZSet2, typeZSetZiplist, typeZSetListpack:
		return format.TypeZSet
	case typeHash, typeHashZipmap, typeHashZiplist, typeHashListpack, typeHashMeta, typeHashMetaPreGA, typeHashLpEx, typeHashLpExPreGA:
		return format.TypeHash
	case typeStreamListpacks, typeStreamListpack2, typeStreamListpack3, typeStreamListpack4:
		return format.TypeStream
	}
	return ""
}

// stringValue reads a string, in parts of PartBytes when it is larger.
func (d *Decoder) stringValue(b *builder) error {
	b.start()
	var held []byte
	have := false
	err := d.in.strChunks(b.opts.PartBytes, func(p []byte) error {
		if have {
			b.rec.Str = string(held)
			if err := b.flush(true); err != nil {
				return err
			}
		}
		held, have = p, true
		return nil
	})
	if err != nil {
		return err
	}
	b.rec.Str = string(held)
	return b.flush(false)
}

// collection reads a list, set, sorted set or hash of any encoding.
func (d *Decoder) collection(t byte, b *builder) error {
	switch t {
	case typeList, typeSet:
		return d.each(func() error {
			s, err := d.in.str()
			if err != nil {
				return err
			}
			return b.elem(owned(s))
		})
	case typeListQuicklist:
		return d.each(func() error { return d.blob(walkZiplist, b.elem) })
	case typeListQuicklist2:
		return d.each(func() error { return d.quicklistNode(b) })
	case typeListZiplist:
		return d.blob(walkZiplist, b.elem)
	case typeSetIntset:
		return d.blob(walkIntset, b.elem)
	case typeSetListpack:
		return d.blob(walkListpack, b.elem)
	case typeZSet, typeZSet2:
		return d.each(func() error {
			m, err := d.in.str()
			if err != nil {
				return err
			}
			var score float64
			if t == typeZSet2 {
				score, err = d.in.binaryDouble()
			} else {
				score, err = d.in.double()
			}
			if err != nil {
				return err
			}
			return b.member(owned(m), score)
		})
	case typeZSetZiplist, typeZSetListpack:
		walk := walkListpack
		if t == typeZSetZiplist {
			walk = walkZiplist
		}
		return d.pairBlob(walk, func(m, s string) error {
			score, err := strconv.ParseFloat(s, 64)
			if err != nil {
				return fmt.Errorf("score %q of member %q: %w", s, m, err)
			}
			return b.member(m, score)
		})
	}
	return d.hash(t, b)
}

// hash reads a hash of any encoding.
func (d *Decoder) hash(t byte, b *builder) error {
	field := func(k, v string) error { return b.field(k, v, 0) }
	switch t {
	case typeHash:
		return d.each(func() error {
			k, v, err := d.in.pair()
			if err != nil {
				return err
			}
			return field(k, v)
		})
	case typeHashZipmap:
		return d.pairBlob(func(b []byte, fn func(string) error) error {
			return walkZipmap(b, &d.Stats.OddZipmaps, fn)
		}, field)
	case typeHashZiplist:
		return d.pairBlob(walkZiplist, field)
	case typeHashListpack:
		return d.pairBlob(walkListpack, field)
	case typeHashLpEx, typeHashLpExPreGA:
		if t == typeHashLpEx {
			if _, err := d.in.uint64LE(); err != nil { // the smallest expiry, again in the fields
				return err
			}
		}
		return d.tripleBlob(func(k, v, ttl string) error {
			at, err := strconv.ParseInt(ttl, 10, 64)
			if err != nil || at < 0 {
				return fmt.Errorf("field %q has expiry %q", k, ttl)
			}
			return b.field(k, v, at) // 0: none
		})
	case typeHashMeta, typeHashMetaPreGA:
		if d.info.Engine == "valkey" && d.info.Version >= 80 && t == typeValkeyHashExpiry {
			return d.valkeyHash(b)
		}
		return d.hashMeta(t, b)
	}
	return fmt.Errorf("unknown value type %d", t)
}

// hashMeta reads a hash with field expiries in hashtable form: (the
// smallest expiry,) then the count and [ttl][field][value] each.
func (d *Decoder) hashMeta(t byte, b *builder) error {
	var minExp uint64
	if t == typeHashMeta {
		v, err := d.in.uint64LE()
		if err != nil {
			return err
		}
		minExp = v
	}
	return d.each(func() error {
		ttl, err := d.in.count()
		if err != nil {
			return err
		}
		at := int64(ttl) // absolute before 7.4 GA
		if t == typeHashMeta && ttl != 0 {
			at = int64(ttl + minExp - 1) // relative to the smallest, plus one
		}
		k, v, err := d.in.pair()
		if err != nil {
			return err
		}
		return b.field(k, v, at)
	})
}

// valkeyHash reads Valkey 9's hash with field expiries: the count, then
// [field][value][expiry: 8 bytes, unix ms, -1 for none] each.
func (d *Decoder) valkeyHash(b *builder) error {
	return d.each(func() error {
		k, v, err := d.in.pair()
		if err != nil {
			return err
		}
		at, err := d.in.uint64LE()
		if err != nil {
			return err
		}
		return b.field(k, v, max(int64(at), 0))
	})
}

// quicklistNode reads one node of a quicklist 2: a container kind, then a
// plain element or a listpack of elements.
func (d *Decoder) quicklistNode(b *builder) error {
	kind, err := d.in.count()
	if err != nil {
		return err
	}
	switch kind {
	case 1: // plain: one (large) element
		s, err := d.in.str()
		if err != nil {
			return err
		}
		return b.elem(owned(s))
	case 2:
		return d.blob(walkListpack, b.elem)
	}
	return fmt.Errorf("quicklist node container %d", kind)
}

// each reads a count, then calls fn that many times.
func (d *Decoder) each(fn func() error) error {
	n, err := d.in.count()
	if err != nil {
		return err
	}
	for ; n > 0; n-- {
		if err := fn(); err != nil {
			return err
		}
	}
	return nil
}

// blob reads a string holding a compact encoding and walks it.
func (d *Decoder) blob(walk func([]byte, func(string) error) error, fn func(string) error) error {
	s, err := d.in.str()
	if err != nil {
		return err
	}
	return walk(s, fn)
}

func (d *Decoder) pairBlob(walk func([]byte, func(string) error) error, fn func(a, b string) error) error {
	each, done := pairs(fn)
	if err := d.blob(walk, each); err != nil {
		return err
	}
	return done()
}

// tripleBlob walks a listpack of field, value, expiry triples.
func (d *Decoder) tripleBlob(fn func(k, v, ttl string) error) error {
	var got [2]string
	n := 0
	err := d.blob(walkListpack, func(s string) error {
		if n < 2 {
			got[n] = s
			n++
			return nil
		}
		n = 0
		return fn(got[0], got[1], s)
	})
	if err == nil && n != 0 {
		err = fmt.Errorf("a listpack of field triples has %d left over", n)
	}
	return err
}
