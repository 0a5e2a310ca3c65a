package dumppayload

import (
	"bytes"
	"encoding/binary"
	"math"
	"slices"
	"strconv"

	"github.com/crs-tool/crs/format"
)

// The RDB types Encode writes (rdb.h).
const (
	typeString      = 0
	typeList        = 1
	typeSet         = 2
	typeHash        = 4
	typeZSet2       = 5
	typeSetIntset   = 11
	typeHashLP      = 16
	typeZSetLP      = 17
	typeQuicklist2  = 18
	typeSetListpack = 20
)

// Limits are a server's thresholds for its compact encodings (its
// *-max-listpack-* and set-max-intset-entries settings). A value within
// them is written compact, as the server would hold it; anything larger
// in the plain encoding, from which the server builds what it chooses.
type Limits struct {
	HashEntries, HashValue int // hash-max-listpack-entries, -value
	ZSetEntries, ZSetValue int // zset-max-listpack-entries, -value
	SetIntset              int // set-max-intset-entries
	SetEntries, SetValue   int // set-max-listpack-entries, -value (7.2+)
	ListSize               int // list-max-listpack-size: < 0 bytes per node, > 0 entries
}

// DefaultLimits are the settings every server since 7.2 starts with.
func DefaultLimits() Limits {
	return Limits{HashEntries: 128, HashValue: 64, ZSetEntries: 128, ZSetValue: 64,
		SetIntset: 512, SetEntries: 128, SetValue: 64, ListSize: -2}
}

// Encoder writes records as DUMP payloads that a server writing RDB
// version Version restores: the value's RDB encoding, that version and
// the CRC-64. Its buffers are reused from one call to the next.
type Encoder struct {
	Version int
	Limits  Limits
	buf     []byte
	lp      []byte
	seen    map[string]struct{}
	ints    []int64
	order   []int
	ends    []int
}

// Encode returns r's value as a DUMP payload, valid until the next call,
// or ok false for a record it does not cover: a key in parts, a stream, a
// vector set, a module's value, hash fields that expire, an empty value,
// repeated members, or a target older than RDB version 9 (Redis 5.0).
func (e *Encoder) Encode(r *format.Record) (payload []byte, ok bool) {
	if e.Version < 9 || r.Part != 0 || r.More || r.Dump != "" || len(r.FieldExpire) > 0 {
		return nil, false
	}
	e.buf = e.buf[:0]
	switch r.Type {
	case format.TypeString:
		e.buf = append(e.buf, typeString)
		e.buf = appendString(e.buf, r.Str)
	case format.TypeList:
		ok = e.list(r.Elems)
	case format.TypeSet:
		ok = e.set(r.Elems)
	case format.TypeHash:
		ok = e.hash(r.Hash)
	case format.TypeZSet:
		ok = e.zset(r.ZSet)
	default:
		return nil, false
	}
	if r.Type != format.TypeString && !ok {
		return nil, false
	}
	e.buf = binary.LittleEndian.AppendUint16(e.buf, uint16(e.Version))
	e.buf = binary.LittleEndian.AppendUint64(e.buf, CRC(0, e.buf))
	return e.buf, true
}

// list writes a quicklist of listpacks (RDB 10+) where every element fits
// a node, else the plain list.
func (e *Encoder) list(elems []string) bool {
	if len(elems) == 0 {
		return false
	}
	size, count := math.MaxInt, math.MaxInt
	switch l := e.Limits.ListSize; {
	case l < 0:
		size = 4096 << min(-l-1, 4)
	case l > 0:
		size, count = 8192, l
	default:
		size, count = 8192, 1
	}
	fits := e.Version >= 10
	for _, s := range elems {
		if len(s)+11 > size {
			fits = false
			break
		}
	}
	if !fits {
		e.buf = append(e.buf, typeList)
		e.buf = appendLen(e.buf, uint64(len(elems)))
		for _, s := range elems {
			e.buf = appendString(e.buf, s)
		}
		return true
	}
	// Nodes as the server fills them: a node takes an element while it
	// stays within the size (or count) limit. Each element is encoded
	// once, into the nodes laid end to end in e.lp (one that does not fit
	// is encoded again, at the start of the next node).
	e.ends = e.ends[:0]
	e.lp = listpackHeader(e.lp[:0])
	node, n := 0, 0
	for _, s := range elems {
		mark := len(e.lp)
		e.lp = appendEntry(e.lp, s)
		if n == 0 || n < count && len(e.lp)-node+1 <= size {
			n++
			continue
		}
		e.lp = listpackEnd(e.lp[:mark], node, n)
		e.ends = append(e.ends, len(e.lp))
		node, n = len(e.lp), 1
		e.lp = appendEntry(listpackHeader(e.lp), s)
	}
	e.lp = listpackEnd(e.lp, node, n)
	e.ends = append(e.ends, len(e.lp))
	e.buf = append(e.buf, typeQuicklist2)
	e.buf = appendLen(e.buf, uint64(len(e.ends)))
	from := 0
	for _, end := range e.ends {
		e.buf = appendLen(e.buf, 2) // a packed node
		e.buf = appendBytes(e.buf, e.lp[from:end])
		from = end
	}
	return true
}

