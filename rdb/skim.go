package rdb

import (
	"fmt"
	"io"

	"github.com/crs-tool/crs/format"
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

// discard passes over n bytes without the checksum.
func (in *input) discard(n uint64) error {
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
