package format

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
	"unsafe"
)

// This file holds the small JSON writer and reader the format needs.
// encoding/json is not used: it replaces invalid UTF-8 and lone surrogate
// escapes with U+FFFD without a word, it merges duplicate object keys, and
// it is slower than this code on the record shapes crs writes.

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string. s must be valid UTF-8.
// Like encoding/json it escapes U+2028 and U+2029 so the output is also
// safe to embed in JavaScript.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// appendScore appends a sorted-set score: a JSON number, or the strings
// "inf" and "-inf". Numbers use the shortest form that reads back to the
// same float64, in plain notation between 1e-6 and 1e21 and in exponent
// notation outside it (as encoding/json and JavaScript do).
func appendScore(b []byte, f float64) []byte {
	switch {
	case math.IsInf(f, 1):
		return append(b, `"inf"`...)
	case math.IsInf(f, -1):
		return append(b, `"-inf"`...)
	}
	abs := math.Abs(f)
	fmtc := byte('f')
	if abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		fmtc = 'e'
	}
	n := len(b)
	b = strconv.AppendFloat(b, f, fmtc, -1, 64)
	if fmtc == 'e' {
		// clean up e-09 to e-9
		m := len(b) - n
		if m >= 4 && b[len(b)-4] == 'e' && b[len(b)-3] == '-' && b[len(b)-2] == '0' {
			b[len(b)-2] = b[len(b)-1]
			b = b[:len(b)-1]
		}
	}
	return b
}

// scanner reads JSON values from one line. It is strict: it accepts only
// RFC 8259 JSON, rejects lone surrogate escapes, and rejects invalid UTF-8.
//
// Decoded strings are carved from arena, one buffer per record, instead of
// being allocated one by one: the strings of a record share the buffer
// and live as long as any of them does. The line itself cannot be used for
// this, because the Reader reuses its buffer for the next line.
type scanner struct {
	b     []byte
	i     int
	arena []byte
	raw   bool // strings may hold bytes that are not UTF-8 (DecodeLoose)
}

// intern returns a string holding a copy of v, from the arena.
func (s *scanner) intern(v []byte) string {
	if len(v) == 0 {
		return ""
	}
	dst := s.alloc(len(v))
	copy(dst, v)
	return unsafe.String(&dst[0], len(dst))
}

// alloc returns n bytes from the arena, starting a new one when it is full.
// Bytes handed out are never written again, so strings over them are safe.
func (s *scanner) alloc(n int) []byte {
	if cap(s.arena)-len(s.arena) < n {
		s.arena = make([]byte, 0, max(n, 4096, len(s.b)))
	}
	start := len(s.arena)
	s.arena = s.arena[:start+n]
	return s.arena[start : start+n : start+n]
}

func (s *scanner) errorf(format string, args ...any) error {
	return fmt.Errorf("%w: %s at column %d", ErrSyntax, fmt.Sprintf(format, args...), s.i+1)
}

func (s *scanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\r', '\n':
			s.i++
		default:
			return
		}
	}
}

// peek skips white space and returns the next byte, or 0 at the end.
func (s *scanner) peek() byte {
	s.ws()
	if s.i >= len(s.b) {
		return 0
	}
	return s.b[s.i]
}

func (s *scanner) expect(c byte) error {
	if s.peek() != c {
		if s.i >= len(s.b) {
			return s.errorf("expected %q, found end of line", c)
		}
		return s.errorf("expected %q, found %q", c, s.b[s.i])
	}
	s.i++
	return nil
}

