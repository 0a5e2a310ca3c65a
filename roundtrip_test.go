package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/crs-tool/crs/internal/e2e"

	"github.com/redis/go-redis/v9"

	"github.com/crs-tool/crs/dump"
	"github.com/crs-tool/crs/internal/redisserver"
	"github.com/crs-tool/crs/internal/redistest"
	"github.com/crs-tool/crs/load"
	"github.com/crs-tool/crs/records"
	"github.com/crs-tool/crs/source/pick"
	"github.com/crs-tool/crs/source/scan"
)

// allBytes holds each of the 256 byte values once.
var allBytes = func() string {
	b := make([]byte, 256)
	for i := range b {
		b[i] = byte(i)
	}
	return string(b)
}()

// fill writes the corner cases every round trip must carry. It returns the
// names of keys (db 0) that expire about 1.5 s after fill returns. It
// builds the binaries first, so that a test's first shell command does
// not spend those 1.5 s compiling.
func fill(t *testing.T, s *redisserver.Server) (expiringSoon []string) {
	t.Helper()
	e2e.Binaries(t)
	ctx := context.Background()
	c := redistest.Client(t, s, 0)
	c15 := redistest.Client(t, s, 15)
	do := func(c *redis.Client, args ...interface{}) {
		t.Helper()
		if err := c.Do(ctx, args...).Err(); err != nil {
			t.Fatalf("%v: %v", args, err)
		}
	}
	far := time.Now().Add(48*time.Hour).UnixMilli() + 7 // odd milliseconds
	strs := map[string]string{
		allBytes:                   allBytes,
		"invalid-utf8:\xff\xfe":    "\xc3\x28\xa0\xa1",
		"":                         "empty key name",
		"empty-value":              "",
		"unicode:ключ:😀":           "значение 😀 \u2028 \u2029 \u00e9",
		"line\nbreak\"quote\\\r\t": "value\nwith \"quotes\" and \\ and \x00 nul",
		"zero-padded":              "007",
		"minus-zero":               "-0",
		"big-number":               "12345678901234567890123",
		"json-lookalike":           `{"db":0,"key":"x"}`,
	}
	for k, v := range strs {
		do(c, "SET", k, v)
	}
	do(c, "SET", "with-expiry", "v")
	do(c, "PEXPIREAT", "with-expiry", far)

	// Lists: order, duplicates, empty and binary elements, a long one.
	do(c, "RPUSH", "list:small", "b", "a", "b", "", allBytes, "\xff")
	long := []interface{}{"RPUSH", "list:long"}
	for i := 0; i < 5000; i++ {
		long = append(long, fmt.Sprintf("item-%05d", 5000-i))
	}
	do(c, long...)
	do(c, "PEXPIREAT", "list:long", far+1)

	// Sets in each encoding.
	do(c, "SADD", "set:intset", 1, 2, 3, -4, 1<<40)
	do(c, "SADD", "set:small-strings", "a", "b", "", "\xff\x00")
	big := []interface{}{"SADD", "set:hashtable"}
	for i := 0; i < 600; i++ {
		big = append(big, fmt.Sprintf("member-%d", i))
	}
	do(c, big...)
	do(c, "PEXPIREAT", "set:hashtable", far+2)

	// Hashes: binary and empty names and values, small and large.
	do(c, "HSET", "hash:small", "f", "v", "", "empty name", "empty value", "", "\xff\xfe", "\x00\x01", "ключ", "😀")
	do(c, "HSET", "hash:binary", allBytes, allBytes)
	bigHash := []interface{}{"HSET", "hash:big"}
	for i := 0; i < 3000; i++ {
		bigHash = append(bigHash, fmt.Sprintf("field-%d", i), strconv.Itoa(i*i))
	}
	do(c, bigHash...)
	do(c, "PEXPIREAT", "hash:small", far+3)

	// Sorted sets: exact scores, infinities, ties ordered by member.
	do(c, "ZADD", "zset:scores",
		"0.1", "tenth",
		strconv.FormatFloat(1.0/3, 'g', -1, 64), "third",
		"5e-324", "smallest-subnormal",
		"1.7976931348623157e308", "max",
		"9007199254740993", "2^53+1",
		"inf", "plus-inf",
		"-inf", "minus-inf",
		"-0", "minus-zero",
		"1", "tie-c", "1", "tie-a", "1", "tie-b",
		"-2.5e-10", "tiny-negative")
	do(c, "ZADD", "zset:binary", 1, allBytes, 2, "\xff", 3, "")
	bigZ := []interface{}{"ZADD", "zset:skiplist"}
	for i := 0; i < 2000; i++ {
		bigZ = append(bigZ, float64(i)/7, fmt.Sprintf("m%d", i))
	}
	do(c, bigZ...)
	do(c, "PEXPIREAT", "zset:skiplist", far+4)

	// Database 15.
	do(c15, "SET", "db15:string", "fifteen")
	do(c15, "HSET", "db15:hash", "a", "1")
	do(c15, "PEXPIREAT", "db15:hash", far+5)

	// Keys that expire between dump and load.
	do(c, "SET", "expires-soon:string", "x", "PX", 1500)
	do(c, "RPUSH", "expires-soon:list", "x")
	do(c, "PEXPIRE", "expires-soon:list", 1500)
	return []string{"expires-soon:string", "expires-soon:list"}
}

