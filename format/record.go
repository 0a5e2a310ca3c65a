package format

import (
	"encoding/base64"
	"fmt"
	"math"
	"strconv"
	"unsafe"
)

// line is one record line after a first pass over its members, which
// notes where each value starts. "type" and "enc" are read as they come,
// so that the value, which writers put last, is parsed in the same pass;
// it is parsed again only if an "enc" after it says otherwise, or skipped
// and parsed later if "type" comes after it.
type line struct {
	s           *scanner
	rec         *Record
	members     [16]member
	n           int
	enc         string
	valueDone   bool
	valueB64    bool
	valueErr    error
	typeIsValid bool
}

// at places the scanner at the value of member name.
func (l *line) at(name string) (*scanner, bool) {
	for _, m := range l.members[:l.n] {
		if m.name == name {
			l.s.i = m.at
			return l.s, true
		}
	}
	return nil, false
}

func (l *line) has(name string) bool {
	for _, m := range l.members[:l.n] {
		if m.name == name {
			return true
		}
	}
	return false
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
	l := &line{s: s, rec: &Record{}}
	if err := s.object(l.member); err != nil {
		return nil, nil, err
	}
	if s.peek() != 0 {
		return nil, nil, s.errorf("trailing data after the object")
	}
	if l.has("end") {
		tr, err := parseTrailer(l.members[:l.n], l.at)
		return nil, tr, err
	}
	for _, m := range l.members[:l.n] {
		switch m.name {
		case "db", "enc", "key", "type", "expire_at_ms", "value", "part", "more", "dump", "rdb_version", "field_expire_at_ms":
		default:
			return nil, nil, fmt.Errorf("%w: unknown field %q", ErrRecord, m.name)
		}
	}
	bs, err := l.fields()
	if err != nil {
		return nil, nil, err
	}
	if _, ok := l.at("dump"); ok {
		err = l.dump()
	} else {
		err = l.value(bs)
	}
	if err != nil {
		return nil, nil, err
	}
	return l.rec, nil, nil
}

// member is the first pass's look at one member, placed at its value.
func (l *line) member(name string) error {
	s, rec := l.s, l.rec
	for _, m := range l.members[:l.n] {
		if m.name == name {
			return fmt.Errorf("%w: field %q appears twice", ErrRecord, name)
		}
	}
	if l.n == len(l.members) {
		return fmt.Errorf("%w: unknown field %q", ErrRecord, name)
	}
	l.members[l.n] = member{name, s.i}
	l.n++
	switch name {
	case "type":
		if s.peek() == '"' {
			t, err := s.str()
			rec.Type, l.typeIsValid = t, err == nil
			return err
		}
	case "enc":
		if s.peek() == '"' {
			e, err := s.str()
			l.enc = e
			return err
		}
	case "value":
		if l.typeIsValid && rec.Type != "" {
			l.valueDone, l.valueB64 = true, l.enc == "base64"
			start := s.i
			l.valueErr = parseValue(s, rec, strDecoder{b64: l.valueB64, s: s})
			if l.valueErr != nil {
				// Report it after the record's other checks; carry on
				// past the value to check the rest of the line.
				s.i = start
				return s.skip()
			}
			return nil
		}
	}
	return s.skip()
}

// fields reads the members every record has (db, enc, key, type) and the
// optional expire_at_ms, part and more. It returns the decoder of the
// record's byte strings.
func (l *line) fields() (strDecoder, error) {
	rec := l.rec
	sc, ok := l.at("db")
	if !ok {
		return strDecoder{}, fmt.Errorf("%w: missing field \"db\"", ErrRecord)
	}
	db, err := sc.int()
	if err != nil || db < 0 || db > math.MaxInt32 {
		return strDecoder{}, fmt.Errorf("%w: \"db\" must be a non-negative integer, found %s", ErrRecord, sc.kind())
	}
	rec.DB = int(db)
	b64 := false
	if l.has("enc") {
		if l.enc != "base64" {
			return strDecoder{}, fmt.Errorf("%w: \"enc\" must be \"base64\"", ErrRecord)
		}
		b64 = true
	}
	bs := strDecoder{b64: b64, s: l.s}
	if sc, ok = l.at("key"); !ok {
		return bs, fmt.Errorf("%w: missing field \"key\"", ErrRecord)
	}
	if rec.Key, err = bs.read(sc, "\"key\""); err != nil {
		return bs, err
	}
	if sc, ok = l.at("type"); !ok {
		return bs, fmt.Errorf("%w: missing field \"type\"", ErrRecord)
	}
	if !l.typeIsValid {
		if sc.peek() != '"' {
			return bs, fmt.Errorf("%w: \"type\" must be a string, found %s", ErrRecord, sc.kind())
		}
		if _, err := sc.str(); err != nil {
			return bs, err
		}
	}
	if sc, ok := l.at("expire_at_ms"); ok {
		ms, err := sc.int()
		if err != nil || ms <= 0 {
			return bs, fmt.Errorf("%w: \"expire_at_ms\" must be a positive integer (unix ms)", ErrRecord)
		}
		rec.ExpireAtMs = ms
	}
	if sc, ok := l.at("part"); ok {
		n, err := sc.int()
		if err != nil || n < 1 || n > math.MaxInt32 {
			return bs, fmt.Errorf("%w: \"part\" must be a positive integer", ErrRecord)
		}
		rec.Part = int(n)
	}
	if sc, ok := l.at("more"); ok {
		if v, err := sc.literal(); err != nil || v != "true" || rec.Part == 0 {
			return bs, fmt.Errorf("%w: \"more\" must be true, and only on a record with \"part\"", ErrRecord)
		}
		rec.More = true
	}
	if rec.Part > 1 && rec.ExpireAtMs != 0 {
		return bs, fmt.Errorf("%w: only the first part of a key may carry \"expire_at_ms\"", ErrRecord)
	}
	return bs, nil
}

