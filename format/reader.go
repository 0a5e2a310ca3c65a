package format

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"math"
	"strconv"
	"strings"
	"unsafe"
)

// member is where a record member's value starts in its line.
type member struct {
	name string
	at   int
}

// DefaultMaxLineSize is the longest line a Reader accepts unless its
// MaxLineSize says otherwise.
const DefaultMaxLineSize = 1 << 30

// A Reader reads a dump written by a Writer (or by any implementation of
// FORMAT.md). Read returns records one at a time and io.EOF at the clean
// end, after the trailer has been read and checked. Every other error is a
// *ParseError naming the line, or an error from the underlying io.Reader.
type Reader struct {
	// MaxLineSize bounds the length of one line, so that input without
	// newlines cannot exhaust memory. Zero means DefaultMaxLineSize.
	MaxLineSize int

	br      *bufio.Reader
	crc     hash.Hash32
	buf     []byte
	line    int
	header  *Header
	trailer *Trailer
	records int64
	keys    int64
	size    int
	open    *Record // the key whose next part must follow, if any
	err     error   // sticky
}

// NewReader returns a Reader that reads from r.
func NewReader(r io.Reader) *Reader {
	return &Reader{
		br:  bufio.NewReaderSize(r, 256<<10),
		crc: crc32.New(castagnoli),
	}
}

// Line returns the line number of the last line read.
func (r *Reader) Line() int { return r.line }

// LineSize returns the length in bytes of the last record line read.
func (r *Reader) LineSize() int { return r.size }

// Header reads the header line, if it has not been read yet, and returns it.
func (r *Reader) Header() (Header, error) {
	if r.header != nil {
		return *r.header, nil
	}
	if r.err != nil {
		return Header{}, r.err
	}
	b, err := r.readLine()
	if err == io.EOF {
		if r.line == 0 {
			r.line = 1
		}
		return Header{}, r.fail(fmt.Errorf("%w: the input is empty", ErrNotDump))
	}
	if err != nil {
		return Header{}, r.fail(err)
	}
	h, err := parseHeader(b)
	if err != nil {
		return Header{}, r.fail(err)
	}
	r.crc.Write(b)
	r.header = &h
	return h, nil
}

// Trailer returns the trailer once Read has returned io.EOF.
func (r *Reader) Trailer() (Trailer, bool) {
	if r.trailer == nil {
		return Trailer{}, false
	}
	return *r.trailer, true
}

// Read returns the next record. At the end of a complete, intact dump it
// returns nil, io.EOF.
func (r *Reader) Read() (*Record, error) {
	if _, err := r.Header(); err != nil {
		return nil, err
	}
	if r.err != nil {
		return nil, r.err
	}
	if r.trailer != nil {
		return nil, io.EOF
	}
	b, err := r.readLine()
	if err == io.EOF {
		r.line++
		if r.open != nil {
			return nil, r.fail(fmt.Errorf("%w: it ends inside key %q, after part %d", ErrTruncated, r.open.Key, r.open.Part))
		}
		return nil, r.fail(fmt.Errorf("%w after %d records", ErrTruncated, r.records))
	}
	if err != nil {
		return nil, r.fail(err)
	}
	rec, tr, err := parseLine(b)
	if err != nil {
		return nil, r.fail(err)
	}
	if tr != nil {
		if r.open != nil {
			return nil, r.fail(fmt.Errorf("%w: the trailer comes before the last part of key %q", ErrTruncated, r.open.Key))
		}
		if err := r.finish(tr); err != nil {
			return nil, r.fail(err)
		}
		return nil, io.EOF
	}
	if err := r.sequence(rec); err != nil {
		return nil, r.fail(err)
	}
	if r.header.NoFieldExpiry && len(rec.FieldExpire) > 0 {
		return nil, r.fail(fmt.Errorf("%w: field expiries in a dump whose header says it has none", ErrRecord))
	}
	r.crc.Write(b)
	r.size = len(b)
	r.records++
	if rec.Part <= 1 {
		r.keys++
	}
	return rec, nil
}

