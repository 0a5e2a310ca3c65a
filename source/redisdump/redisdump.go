// Package redisdump is the source that reads the JSON lines of the Ruby
// redis-dump gem (redis-dump -u HOST > FILE.json), the format of the
// migration guide's method 3: one object a key,
//
//	{"db":0,"key":"k","ttl":-1,"type":"string","value":"v","size":1}
//
// with a list or set as an array, a sorted set as [member, score] pairs
// and a hash as an object. The format cannot carry what crs dumps carry:
// its ttl is whole seconds relative to when the file was written, which
// the file does not record (a key's expiry is set from when it is read,
// as the gem's own loader does, and counted); it has no streams (the gem
// stops at one), no module types and no hash field expiries. Strings it
// wrote with -b are base64 (the file does not say so: a string is read
// as base64 where its text is the gem's base64 of exactly its recorded
// size). Strings written without -b hold their raw bytes, which are
// kept, even where they are not UTF-8.
package redisdump

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"time"

	"github.com/crs-tool/crs/format"
	"github.com/crs-tool/crs/internal/progress"
	"github.com/crs-tool/crs/records"
)

// From names this source in records.Stats.
const From = "redis-dump"

// Is reports whether the buffered input starts as a redis-dump file: an
// object whose first member is "db".
func Is(br *bufio.Reader) bool {
	b, _ := br.Peek(16)
	b = bytes.TrimLeft(b, " \t\r\n")
	b, ok := bytes.CutPrefix(b, []byte("{"))
	b = bytes.TrimLeft(b, " \t")
	return ok && bytes.HasPrefix(b, []byte(`"db"`))
}

// Header is the dump header of a redis-dump file named name: it says
// nothing of its server, so the header names the file and the time it is
// read (when its relative expiries start).
func Header(name string, nowMs int64) format.Header {
	return format.Header{Version: format.Version, CreatedMs: nowMs, Source: name + " (redis-dump JSON)", NoFieldExpiry: true}
}

// Source is a redis-dump file.
type Source struct {
	r     io.Reader
	name  string
	nowMs int64
}

// New returns a source that reads the redis-dump lines of r, naming it
// name; relative expiries count from nowMs.
func New(r io.Reader, name string, nowMs int64) *Source {
	return &Source{r: r, name: name, nowMs: nowMs}
}

// Dump reads every line and writes its key as a record to fw.
func (s *Source) Dump(ctx context.Context, fw records.Writer, p *progress.Counter) (st records.Stats, err error) {
	st.From = From
	start := time.Now()
	defer func() { st.Elapsed = time.Since(start) }()
	hdr := Header(s.name, s.nowMs)
	if err := fw.WriteHeader(hdr); err != nil {
		return st, fmt.Errorf("write: %w", err)
	}
	check := format.NewChecker(hdr)
	br := bufio.NewReaderSize(s.r, 1<<20)
	dbs := map[int]bool{}
	for line := 1; ; line++ {
		if line%256 == 0 {
			if err := ctx.Err(); err != nil {
				return st, err
			}
		}
		b, rerr := br.ReadBytes('\n')
		if rerr != nil && rerr != io.EOF {
			return st, &format.ParseError{Line: line, Err: fmt.Errorf("cannot read input: %w", rerr)}
		}
		if len(bytes.TrimSpace(b)) > 0 {
			rec, err := s.record(b, &st)
			if err == nil && rec != nil {
				// What no server holds (a member twice, say) is no key.
				cerr := check.Check(rec)
				if cerr == nil {
					cerr = format.Unique(rec)
				}
				if cerr != nil {
					err = fmt.Errorf("%w: key %q: %w", ErrLine, rec.Key, cerr)
				}
			}
			if err != nil {
				return st, &format.ParseError{Line: line, Err: err}
			}
			if rec != nil {
				if err := fw.Write(rec); err != nil {
					return st, fmt.Errorf("write: %w", err)
				}
				st.Count(rec)
				dbs[rec.DB] = true
				p.Add(1)
			}
		}
		if rerr == io.EOF {
			break
		}
	}
	st.Databases = len(dbs)
	if err := fw.Close(); err != nil {
		return st, fmt.Errorf("write: %w", err)
	}
	return st, nil
}

// ErrLine is wrapped by the errors of a line that is not a redis-dump
// record.
var ErrLine = errors.New("not a redis-dump record")