// dump reads a DUMP payload, which a record holds instead of a value.
func (l *line) dump() error {
	rec := l.rec
	if l.has("value") || rec.Part != 0 || !DumpAllowed(rec.Type) {
		return fmt.Errorf("%w: a record with \"dump\" has no \"value\" and no parts, and its type is a type name the format does not carry, or vectorset (found %q)", ErrRecord, rec.Type)
	}
	if l.has("field_expire_at_ms") {
		return fmt.Errorf("%w: \"field_expire_at_ms\" on a DUMP payload", ErrRecord)
	}
	sc, _ := l.at("dump")
	var err error
	if rec.Dump, err = (strDecoder{b64: true, s: l.s}).read(sc, "\"dump\""); err != nil {
		return err
	}
	if rec.Dump == "" {
		return fmt.Errorf("%w: empty \"dump\"", ErrRecord)
	}
	sc, ok := l.at("rdb_version")
	if !ok {
		return fmt.Errorf("%w: missing field \"rdb_version\"", ErrRecord)
	}
	v, err := sc.int()
	if err != nil || v < 0 || v > math.MaxInt32 {
		return fmt.Errorf("%w: \"rdb_version\" must be a non-negative integer", ErrRecord)
	}
	rec.RDBVersion = int(v)
	return nil
}

// value reads the value (parsed in the first pass unless "type" or "enc"
// came after it) and the field expiries.
func (l *line) value(bs strDecoder) error {
	rec := l.rec
	if l.has("rdb_version") {
		return fmt.Errorf("%w: \"rdb_version\" without \"dump\"", ErrRecord)
	}
	sc, ok := l.at("value")
	if !ok {
		return fmt.Errorf("%w: missing field \"value\"", ErrRecord)
	}
	if !l.valueDone || l.valueB64 != bs.b64 {
		rec.Str, rec.Elems, rec.Hash, rec.ZSet, rec.Stream, rec.VectorSet = "", nil, nil, nil, nil, nil
		l.valueErr = parseValue(sc, rec, bs)
	}
	if l.valueErr != nil {
		return l.valueErr
	}
	if err := checkValue(rec); err != nil {
		return err
	}
	if sc, ok := l.at("field_expire_at_ms"); ok {
		return parseFieldExpire(sc, rec, bs)
	}
	return nil
}

// elements returns the number of elements of a collection's record.
func elements(rec *Record) int {
	n := len(rec.Elems) + len(rec.Hash) + len(rec.ZSet)
	if rec.VectorSet != nil {
		n += len(rec.VectorSet.Elements)
	}
	return n
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
	vt, ok := types[rec.Type]
	if !ok {
		return fmt.Errorf("%w: unknown type %q (a type the format does not carry needs \"dump\")", ErrRecord, rec.Type)
	}
	if s.peek() != vt.open {
		return fmt.Errorf("%w: a %s value must be %s, found %s", ErrRecord, rec.Type, vt.shape, s.kind())
	}
	return vt.parse(s, rec, bs)
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

// parseHash reads a hash value: an object of field names and values.
func parseHash(s *scanner, rec *Record, bs strDecoder) error {
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
	if err := Unique(rec); err != nil {
		return err
	}
	return nil
}

// parseZSet reads a sorted-set value: an array of [member, score] pairs.
func parseZSet(s *scanner, rec *Record, bs strDecoder) error {
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
	return Unique(rec)
}

// Unique checks that no hash field or zset member of rec appears twice,
// which a reader refuses (a server holds each once).
func Unique(rec *Record) error {
	if i, j := findDup(len(rec.Hash), func(i int) string { return rec.Hash[i].Name }); i >= 0 {
		return fmt.Errorf("%w: hash field %q appears twice (fields %d and %d)", ErrRecord, rec.Hash[i].Name, i, j)
	}
	if i, j := findDup(len(rec.ZSet), func(i int) string { return rec.ZSet[i].Member }); i >= 0 {
		return fmt.Errorf("%w: zset member %q appears twice (elements %d and %d)", ErrRecord, rec.ZSet[i].Member, i, j)
	}
	return nil
}
