package rdb

import (
	"encoding/binary"
	"fmt"
	"io"

	"github.com/crs-tool/crs/format"
	"github.com/crs-tool/crs/internal/dumppayload"
)

// A skim reads an RDB file for what a load's pre-flight needs to know
// before it writes (which keys have which type, which hashes have field
// expiries, every stream's metadata and groups, which module types there
// are), without building values it does not need: a string, list, set,
// sorted set or hash without field expiries becomes a record of its key
// and type alone, its bytes passed over, not decoded (LZF strings are not
// expanded, compact encodings not walked). Streams, module values and
// hashes with field expiries are read whole. Such records are for
// looking at, not for loading: they break the format's rules (a
// collection without elements), and the checksum is not computed.

// PayloadTarget is the server a file's values are handed over to as DUMP
// payloads (Options.Payloads).
type PayloadTarget struct {
	Engine string // "redis" or "valkey"
	RDB    int    // the RDB version it writes; 0: no payloads
}

// reads reports whether a server of target reads every encoding of a
// file of RDB version v written by engine: a version not newer than its
// own, and Valkey's own versions (past 11) only for Valkey, Redis's only
// for Redis.
func (p PayloadTarget) reads(engine string, v int) bool {
	return p.RDB > 0 && v <= p.RDB && (v <= 11 || engine == p.Engine)
}

// payloadValue copies a value of type t, if it is a string or one blob
// of at most PartBytes, as a DUMP payload; ok is false (nothing read)
// where it is not one.
func (d *Decoder) payloadValue(t byte, b *builder) (ok bool, err error) {
	limit := d.opts.PartBytes
	if limit <= 0 {
		limit = 1 << 20
	}
	size, ok := d.in.blobSize(t)
	if !ok || size > limit {
		return false, nil
	}
	buf := &d.payload
	buf.Reset()
	buf.WriteByte(t)
	d.in.copy = buf
	err = d.skimValue(t, &builder{skip: true})
	d.in.copy = nil
	if err != nil {
		return true, err
	}
	if b.skip {
		return true, nil
	}
	var foot [10]byte
	binary.LittleEndian.PutUint16(foot[:], uint16(d.opts.Payloads.RDB))
	buf.Write(foot[:2])
	binary.LittleEndian.PutUint64(foot[2:], dumppayload.CRC(0, buf.Bytes()))
	buf.Write(foot[2:])
	rec := &format.Record{DB: b.db, Key: b.key, Type: b.typ, ExpireAtMs: b.exp, Dump: buf.String(), RDBVersion: d.opts.Payloads.RDB}
	if err := b.emit(rec); err != nil {
		return true, emitError{err}
	}
	return true, nil
}

// blobSize peeks at the bytes a value of type t takes, where it is a
// string or one blob (a list: of one node), without consuming them.
func (in *input) blobSize(t byte) (int, bool) {
	p, _ := in.r.Peek(24)
	at := 0
	if t == typeListQuicklist || t == typeListQuicklist2 {
		if n, w, enc := peekLength(p); w == 0 || enc || n != 1 {
			return 0, false
		} else {
			at = w
		}
		if t == typeListQuicklist2 { // the node's container
			_, w, enc := peekLength(p[at:])
			if w == 0 || enc {
				return 0, false
			}
			at += w
		}
	}
	switch t {
	case typeString, typeListQuicklist, typeListQuicklist2,
		typeHashZipmap, typeListZiplist, typeSetIntset, typeZSetZiplist, typeHashZiplist,
		typeHashListpack, typeZSetListpack, typeSetListpack:
	default:
		return 0, false
	}
	n, w, enc := peekLength(p[at:])
	switch {
	case w == 0:
		return 0, false
	case !enc:
		return at + w + int(min(n, 1<<40)), true
	case n == encLZF:
		clen, w2, enc := peekLength(p[at+w:])
		if w2 == 0 || enc {
			return 0, false
		}
		return at + w + w2 + 9 + int(min(clen, 1<<40)), true
	}
	return at + w + 8, true // an integer
}

