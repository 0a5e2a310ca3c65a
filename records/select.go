package records

import (
	"fmt"
	"slices"
	"strings"

	"github.com/crs-tool/crs/format"
	"github.com/crs-tool/crs/internal/keyslot"
)

// Selection chooses the keys a command works on, the same way on every
// command (crsdump, crsload, crs stats, crs verify): a key is taken when
// it matches one of Match (all when none), none of Exclude, has one of
// Types (all when none) and is in one of DBs (all when none). Function
// libraries are not keys: they are taken whatever the selection.
type Selection struct {
	Match   []string // Redis glob patterns (SCAN MATCH syntax)
	Exclude []string
	Types   []string // type names as TYPE answers them (string, hash, stream, vectorset, …)
	DBs     []int
	// MaxKeyBytes, above 0, leaves out keys larger than that: the bytes
	// of their values (format.ApproxSize of their records, parts added
	// up). A key in parts is held until its size is known, up to
	// MaxKeyBytes.
	MaxKeyBytes int64
	// Part, where not whole, takes only the keys whose slots fall in
	// its range (--part I/N), and function libraries in part 0 alone, so
	// that N parts together hold every key once.
	Part keyslot.Part
}

// Empty reports whether s takes every key.
func (s Selection) Empty() bool {
	return len(s.Match) == 0 && len(s.Exclude) == 0 && len(s.Types) == 0 && len(s.DBs) == 0 && s.MaxKeyBytes <= 0 && s.Part.Whole()
}

// Check reports a type name that is none.
func (s Selection) Check() error {
	for _, t := range s.Types {
		if t == "" || t == format.TypeFunction {
			return fmt.Errorf("--type %q: not a key type (string, list, set, zset, hash, stream, vectorset or a module type)", t)
		}
	}
	return nil
}

// Takes reports whether s takes the key of rec, and if not, why.
func (s Selection) Takes(rec *format.Record) (bool, string) {
	if rec.Type == format.TypeFunction {
		return s.Part.I == 0, "part"
	}
	if !s.Part.Holds(rec.Key) {
		return false, "part"
	}
	if len(s.DBs) > 0 && !slices.Contains(s.DBs, rec.DB) {
		return false, "database"
	}
	if len(s.Types) > 0 && !slices.Contains(s.Types, rec.Type) {
		return false, "type"
	}
	if len(s.Match) > 0 && !anyGlob(s.Match, rec.Key) {
		return false, "match"
	}
	if anyGlob(s.Exclude, rec.Key) {
		return false, "exclude"
	}
	return true, ""
}

func anyGlob(patterns []string, key string) bool {
	for _, p := range patterns {
		if Glob(p, key) {
			return true
		}
	}
	return false
}

// Select returns r with only the keys s takes: a key's parts are taken or
// left out together, by its first. Close adds what was left out, by
// reason, to the source's counts.
func Select(r ReadCloser, s Selection) ReadCloser {
	if s.Empty() {
		return r
	}
	return &selected{Wrapped: Wrapped{r}, s: s, out: map[string]int64{}, byType: map[string]int64{}}
}

type selected struct {
	Wrapped
	s       Selection
	skip    bool             // the parts of a key left out are being passed over
	out     map[string]int64 // keys left out by reason
	byType  map[string]int64 // and by type
	total   int64
	records int64 // records left out
	// libraries counts the function libraries left to part 0.
	libraries int64
	held      []*format.Record // the parts of a key whose size is not known yet
	heldN     int64
	ready     []*format.Record // parts taken, to return
	big       []string         // the first keys left out for their size
}

func (r *selected) Read() (*format.Record, error) {
	for {
		if len(r.ready) > 0 {
			rec := r.ready[0]
			r.ready = r.ready[1:]
			return rec, nil
		}
		rec, err := r.ReadCloser.Read()
		if err != nil {
			return rec, err
		}
		if rec.Part > 1 {
			switch {
			case r.skip:
				r.records++
			case r.held != nil:
				r.hold(rec)
			default:
				return rec, nil
			}
			continue
		}
		ok, why := r.s.Takes(rec)
		r.skip = !ok && rec.More
		if ok && r.s.MaxKeyBytes > 0 && rec.Type != format.TypeFunction {
			if rec.More {
				r.held, r.heldN = nil, 0
				r.hold(rec)
				continue
			}
			if int64(format.ApproxSize(rec)) > r.s.MaxKeyBytes {
				r.tooBig(rec, 1)
				continue
			}
		}
		if ok {
			return rec, nil
		}
		if rec.Type == format.TypeFunction {
			r.libraries++ // another part's: not a key left out
			r.records++
			continue
		}
		r.out[why]++
		r.byType[rec.Type]++
		r.total++
		r.records++
	}
}

// hold keeps a part of a key in parts until the key's size is known:
// over MaxKeyBytes, it is left out (and its later parts passed over);
// whole within it, its parts are returned.
func (r *selected) hold(rec *format.Record) {
	r.held = append(r.held, rec)
	r.heldN += int64(format.ApproxSize(rec))
	switch {
	case r.heldN > r.s.MaxKeyBytes:
		r.tooBig(r.held[0], len(r.held))
		r.skip = rec.More
		r.held = nil
	case !rec.More:
		r.ready, r.held = r.held, nil
	}
}