// set writes an intset where every member is an integer, a listpack
// (RDB 11+) where the set is small, else the plain set.
func (e *Encoder) set(members []string) bool {
	if len(members) == 0 || !e.unique(members, nil) {
		return false
	}
	lim := e.Limits
	if len(members) <= lim.SetIntset && e.intset(members) {
		return true
	}
	if e.Version >= 11 && len(members) <= lim.SetEntries && longest(members) <= lim.SetValue {
		e.lp = listpack(e.lp[:0], members)
		e.buf = append(e.buf, typeSetListpack)
		e.buf = appendBytes(e.buf, e.lp)
		return true
	}
	e.buf = append(e.buf, typeSet)
	e.buf = appendLen(e.buf, uint64(len(members)))
	for _, s := range members {
		e.buf = appendString(e.buf, s)
	}
	return true
}

// intset writes members as an intset, if each is an integer as Redis
// writes one.
func (e *Encoder) intset(members []string) bool {
	e.ints = e.ints[:0]
	width := 2
	for _, s := range members {
		v, ok := parseInt(s)
		if !ok {
			return false
		}
		switch {
		case v < math.MinInt32 || v > math.MaxInt32:
			width = 8
		case (v < math.MinInt16 || v > math.MaxInt16) && width < 4:
			width = 4
		}
		e.ints = append(e.ints, v)
	}
	slices.Sort(e.ints)
	e.lp = binary.LittleEndian.AppendUint32(e.lp[:0], uint32(width))
	e.lp = binary.LittleEndian.AppendUint32(e.lp, uint32(len(e.ints)))
	for _, v := range e.ints {
		switch width {
		case 2:
			e.lp = binary.LittleEndian.AppendUint16(e.lp, uint16(v))
		case 4:
			e.lp = binary.LittleEndian.AppendUint32(e.lp, uint32(v))
		default:
			e.lp = binary.LittleEndian.AppendUint64(e.lp, uint64(v))
		}
	}
	e.buf = append(e.buf, typeSetIntset)
	e.buf = appendBytes(e.buf, e.lp)
	return true
}

// hash writes a listpack (RDB 10+) where the hash is small, else the
// plain hash.
func (e *Encoder) hash(fields []format.Field) bool {
	if len(fields) == 0 || !e.unique(nil, fields) {
		return false
	}
	lim := e.Limits
	if e.Version >= 10 && len(fields) <= lim.HashEntries {
		small := true
		for _, f := range fields {
			if len(f.Name) > lim.HashValue || len(f.Value) > lim.HashValue {
				small = false
				break
			}
		}
		if small {
			e.lp = listpackHeader(e.lp[:0])
			for _, f := range fields {
				e.lp = appendEntry(e.lp, f.Name)
				e.lp = appendEntry(e.lp, f.Value)
			}
			e.lp = listpackEnd(e.lp, 0, 2*len(fields))
			e.buf = append(e.buf, typeHashLP)
			e.buf = appendBytes(e.buf, e.lp)
			return true
		}
	}
	e.buf = append(e.buf, typeHash)
	e.buf = appendLen(e.buf, uint64(len(fields)))
	for _, f := range fields {
		e.buf = appendString(e.buf, f.Name)
		e.buf = appendString(e.buf, f.Value)
	}
	return true
}