// peekLength reads an RDB length from p: its value, its width in bytes
// (0: p is too short or it is malformed) and whether it is a string
// encoding's number instead.
func peekLength(p []byte) (n uint64, w int, enc bool) {
	if len(p) == 0 {
		return 0, 0, false
	}
	switch p[0] >> 6 {
	case 0:
		return uint64(p[0] & 0x3f), 1, false
	case 1:
		if len(p) < 2 {
			return 0, 0, false
		}
		return uint64(p[0]&0x3f)<<8 | uint64(p[1]), 2, false
	case 3:
		return uint64(p[0] & 0x3f), 1, true
	}
	switch {
	case p[0] == 0x80 && len(p) >= 5:
		return uint64(binary.BigEndian.Uint32(p[1:])), 5, false
	case p[0] == 0x81 && len(p) >= 9:
		return binary.BigEndian.Uint64(p[1:]), 9, false
	}
	return 0, 0, false
}

// skimmed reports whether a value of type t is passed over when skimming.
func skimmed(t byte) bool {
	switch t {
	case typeString, typeList, typeSet, typeZSet, typeHash, typeZSet2,
		typeHashZipmap, typeListZiplist, typeSetIntset, typeZSetZiplist, typeHashZiplist,
		typeListQuicklist, typeHashListpack, typeZSetListpack, typeListQuicklist2, typeSetListpack:
		return true
	}
	return false
}

// skimValue passes over a value of type t and emits its key and type.
func (d *Decoder) skimValue(t byte, b *builder) error {
	switch t {
	case typeString:
		if err := d.in.skipStr(); err != nil {
			return err
		}
	case typeList, typeSet, typeHash, typeListQuicklist:
		n := uint64(1)
		if t == typeHash {
			n = 2
		}
		if err := d.each(func() error {
			for i := uint64(0); i < n; i++ {
				if err := d.in.skipStr(); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			return err
		}
	case typeZSet, typeZSet2:
		if err := d.each(func() error {
			if err := d.in.skipStr(); err != nil {
				return err
			}
			if t == typeZSet2 {
				_, err := d.in.fixed(8)
				return err
			}
			_, err := d.in.double()
			return err
		}); err != nil {
			return err
		}
	case typeListQuicklist2:
		if err := d.each(func() error {
			if _, err := d.in.count(); err != nil { // the container
				return err
			}
			return d.in.skipStr()
		}); err != nil {
			return err
		}
	default: // one blob: zipmap, ziplist, intset, listpack
		if err := d.in.skipStr(); err != nil {
			return err
		}
	}
	if b.skip {
		return nil
	}
	if err := b.emit(&format.Record{DB: b.db, Key: b.key, Type: b.typ, ExpireAtMs: b.exp}); err != nil {
		return emitError{err}
	}
	return nil
}

// skipStr passes over a string, not expanding it.
func (in *input) skipStr() error {
	at := in.off
	n, enc, err := in.length()
	if err != nil {
		return err
	}
	if enc {
		switch n {
		case encInt8, encInt16, encInt32:
			_, err := in.intEnc(n)
			return err
		case encLZF:
			clen, err := in.count()
			if err != nil {
				return err
			}
			if _, err := in.count(); err != nil {
				return err
			}
			return in.discard(clen)
		}
		return &Error{Offset: at, Err: fmt.Errorf("unknown string encoding 0x%02x", 0xc0|n)}
	}
	return in.discard(n)
}

// discard passes over n bytes (copying them while a value is copied).
func (in *input) discard(n uint64) error {
	for n > 0 && in.copy != nil {
		p, err := in.r.Peek(int(min(n, 1<<16)))
		if len(p) == 0 {
			return in.eof(err)
		}
		in.consumed(p)
		in.r.Discard(len(p))
		n -= uint64(len(p))
	}
	for n > 0 {
		step := int(min(n, 1<<20))
		got, err := in.r.Discard(step)
		in.off += int64(got)
		n -= uint64(got)
		if err != nil {
			if err == io.EOF {
				return ErrTruncated
			}
			return err
		}
	}
	return nil
}
