package rdb

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"unsafe"

	"github.com/crs-tool/crs/internal/dumppayload"
)

// crcUpdate continues Redis's CRC-64, which RDB files and DUMP payloads
// end with, over p.
func crcUpdate(crc uint64, p []byte) uint64 { return dumppayload.CRC(crc, p) }

// input reads the bytes of an RDB stream, counting its offset and the
// CRC-64 of what it consumed, and optionally copying what it consumes
// (to rebuild a DUMP payload of a value it cannot express).
type input struct {
	r    *buffered // it keeps the checksum
	off  int64
	copy *bytes.Buffer // not nil while a value is being copied
}

// ErrTruncated is wrapped when the input ends in the middle of something.
var ErrTruncated = errors.New("unexpected end of file (the file is truncated)")

func (in *input) consumed(p []byte) {
	in.off += int64(len(p))
	if in.copy != nil {
		in.copy.Write(p)
	}
}

// byte reads one byte.
func (in *input) byte() (byte, error) {
	b, err := in.r.ReadByte()
	if err != nil {
		return 0, in.eof(err)
	}
	in.off++
	if in.copy != nil {
		in.copy.WriteByte(b)
	}
	return b, nil
}

func (in *input) eof(err error) error {
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return ErrTruncated
	}
	return err
}

// fixed reads exactly n (at most bufio's size) bytes, valid until the
// next read.
func (in *input) fixed(n int) ([]byte, error) {
	b, err := in.r.Peek(n)
	if err != nil {
		return nil, in.eof(err)
	}
	in.consumed(b)
	in.r.Discard(n)
	return b, nil
}

// full reads exactly n bytes into a new slice. A length from a corrupt
// file cannot make it allocate more than the input holds: past 1 MiB the
// buffer grows as the bytes arrive.
func (in *input) full(n uint64) ([]byte, error) {
	if n <= 1<<20 {
		b := make([]byte, n)
		if _, err := io.ReadFull(in.r, b); err != nil {
			return nil, in.eof(err)
		}
		in.consumed(b)
		return b, nil
	}
	var buf bytes.Buffer
	got, err := io.CopyN(&buf, in.r, int64(min(n, math.MaxInt64)))
	if err != nil || uint64(got) != n {
		return nil, ErrTruncated
	}
	in.consumed(buf.Bytes())
	return buf.Bytes(), nil
}

func (in *input) uint32LE() (uint32, error) {
	b, err := in.fixed(4)
	if err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint32(b), nil
}

func (in *input) uint64LE() (uint64, error) {
	b, err := in.fixed(8)
	if err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint64(b), nil
}

// length reads an RDB length. encoded is set when the first byte says a
// special string encoding follows instead (the returned value names it).
func (in *input) length() (n uint64, encoded bool, err error) {
	b, err := in.byte()
	if err != nil {
		return 0, false, err
	}
	switch b >> 6 {
	case 0:
		return uint64(b & 0x3f), false, nil
	case 1:
		b2, err := in.byte()
		return uint64(b&0x3f)<<8 | uint64(b2), false, err
	case 3:
		return uint64(b & 0x3f), true, nil
	}
	switch b {
	case 0x80:
		p, err := in.fixed(4)
		if err != nil {
			return 0, false, err
		}
		return uint64(binary.BigEndian.Uint32(p)), false, nil
	case 0x81:
		p, err := in.fixed(8)
		if err != nil {
			return 0, false, err
		}
		return binary.BigEndian.Uint64(p), false, nil
	}
	// The offset of the bad byte, not of the byte after it.
	return 0, false, &Error{Offset: in.off - 1, Err: fmt.Errorf("unknown length encoding 0x%02x", b)}
}

// count reads a length that counts things and may not be an encoding.
func (in *input) count() (uint64, error) {
	at := in.off
	n, enc, err := in.length()
	if err == nil && enc {
		err = &Error{Offset: at, Err: fmt.Errorf("a string encoding (0x%02x) where a length belongs", 0xc0|n)}
	}
	return n, err
}