func TestFillHasEveryEncoding(t *testing.T) {
	src := redistest.Start(t)
	fill(t, src)
	c := redistest.Client(t, src, 0)
	ctx := context.Background()
	want := map[string]string{
		"set:intset":        "intset",
		"set:hashtable":     "hashtable",
		"hash:small":        "listpack",
		"hash:big":          "hashtable",
		"zset:scores":       "listpack",
		"zset:skiplist":     "skiplist",
		"list:long":         "quicklist",
		"set:small-strings": "hashtable", // listpack from Redis 7.2 on
	}
	info, _ := c.Info(ctx, "server").Result()
	if strings.Contains(info, "redis_version:7.2") || strings.Contains(info, "redis_version:7.4") || strings.Contains(info, "redis_version:8") {
		want["set:small-strings"] = "listpack"
	}
	for k, enc := range want {
		got, err := c.ObjectEncoding(ctx, k).Result()
		if err != nil {
			t.Fatal(err)
		}
		if got != enc {
			t.Errorf("%s: encoding %s, want %s", k, got, enc)
		}
	}
}

// dumpSetup is crsdump's options: the live source's and the output's.
type dumpSetup struct {
	scan.Options
	Out dump.Options
}

func runDump(t *testing.T, s *redisserver.Server, mod func(*dumpSetup)) (string, string) {
	t.Helper()
	opts := dumpSetup{scan.NewOptions(), dump.NewOptions()}
	opts.Conn.URL = s.URL
	opts.Out.Output = filepath.Join(t.TempDir(), "dump.jsonl.zst")
	if mod != nil {
		mod(&opts)
	}
	var stderr bytes.Buffer
	spec := pick.NewSpec()
	spec.Scan = opts.Options
	if err := dump.Run(context.Background(), pick.Open(context.Background(), spec), opts.Out, nil, &stderr); err != nil {
		t.Fatalf("dump: %v\n%s", err, stderr.String())
	}
	return opts.Out.Output, stderr.String()
}

func runLoad(t *testing.T, s *redisserver.Server, file string, mod func(*load.Options)) (string, error) {
	t.Helper()
	opts := load.NewOptions()
	opts.Conn.URL = s.URL
	if mod != nil {
		mod(&opts)
	}
	var stderr bytes.Buffer
	err := load.Run(context.Background(), opts, fileInput(file), &stderr)
	return stderr.String(), err
}