// tooBig counts key (its first record; n records read of it) as left out
// for its size.
func (r *selected) tooBig(first *format.Record, n int) {
	r.out["max-key-bytes"]++
	r.byType[first.Type]++
	r.total++
	r.records += int64(n)
	if len(r.big) < 10 {
		r.big = append(r.big, fmt.Sprintf("%q (db %d, %s)", first.Key, first.DB, first.Type))
	}
}

func (r *selected) Close() (Stats, error) {
	st, err := r.ReadCloser.Close()
	if !r.s.Part.Whole() {
		lo, hi := r.s.Part.Range()
		st.Part = fmt.Sprintf("%s (slots %d-%d)", r.s.Part, lo, hi-1)
	}
	// The source counted what it made; what was read is less.
	st.Unselected += r.total
	st.Keys -= r.total
	st.Libraries -= r.libraries
	st.Records -= r.records
	for t, n := range r.byType {
		if _, ok := st.ByType[t]; !ok {
			continue // a source that does not count by type
		}
		if st.ByType[t] -= n; st.ByType[t] <= 0 {
			delete(st.ByType, t)
		}
	}
	if st.UnselectedBy == nil {
		st.UnselectedBy = map[string]int64{}
	}
	for k, n := range r.out {
		st.UnselectedBy[k] += n
	}
	st.TooBig = append(st.TooBig, r.big...)
	return st, err
}

// Glob reports whether key matches a SCAN MATCH pattern: '*' any run of
// bytes, '?' one byte, [abc], [^abc] and [a-z] one byte of a class, and
// '\' to quote the next byte.
func Glob(pattern, key string) bool {
	for len(pattern) > 0 {
		switch pattern[0] {
		case '*':
			for len(pattern) > 1 && pattern[1] == '*' {
				pattern = pattern[1:]
			}
			if len(pattern) == 1 {
				return true
			}
			for i := 0; i <= len(key); i++ {
				if Glob(pattern[1:], key[i:]) {
					return true
				}
			}
			return false
		case '?':
			if key == "" {
				return false
			}
		case '[':
			if key == "" {
				return false
			}
			end := strings.IndexByte(pattern[1:], ']')
			if end < 0 {
				return pattern == key // an unclosed class is literal
			}
			class := pattern[1 : 1+end]
			negate := strings.HasPrefix(class, "^")
			if negate {
				class = class[1:]
			}
			in := false
			for i := 0; i < len(class); i++ {
				if i+2 < len(class) && class[i+1] == '-' {
					lo, hi := min(class[i], class[i+2]), max(class[i], class[i+2])
					in = in || (key[0] >= lo && key[0] <= hi)
					i += 2
				} else {
					in = in || key[0] == class[i]
				}
			}
			if in == negate {
				return false
			}
			pattern = pattern[1+end:]
		case '\\':
			if len(pattern) > 1 {
				pattern = pattern[1:]
			}
			fallthrough
		default:
			if key == "" || key[0] != pattern[0] {
				return false
			}
		}
		pattern, key = pattern[1:], key[1:]
	}
	return key == ""
}

// ProbeKey is the made-up key a pre-flight of ACL key rules asks about.
const ProbeKey = "crs:acl-probe"

// ProbeKeysAs returns the keys ProbeKeys gives, renamed as r renames them,
// and whether they are made up (s takes every name).
func (s Selection) ProbeKeysAs(r Reshape) ([]string, bool) {
	keys := s.ProbeKeys()
	for i, k := range keys {
		keys[i] = r.Key(k)
	}
	return keys, len(s.Match) == 0
}

// ProbeKeys returns keys s can take, one per --match pattern, for a
// pre-flight of an ACL user's key rules; ProbeKey when s takes every
// name. A pattern no simple key matches is passed over.
func (s Selection) ProbeKeys() []string {
	if len(s.Match) == 0 {
		return []string{ProbeKey}
	}
	var out []string
	for _, p := range s.Match {
		if k := sample(p); Glob(p, k) {
			out = append(out, k)
		}
	}
	return out
}

// sample returns a key that pattern likely matches: '*' as ProbeKey's
// last part, '?' and a class as one byte of them, '\' quoting.
func sample(pattern string) string {
	var b strings.Builder
	for i := 0; i < len(pattern); i++ {
		switch c := pattern[i]; c {
		case '*':
			b.WriteString("acl-probe")
		case '?':
			b.WriteByte('x')
		case '\\':
			if i+1 < len(pattern) {
				i++
				b.WriteByte(pattern[i])
			}
		case '[':
			j := strings.IndexByte(pattern[i+1:], ']')
			if j < 0 {
				b.WriteByte(c)
				continue
			}
			class := pattern[i+1 : i+1+j]
			i += j + 1
			switch {
			case class == "" || class[0] == '^':
				b.WriteByte('~') // rarely excluded; Glob checks
			default:
				b.WriteByte(class[0])
			}
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}