// sequence checks that the parts of a key come together and in order.
func (r *Reader) sequence(rec *Record) error {
	if o := r.open; o != nil {
		if rec.DB != o.DB || rec.Key != o.Key || rec.Type != o.Type || rec.Part != o.Part+1 {
			return fmt.Errorf("%w: expected part %d of key %q (db %d), found part %d of key %q (db %d)", ErrRecord, o.Part+1, o.Key, o.DB, rec.Part, rec.Key, rec.DB)
		}
	} else if rec.Part > 1 {
		return fmt.Errorf("%w: part %d of key %q without the parts before it", ErrRecord, rec.Part, rec.Key)
	}
	r.open = nil
	if rec.More {
		r.open = &Record{DB: rec.DB, Key: rec.Key, Type: rec.Type, Part: rec.Part}
	}
	return nil
}

func (r *Reader) finish(tr *Trailer) error {
	if tr.Records != r.records {
		return fmt.Errorf("%w: trailer counts %d records, read %d", ErrChecksum, tr.Records, r.records)
	}
	if tr.Keys != r.keys {
		return fmt.Errorf("%w: trailer counts %d keys, read %d", ErrChecksum, tr.Keys, r.keys)
	}
	if sum := r.crc.Sum32(); tr.CRC32C != sum {
		return fmt.Errorf("%w: trailer checksum %08x, computed %08x", ErrChecksum, tr.CRC32C, sum)
	}
	// Nothing may follow the trailer.
	for {
		b, err := r.readLine()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		if len(bytes.TrimSpace(b)) > 0 {
			return fmt.Errorf("%w: data after the trailer", ErrRecord)
		}
	}
	r.trailer = tr
	return nil
}

// fail records err and returns it as a *ParseError. An error from the
// underlying reader (a corrupt compressed stream, say) names the line that
// was being read.
func (r *Reader) fail(err error) error {
	var pe *ParseError
	switch {
	case errors.As(err, &pe):
	case isFormatError(err):
		err = &ParseError{Line: r.line, Err: err}
	case errors.Is(err, io.ErrUnexpectedEOF):
		// A compressed stream cut short.
		err = &ParseError{Line: r.line + 1, Err: fmt.Errorf("%w: the input ends in the middle of a line (%v)", ErrTruncated, err)}
	default:
		err = &ParseError{Line: r.line + 1, Err: fmt.Errorf("%w: %v", ErrRead, err)}
	}
	r.err = err
	return err
}

