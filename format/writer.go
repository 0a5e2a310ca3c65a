package format

import (
	"bufio"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
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
	if h.Databases != nil {
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
		b = append(b, ']')
	}
	if h.NoFieldExpiry {
		b = append(b, `,"field_expiry":false`...)
	}
	if h.Modules != nil {
		b = append(b, `,"modules":[`...)
		for i, m := range h.Modules {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, toValidUTF8(m))
		}
		b = append(b, ']')
	}
	if h.MemoryBytes > 0 {
		b = append(b, `,"memory_bytes":`...)
		b = strconv.AppendInt(b, h.MemoryBytes, 10)
	}
	if c := h.Cluster; c != nil {
		b = append(b, `,"cluster":{"shards":[`...)
		for i, s := range c.Shards {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"node":`...)
			b = appendString(b, toValidUTF8(s.Node))
			b = append(b, `,"slots":`...)
			b = appendString(b, toValidUTF8(s.Slots))
			b = append(b, '}')
		}
		b = append(b, ']')
		if c.NodeOnly {
			b = append(b, `,"node_only":true`...)
		}
		b = append(b, '}')
	}
	b = append(b, "}\n"...)
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
	if r.Part <= 1 {
		w.keys++
	}
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
	if r.Part < 0 || (r.More && r.Part == 0) || (r.Part > 1 && r.ExpireAtMs != 0) {
		return fmt.Errorf("bad part %d (more %v, expiry %d)", r.Part, r.More, r.ExpireAtMs)
	}
	if r.Dump != "" {
		if !DumpAllowed(r.Type) || r.Part != 0 {
			return fmt.Errorf("a DUMP payload needs a non-native type and no parts, not type %q part %d", r.Type, r.Part)
		}
		return nil
	}
	if len(r.FieldExpire) > 0 && r.Type != TypeHash {
		return fmt.Errorf("field expiries on a %s", r.Type)
	}
	vt, ok := types[r.Type]
	switch {
	case !ok:
		return fmt.Errorf("cannot write type %q without a DUMP payload", r.Type)
	case vt.check != nil:
		return vt.check(r)
	}
	return nil
}

// byteStrings calls fn for every byte string in r until fn returns false.
func byteStrings(r *Record, fn func(string) bool) {
	each := func(ss []string) bool {
		for _, s := range ss {
			if !fn(s) {
				return false
			}
		}
		return true
	}
	if !fn(r.Key) || !fn(r.Str) || !each(r.Elems) {
		return
	}
	for _, f := range r.Hash {
		if !fn(f.Name) || !fn(f.Value) {
			return
		}
	}
	for _, f := range r.FieldExpire {
		if !fn(f.Field) {
			return
		}
	}
	for _, m := range r.ZSet {
		if !fn(m.Member) {
			return
		}
	}
	if r.VectorSet != nil {
		for _, e := range r.VectorSet.Elements {
			if !fn(e.Name) || !fn(e.Attr) {
				return
			}
		}
	}
	if r.Stream == nil {
		return
	}
	for _, e := range r.Stream.Entries {
		if !each(e.Fields) {
			return
		}
	}
	for _, g := range r.Stream.Groups {
		if !fn(g.Name) {
			return
		}
		for _, c := range g.Consumers {
			if !fn(c.Name) {
				return
			}
		}
		for _, p := range g.Pending {
			if !fn(p.Consumer) {
				return
			}
		}
	}
	if r.Stream.IDMP != nil {
		for _, p := range r.Stream.IDMP.Producers {
			if !fn(p.PID) {
				return
			}
			for _, t := range p.IIDs {
				if !fn(t.IID) {
					return
				}
			}
		}
	}
}

// needsBase64 reports whether any byte string in r is not valid UTF-8.
func needsBase64(r *Record) bool {
	valid := true
	byteStrings(r, func(s string) bool {
		valid = utf8.ValidString(s)
		return valid
	})
	return !valid
}

func appendRecord(b []byte, r *Record) []byte {
	b64 := needsBase64(r)
	str := appendStr(appendString)
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
	b = append(b, `,"type":`...)
	b = appendString(b, r.Type)
	if r.Part > 0 {
		b = append(b, `,"part":`...)
		b = strconv.AppendInt(b, int64(r.Part), 10)
		if r.More {
			b = append(b, `,"more":true`...)
		}
	}
	if r.ExpireAtMs > 0 {
		b = append(b, `,"expire_at_ms":`...)
		b = strconv.AppendInt(b, r.ExpireAtMs, 10)
	}
	if r.Dump != "" {
		b = append(b, `,"rdb_version":`...)
		b = strconv.AppendInt(b, int64(r.RDBVersion), 10)
		b = append(b, `,"dump":`...)
		b = appendBase64(b, r.Dump)
		return append(b, "}\n"...)
	}
	if len(r.FieldExpire) > 0 {
		b = append(b, `,"field_expire_at_ms":{`...)
		for i, f := range r.FieldExpire {
			if i > 0 {
				b = append(b, ',')
			}
			b = str(b, f.Field)
			b = append(b, ':')
			b = strconv.AppendInt(b, f.AtMs, 10)
		}
		b = append(b, '}')
	}
	b = append(b, `,"value":`...)
	b = types[r.Type].append(b, r, str)
	return append(b, "}\n"...)
}

func appendStream(b []byte, r *Record, str appendStr) []byte {
	st := r.Stream
	b = append(b, `{"entries":[`...)
	for i, e := range st.Entries {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '[')
		b = appendString(b, e.ID)
		b = append(b, ',')
		if e.Deleted {
			b = append(b, "null"...)
		} else {
			b = str.strs(b, e.Fields)
		}
		b = append(b, ']')
	}
	b = append(b, ']')
	if st.LastID != "" {
		b = append(b, `,"last_id":`...)
		b = appendString(b, st.LastID)
	}
	if st.EntriesAdded >= 0 {
		b = append(b, `,"entries_added":`...)
		b = strconv.AppendInt(b, st.EntriesAdded, 10)
	}
	if st.MaxDeletedID != "" {
		b = append(b, `,"max_deleted_id":`...)
		b = appendString(b, st.MaxDeletedID)
	}
	if len(st.Groups) > 0 {
		b = append(b, `,"groups":[`...)
		for i, g := range st.Groups {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"name":`...)
			b = str(b, g.Name)
			if g.LastDeliveredID != "" {
				b = append(b, `,"last_delivered_id":`...)
				b = appendString(b, g.LastDeliveredID)
			}
			if g.EntriesRead >= 0 {
				b = append(b, `,"entries_read":`...)
				b = strconv.AppendInt(b, g.EntriesRead, 10)
			}
			b = append(b, `,"consumers":[`...)
			for j, c := range g.Consumers {
				if j > 0 {
					b = append(b, ',')
				}
				b = append(b, `{"name":`...)
				b = str(b, c.Name)
				b = append(b, `,"seen_time_ms":`...)
				b = strconv.AppendInt(b, c.SeenTimeMs, 10)
				if c.ActiveTimeMs > 0 {
					b = append(b, `,"active_time_ms":`...)
					b = strconv.AppendInt(b, c.ActiveTimeMs, 10)
				}
				b = append(b, '}')
			}
			b = append(b, `],"pending":[`...)
			for j, p := range g.Pending {
				if j > 0 {
					b = append(b, ',')
				}
				b = append(b, '[')
				b = appendString(b, p.ID)
				b = append(b, ',')
				b = str(b, p.Consumer)
				b = append(b, ',')
				b = strconv.AppendInt(b, p.DeliveryTimeMs, 10)
				b = append(b, ',')
				b = strconv.AppendInt(b, p.DeliveryCount, 10)
				b = append(b, ']')
			}
			b = append(b, "]}"...)
		}
		b = append(b, ']')
	}
	if st.IDMP != nil {
		b = appendIDMP(b, st.IDMP, str)
	}
	return append(b, '}')
}

// appendIDMP writes a stream's "idmp" member.
func appendIDMP(b []byte, m *IDMP, str func([]byte, string) []byte) []byte {
	b = append(b, `,"idmp":{"duration":`...)
	b = strconv.AppendInt(b, m.Duration, 10)
	b = append(b, `,"maxsize":`...)
	b = strconv.AppendInt(b, m.MaxSize, 10)
	if m.Tracked >= 0 {
		b = append(b, `,"tracked":`...)
		b = strconv.AppendInt(b, m.Tracked, 10)
	}
	if m.Added >= 0 {
		b = append(b, `,"iids_added":`...)
		b = strconv.AppendInt(b, m.Added, 10)
	}
	if m.Duplicates >= 0 {
		b = append(b, `,"iids_duplicates":`...)
		b = strconv.AppendInt(b, m.Duplicates, 10)
	}
	if m.Producers != nil {
		b = append(b, `,"producers":[`...)
		for i, p := range m.Producers {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"pid":`...)
			b = str(b, p.PID)
			b = append(b, `,"iids":[`...)
			for j, t := range p.IIDs {
				if j > 0 {
					b = append(b, ',')
				}
				b = append(b, '[')
				b = str(b, t.IID)
				b = append(b, ',')
				b = appendString(b, t.ID)
				b = append(b, ']')
			}
			b = append(b, "]}"...)
		}
		b = append(b, ']')
	}
	return append(b, '}')
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
