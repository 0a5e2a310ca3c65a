package dumppayload_test

import (
	"context"
	"fmt"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/crs-tool/crs/format"
	"github.com/crs-tool/crs/internal/dumppayload"
	"github.com/crs-tool/crs/internal/redisconn"
	"github.com/crs-tool/crs/internal/redisserver"
)

// The server of the whole run (each fuzz worker process starts its own),
// started by the first test that needs it and killed by TestMain.
var (
	serverOnce sync.Once
	server     *redisserver.Server
	serverC    *redis.Client
	serverRDB  int
	serverErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if server != nil {
		server.Close()
	}
	os.Exit(code)
}

// restoreServer returns a client of a throwaway server (its default
// encoding settings) and the RDB version it writes.
func restoreServer(t testing.TB) (*redis.Client, int) {
	serverOnce.Do(func() {
		ctx := context.Background()
		if server, serverErr = redisserver.Start(ctx); serverErr != nil {
			return
		}
		var srv redisconn.Server
		if serverC, srv, serverErr = redisconn.Open(ctx, redisconn.Options{URL: server.URL}, 0, 2); serverErr == nil {
			serverRDB = dumppayload.ServerRDB(srv.Engine, srv.Major, srv.Minor)
		}
	})
	if serverErr == redisserver.ErrNotInstalled && os.Getenv("CI") == "" {
		t.Skip(serverErr)
	}
	if serverErr != nil {
		t.Fatal(serverErr)
	}
	return serverC, serverRDB
}

// restoreAndRead restores r as Encode writes it and reads the value back
// as text, in an order that does not depend on the encoding.
func restoreAndRead(t testing.TB, c *redis.Client, e *dumppayload.Encoder, r *format.Record) string {
	t.Helper()
	payload, ok := e.Encode(r)
	if !ok {
		t.Fatalf("Encode refused a %s record it covers", r.Type)
	}
	ctx := context.Background()
	if err := c.Do(ctx, "RESTORE", r.Key, 0, string(payload), "REPLACE").Err(); err != nil {
		t.Fatalf("RESTORE of a %s (RDB %d): %v", r.Type, e.Version, err)
	}
	defer c.Del(ctx, r.Key)
	var out []string
	switch r.Type {
	case format.TypeString:
		v, err := c.Get(ctx, r.Key).Result()
		if err != nil {
			t.Fatal(err)
		}
		return v
	case format.TypeList:
		v, err := c.LRange(ctx, r.Key, 0, -1).Result()
		if err != nil {
			t.Fatal(err)
		}
		out = v
	case format.TypeSet:
		v, err := c.SMembers(ctx, r.Key).Result()
		if err != nil {
			t.Fatal(err)
		}
		slices.Sort(v)
		out = v
	case format.TypeHash:
		v, err := c.HGetAll(ctx, r.Key).Result()
		if err != nil {
			t.Fatal(err)
		}
		for k, x := range v {
			out = append(out, strconv.Quote(k)+"="+strconv.Quote(x))
		}
		slices.Sort(out)
	case format.TypeZSet:
		// ZRANGE's order is the encoding's order: it must be score, then
		// member, whichever encoding the server holds. A score of -0 is
		// read as 0 (+0 makes it so): the server itself turns -0 into 0
		// when it makes a skiplist a listpack.
		v, err := c.ZRangeWithScores(ctx, r.Key, 0, -1).Result()
		if err != nil {
			t.Fatal(err)
		}
		for _, z := range v {
			out = append(out, fmt.Sprintf("%q=%v", z.Member, z.Score+0))
		}
	}
	return strings.Join(out, "\n")
}

// want is what restoreAndRead should read of r.
func want(r *format.Record) string {
	var out []string
	switch r.Type {
	case format.TypeString:
		return r.Str
	case format.TypeList:
		out = r.Elems
	case format.TypeSet:
		out = slices.Clone(r.Elems)
		slices.Sort(out)
	case format.TypeHash:
		for _, f := range r.Hash {
			out = append(out, strconv.Quote(f.Name)+"="+strconv.Quote(f.Value))
		}
		slices.Sort(out)
	case format.TypeZSet:
		z := slices.Clone(r.ZSet)
		slices.SortFunc(z, func(a, b format.Member) int {
			if a.Score != b.Score {
				return cmpFloat(a.Score, b.Score)
			}
			return strings.Compare(a.Member, b.Member)
		})
		for _, m := range z {
			out = append(out, fmt.Sprintf("%q=%v", m.Member, m.Score+0))
		}
	}
	return strings.Join(out, "\n")
}

func cmpFloat(a, b float64) int {
	if a < b {
		return -1
	}
	return 1
}