func isFormatError(err error) bool {
	for _, e := range []error{ErrNotDump, ErrVersion, ErrTruncated, ErrChecksum, ErrSyntax, ErrRecord, ErrLineTooLong, ErrUnsupported, ErrRead} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// readLine returns the next line including its newline. The slice is valid
// until the next call. A final line without a newline is a truncation.
func (r *Reader) readLine() ([]byte, error) {
	max := r.MaxLineSize
	if max <= 0 {
		max = DefaultMaxLineSize
	}
	r.buf = r.buf[:0]
	for {
		frag, err := r.br.ReadSlice('\n')
		if len(r.buf)+len(frag) > max {
			r.line++
			return nil, fmt.Errorf("%w: more than %d bytes", ErrLineTooLong, max)
		}
		if err == nil {
			if len(r.buf) == 0 {
				r.line++
				return frag, nil
			}
			r.buf = append(r.buf, frag...)
			r.line++
			return r.buf, nil
		}
		r.buf = append(r.buf, frag...)
		if err == bufio.ErrBufferFull {
			continue
		}
		if err == io.EOF {
			if len(r.buf) > 0 {
				r.line++
				if r.header == nil {
					return nil, fmt.Errorf("%w: the first line has no newline", ErrNotDump)
				}
				return nil, fmt.Errorf("%w: the last line has no newline", ErrTruncated)
			}
			return nil, io.EOF
		}
		return nil, err
	}
}

func parseHeader(b []byte) (Header, error) {
	var h Header
	s := &scanner{b: b}
	if s.peek() != '{' {
		return h, fmt.Errorf("%w: the first line is not a JSON object", ErrNotDump)
	}
	var name string
	version := int64(-1)
	err := s.object(func(field string) error {
		var err error
		switch field {
		case "format":
			name, err = s.str()
		case "version":
			version, err = s.int()
		case "created_ms":
			h.CreatedMs, err = s.int()
		case "source":
			h.Source, err = s.str()
		case "server_version":
			h.ServerVersion, err = s.str()
		case "engine":
			h.Engine, err = s.str()
		case "databases":
			h.Databases = []Database{} // present, even when empty
			err = s.array(func(int) error {
				var d Database
				var db int64 = -1
				err := s.object(func(f string) error {
					var err error
					switch f {
					case "db":
						db, err = s.int()
					case "keys":
						d.Keys, err = s.int()
					default:
						err = s.skip()
					}
					return err
				})
				if err != nil {
					return err
				}
				if db < 0 || db > math.MaxInt32 {
					return fmt.Errorf("%w: bad database in header", ErrNotDump)
				}
				d.DB = int(db)
				h.Databases = append(h.Databases, d)
				return nil
			})
		case "field_expiry":
			var v string
			if v, err = s.literal(); err == nil && v != "true" && v != "false" {
				err = fmt.Errorf("header field \"field_expiry\" must be true or false")
			}
			h.NoFieldExpiry = v == "false"
		case "memory_bytes":
			if h.MemoryBytes, err = s.int(); err == nil && h.MemoryBytes < 0 {
				err = fmt.Errorf("header field \"memory_bytes\" is negative")
			}
		default:
			// Readers ignore header fields they do not know.
			err = s.skip()
		}
		if err == errNotInteger {
			err = fmt.Errorf("header field %q is not an integer", field)
		}
		return err
	})
	if err != nil {
		return h, fmt.Errorf("%w: %v", ErrNotDump, err)
	}
	if s.peek() != 0 {
		return h, fmt.Errorf("%w: trailing data after the header object", ErrNotDump)
	}
	if name != Name {
		return h, fmt.Errorf("%w: the header's format is %q, want %q", ErrNotDump, name, Name)
	}
	if version < 1 {
		return h, fmt.Errorf("%w: the header has no valid version", ErrNotDump)
	}
	if version > Version {
		return h, fmt.Errorf("%w: the dump is format version %d, this crs reads up to %d; use a newer crs", ErrVersion, version, Version)
	}
	h.Version = int(version)
	return h, nil
}

// parseLine parses a record line or the trailer.
func parseLine(b []byte) (*Record, *Trailer, error) {
	// Decoded strings never outgrow their JSON text; the half on top
	// covers the key, read twice when it comes before "enc".
	s := &scanner{b: b, arena: make([]byte, 0, len(b)+len(b)/2)}
	if c := s.peek(); c != '{' {
		if c == 0 {
			return nil, nil, fmt.Errorf("%w: empty line", ErrRecord)
		}
		return nil, nil, fmt.Errorf("%w: the line is not a JSON object", ErrRecord)
	}
	// One pass over the members, noting where each value starts. "type"
	// and "enc" are read as they come, so that the value, which writers put
	// last, is parsed in the same pass; it is parsed again only if an "enc"
	// after it says otherwise, or skipped and parsed later if "type" comes
	// after it.
	rec := &Record{}
	var (
		members     [16]member
		n           int
		enc         string
		valueDone   bool
		valueB64    bool
		valueErr    error
		typeIsValid bool
	)
	err := s.object(func(name string) error {
		for _, m := range members[:n] {
			if m.name == name {
				return fmt.Errorf("%w: field %q appears twice", ErrRecord, name)
			}
		}
		if n == len(members) {
			return fmt.Errorf("%w: unknown field %q", ErrRecord, name)
		}
		members[n] = member{name, s.i}
		n++
		switch name {
		case "type":
			if s.peek() == '"' {
				t, err := s.str()
				rec.Type, typeIsValid = t, err == nil
				return err
			}
		case "enc":
			if s.peek() == '"' {
				e, err := s.str()
				enc = e
				return err
			}
		case "value":
			if typeIsValid && rec.Type != "" {
				valueDone, valueB64 = true, enc == "base64"
				start := s.i
				valueErr = parseValue(s, rec, strDecoder{b64: valueB64, s: s})
				if valueErr != nil {
					// Report it after the record's other checks; carry on
					// past the value to check the rest of the line.
					s.i = start
					return s.skip()
				}
				return nil
			}
		}
		return s.skip()
	})
	if err != nil {
		return nil, nil, err
	}
	if s.peek() != 0 {
		return nil, nil, s.errorf("trailing data after the object")
	}
	spans := members[:n]
	at := func(name string) (*scanner, bool) {
		for _, m := range spans {
			if m.name == name {
				s.i = m.at
				return s, true
			}
		}
		return nil, false
	}
	has := func(name string) bool {
		for _, m := range spans {
			if m.name == name {
				return true
			}
		}
		return false
	}
	if has("end") {
		tr, err := parseTrailer(spans, at)
		return nil, tr, err
	}
	for _, m := range spans {
		switch m.name {
		case "db", "enc", "key", "type", "expire_at_ms", "value", "part", "more", "dump", "rdb_version", "field_expire_at_ms":
		default:
			return nil, nil, fmt.Errorf("%w: unknown field %q", ErrRecord, m.name)
		}
	}
	// db
	sc, ok := at("db")
	if !ok {
		return nil, nil, fmt.Errorf("%w: missing field \"db\"", ErrRecord)
	}
	db, err := sc.int()
	if err != nil || db < 0 || db > math.MaxInt32 {
		return nil, nil, fmt.Errorf("%w: \"db\" must be a non-negative integer, found %s", ErrRecord, sc.kind())
	}
	rec.DB = int(db)
	// enc
	b64 := false
	if has("enc") {
		if enc != "base64" {
			return nil, nil, fmt.Errorf("%w: \"enc\" must be \"base64\"", ErrRecord)
		}
		b64 = true
	}
	bs := strDecoder{b64: b64, s: s}
	str := bs.read
	// key
	sc, ok = at("key")
	if !ok {
		return nil, nil, fmt.Errorf("%w: missing field \"key\"", ErrRecord)
	}
	if rec.Key, err = str(sc, "\"key\""); err != nil {
		return nil, nil, err
	}
	// type
	sc, ok = at("type")
	if !ok {
		return nil, nil, fmt.Errorf("%w: missing field \"type\"", ErrRecord)
	}
	if !typeIsValid {
		if sc.peek() != '"' {
			return nil, nil, fmt.Errorf("%w: \"type\" must be a string, found %s", ErrRecord, sc.kind())
		}
		if _, err := sc.str(); err != nil {
			return nil, nil, err
		}
	}
	// expire_at_ms
	if sc, ok := at("expire_at_ms"); ok {
		ms, err := sc.int()
		if err != nil || ms <= 0 {
			return nil, nil, fmt.Errorf("%w: \"expire_at_ms\" must be a positive integer (unix ms)", ErrRecord)
		}
		rec.ExpireAtMs = ms
	}
	// part, more
	if sc, ok := at("part"); ok {
		n, err := sc.int()
		if err != nil || n < 1 || n > math.MaxInt32 {
			return nil, nil, fmt.Errorf("%w: \"part\" must be a positive integer", ErrRecord)
		}
		rec.Part = int(n)
	}
	if sc, ok := at("more"); ok {
		if v, err := sc.literal(); err != nil || v != "true" || rec.Part == 0 {
			return nil, nil, fmt.Errorf("%w: \"more\" must be true, and only on a record with \"part\"", ErrRecord)
		}
		rec.More = true
	}
	if rec.Part > 1 && rec.ExpireAtMs != 0 {
		return nil, nil, fmt.Errorf("%w: only the first part of a key may carry \"expire_at_ms\"", ErrRecord)
	}
	// dump: a payload instead of a value
	if sc, ok := at("dump"); ok {
		if has("value") || rec.Part != 0 || IsNative(rec.Type) || rec.Type == "" {
			return nil, nil, fmt.Errorf("%w: a record with \"dump\" has no \"value\" and no parts, and its type is a type name the format does not carry (found %q)", ErrRecord, rec.Type)
		}
		if has("field_expire_at_ms") {
			return nil, nil, fmt.Errorf("%w: \"field_expire_at_ms\" on a DUMP payload", ErrRecord)
		}
		rec.Dump, err = strDecoder{b64: true, s: s}.read(sc, "\"dump\"")
		if err != nil {
			return nil, nil, err
		}
		if rec.Dump == "" {
			return nil, nil, fmt.Errorf("%w: empty \"dump\"", ErrRecord)
		}
		sc, ok := at("rdb_version")
		if !ok {
			return nil, nil, fmt.Errorf("%w: missing field \"rdb_version\"", ErrRecord)
		}
		v, err := sc.int()
		if err != nil || v < 0 || v > math.MaxInt32 {
			return nil, nil, fmt.Errorf("%w: \"rdb_version\" must be a non-negative integer", ErrRecord)
		}
		rec.RDBVersion = int(v)
		return rec, nil, nil
	}
	if has("rdb_version") {
		return nil, nil, fmt.Errorf("%w: \"rdb_version\" without \"dump\"", ErrRecord)
	}
	// value (parsed above unless "type" or "enc" came after it)
	sc, ok = at("value")
	if !ok {
		return nil, nil, fmt.Errorf("%w: missing field \"value\"", ErrRecord)
	}
	if !valueDone || valueB64 != b64 {
		rec.Str, rec.Elems, rec.Hash, rec.ZSet, rec.Stream = "", nil, nil, nil, nil
		valueErr = parseValue(sc, rec, bs)
	}
	if valueErr != nil {
		return nil, nil, valueErr
	}
	if rec.Type != TypeString && rec.Type != TypeStream && rec.Part <= 1 && len(rec.Elems)+len(rec.Hash)+len(rec.ZSet) == 0 {
		return nil, nil, fmt.Errorf("%w: an empty %s value (Redis holds no empty %ss)", ErrRecord, rec.Type, rec.Type)
	}
	if rec.Stream != nil && rec.Part <= 1 {
		// A group first named here must say where it stands; only a later
		// part may continue a group without it.
		for _, g := range rec.Stream.Groups {
			if g.LastDeliveredID == "" {
				return nil, nil, fmt.Errorf("%w: stream group %q has no last_delivered_id", ErrRecord, g.Name)
			}
		}
	}
	if sc, ok := at("field_expire_at_ms"); ok {
		if err := parseFieldExpire(sc, rec, bs); err != nil {
			return nil, nil, err
		}
	}
	return rec, nil, nil
}

// strDecoder reads the byte strings of one record, which are base64 when
// the record says "enc":"base64".
type strDecoder struct {
	b64 bool
	s   *scanner // its arena holds the decoded bytes
}

var strictBase64 = base64.StdEncoding.Strict()

// decode turns the JSON string value v into the bytes it carries.
func (bs strDecoder) decode(v, what string) (string, error) {
	if !bs.b64 || v == "" {
		return v, nil
	}
	dst := bs.s.alloc(strictBase64.DecodedLen(len(v)))
	n, err := strictBase64.Decode(dst, unsafe.Slice(unsafe.StringData(v), len(v)))
	if err != nil {
		return "", fmt.Errorf("%w: %s is not valid base64: %v", ErrRecord, what, err)
	}
	if n == 0 {
		return "", nil
	}
	return unsafe.String(&dst[0], n), nil
}

// readAs reads like read, and builds the description for an error
// message only when there is an error: formatting one for every element
// of every record cost more than the parsing.
func (bs strDecoder) readAs(s *scanner, what func() string) (string, error) {
	start := s.i
	v, err := bs.read(s, "")
	if err == nil {
		return v, nil
	}
	s.i = start
	return bs.read(s, what())
}

// read reads a JSON string from s and decodes it.
func (bs strDecoder) read(s *scanner, what string) (string, error) {
	if s.peek() != '"' {
		return "", fmt.Errorf("%w: %s must be a string, found %s", ErrRecord, what, s.kind())
	}
	v, err := s.str()
	if err != nil {
		return "", err
	}
	return bs.decode(v, what)
}

func parseValue(s *scanner, rec *Record, bs strDecoder) error {
	str := bs.read
	wrongShape := func(want string) error {
		return fmt.Errorf("%w: a %s value must be %s, found %s", ErrRecord, rec.Type, want, s.kind())
	}
	switch rec.Type {
	case TypeString:
		if s.peek() != '"' {
			return wrongShape("a string")
		}
		v, err := str(s, "the value")
		rec.Str = v
		return err
	case TypeList, TypeSet:
		if s.peek() != '[' {
			return wrongShape("an array of strings")
		}
		var scratch [32]string
		elems := scratch[:0]
		err := s.array(func(i int) error {
			v, err := bs.readAs(s, func() string { return fmt.Sprintf("element %d", i) })
			elems = append(elems, v)
			return err
		})
		rec.Elems = append(make([]string, 0, len(elems)), elems...)
		return err
	case TypeHash:
		if s.peek() != '{' {
			return wrongShape("an object")
		}
		// Gathered on the stack, then copied once: one allocation, not
		// one per doubling.
		var scratch [16]Field
		fields := scratch[:0]
		err := s.object(func(name string) error {
			name, err := bs.decode(name, "a field name")
			if err != nil {
				return err
			}
			v, err := bs.readAs(s, func() string { return fmt.Sprintf("field %q", name) })
			fields = append(fields, Field{Name: name, Value: v})
			return err
		})
		rec.Hash = append(make([]Field, 0, len(fields)), fields...)
		if err != nil {
			return err
		}
		if i, j := findDup(len(rec.Hash), func(i int) string { return rec.Hash[i].Name }); i >= 0 {
			return fmt.Errorf("%w: hash field %q appears twice (fields %d and %d)", ErrRecord, rec.Hash[i].Name, i, j)
		}
		return nil
	case TypeZSet:
		if s.peek() != '[' {
			return wrongShape("an array of [member, score] pairs")
		}
		rec.ZSet = []Member{}
		err := s.array(func(i int) error {
			if s.peek() != '[' {
				return fmt.Errorf("%w: zset element %d must be a [member, score] pair, found %s", ErrRecord, i, s.kind())
			}
			var m Member
			items := 0
			err := s.array(func(j int) error {
				items++
				switch j {
				case 0:
					v, err := bs.readAs(s, func() string { return fmt.Sprintf("zset element %d's member", i) })
					m.Member = v
					return err
				case 1:
					f, err := parseScore(s)
					if err != nil {
						return fmt.Errorf("%w: zset element %d: %v", ErrRecord, i, err)
					}
					m.Score = f
					return nil
				}
				return fmt.Errorf("%w: zset element %d has more than two items", ErrRecord, i)
			})
			if err != nil {
				return err
			}
			if items != 2 {
				return fmt.Errorf("%w: zset element %d must be a [member, score] pair, found %d items", ErrRecord, i, items)
			}
			rec.ZSet = append(rec.ZSet, m)
			return nil
		})
		if err != nil {
			return err
		}
		if i, j := findDup(len(rec.ZSet), func(i int) string { return rec.ZSet[i].Member }); i >= 0 {
			return fmt.Errorf("%w: zset member %q appears twice (elements %d and %d)", ErrRecord, rec.ZSet[i].Member, i, j)
		}
		return nil
	case TypeStream:
		if s.peek() != '{' {
			return wrongShape("an object")
		}
		st, err := parseStream(s, bs)
		rec.Stream = st
		return err
	}
	return fmt.Errorf("%w: unknown type %q (a type the format does not carry needs \"dump\")", ErrRecord, rec.Type)
}

func parseFieldExpire(s *scanner, rec *Record, bs strDecoder) error {
	if rec.Type != TypeHash {
		return fmt.Errorf("%w: \"field_expire_at_ms\" on a %s", ErrRecord, rec.Type)
	}
	if s.peek() != '{' {
		return fmt.Errorf("%w: \"field_expire_at_ms\" must be an object, found %s", ErrRecord, s.kind())
	}
	fields := make(map[string]bool, len(rec.Hash))
	for _, f := range rec.Hash {
		fields[f.Name] = true
	}
	return s.object(func(name string) error {
		name, err := bs.decode(name, "a field name")
		if err != nil {
			return err
		}
		ms, err := s.int()
		if err != nil || ms <= 0 {
			return fmt.Errorf("%w: the expiry of field %q must be a positive integer (unix ms)", ErrRecord, name)
		}
		if !fields[name] {
			return fmt.Errorf("%w: field %q has an expiry but is not in the value", ErrRecord, name)
		}
		delete(fields, name) // a second expiry for it finds it missing
		rec.FieldExpire = append(rec.FieldExpire, FieldExpiry{Field: name, AtMs: ms})
		return nil
	})
}

// streamID reads a stream ID: "ms-seq", two unsigned decimal integers.
func streamID(s *scanner, what string) (string, error) {
	if s.peek() != '"' {
		return "", fmt.Errorf("%w: %s must be a string, found %s", ErrRecord, what, s.kind())
	}
	v, err := s.str()
	if err != nil {
		return "", err
	}
	ms, seq, ok := strings.Cut(v, "-")
	if !ok || !isUint64(ms) || !isUint64(seq) {
		return "", fmt.Errorf("%w: %s %q is not a stream ID (ms-seq)", ErrRecord, what, v)
	}
	return v, nil
}

func isUint64(s string) bool {
	_, err := strconv.ParseUint(s, 10, 64)
	return err == nil && s != "" && s[0] != '+'
}

func nonNegative(s *scanner, what string) (int64, error) {
	n, err := s.int()
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%w: %s must be a non-negative integer", ErrRecord, what)
	}
	return n, nil
}