// object calls fn for each member of an object, with the scanner placed at
// the member's value; fn must consume the value.
func (s *scanner) object(fn func(name string) error) error {
	if err := s.expect('{'); err != nil {
		return err
	}
	if s.peek() == '}' {
		s.i++
		return nil
	}
	for {
		if s.peek() != '"' {
			return s.errorf("expected a member name")
		}
		name, err := s.str()
		if err != nil {
			return err
		}
		if err := s.expect(':'); err != nil {
			return err
		}
		s.ws()
		if err := fn(name); err != nil {
			return err
		}
		switch s.peek() {
		case ',':
			s.i++
		case '}':
			s.i++
			return nil
		default:
			return s.errorf("expected ',' or '}' in object")
		}
	}
}

// array calls fn for each element of an array, with the scanner placed at
// the element; fn must consume it.
func (s *scanner) array(fn func(i int) error) error {
	if err := s.expect('['); err != nil {
		return err
	}
	if s.peek() == ']' {
		s.i++
		return nil
	}
	for n := 0; ; n++ {
		s.ws()
		if err := fn(n); err != nil {
			return err
		}
		switch s.peek() {
		case ',':
			s.i++
		case ']':
			s.i++
			return nil
		default:
			return s.errorf("expected ',' or ']' in array")
		}
	}
}

// str reads a JSON string and returns its UTF-8 value.
func (s *scanner) str() (string, error) {
	if err := s.expect('"'); err != nil {
		return "", err
	}
	start := s.i
	// Fast path: no escapes.
	for s.i < len(s.b) {
		c := s.b[s.i]
		if c == '"' {
			v := s.b[start:s.i]
			if !s.raw && !utf8.Valid(v) {
				return "", s.errorf("invalid UTF-8 in string")
			}
			s.i++
			return s.intern(v), nil
		}
		if c == '\\' || c < 0x20 {
			break
		}
		s.i++
	}
	buf := make([]byte, 0, s.i-start+16)
	buf = append(buf, s.b[start:s.i]...)
	for {
		if s.i >= len(s.b) {
			return "", s.errorf("unterminated string")
		}
		c := s.b[s.i]
		switch {
		case c == '"':
			s.i++
			if !s.raw && !utf8.Valid(buf) {
				return "", s.errorf("invalid UTF-8 in string")
			}
			return s.intern(buf), nil
		case c < 0x20:
			return "", s.errorf("control character in string")
		case c != '\\':
			buf = append(buf, c)
			s.i++
			continue
		}
		// escape
		if s.i+1 >= len(s.b) {
			return "", s.errorf("unterminated string")
		}
		e := s.b[s.i+1]
		s.i += 2
		switch e {
		case '"', '\\', '/':
			buf = append(buf, e)
		case 'b':
			buf = append(buf, '\b')
		case 'f':
			buf = append(buf, '\f')
		case 'n':
			buf = append(buf, '\n')
		case 'r':
			buf = append(buf, '\r')
		case 't':
			buf = append(buf, '\t')
		case 'u':
			r, ok := s.hex4()
			if !ok {
				return "", s.errorf("bad \\u escape")
			}
			if utf16.IsSurrogate(r) {
				r2 := rune(-1)
				if s.i+1 < len(s.b) && s.b[s.i] == '\\' && s.b[s.i+1] == 'u' {
					s.i += 2
					r2, ok = s.hex4()
					if !ok {
						return "", s.errorf("bad \\u escape")
					}
				}
				r = utf16.DecodeRune(r, r2)
				if r == utf8.RuneError {
					return "", s.errorf("lone surrogate in \\u escape")
				}
			}
			buf = utf8.AppendRune(buf, r)
		default:
			return "", s.errorf("bad escape \\%c", e)
		}
	}
}

func (s *scanner) hex4() (rune, bool) {
	if s.i+4 > len(s.b) {
		return 0, false
	}
	var r rune
	for _, c := range s.b[s.i : s.i+4] {
		r <<= 4
		switch {
		case '0' <= c && c <= '9':
			r |= rune(c - '0')
		case 'a' <= c && c <= 'f':
			r |= rune(c - 'a' + 10)
		case 'A' <= c && c <= 'F':
			r |= rune(c - 'A' + 10)
		default:
			return 0, false
		}
	}
	s.i += 4
	return r, true
}