// Special string encodings.
const (
	encInt8  = 0
	encInt16 = 1
	encInt32 = 2
	encLZF   = 3
)

// str reads a whole string.
func (in *input) str() ([]byte, error) {
	at := in.off
	n, enc, err := in.length()
	if err != nil {
		return nil, err
	}
	if !enc {
		return in.full(n)
	}
	switch n {
	case encInt8, encInt16, encInt32:
		v, err := in.intEnc(n)
		return strconv.AppendInt(nil, v, 10), err
	case encLZF:
		clen, err := in.count()
		if err != nil {
			return nil, err
		}
		ulen, err := in.count()
		if err != nil {
			return nil, err
		}
		comp, err := in.full(clen)
		if err != nil {
			return nil, err
		}
		return lzfDecompress(comp, ulen)
	}
	return nil, &Error{Offset: at, Err: fmt.Errorf("unknown string encoding 0x%02x", 0xc0|n)}
}

// pair reads two strings: a hash's field and value, an aux field's name
// and value.
func (in *input) pair() (string, string, error) {
	a, err := in.str()
	if err != nil {
		return "", "", err
	}
	b, err := in.str()
	return owned(a), owned(b), err
}

// owned returns b, which str made (new memory nothing writes again), as a
// string without copying it.
func owned(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

func (in *input) intEnc(n uint64) (int64, error) {
	switch n {
	case encInt8:
		b, err := in.byte()
		return int64(int8(b)), err
	case encInt16:
		b, err := in.fixed(2)
		if err != nil {
			return 0, err
		}
		return int64(int16(binary.LittleEndian.Uint16(b))), nil
	}
	b, err := in.fixed(4)
	if err != nil {
		return 0, err
	}
	return int64(int32(binary.LittleEndian.Uint32(b))), nil
}

// strChunks reads a string, handing it to fn in chunks of about size
// bytes, so that a string of any length is never held whole, compressed
// (LZF) or not.
func (in *input) strChunks(size int, fn func([]byte) error) error {
	at := in.off
	n, enc, err := in.length()
	if err != nil {
		return err
	}
	if enc {
		var b []byte
		switch n {
		case encInt8, encInt16, encInt32:
			v, err := in.intEnc(n)
			if err != nil {
				return err
			}
			b = strconv.AppendInt(nil, v, 10)
		case encLZF:
			clen, err := in.count()
			if err != nil {
				return err
			}
			ulen, err := in.count()
			if err != nil {
				return err
			}
			return in.lzfChunks(clen, ulen, size, fn)
		default:
			return &Error{Offset: at, Err: fmt.Errorf("unknown string encoding 0x%02x", 0xc0|n)}
		}
		for len(b) > size {
			if err := fn(b[:size]); err != nil {
				return err
			}
			b = b[size:]
		}
		return fn(b)
	}
	for {
		c := min(n, uint64(size))
		b, err := in.full(c)
		if err != nil {
			return err
		}
		n -= c
		if err := fn(b); err != nil {
			return err
		}
		if n == 0 {
			return nil
		}
	}
}

// double reads a score of the old ZSET encoding: a length byte and the
// number as text, or 253, 254, 255 for NaN, +inf, -inf.
func (in *input) double() (float64, error) {
	n, err := in.byte()
	if err != nil {
		return 0, err
	}
	switch n {
	case 253:
		return math.NaN(), nil
	case 254:
		return math.Inf(1), nil
	case 255:
		return math.Inf(-1), nil
	}
	b, err := in.fixed(int(n))
	if err != nil {
		return 0, err
	}
	return strconv.ParseFloat(string(b), 64)
}

// binaryDouble reads an 8-byte little-endian IEEE 754 double.
func (in *input) binaryDouble() (float64, error) {
	v, err := in.uint64LE()
	return math.Float64frombits(v), err
}