func parseStream(s *scanner, bs strDecoder) (*Stream, error) {
	st := &Stream{EntriesAdded: -1}
	err := s.object(func(name string) error {
		var err error
		switch name {
		case "entries":
			if s.peek() != '[' {
				return fmt.Errorf("%w: stream entries must be an array", ErrRecord)
			}
			return s.array(func(i int) error {
				var e StreamEntry
				items := 0
				if s.peek() != '[' {
					return fmt.Errorf("%w: stream entry %d must be [id, fields]", ErrRecord, i)
				}
				err := s.array(func(j int) error {
					items++
					switch j {
					case 0:
						start := s.i
						if e.ID, err = streamID(s, ""); err != nil {
							s.i = start
							e.ID, err = streamID(s, fmt.Sprintf("entry %d's ID", i))
						}
						return err
					case 1:
						if s.peek() == 'n' {
							_, err := s.literal()
							e.Deleted = true
							return err
						}
						if s.peek() != '[' {
							return fmt.Errorf("%w: entry %d's fields must be an array or null", ErrRecord, i)
						}
						e.Fields = []string{}
						return s.array(func(k int) error {
							v, err := bs.readAs(s, func() string { return fmt.Sprintf("entry %d's field %d", i, k) })
							e.Fields = append(e.Fields, v)
							return err
						})
					}
					return fmt.Errorf("%w: stream entry %d has more than two items", ErrRecord, i)
				})
				if err != nil {
					return err
				}
				if items != 2 || (!e.Deleted && (len(e.Fields) == 0 || len(e.Fields)%2 != 0)) {
					return fmt.Errorf("%w: stream entry %d must be [id, [field, value, ...]] with at least one pair, or [id, null]", ErrRecord, i)
				}
				st.Entries = append(st.Entries, e)
				return nil
			})
		case "last_id":
			st.LastID, err = streamID(s, "last_id")
		case "max_deleted_id":
			st.MaxDeletedID, err = streamID(s, "max_deleted_id")
		case "entries_added":
			st.EntriesAdded, err = nonNegative(s, "entries_added")
		case "groups":
			if s.peek() != '[' {
				return fmt.Errorf("%w: stream groups must be an array", ErrRecord)
			}
			return s.array(func(i int) error {
				g, err := parseGroup(s, bs, i)
				st.Groups = append(st.Groups, g)
				return err
			})
		default:
			return fmt.Errorf("%w: unknown stream field %q", ErrRecord, name)
		}
		return err
	})
	return st, err
}