// number reads a JSON number and returns its text.
func (s *scanner) number() ([]byte, error) {
	start := s.i
	b := s.b
	i := s.i
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && '1' <= b[i] && b[i] <= '9':
		for i < len(b) && '0' <= b[i] && b[i] <= '9' {
			i++
		}
	default:
		return nil, s.errorf("expected a number")
	}
	if i < len(b) && b[i] == '.' {
		i++
		j := i
		for i < len(b) && '0' <= b[i] && b[i] <= '9' {
			i++
		}
		if i == j {
			s.i = i
			return nil, s.errorf("bad number")
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		j := i
		for i < len(b) && '0' <= b[i] && b[i] <= '9' {
			i++
		}
		if i == j {
			s.i = i
			return nil, s.errorf("bad number")
		}
	}
	s.i = i
	return b[start:i], nil
}

// int reads a JSON number that must be an integer that fits in an int64.
func (s *scanner) int() (int64, error) {
	if c := s.peek(); c != '-' && (c < '0' || c > '9') {
		return 0, errNotInteger
	}
	t, err := s.number()
	if err != nil {
		return 0, err
	}
	// Fast path: up to 18 digits cannot overflow.
	if d := t; len(d) > 0 && len(d) <= 18 && d[0] != '-' {
		var n int64
		for _, c := range d {
			if c < '0' || c > '9' {
				return 0, errNotInteger
			}
			n = n*10 + int64(c-'0')
		}
		return n, nil
	}
	n, err := strconv.ParseInt(string(t), 10, 64)
	if err != nil {
		return 0, errNotInteger
	}
	return n, nil
}

var errNotInteger = errors.New("not an integer")

// literal reads true, false or null.
func (s *scanner) literal() (string, error) {
	for _, lit := range []string{"true", "false", "null"} {
		if len(s.b)-s.i >= len(lit) && string(s.b[s.i:s.i+len(lit)]) == lit {
			s.i += len(lit)
			return lit, nil
		}
	}
	if s.i >= len(s.b) {
		return "", s.errorf("expected a value, found end of line")
	}
	return "", s.errorf("unexpected character %q", s.b[s.i])
}

// skip reads and discards one value of any kind, checking its syntax.
func (s *scanner) skip() error {
	switch c := s.peek(); {
	case c == 0:
		return s.errorf("expected a value, found end of line")
	case c == '{':
		return s.object(func(string) error { return s.skip() })
	case c == '[':
		return s.array(func(int) error { return s.skip() })
	case c == '"':
		return s.skipStr()
	case c == '-' || ('0' <= c && c <= '9'):
		_, err := s.number()
		return err
	default:
		_, err := s.literal()
		return err
	}
}

// skipStr checks and passes over a string without copying it; a string
// with escapes is checked by str.
func (s *scanner) skipStr() error {
	if err := s.expect('"'); err != nil {
		return err
	}
	start := s.i
	for s.i < len(s.b) {
		c := s.b[s.i]
		if c == '"' {
			if !utf8.Valid(s.b[start:s.i]) {
				return s.errorf("invalid UTF-8 in string")
			}
			s.i++
			return nil
		}
		if c == '\\' || c < 0x20 {
			s.i = start - 1
			_, err := s.str()
			return err
		}
		s.i++
	}
	return s.errorf("unterminated string")
}

// kind names the JSON kind of the next value, for error messages.
func (s *scanner) kind() string {
	switch c := s.peek(); {
	case c == '{':
		return "an object"
	case c == '[':
		return "an array"
	case c == '"':
		return "a string"
	case c == '-' || ('0' <= c && c <= '9'):
		return "a number"
	case c == 't' || c == 'f':
		return "a boolean"
	case c == 'n':
		return "null"
	case c == 0:
		return "nothing"
	}
	return "not JSON"
}