// fileInput is the dump (or RDB) file at path, as crsload and crs verify
// read it.
func fileInput(path string) records.Input {
	spec := pick.NewSpec()
	spec.File = path
	return pick.Open(context.Background(), spec)
}

// TestRoundTrip loads the corpus both ways a key can be written: RESTORE
// of payloads crs encodes (the default) and commands.
func TestRoundTrip(t *testing.T) {
	src := redistest.Start(t)
	soon := fill(t, src)
	file, dumpSummary := runDump(t, src, nil)
	if !strings.Contains(dumpSummary, "dumped 26 keys") {
		t.Errorf("dump summary: %s", dumpSummary)
	}
	fi, err := os.Stat(file)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := fi.Mode().Perm(), os.FileMode(0o600); got != want {
		t.Errorf("dump file mode %v, want %v", got, want)
	}
	if _, err := os.Stat(file + ".tmp"); !os.IsNotExist(err) {
		t.Errorf("%s.tmp left behind: %v", file, err)
	}

	// Let the short expiries pass on the source before loading.
	c := redistest.Client(t, src, 0)
	waitGone(t, c, soon...)

	for _, by := range []string{load.LoadByAuto, load.LoadByCommands} {
		t.Run(by, func(t *testing.T) { roundTripInto(t, src, c, file, by, soon) })
	}
}

func roundTripInto(t *testing.T, src *redisserver.Server, c *redis.Client, file, by string, soon []string) {
	dst := redistest.Start(t)
	var sum bytes.Buffer
	summary, err := runLoad(t, dst, file, func(o *load.Options) { o.LoadBy, o.Summary = by, &sum })
	if err != nil {
		t.Fatalf("load: %v\n%s", err, summary)
	}
	if !strings.Contains(summary, "skipped 2 already expired") || !strings.Contains(summary, "loaded 24 keys") {
		t.Errorf("load summary: %s", summary)
	}
	var st load.Stats
	if err := json.Unmarshal(sum.Bytes(), &st); err != nil {
		t.Fatal(err)
	}
	// The default writes the whole keys by RESTORE; commands, none.
	if restored := st.Restored; (by == load.LoadByAuto) != (restored > 0) {
		t.Errorf("--load-by %s: %d keys restored whole", by, restored)
	}
	e2e.AssertNoDiff(t, src, dst)

	// Spot checks that do not rely on Diff.
	d := redistest.Client(t, dst, 0)
	ctx := context.Background()
	if v, _ := d.Get(ctx, allBytes).Result(); v != allBytes {
		t.Errorf("all-bytes key: got %q", v)
	}
	for member, want := range map[string]float64{"tenth": 0.1, "smallest-subnormal": 5e-324, "max": math.MaxFloat64, "plus-inf": math.Inf(1), "third": 1.0 / 3} {
		got, err := d.ZScore(ctx, "zset:scores", member).Result()
		if err != nil || got != want {
			t.Errorf("score of %s: %v %v, want %v", member, got, err, want)
		}
	}
	order, _ := d.ZRange(ctx, "zset:scores", 0, -1).Result()
	if got := strings.Join(order, ","); !strings.Contains(got, "tie-a,tie-b,tie-c") {
		t.Errorf("zset order %s", got)
	}
	for _, m := range []string{"minus-zero", "2^53+1", "tiny-negative"} {
		want, _ := c.Do(ctx, "ZSCORE", "zset:scores", m).Text()
		if got, _ := d.Do(ctx, "ZSCORE", "zset:scores", m).Text(); got != want {
			t.Errorf("score of %s came back as %q, source %q", m, got, want)
		}
	}
	if n, _ := d.Exists(ctx, soon...).Result(); n != 0 {
		t.Errorf("%d expired keys were loaded", n)
	}
}