func parseGroup(s *scanner, bs strDecoder, i int) (Group, error) {
	// Absent lists read as empty ones, as the writer writes them.
	g := Group{EntriesRead: -1, Consumers: []Consumer{}, Pending: []Pending{}}
	if s.peek() != '{' {
		return g, fmt.Errorf("%w: group %d must be an object", ErrRecord, i)
	}
	named := false
	err := s.object(func(name string) error {
		var err error
		switch name {
		case "name":
			g.Name, err = bs.read(s, fmt.Sprintf("group %d's name", i))
			named = true
		case "last_delivered_id":
			g.LastDeliveredID, err = streamID(s, fmt.Sprintf("group %d's last_delivered_id", i))
		case "entries_read":
			g.EntriesRead, err = nonNegative(s, fmt.Sprintf("group %d's entries_read", i))
		case "consumers":
			if s.peek() != '[' {
				return fmt.Errorf("%w: group %d's consumers must be an array", ErrRecord, i)
			}
			g.Consumers = []Consumer{}
			return s.array(func(j int) error {
				var c Consumer
				what := fmt.Sprintf("group %d's consumer %d", i, j)
				if s.peek() != '{' {
					return fmt.Errorf("%w: %s must be an object", ErrRecord, what)
				}
				err := s.object(func(f string) error {
					var err error
					switch f {
					case "name":
						c.Name, err = bs.read(s, what+"'s name")
					case "seen_time_ms":
						c.SeenTimeMs, err = nonNegative(s, what+"'s seen_time_ms")
					case "active_time_ms":
						c.ActiveTimeMs, err = nonNegative(s, what+"'s active_time_ms")
					default:
						err = fmt.Errorf("%w: unknown field %q in %s", ErrRecord, f, what)
					}
					return err
				})
				g.Consumers = append(g.Consumers, c)
				return err
			})
		case "pending":
			if s.peek() != '[' {
				return fmt.Errorf("%w: group %d's pending must be an array", ErrRecord, i)
			}
			g.Pending = []Pending{}
			return s.array(func(j int) error {
				var p Pending
				what := fmt.Sprintf("group %d's pending entry %d", i, j)
				if s.peek() != '[' {
					return fmt.Errorf("%w: %s must be [id, consumer, delivery ms, count]", ErrRecord, what)
				}
				items := 0
				err := s.array(func(k int) error {
					items++
					var err error
					switch k {
					case 0:
						p.ID, err = streamID(s, what+"'s ID")
					case 1:
						p.Consumer, err = bs.read(s, what+"'s consumer")
					case 2:
						p.DeliveryTimeMs, err = nonNegative(s, what+"'s delivery time")
					case 3:
						p.DeliveryCount, err = nonNegative(s, what+"'s delivery count")
					default:
						err = fmt.Errorf("%w: %s has more than four items", ErrRecord, what)
					}
					return err
				})
				if err == nil && items != 4 {
					err = fmt.Errorf("%w: %s must be [id, consumer, delivery ms, count]", ErrRecord, what)
				}
				g.Pending = append(g.Pending, p)
				return err
			})
		default:
			err = fmt.Errorf("%w: unknown field %q in group %d", ErrRecord, name, i)
		}
		return err
	})
	if err == nil && !named {
		err = fmt.Errorf("%w: group %d has no name", ErrRecord, i)
	}
	return g, err
}

