package records

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/crs-tool/crs/format"
	"github.com/crs-tool/crs/internal/keyslot"
)

func TestGlob(t *testing.T) {
	for _, tt := range []struct {
		p, s string
		want bool
	}{
		{"*", "", true}, {"*", "anything", true},
		{"client_keys:*", "client_keys:sk-1", true}, {"client_keys:*", "client_key:sk", false},
		{"h?llo", "hello", true}, {"h?llo", "hllo", false},
		{"h[ae]llo", "hallo", true}, {"h[ae]llo", "hillo", false},
		{"h[^e]llo", "hallo", true}, {"h[^e]llo", "hello", false},
		{"h[a-c]llo", "hbllo", true}, {"h[a-c]llo", "hdllo", false},
		{`a\*b`, "a*b", true}, {`a\*b`, "axb", false},
		{"*:window", "high_rate_limit:k:m:window", true}, {"*:*:count", "a:b:count", true},
		{"a*b*c", "aXbYc", true}, {"a*b*c", "aXbY", false},
		{"", "", true}, {"", "x", false},
		{"x/*", "x/y/z", true}, // no special meaning for '/', unlike path.Match
	} {
		if got := Glob(tt.p, tt.s); got != tt.want {
			t.Errorf("Glob(%q, %q) = %v; want %v", tt.p, tt.s, got, tt.want)
		}
	}
}

func TestSelect(t *testing.T) {
	recs := []*format.Record{
		{Key: "lib", Type: format.TypeFunction, Str: "#!lua name=lib\n"},
		{Key: "a:1", Type: format.TypeString, Str: "v"},
		{Key: "a:x", Type: format.TypeString, Str: "v"},
		{Key: "a:big", Type: format.TypeList, Elems: []string{"1"}, Part: 1, More: true},
		{Key: "a:big", Type: format.TypeList, Elems: []string{"2"}, Part: 2},
		{Key: "b:1", Type: format.TypeHash, Hash: []format.Field{{Name: "f", Value: "v"}}},
		{DB: 3, Key: "a:2", Type: format.TypeString, Str: "v"},
	}
	for _, tt := range []struct {
		name string
		s    Selection
		want string
		out  int64
	}{
		{"everything", Selection{}, "[lib a:1 a:x a:big/1 a:big/2 b:1 a:2]", 0},
		{"match and exclude", Selection{Match: []string{"a:*"}, Exclude: []string{"*:x"}}, "[lib a:1 a:big/1 a:big/2 a:2]", 2},
		{"a key in parts left out whole", Selection{Types: []string{"string"}}, "[lib a:1 a:x a:2]", 2},
		{"a database", Selection{DBs: []int{3}}, "[lib a:2]", 4},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := Select(Open(context.Background(), writeAll(recs...), nil), tt.s)
			var got []string
			err := Each(context.Background(), r, func(rec *format.Record) error {
				k := rec.Key
				if rec.Part > 0 {
					k = fmt.Sprintf("%s/%d", k, rec.Part)
				}
				got = append(got, k)
				return nil
			})
			st, cerr := r.Close()
			if err != nil || cerr != nil || fmt.Sprint(got) != tt.want || st.Unselected != tt.out {
				t.Errorf("got %v (left out %d), %v %v; want %s, %d", got, st.Unselected, err, cerr, tt.want, tt.out)
			}
		})
	}
}

// TestMaxKeyBytes: keys larger than the limit are left out whole, in one
// record or in parts (held until the size is known), and named.
func TestMaxKeyBytes(t *testing.T) {
	big := strings.Repeat("x", 400)
	recs := []*format.Record{
		{Key: "small", Type: format.TypeString, Str: "v"},
		{Key: "huge", Type: format.TypeString, Str: big},
		{Key: "parts", Type: format.TypeList, Elems: []string{"1"}, Part: 1, More: true},
		{Key: "parts", Type: format.TypeList, Elems: []string{big}, Part: 2, More: true},
		{Key: "parts", Type: format.TypeList, Elems: []string{"3"}, Part: 3},
		{Key: "fits", Type: format.TypeList, Elems: []string{"1"}, Part: 1, More: true},
		{Key: "fits", Type: format.TypeList, Elems: []string{"2"}, Part: 2},
	}
	r := Select(Open(context.Background(), writeAll(recs...), nil), Selection{MaxKeyBytes: 300})
	var got []string
	err := Each(context.Background(), r, func(rec *format.Record) error {
		got = append(got, fmt.Sprintf("%s/%d", rec.Key, rec.Part))
		return nil
	})
	st, cerr := r.Close()
	if err != nil || cerr != nil || fmt.Sprint(got) != "[small/0 fits/1 fits/2]" {
		t.Fatalf("got %v, %v %v", got, err, cerr)
	}
	if st.Unselected != 2 || st.UnselectedBy["max-key-bytes"] != 2 || !strings.Contains(st.Notes(), `LEFT OUT as larger than --max-key-bytes: "huge" (db 0, string), "parts" (db 0, list)`) {
		t.Errorf("left out %d %v: %s", st.Unselected, st.UnselectedBy, st.Notes())
	}
}

func TestProbeKeys(t *testing.T) {
	for _, c := range []struct {
		match []string
		want  []string
	}{
		{nil, []string{ProbeKey}},
		{[]string{"app:*"}, []string{"app:acl-probe"}},
		{[]string{"a?c", "user:[0-9]*", `lit\*`}, []string{"axc", "user:0acl-probe", "lit*"}},
		{[]string{"x[^~]"}, nil}, // no simple sample: passed over
	} {
		got := Selection{Match: c.match}.ProbeKeys()
		if fmt.Sprint(got) != fmt.Sprint(c.want) {
			t.Errorf("%q: %q, want %q", c.match, got, c.want)
		}
	}
	keys, made := Selection{Match: []string{"app:*"}}.ProbeKeysAs(Reshape{Prefix: "new:"})
	if fmt.Sprint(keys) != "[new:app:acl-probe]" || made {
		t.Errorf("renamed: %q %v", keys, made)
	}
}

// TestSelectPart checks that N parts take every key once, together with
// its parts, and the function libraries in part 0 alone.
func TestSelectPart(t *testing.T) {
	recs := []*format.Record{{Type: format.TypeFunction, Key: "lib", Str: "#!lua name=lib\n"}}
	for i := 0; i < 200; i++ {
		recs = append(recs, &format.Record{Key: fmt.Sprintf("k%d", i), Type: format.TypeString, Str: "v"})
	}
	taken := map[string]int{}
	for i := 0; i < 3; i++ {
		s := Selection{Part: keyslot.Part{I: i, N: 3}}
		for _, r := range recs {
			ok, why := s.Takes(r)
			if ok {
				taken[r.Key]++
			} else if why != "part" {
				t.Errorf("part %d left %q out for %q", i, r.Key, why)
			}
			if r.Type == format.TypeFunction && ok != (i == 0) {
				t.Errorf("part %d takes the function library: %v", i, ok)
			}
		}
	}
	for _, r := range recs {
		if taken[r.Key] != 1 {
			t.Errorf("%q taken by %d parts", r.Key, taken[r.Key])
		}
	}
}