// zset writes a listpack in score order (RDB 10+) where the sorted set is
// small, else the plain sorted set with binary scores.
func (e *Encoder) zset(members []format.Member) bool {
	if len(members) == 0 || !e.uniqueMembers(members) {
		return false
	}
	lim := e.Limits
	small := e.Version >= 10 && len(members) <= lim.ZSetEntries
	for i := 0; small && i < len(members); i++ {
		small = len(members[i].Member) <= lim.ZSetValue
	}
	for _, m := range members {
		if math.IsNaN(m.Score) {
			return false
		}
	}
	if !small {
		e.buf = append(e.buf, typeZSet2)
		e.buf = appendLen(e.buf, uint64(len(members)))
		for _, m := range members {
			e.buf = appendString(e.buf, m.Member)
			e.buf = binary.LittleEndian.AppendUint64(e.buf, math.Float64bits(m.Score))
		}
		return true
	}
	e.order = e.order[:0]
	for i := range members {
		e.order = append(e.order, i)
	}
	slices.SortFunc(e.order, func(a, b int) int {
		ma, mb := &members[a], &members[b]
		switch {
		case ma.Score < mb.Score:
			return -1
		case ma.Score > mb.Score:
			return 1
		}
		return bytes.Compare([]byte(ma.Member), []byte(mb.Member))
	})
	e.lp = listpackHeader(e.lp[:0])
	var num [32]byte
	for _, i := range e.order {
		e.lp = appendEntry(e.lp, members[i].Member)
		e.lp = appendScore(e.lp, num[:0], members[i].Score)
	}
	e.lp = listpackEnd(e.lp, 0, 2*len(members))
	e.buf = append(e.buf, typeZSetLP)
	e.buf = appendBytes(e.buf, e.lp)
	return true
}

// appendScore writes a score as the server keeps it in a listpack: an
// integer where the score is one, else the shortest text that reads back
// exactly (tmp is room for that text).
func appendScore(b, tmp []byte, f float64) []byte {
	switch {
	case math.IsInf(f, 1):
		return appendStrEntry(b, "inf")
	case math.IsInf(f, -1):
		return appendStrEntry(b, "-inf")
	case f == math.Trunc(f) && math.Abs(f) <= 1<<62:
		// As the server's d2string and lpAppend: an integer; -0 too, which
		// ZADD into a listpack keeps as 0.
		return appendEntryInt(b, int64(f))
	}
	return appendStrEntry(b, strconv.AppendFloat(tmp, f, 'g', -1, 64))
}

// unique reports whether members (or fields' names) are all different.
func (e *Encoder) unique(members []string, fields []format.Field) bool {
	n := max(len(members), len(fields))
	name := func(i int) string {
		if members != nil {
			return members[i]
		}
		return fields[i].Name
	}
	if n < 2 {
		return true
	}
	if n <= 16 { // fewer compares than a map's hashing
		for i := 1; i < n; i++ {
			for j := 0; j < i; j++ {
				if name(i) == name(j) {
					return false
				}
			}
		}
		return true
	}
	if e.seen == nil {
		e.seen = make(map[string]struct{})
	}
	defer clear(e.seen)
	for i := range n {
		s := name(i)
		if _, dup := e.seen[s]; dup {
			return false
		}
		e.seen[s] = struct{}{}
	}
	return true
}

// uniqueMembers reports whether a sorted set's members are all different.
func (e *Encoder) uniqueMembers(members []format.Member) bool {
	if len(members) < 2 {
		return true
	}
	if e.seen == nil {
		e.seen = make(map[string]struct{})
	}
	defer clear(e.seen)
	for _, m := range members {
		if _, dup := e.seen[m.Member]; dup {
			return false
		}
		e.seen[m.Member] = struct{}{}
	}
	return true
}

func longest(ss []string) int {
	n := 0
	for _, s := range ss {
		n = max(n, len(s))
	}
	return n
}

// appendLen writes an RDB length.
func appendLen(b []byte, n uint64) []byte {
	switch {
	case n < 1<<6:
		return append(b, byte(n))
	case n < 1<<14:
		return append(b, byte(n>>8)|0x40, byte(n))
	case n <= math.MaxUint32:
		return binary.BigEndian.AppendUint32(append(b, 0x80), uint32(n))
	}
	return binary.BigEndian.AppendUint64(append(b, 0x81), n)
}

// appendString writes an RDB string, raw: the server makes it an integer
// or an embedded string as it would for SET.
func appendString(b []byte, s string) []byte {
	return append(appendLen(b, uint64(len(s))), s...)
}

func appendBytes(b, s []byte) []byte {
	return append(appendLen(b, uint64(len(s))), s...)
}