// parseScore reads a score: a JSON number, or "inf" or "-inf".
func parseScore(s *scanner) (float64, error) {
	switch c := s.peek(); {
	case c == '"':
		v, err := s.str()
		if err != nil {
			return 0, err
		}
		switch v {
		case "inf":
			return math.Inf(1), nil
		case "-inf":
			return math.Inf(-1), nil
		}
		return 0, fmt.Errorf("score %q is not a number (only \"inf\" and \"-inf\" may be strings)", v)
	case c == '-' || ('0' <= c && c <= '9'):
		t, err := s.number()
		if err != nil {
			return 0, err
		}
		f, err := strconv.ParseFloat(string(t), 64)
		if err != nil {
			return 0, fmt.Errorf("score %s is out of range", t)
		}
		return f, nil
	}
	return 0, fmt.Errorf("score must be a number, found %s", s.kind())
}

// findDup returns the indexes of two equal names, or -1, -1.
func findDup(n int, name func(int) string) (int, int) {
	if n <= 8 {
		for i := 0; i < n; i++ {
			for j := i + 1; j < n; j++ {
				if name(i) == name(j) {
					return i, j
				}
			}
		}
		return -1, -1
	}
	seen := make(map[string]int, n)
	for j := 0; j < n; j++ {
		if i, ok := seen[name(j)]; ok {
			return i, j
		}
		seen[name(j)] = j
	}
	return -1, -1
}

