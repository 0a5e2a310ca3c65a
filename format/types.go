package format

import (
	"errors"
	"fmt"
	"math"
)

// valueType is what the format knows of one value type. Each type the
// format carries is one row of types, which every switch on a record's
// type in this package goes through: a new type is a row here, its value
// field on Record and its functions (parse, append, check) beside it.
type valueType struct {
	// open is the byte its JSON value starts with; shape says that value
	// in words, for errors.
	open  byte
	shape string
	// parse reads the JSON value (s at open) into rec.
	parse func(s *scanner, rec *Record, bs strDecoder) error
	// append writes rec's value as JSON, its byte strings with str.
	append func(b []byte, rec *Record, str appendStr) []byte
	// check is what a Writer checks of the value beyond its shape; nil
	// for nothing.
	check func(rec *Record) error
	// empty: the value may hold nothing (a string, a stream); the other
	// types' records hold at least one element, as Redis keeps no empty
	// collection.
	empty bool
	// unit is what its length counts.
	unit string
	// appends: each part adds to the parts before it on a server (RPUSH,
	// APPEND, XADD), so a part sent twice doubles its elements; the other
	// types' parts are sets of members, idempotent.
	appends bool
}

var types = map[string]valueType{
	TypeString: {open: '"', shape: "a string", parse: parseStr, append: appendStrValue,
		empty: true, unit: "bytes", appends: true},
	TypeFunction: {open: '"', shape: "a string", parse: parseStr, append: appendStrValue,
		check: checkFunction, empty: true, unit: "bytes"},
	TypeList: {open: '[', shape: "an array of strings", parse: parseElems, append: appendElems,
		unit: "elements", appends: true},
	TypeSet: {open: '[', shape: "an array of strings", parse: parseElems, append: appendElems,
		unit: "elements"},
	TypeHash: {open: '{', shape: "an object", parse: parseHash, append: appendHash,
		unit: "elements"},
	TypeZSet: {open: '[', shape: "an array of [member, score] pairs", parse: parseZSet, append: appendZSet,
		check: checkScores, unit: "elements"},
	TypeStream: {open: '{', shape: "an object", parse: parseStreamValue, append: appendStream,
		check: checkStream, empty: true, unit: "entries", appends: true},
	TypeVectorSet: {open: '{', shape: "an object", parse: parseVectorSet, append: appendVectorSet,
		check: checkVectorSet, unit: "elements"},
}

// IsNative reports whether t is a type the format carries as a value
// (rather than as a DUMP payload).
func IsNative(t string) bool {
	_, ok := types[t]
	return ok
}

// Unit returns what the length of a value of type t counts ("bytes",
// "elements", "entries").
func Unit(t string) string {
	if vt, ok := types[t]; ok {
		return vt.unit
	}
	return "elements"
}

// PartsAppend reports whether the parts of a key of type t each add to
// the ones before them on a server (a list, a string, a stream), so that
// one sent twice doubles what it holds.
func PartsAppend(t string) bool { return types[t].appends }

// appendStr appends a byte string as JSON (plain or base64).
type appendStr func([]byte, string) []byte

// strs appends an array of byte strings.
func (str appendStr) strs(b []byte, ss []string) []byte {
	b = append(b, '[')
	for i, e := range ss {
		if i > 0 {
			b = append(b, ',')
		}
		b = str(b, e)
	}
	return append(b, ']')
}

func parseStr(s *scanner, rec *Record, bs strDecoder) error {
	v, err := bs.read(s, "the value")
	rec.Str = v
	return err
}

func appendStrValue(b []byte, r *Record, str appendStr) []byte { return str(b, r.Str) }

func parseElems(s *scanner, rec *Record, bs strDecoder) error {
	var scratch [32]string
	elems := scratch[:0]
	err := s.array(func(i int) error {
		v, err := bs.readAs(s, func() string { return fmt.Sprintf("element %d", i) })
		elems = append(elems, v)
		return err
	})
	rec.Elems = append(make([]string, 0, len(elems)), elems...)
	return err
}

func appendElems(b []byte, r *Record, str appendStr) []byte { return str.strs(b, r.Elems) }

func appendHash(b []byte, r *Record, str appendStr) []byte {
	b = append(b, '{')
	for i, f := range r.Hash {
		if i > 0 {
			b = append(b, ',')
		}
		b = str(b, f.Name)
		b = append(b, ':')
		b = str(b, f.Value)
	}
	return append(b, '}')
}

func appendZSet(b []byte, r *Record, str appendStr) []byte {
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
	return append(b, ']')
}

func checkScores(r *Record) error {
	for _, m := range r.ZSet {
		if math.IsNaN(m.Score) {
			return fmt.Errorf("member %q has a NaN score", m.Member)
		}
	}
	return nil
}

func checkFunction(r *Record) error {
	if r.Part != 0 || r.ExpireAtMs != 0 {
		return fmt.Errorf("a function library has no parts and no expiry")
	}
	return nil
}

func parseStreamValue(s *scanner, rec *Record, bs strDecoder) error {
	st, err := parseStream(s, bs)
	rec.Stream = st
	return err
}

func checkStream(r *Record) error {
	if r.Stream == nil {
		return errors.New("stream record without a stream")
	}
	return nil
}
