package format

import (
	"bufio"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"math"
	"strconv"
	"unicode/utf8"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// A Writer writes a dump: WriteHeader once, Write for each record, then
// Close to write the trailer. A Writer buffers its output; Close flushes it
// but never closes the underlying io.Writer.
type Writer struct {
	w       *bufio.Writer
	crc     hash.Hash32
	buf     []byte
	records int64
	keys    int64
	header  bool
	err     error // sticky
}

// NewWriter returns a Writer that writes to w.
func NewWriter(w io.Writer) *Writer {
	return &Writer{
		w:   bufio.NewWriterSize(w, 256<<10),
		crc: crc32.New(castagnoli),
	}
}

// WriteHeader writes the header line. It must be called once, first.
// The header's Version is ignored: the Writer always writes Version.
func (w *Writer) WriteHeader(h Header) error {
	if w.err != nil {
		return w.err
	}
	if w.header {
		return errors.New("format: header already written")
	}
	w.header = true
	b := w.buf[:0]
	b = append(b, `{"format":"crs","version":`...)
	b = strconv.AppendInt(b, Version, 10)
	b = append(b, `,"created_ms":`...)
	b = strconv.AppendInt(b, h.CreatedMs, 10)
	b = append(b, `,"source":`...)
	b = appendString(b, toValidUTF8(h.Source))
	b = append(b, `,"server_version":`...)
	b = appendString(b, toValidUTF8(h.ServerVersion))
	b = append(b, `,"engine":`...)
	b = appendString(b, toValidUTF8(h.Engine))
	b = append(b, `,"databases":[`...)
	for i, d := range h.Databases {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"db":`...)
		b = strconv.AppendInt(b, int64(d.DB), 10)
		b = append(b, `,"keys":`...)
		b = strconv.AppendInt(b, d.Keys, 10)
		b = append(b, '}')
	}
	b = append(b, "]}\n"...)
	w.buf = b
	return w.line(b)
}

// Write writes one record. It returns an error if the record is not valid
// (an unknown type, a NaN score, a negative database).
func (w *Writer) Write(r *Record) error {
	if w.err != nil {
		return w.err
	}
	if !w.header {
		return errors.New("format: Write before WriteHeader")
	}
	if err := checkRecord(r); err != nil {
		return fmt.Errorf("format: key %q: %w", r.Key, err)
	}
	w.buf = appendRecord(w.buf[:0], r)
	w.records++
	w.keys++
	return w.line(w.buf)
}

// Close writes the trailer and flushes the output. It does not close the
// underlying io.Writer.
func (w *Writer) Close() error {
	if w.err != nil {
		return w.err
	}
	if !w.header {
		return errors.New("format: Close before WriteHeader")
	}
	b := w.buf[:0]
	b = append(b, `{"end":true,"records":`...)
	b = strconv.AppendInt(b, w.records, 10)
	b = append(b, `,"keys":`...)
	b = strconv.AppendInt(b, w.keys, 10)
	b = append(b, `,"crc32c":"`...)
	b = appendHex32(b, w.crc.Sum32())
	b = append(b, "\"}\n"...)
	if _, err := w.w.Write(b); err != nil {
		w.err = err
		return err
	}
	if err := w.w.Flush(); err != nil {
		w.err = err
		return err
	}
	w.err = errors.New("format: Writer is closed")
	return nil
}

// Records returns the number of records written so far.
func (w *Writer) Records() int64 { return w.records }

func (w *Writer) line(b []byte) error {
	w.crc.Write(b)
	if _, err := w.w.Write(b); err != nil {
		w.err = err
		return err
	}
	return nil
}

func appendHex32(b []byte, v uint32) []byte {
	for shift := 28; shift >= 0; shift -= 4 {
		b = append(b, hexDigits[(v>>uint(shift))&0xf])
	}
	return b
}

func checkRecord(r *Record) error {
	if r.DB < 0 {
		return fmt.Errorf("negative database %d", r.DB)
	}
	if r.ExpireAtMs < 0 {
		return fmt.Errorf("negative expiry %d", r.ExpireAtMs)
	}
	switch r.Type {
	case TypeString, TypeList, TypeSet, TypeHash:
	case TypeZSet:
		for _, m := range r.ZSet {
			if math.IsNaN(m.Score) {
				return fmt.Errorf("member %q has a NaN score", m.Member)
			}
		}
	default:
		return fmt.Errorf("cannot write type %q", r.Type)
	}
	return nil
}

// needsBase64 reports whether any byte string in r is not valid UTF-8.
func needsBase64(r *Record) bool {
	if !utf8.ValidString(r.Key) {
		return true
	}
	switch r.Type {
	case TypeString:
		return !utf8.ValidString(r.Str)
	case TypeList, TypeSet:
		for _, e := range r.Elems {
			if !utf8.ValidString(e) {
				return true
			}
		}
	case TypeHash:
		for _, f := range r.Hash {
			if !utf8.ValidString(f.Name) || !utf8.ValidString(f.Value) {
				return true
			}
		}
	case TypeZSet:
		for _, m := range r.ZSet {
			if !utf8.ValidString(m.Member) {
				return true
			}
		}
	}
	return false
}

func appendRecord(b []byte, r *Record) []byte {
	b64 := needsBase64(r)
	str := appendString
	if b64 {
		str = appendBase64
	}
	b = append(b, `{"db":`...)
	b = strconv.AppendInt(b, int64(r.DB), 10)
	if b64 {
		b = append(b, `,"enc":"base64"`...)
	}
	b = append(b, `,"key":`...)
	b = str(b, r.Key)
	b = append(b, `,"type":"`...)
	b = append(b, r.Type...)
	b = append(b, '"')
	if r.ExpireAtMs > 0 {
		b = append(b, `,"expire_at_ms":`...)
		b = strconv.AppendInt(b, r.ExpireAtMs, 10)
	}
	b = append(b, `,"value":`...)
	switch r.Type {
	case TypeString:
		b = str(b, r.Str)
	case TypeList, TypeSet:
		b = append(b, '[')
		for i, e := range r.Elems {
			if i > 0 {
				b = append(b, ',')
			}
			b = str(b, e)
		}
		b = append(b, ']')
	case TypeHash:
		b = append(b, '{')
		for i, f := range r.Hash {
			if i > 0 {
				b = append(b, ',')
			}
			b = str(b, f.Name)
			b = append(b, ':')
			b = str(b, f.Value)
		}
		b = append(b, '}')
	case TypeZSet:
		b = append(b, '[')
		for i, m := range r.ZSet {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, '[')
			b = str(b, m.Member)
			b = append(b, ',')
			b = appendScore(b, m.Score)
			b = append(b, ']')
		}
		b = append(b, ']')
	}
	return append(b, "}\n"...)
}

func appendBase64(b []byte, s string) []byte {
	b = append(b, '"')
	n := base64.StdEncoding.EncodedLen(len(s))
	b = growBy(b, n)
	base64.StdEncoding.Encode(b[len(b)-n:], []byte(s))
	return append(b, '"')
}

func growBy(b []byte, n int) []byte {
	if cap(b)-len(b) < n {
		nb := make([]byte, len(b), 2*cap(b)+n)
		copy(nb, b)
		b = nb
	}
	return b[:len(b)+n]
}

func toValidUTF8(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	return strconv.Quote(s)
}