// TestEncodeRestores restores values of every type and encoding the
// encoder writes (compact and plain, integers of every width, long
// strings, many list nodes) into a real server and reads them back.
func TestEncodeRestores(t *testing.T) {
	c, v := restoreServer(t)
	many := func(n int, f func(i int) string) []string {
		s := make([]string, n)
		for i := range s {
			s[i] = f(i)
		}
		return s
	}
	ints := []string{"0", "1", "-1", "127", "128", "-4096", "4095", "4096", "-32768", "32767", "40000", "-8388608", "8388607", "8388608",
		"2147483647", "-2147483648", "2147483648", "9223372036854775807", "-9223372036854775808", "9223372036854775808", "007", "+1", "-0", "1e3", " 1"}
	long := strings.Repeat("x", 70000)
	fields := func(n int, val func(i int) string) []format.Field {
		f := make([]format.Field, n)
		for i := range f {
			f[i] = format.Field{Name: "f" + strconv.Itoa(i), Value: val(i)}
		}
		return f
	}
	scores := []float64{0, math.Copysign(0, -1), 1, -1, 0.1, 1.0 / 3, 5e-324, math.MaxFloat64, -math.MaxFloat64, math.Inf(1), math.Inf(-1),
		1 << 53, 1<<53 + 2, -(1 << 60), 1e21, 123456789.123, 2.5}
	members := func(n int, score func(i int) float64) []format.Member {
		m := make([]format.Member, n)
		for i := range m {
			m[i] = format.Member{Member: "m" + strconv.Itoa(i%7) + strings.Repeat("y", i/7), Score: score(i)}
		}
		return m
	}
	tests := []struct {
		name string
		rec  format.Record
	}{
		{"string", format.Record{Type: format.TypeString, Str: "hello"}},
		{"empty string", format.Record{Type: format.TypeString, Str: ""}},
		{"integer string", format.Record{Type: format.TypeString, Str: "12345"}},
		{"binary string", format.Record{Type: format.TypeString, Str: "\x00\xff\r\n"}},
		{"long string", format.Record{Type: format.TypeString, Str: long}},
		{"small list", format.Record{Type: format.TypeList, Elems: append(slices.Clone(ints), "a", "", "\x00")}},
		{"list of many nodes", format.Record{Type: format.TypeList, Elems: many(5000, func(i int) string { return strconv.Itoa(i*37) + "abc" })}},
		{"list of a long element", format.Record{Type: format.TypeList, Elems: []string{"a", long, "b"}}},
		{"list of strings of each length class", format.Record{Type: format.TypeList, Elems: []string{strings.Repeat("a", 63), strings.Repeat("b", 64), strings.Repeat("c", 4095), strings.Repeat("d", 4096)}}},
		{"intset 16", format.Record{Type: format.TypeSet, Elems: []string{"3", "1", "-2", "32767"}}},
		{"intset 32", format.Record{Type: format.TypeSet, Elems: []string{"3", "70000", "-70000"}}},
		{"intset 64", format.Record{Type: format.TypeSet, Elems: []string{"3", "9223372036854775807", "-9223372036854775808"}}},
		{"set of integers past intset", format.Record{Type: format.TypeSet, Elems: many(600, strconv.Itoa)}},
		{"small set", format.Record{Type: format.TypeSet, Elems: ints}},
		{"set of a long member", format.Record{Type: format.TypeSet, Elems: []string{"a", long}}},
		{"large set", format.Record{Type: format.TypeSet, Elems: many(300, func(i int) string { return "s" + strconv.Itoa(i) })}},
		{"small hash", format.Record{Type: format.TypeHash, Hash: fields(len(ints), func(i int) string { return ints[i] })}},
		{"hash of a long value", format.Record{Type: format.TypeHash, Hash: fields(3, func(i int) string { return strings.Repeat("v", 65*i) })}},
		{"large hash", format.Record{Type: format.TypeHash, Hash: fields(500, strconv.Itoa)}},
		{"small zset", format.Record{Type: format.TypeZSet, ZSet: members(len(scores), func(i int) float64 { return scores[i] })}},
		{"zset of ties", format.Record{Type: format.TypeZSet, ZSet: members(20, func(int) float64 { return 1 })}},
		{"large zset", format.Record{Type: format.TypeZSet, ZSet: members(400, func(i int) float64 { return scores[i%len(scores)] })}},
		{"zset of a long member", format.Record{Type: format.TypeZSet, ZSet: []format.Member{{Member: long, Score: 2}, {Member: "a", Score: 1}}}},
	}
	for _, limits := range []struct {
		name string
		l    dumppayload.Limits
	}{{"server's limits", dumppayload.DefaultLimits()}, {"plain only", dumppayload.Limits{ListSize: -5}}, {"lists by count", dumppayload.Limits{ListSize: 3}}} {
		for _, rdb := range []int{9, v} {
			e := &dumppayload.Encoder{Version: rdb, Limits: limits.l}
			for _, tt := range tests {
				t.Run(fmt.Sprintf("%s/rdb %d/%s", limits.name, rdb, tt.name), func(t *testing.T) {
					r := tt.rec
					r.Key = "k"
					if got, want := restoreAndRead(t, c, e, &r), want(&r); got != want {
						t.Errorf("read back:\n%.300s\nwant:\n%.300s", got, want)
					}
				})
			}
		}
	}
}