func parseTrailer(spans []member, at func(string) (*scanner, bool)) (*Trailer, error) {
	tr := &Trailer{}
	for _, m := range spans {
		switch m.name {
		case "end", "records", "keys", "crc32c":
		default:
			return nil, fmt.Errorf("%w: unknown trailer field %q", ErrRecord, m.name)
		}
	}
	sc, _ := at("end")
	if v, err := sc.literal(); err != nil || v != "true" {
		return nil, fmt.Errorf("%w: trailer \"end\" must be true", ErrRecord)
	}
	for _, f := range []struct {
		name string
		dst  *int64
	}{{"records", &tr.Records}, {"keys", &tr.Keys}} {
		sc, ok := at(f.name)
		if !ok {
			return nil, fmt.Errorf("%w: trailer has no %q", ErrRecord, f.name)
		}
		n, err := sc.int()
		if err != nil || n < 0 {
			return nil, fmt.Errorf("%w: trailer %q must be a non-negative integer", ErrRecord, f.name)
		}
		*f.dst = n
	}
	sc, ok := at("crc32c")
	if !ok {
		return nil, fmt.Errorf("%w: trailer has no \"crc32c\"", ErrRecord)
	}
	v, err := sc.str()
	if err != nil {
		return nil, fmt.Errorf("%w: trailer \"crc32c\" must be a string", ErrRecord)
	}
	sum, err := strconv.ParseUint(v, 16, 32)
	if err != nil || len(v) != 8 {
		return nil, fmt.Errorf("%w: trailer \"crc32c\" must be 8 hex digits, found %q", ErrRecord, v)
	}
	tr.CRC32C = uint32(sum)
	return tr, nil
}