// record makes the record of one line, or nil for a key the gem found
// gone (type "none") or one whose ttl had run out.
func (s *Source) record(line []byte, st *records.Stats) (*format.Record, error) {
	v, err := format.DecodeLoose(line)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrLine, err)
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("%w: the line is not a JSON object", ErrLine)
	}
	db, err := integer(obj, "db")
	if err != nil {
		return nil, err
	}
	key, ok := obj["key"].(string)
	if !ok {
		return nil, fmt.Errorf("%w: no \"key\" string", ErrLine)
	}
	if db < 0 || db > math.MaxInt32 {
		return nil, fmt.Errorf("%w: key %q: db %d", ErrLine, key, db)
	}
	typ, _ := obj["type"].(string)
	rec := &format.Record{DB: int(db), Key: key, Type: typ}
	if typ == "none" { // gone between KEYS and TYPE
		st.Vanished++
		return nil, nil
	}
	if err := value(rec, obj["value"], obj["size"], st); err != nil {
		return nil, fmt.Errorf("key %q: %w", key, err)
	}
	ttl := int64(-1)
	if _, ok := obj["ttl"]; ok {
		if ttl, err = integer(obj, "ttl"); err != nil {
			return nil, fmt.Errorf("key %q: %w", key, err)
		}
	}
	switch {
	case ttl == 0 || ttl < -2: // expiring as it was read
		st.Expired++
		return nil, nil
	case ttl > 0:
		rec.ExpireAtMs = s.nowMs + ttl*1000
		st.RelativeTTL++
	}
	return rec, nil
}

// value sets rec's value from the line's, by its type.
func value(rec *format.Record, v, size any, st *records.Stats) error {
	switch rec.Type {
	case format.TypeString:
		str, ok := v.(string)
		if !ok {
			return fmt.Errorf("%w: a string's value is not a string", ErrLine)
		}
		if raw, ok := fromBase64(str, size); ok {
			str = raw
			st.Base64Strings++
		}
		rec.Str = str
	case format.TypeList, format.TypeSet:
		es, err := elems(v)
		if err != nil {
			return err
		}
		rec.Elems = es
	case format.TypeZSet:
		pairs, ok := v.([]any)
		if !ok {
			return fmt.Errorf("%w: a zset's value is not an array of pairs", ErrLine)
		}
		for _, pv := range pairs {
			pair, ok := pv.([]any)
			if !ok || len(pair) != 2 {
				return fmt.Errorf("%w: a zset member is not a [member, score] pair", ErrLine)
			}
			m, ok := pair[0].(string)
			score, err := float(pair[1])
			if !ok || err != nil {
				return fmt.Errorf("%w: a zset member is not a [member, score] pair", ErrLine)
			}
			rec.ZSet = append(rec.ZSet, format.Member{Member: m, Score: score})
		}
	case format.TypeHash:
		fields, ok := v.(map[string]any)
		if !ok {
			return fmt.Errorf("%w: a hash's value is not an object", ErrLine)
		}
		for name, fv := range fields {
			s, ok := fv.(string)
			if !ok {
				return fmt.Errorf("%w: hash field %q is not a string", ErrLine, name)
			}
			rec.Hash = append(rec.Hash, format.Field{Name: name, Value: s})
		}
		sort.Slice(rec.Hash, func(i, j int) bool { return rec.Hash[i].Name < rec.Hash[j].Name })
	default:
		return fmt.Errorf("%w: type %q (the gem writes string, list, set, zset and hash)", ErrLine, rec.Type)
	}
	return nil
}

// fromBase64 returns the bytes of s where s is the gem's base64 (Ruby's
// Base64.encode64: lines of 60 characters, each ending in a newline) of
// exactly size bytes, the size the line records.
func fromBase64(s string, size any) (string, bool) {
	n, ok := size.(format.Number)
	if !ok || len(s) == 0 || s[len(s)-1] != '\n' {
		return "", false
	}
	want, err := strconv.Atoi(string(n))
	if err != nil {
		return "", false
	}
	var clean []byte
	for i := 0; i < len(s); i += 61 {
		end := min(i+61, len(s))
		chunk := s[i:end]
		if chunk[len(chunk)-1] != '\n' || (end < len(s) && len(chunk) != 61) {
			return "", false
		}
		clean = append(clean, chunk[:len(chunk)-1]...)
	}
	raw, err := base64.StdEncoding.DecodeString(string(clean))
	if err != nil || len(raw) != want || base64.StdEncoding.EncodeToString(raw) != string(clean) {
		return "", false
	}
	return string(raw), true
}

func elems(v any) ([]string, error) {
	a, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf("%w: the value is not an array", ErrLine)
	}
	out := make([]string, len(a))
	for i, e := range a {
		if out[i], ok = e.(string); !ok {
			return nil, fmt.Errorf("%w: element %d is not a string", ErrLine, i)
		}
	}
	return out, nil
}

func integer(obj map[string]any, name string) (int64, error) {
	n, ok := obj[name].(format.Number)
	if !ok {
		return 0, fmt.Errorf("%w: no %q number", ErrLine, name)
	}
	i, err := strconv.ParseInt(string(n), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: %q is %s, not an integer", ErrLine, name, n)
	}
	return i, nil
}

// float reads a score: a number, or a string some of the gem's copies
// write ("inf" among them).
func float(v any) (float64, error) {
	switch t := v.(type) {
	case format.Number:
		return strconv.ParseFloat(string(t), 64)
	case string:
		return strconv.ParseFloat(t, 64)
	}
	return 0, fmt.Errorf("not a number")
}
