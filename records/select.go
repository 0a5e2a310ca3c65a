package records

import (
	"fmt"
	"slices"
	"strings"

	"github.com/crs-tool/crs/format"
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
}

// Empty reports whether s takes every key.
func (s Selection) Empty() bool {
	return len(s.Match) == 0 && len(s.Exclude) == 0 && len(s.Types) == 0 && len(s.DBs) == 0
}

// Check reports a pattern the glob matcher refuses, and a type name that
// is none.
func (s Selection) Check() error {
	for _, p := range append(append([]string{}, s.Match...), s.Exclude...) {
		if _, err := Glob(p, ""); err != nil {
			return err
		}
	}
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
		return true, ""
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
		if ok, _ := Glob(p, key); ok {
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
}

func (r *selected) Read() (*format.Record, error) {
	for {
		rec, err := r.ReadCloser.Read()
		if err != nil {
			return rec, err
		}
		if rec.Part > 1 {
			if r.skip {
				r.records++
				continue
			}
			return rec, nil
		}
		ok, why := r.s.Takes(rec)
		r.skip = !ok && rec.More
		if ok {
			return rec, nil
		}
		r.out[why]++
		r.byType[rec.Type]++
		r.total++
		r.records++
	}
}

func (r *selected) Close() (Stats, error) {
	st, err := r.ReadCloser.Close()
	// The source counted what it made; what was read is less.
	st.Unselected += r.total
	st.Keys -= r.total
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
	return st, err
}

// Glob reports whether key matches the Redis glob pattern p, as SCAN
// MATCH and KEYS match: '*' any run of bytes, '?' one byte, '[abc]',
// '[^abc]' and '[a-z]' one of a set, '\' the next byte as it is.
func Glob(p, key string) (bool, error) {
	if strings.Count(p, "[") > 64 {
		return false, fmt.Errorf("pattern %q: too many classes", p)
	}
	return glob(p, key), nil
}

func glob(p, s string) bool {
	for len(p) > 0 {
		switch p[0] {
		case '*':
			for len(p) > 1 && p[1] == '*' {
				p = p[1:]
			}
			if len(p) == 1 {
				return true
			}
			for i := 0; i <= len(s); i++ {
				if glob(p[1:], s[i:]) {
					return true
				}
			}
			return false
		case '?':
			if len(s) == 0 {
				return false
			}
			s = s[1:]
			p = p[1:]
		case '[':
			if len(s) == 0 {
				return false
			}
			end := 1
			not := end < len(p) && p[end] == '^'
			if not {
				end++
			}
			match := false
			for end < len(p) && p[end] != ']' {
				switch {
				case p[end] == '\\' && end+1 < len(p):
					end++
					match = match || p[end] == s[0]
				case end+2 < len(p) && p[end+1] == '-' && p[end+2] != ']':
					lo, hi := p[end], p[end+2]
					if lo > hi {
						lo, hi = hi, lo
					}
					match = match || s[0] >= lo && s[0] <= hi
					end += 2
				default:
					match = match || p[end] == s[0]
				}
				end++
			}
			if not {
				match = !match
			}
			if !match {
				return false
			}
			s = s[1:]
			if end < len(p) {
				p = p[end+1:]
			} else {
				p = p[end:]
			}
		case '\\':
			if len(p) >= 2 {
				p = p[1:]
			}
			fallthrough
		default:
			if len(s) == 0 || s[0] != p[0] {
				return false
			}
			s = s[1:]
			p = p[1:]
		}
	}
	return len(s) == 0
}
