package records

import (
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/crs-tool/crs/format"
)

// Reshape changes where keys go, the same way on every command: Renames
// (the first whose From matches), then Prefix before every key, and DBMap
// from a source database to a target one. crs verify given the same
// reshape compares each renamed key with its original.
type Reshape struct {
	Renames []Rename
	Prefix  string
	DBMap   map[int]int
}

// Rename is one --rename FROM=TO: a key name, or a glob with one '*' (a
// prefix, a suffix or both around it) whose match TO's '*' takes.
type Rename struct {
	From, To string
}

// ParseRename reads FROM=TO.
func ParseRename(s string) (Rename, error) {
	from, to, ok := strings.Cut(s, "=")
	if !ok || from == "" || to == "" {
		return Rename{}, fmt.Errorf("--rename %q: give FROM=TO, such as 'trial_*=free_*'", s)
	}
	if strings.Count(from, "*") > 1 || strings.Count(to, "*") > strings.Count(from, "*") {
		return Rename{}, fmt.Errorf("--rename %q: FROM has one '*' (the part TO keeps where its own '*' is) or none, and TO no more than FROM", s)
	}
	return Rename{From: from, To: to}, nil
}

// ParseDBMap reads "1=0,2=3".
func ParseDBMap(s string) (map[int]int, error) {
	m := map[int]int{}
	for _, pair := range strings.Split(s, ",") {
		a, b, ok := strings.Cut(strings.TrimSpace(pair), "=")
		from, err1 := strconv.Atoi(a)
		to, err2 := strconv.Atoi(b)
		if !ok || err1 != nil || err2 != nil || from < 0 || to < 0 {
			return nil, fmt.Errorf("--db-map %q: give SOURCE=TARGET pairs of database numbers, such as 1=0,2=3", s)
		}
		if _, dup := m[from]; dup {
			return nil, fmt.Errorf("--db-map %q: database %d mapped twice", s, from)
		}
		m[from] = to
	}
	return m, nil
}

// Empty reports whether r changes nothing.
func (r Reshape) Empty() bool { return len(r.Renames) == 0 && r.Prefix == "" && len(r.DBMap) == 0 }

// Key returns the name key takes.
func (r Reshape) Key(key string) string {
	for _, rn := range r.Renames {
		if to, ok := rn.apply(key); ok {
			key = to
			break
		}
	}
	return r.Prefix + key
}

// Sources returns the names of the source keys that Key renames to key:
// one, or several (a rename's TO that takes every match, a name that is
// both renamed and kept), or none.
func (r Reshape) Sources(key string) []string {
	rest, ok := strings.CutPrefix(key, r.Prefix)
	if !ok {
		return nil
	}
	candidates := []string{rest}
	for _, rn := range r.Renames {
		pre, post, glob := strings.Cut(rn.To, "*")
		switch {
		case !glob && rest == rn.To && !strings.Contains(rn.From, "*"):
			candidates = append(candidates, rn.From)
		case glob && len(rest) >= len(pre)+len(post) && strings.HasPrefix(rest, pre) && strings.HasSuffix(rest, post):
			candidates = append(candidates, strings.Replace(rn.From, "*", rest[len(pre):len(rest)-len(post)], 1))
		}
	}
	var out []string
	for _, c := range candidates {
		if r.Key(c) == key && !slices.Contains(out, c) {
			out = append(out, c)
		}
	}
	return out
}

// DB returns the database db's keys go to.
func (r Reshape) DB(db int) int {
	if to, ok := r.DBMap[db]; ok {
		return to
	}
	return db
}

func (rn Rename) apply(key string) (string, bool) {
	pre, post, glob := strings.Cut(rn.From, "*")
	if !glob {
		return rn.To, key == rn.From
	}
	if len(key) < len(pre)+len(post) || !strings.HasPrefix(key, pre) || !strings.HasSuffix(key, post) {
		return "", false
	}
	mid := key[len(pre) : len(key)-len(post)]
	return strings.Replace(rn.To, "*", mid, 1), true // a TO without '*' takes every match
}

// Header maps the header's databases, merging those that map to one.
func (r Reshape) Header(h format.Header) format.Header {
	if len(r.DBMap) == 0 || h.Databases == nil {
		return h
	}
	keys := map[int]int64{}
	for _, d := range h.Databases {
		keys[r.DB(d.DB)] += d.Keys
	}
	h.Databases = []format.Database{}
	for db, n := range keys {
		h.Databases = append(h.Databases, format.Database{DB: db, Keys: n})
	}
	sort.Slice(h.Databases, func(i, j int) bool { return h.Databases[i].DB < h.Databases[j].DB })
	return h
}

// Apply returns rc with every record reshaped: its key renamed and
// prefixed, its database mapped. Function libraries are not keys: they
// are left as they are.
func Apply(rc ReadCloser, r Reshape) ReadCloser {
	if r.Empty() {
		return rc
	}
	return &reshaped{Wrapped: Wrapped{rc}, r: r}
}

type reshaped struct {
	Wrapped
	r Reshape
}

func (s *reshaped) Header() (format.Header, error) {
	h, err := s.Wrapped.Header()
	return s.r.Header(h), err
}

func (s *reshaped) Read() (*format.Record, error) {
	rec, err := s.Wrapped.Read()
	if err != nil || rec.Type == format.TypeFunction {
		return rec, err
	}
	if to := s.r.Key(rec.Key); to != rec.Key {
		rec.From, rec.Key = rec.Key, to
	}
	rec.DB = s.r.DB(rec.DB)
	return rec, nil
}