func waitGone(t *testing.T, c *redis.Client, keys ...string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		n, err := c.Exists(context.Background(), keys...).Result()
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("keys %v did not expire", keys)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestRoundTripOptions(t *testing.T) {
	src := redistest.Start(t)
	fill(t, src)
	ctx := context.Background()
	tests := []struct {
		name string
		dump func(*dumpSetup)
		load func(*load.Options)
		// check runs against the target after the load.
		check func(t *testing.T, dst *redisserver.Server)
	}{
		{
			name: "uncompressed, one reader, tiny scans",
			dump: func(o *dumpSetup) { o.Out.Compress = "none"; o.Concurrency = 1; o.ScanCount = 3 },
			load: func(o *load.Options) { o.Concurrency = 1; o.Pipeline = 1 },
			check: func(t *testing.T, dst *redisserver.Server) {
				assertNoDiffExceptSoon(t, src, dst)
			},
		},
		{
			name: "zstd level 4, many workers",
			dump: func(o *dumpSetup) { o.Out.ZstdLevel = 4; o.Concurrency = 8 },
			load: func(o *load.Options) { o.Concurrency = 16; o.Pipeline = 7 },
			check: func(t *testing.T, dst *redisserver.Server) {
				assertNoDiffExceptSoon(t, src, dst)
			},
		},
		{
			name: "one database dumped, loaded into another",
			dump: func(o *dumpSetup) { o.Conn.DB = 15 },
			load: func(o *load.Options) { o.Conn.DB = 3 },
			check: func(t *testing.T, dst *redisserver.Server) {
				c3 := redistest.Client(t, dst, 3)
				keys, _ := redistest.Keys(ctx, c3)
				if got := strings.Join(keys, ","); got != "db15:hash,db15:string" {
					t.Errorf("db 3 holds %s", got)
				}
				if n, _ := redistest.Client(t, dst, 0).DBSize(ctx).Result(); n != 0 {
					t.Errorf("db 0 holds %d keys", n)
				}
			},
		},
		{
			name: "match pattern",
			dump: func(o *dumpSetup) { o.Match = "zset:*" },
			check: func(t *testing.T, dst *redisserver.Server) {
				keys, _ := redistest.Keys(ctx, redistest.Client(t, dst, 0))
				if got := strings.Join(keys, ","); got != "zset:binary,zset:scores,zset:skiplist" {
					t.Errorf("target holds %s", got)
				}
			},
		},
		{
			name: "ttl none",
			load: func(o *load.Options) { o.TTL = load.TTLNone },
			check: func(t *testing.T, dst *redisserver.Server) {
				c := redistest.Client(t, dst, 0)
				if ms, _ := c.Do(ctx, "PEXPIRETIME", "list:long").Int64(); ms != -1 {
					t.Errorf("list:long expires at %d", ms)
				}
			},
		},
		{
			name: "ttl shift",
			load: func(o *load.Options) { o.TTL = load.TTLShift },
			check: func(t *testing.T, dst *redisserver.Server) {
				a, _ := redistest.Client(t, src, 0).Do(ctx, "PEXPIRETIME", "list:long").Int64()
				b, _ := redistest.Client(t, dst, 0).Do(ctx, "PEXPIRETIME", "list:long").Int64()
				if b <= a || b-a > 60_000 {
					t.Errorf("shifted expiry %d, source %d: want a little later", b, a)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dst := redistest.Start(t)
			file, _ := runDump(t, src, tt.dump)
			if summary, err := runLoad(t, dst, file, tt.load); err != nil {
				t.Fatalf("load: %v\n%s", err, summary)
			}
			tt.check(t, dst)
		})
	}
}

// assertNoDiffExceptSoon compares, allowing for the keys fill made to
// expire soon (they may or may not have gone by now).
func assertNoDiffExceptSoon(t *testing.T, a, b *redisserver.Server) {
	t.Helper()
	assertNoDiffWithin(t, a, b, 0)
}

// assertNoDiffWithin fails on any difference but the expires-soon: keys,
// and on expiries more than tolerance ms apart.
func assertNoDiffWithin(t *testing.T, a, b *redisserver.Server, tolerance int64) {
	t.Helper()
	diffs, err := redistest.Diff(context.Background(), a, b, tolerance)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range diffs {
		if !strings.Contains(d, "expires-soon:") {
			t.Error(d)
		}
	}
}

func TestLoadConflictPolicies(t *testing.T) {
	src := redistest.Start(t)
	ctx := context.Background()
	c := redistest.Client(t, src, 0)
	c.RPush(ctx, "list", "new-1", "new-2")
	c.HSet(ctx, "hash", "f", "new")
	c.Set(ctx, "only-in-dump", "x", 0)
	file, _ := runDump(t, src, nil)

	prepare := func(t *testing.T) *redisserver.Server {
		dst := redistest.Start(t)
		d := redistest.Client(t, dst, 0)
		d.RPush(ctx, "list", "old-1")
		d.HSet(ctx, "hash", "f", "old", "old-field", "x")
		d.Set(ctx, "only-in-target", "y", 0)
		return dst
	}
	t.Run("refuse", func(t *testing.T) {
		dst := prepare(t)
		summary, err := runLoad(t, dst, file, nil)
		if err == nil || !strings.Contains(err.Error(), "db 0 has 3 keys") {
			t.Fatalf("err = %v", err)
		}
		if !strings.Contains(err.Error(), "nothing was written") {
			t.Errorf("err = %v", err)
		}
		if summary != "" {
			t.Errorf("a refused load printed a summary: %s", summary)
		}
		d := redistest.Client(t, dst, 0)
		if got, _ := d.LRange(ctx, "list", 0, -1).Result(); strings.Join(got, ",") != "old-1" {
			t.Errorf("list touched: %v", got)
		}
	})
	t.Run("replace", func(t *testing.T) {
		dst := prepare(t)
		summary, err := runLoad(t, dst, file, func(o *load.Options) { o.Replace = true })
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(summary, "replaced 2 existing keys") {
			t.Errorf("summary: %s", summary)
		}
		d := redistest.Client(t, dst, 0)
		if got, _ := d.LRange(ctx, "list", 0, -1).Result(); strings.Join(got, ",") != "new-1,new-2" {
			t.Errorf("list is %v: old elements mixed in", got)
		}
		if got, _ := d.HGetAll(ctx, "hash").Result(); len(got) != 1 || got["f"] != "new" {
			t.Errorf("hash is %v", got)
		}
		if n, _ := d.Exists(ctx, "only-in-target", "only-in-dump").Result(); n != 2 {
			t.Errorf("exists = %d", n)
		}
	})
	t.Run("skip existing", func(t *testing.T) {
		dst := prepare(t)
		summary, err := runLoad(t, dst, file, func(o *load.Options) { o.SkipExisting = true })
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(summary, "2 existing (--skip-existing)") || !strings.Contains(summary, "loaded 1 keys") {
			t.Errorf("summary: %s", summary)
		}
		d := redistest.Client(t, dst, 0)
		if got, _ := d.LRange(ctx, "list", 0, -1).Result(); strings.Join(got, ",") != "old-1" {
			t.Errorf("list is %v", got)
		}
		if got, _ := d.Get(ctx, "only-in-dump").Result(); got != "x" {
			t.Errorf("only-in-dump = %q", got)
		}
	})
}

func TestLoadMergingDatabasesRefusesDuplicateKeys(t *testing.T) {
	src, dst := redistest.Start(t), redistest.Start(t)
	ctx := context.Background()
	redistest.Client(t, src, 1).RPush(ctx, "same", "from-db1")
	redistest.Client(t, src, 2).RPush(ctx, "same", "from-db2")
	file, _ := runDump(t, src, nil)
	_, err := runLoad(t, dst, file, func(o *load.Options) { o.Conn.DB = 0 })
	if err == nil || !strings.Contains(err.Error(), "appears twice") || !strings.Contains(err.Error(), "line 3") {
		t.Fatalf("err = %v", err)
	}
}