// listpack returns elems as a listpack appended to b.
func listpack(b []byte, elems []string) []byte {
	b = listpackHeader(b)
	for _, s := range elems {
		b = appendEntry(b, s)
	}
	return listpackEnd(b, 0, len(elems))
}

// listpackHeader leaves room for a listpack's header: its size in bytes
// (4) and its count of elements (2).
func listpackHeader(b []byte) []byte { return append(b, 0, 0, 0, 0, 0, 0) }

// listpackEnd ends a listpack of count elements begun at b[start] and
// fills in its header.
func listpackEnd(b []byte, start, count int) []byte {
	b = append(b, 0xff)
	binary.LittleEndian.PutUint32(b[start:], uint32(len(b)-start))
	binary.LittleEndian.PutUint16(b[start+4:], uint16(min(count, 65535)))
	return b
}

// appendEntry writes s as a listpack entry: an integer where s is one as
// the server reads it (lpStringToInt64), else a string.
func appendEntry(b []byte, s string) []byte {
	if v, ok := parseInt(s); ok {
		return appendEntryInt(b, v)
	}
	return appendStrEntry(b, s)
}

// appendStrEntry writes s as a listpack string entry.
func appendStrEntry[S string | []byte](b []byte, s S) []byte {
	start := len(b)
	switch n := len(s); {
	case n < 64:
		b = append(b, 0x80|byte(n))
	case n < 4096:
		b = append(b, 0xe0|byte(n>>8), byte(n))
	default:
		b = binary.LittleEndian.AppendUint32(append(b, 0xf0), uint32(n))
	}
	b = append(b, s...)
	return appendBacklen(b, len(b)-start)
}

func appendEntryInt(b []byte, v int64) []byte {
	start := len(b)
	switch {
	case v >= 0 && v <= 127:
		b = append(b, byte(v))
	case v >= -4096 && v <= 4095:
		u := uint64(v) & (1<<13 - 1)
		b = append(b, byte(u>>8)|0xc0, byte(u))
	case v >= math.MinInt16 && v <= math.MaxInt16:
		b = binary.LittleEndian.AppendUint16(append(b, 0xf1), uint16(v))
	case v >= -1<<23 && v < 1<<23:
		u := uint32(v)
		b = append(b, 0xf2, byte(u), byte(u>>8), byte(u>>16))
	case v >= math.MinInt32 && v <= math.MaxInt32:
		b = binary.LittleEndian.AppendUint32(append(b, 0xf3), uint32(v))
	default:
		b = binary.LittleEndian.AppendUint64(append(b, 0xf4), uint64(v))
	}
	return appendBacklen(b, len(b)-start)
}

// appendBacklen writes an entry's length, read from its end backwards.
func appendBacklen(b []byte, l int) []byte {
	switch {
	case l <= 127:
		return append(b, byte(l))
	case l < 16383:
		return append(b, byte(l>>7), byte(l&127)|128)
	case l < 2097151:
		return append(b, byte(l>>14), byte(l>>7&127)|128, byte(l&127)|128)
	case l < 268435455:
		return append(b, byte(l>>21), byte(l>>14&127)|128, byte(l>>7&127)|128, byte(l&127)|128)
	}
	return append(b, byte(l>>28), byte(l>>21&127)|128, byte(l>>14&127)|128, byte(l>>7&127)|128, byte(l&127)|128)
}

// parseInt reads s as the server reads an integer it may store as one
// (lpStringToInt64, string2ll): canonical decimal digits, no sign but '-',
// no leading zero, no "-0", within int64.
func parseInt(s string) (int64, bool) {
	if len(s) == 0 || len(s) > 20 {
		return 0, false
	}
	if s == "0" {
		return 0, true
	}
	neg := s[0] == '-'
	d := s
	if neg {
		d = s[1:]
	}
	if len(d) == 0 || d[0] < '1' || d[0] > '9' {
		return 0, false
	}
	var v uint64
	for i := 0; i < len(d); i++ {
		c := d[i]
		if c < '0' || c > '9' || v > (math.MaxUint64-9)/10 {
			return 0, false
		}
		v = v*10 + uint64(c-'0')
	}
	switch {
	case neg && v <= 1<<63:
		return -int64(v), true // -1<<63 wraps to itself
	case !neg && v <= math.MaxInt64:
		return int64(v), true
	}
	return 0, false
}