// TestEncodeRefuses checks the records the encoder leaves to commands.
func TestEncodeRefuses(t *testing.T) {
	e := &dumppayload.Encoder{Version: 11, Limits: dumppayload.DefaultLimits()}
	for _, tt := range []struct {
		name string
		rec  format.Record
	}{
		{"part", format.Record{Type: format.TypeList, Elems: []string{"a"}, Part: 1, More: true}},
		{"stream", format.Record{Type: format.TypeStream, Stream: &format.Stream{}}},
		{"module", format.Record{Type: "MBbloom--", Dump: "x", RDBVersion: 11}},
		{"field expiry", format.Record{Type: format.TypeHash, Hash: []format.Field{{Name: "a", Value: "b"}}, FieldExpire: []format.FieldExpiry{{Field: "a", AtMs: 1}}}},
		{"empty list", format.Record{Type: format.TypeList}},
		{"repeated member", format.Record{Type: format.TypeSet, Elems: []string{"a", "a"}}},
		{"repeated field", format.Record{Type: format.TypeHash, Hash: []format.Field{{Name: "a", Value: "1"}, {Name: "a", Value: "2"}}}},
		{"repeated zset member", format.Record{Type: format.TypeZSet, ZSet: []format.Member{{Member: "a", Score: 1}, {Member: "a", Score: 2}}}},
	} {
		if _, ok := e.Encode(&tt.rec); ok {
			t.Errorf("%s: encoded", tt.name)
		}
	}
	if _, ok := (&dumppayload.Encoder{Version: 8}).Encode(&format.Record{Type: format.TypeString, Str: "a"}); ok {
		t.Error("encoded for RDB 8 (Redis 4.0), which has no RESTORE ... ABSTTL")
	}
}

// FuzzEncode encodes records made from the input, restores them into a
// real server and reads them back equal.
func FuzzEncode(f *testing.F) {
	f.Add(byte(0), byte(0), "a\x00b\x00c")
	f.Add(byte(1), byte(1), "1\x002\x00-3\x00x")
	f.Add(byte(2), byte(2), "1\x002\x00300000")
	f.Add(byte(3), byte(3), "a\x00b\x00c\x00d")
	f.Add(byte(4), byte(0), "m\x00n\x00o")
	f.Add(byte(2), byte(4), "a\x00\x00"+strings.Repeat("z", 100))
	f.Fuzz(func(t *testing.T, typ, limits byte, data string) {
		c, v := restoreServer(t)
		parts := strings.Split(data, "\x00")
		if len(parts) > 1000 {
			parts = parts[:1000]
		}
		r := format.Record{Key: "fuzz"}
		seen := map[string]bool{}
		var uniq []string
		for _, p := range parts {
			if !seen[p] {
				seen[p] = true
				uniq = append(uniq, p)
			}
		}
		switch typ % 5 {
		case 0:
			r.Type, r.Str = format.TypeString, data
		case 1:
			r.Type, r.Elems = format.TypeList, parts
		case 2:
			r.Type, r.Elems = format.TypeSet, uniq
		case 3:
			r.Type = format.TypeHash
			for i, p := range uniq {
				r.Hash = append(r.Hash, format.Field{Name: p, Value: parts[(i*7)%len(parts)]})
			}
		case 4:
			r.Type = format.TypeZSet
			for i, p := range uniq {
				s, err := strconv.ParseFloat(parts[(i*3)%len(parts)], 64)
				if err != nil || math.IsNaN(s) {
					s = float64(len(p)) / 3
				}
				r.ZSet = append(r.ZSet, format.Member{Member: p, Score: s})
			}
		}
		l := dumppayload.DefaultLimits()
		switch limits % 3 {
		case 1:
			l = dumppayload.Limits{HashEntries: 4, HashValue: 4, ZSetEntries: 4, ZSetValue: 4, SetIntset: 4, SetEntries: 4, SetValue: 4, ListSize: 2}
		case 2:
			l.ListSize = -1
		}
		e := &dumppayload.Encoder{Version: v, Limits: l}
		if got, want := restoreAndRead(t, c, e, &r), want(&r); got != want {
			t.Errorf("read back:\n%.300q\nwant:\n%.300q", got, want)
		}
	})
}

// TestParseInt checks the integers a listpack or intset holds as such
// against strconv: the canonical form only.
func TestParseInt(t *testing.T) {
	for _, s := range []string{"0", "1", "-1", "9223372036854775807", "-9223372036854775808", "9223372036854775808", "-9223372036854775809",
		"18446744073709551615", "18446744073709551616", "99999999999999999999", "007", "-0", "+1", "", "-", "1a", " 1", "1 ", "00", "-01", "12345678901234567890123"} {
		v, ok := dumppayload.ParseInt(s)
		w, err := strconv.ParseInt(s, 10, 64)
		wantOK := err == nil && strconv.FormatInt(w, 10) == s
		if ok != wantOK || ok && v != w {
			t.Errorf("ParseInt(%q) = %d, %v; want %d, %v", s, v, ok, w, wantOK)
		}
	}
}
