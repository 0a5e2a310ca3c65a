package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/crs-tool/crs/internal/e2e"

	"github.com/redis/go-redis/v9"

	"github.com/crs-tool/crs/format"
	"github.com/crs-tool/crs/internal/redisserver"
	"github.com/crs-tool/crs/internal/redistest"
	"github.com/crs-tool/crs/load"
	"github.com/crs-tool/crs/source/dumpfile"
	"github.com/crs-tool/crs/source/pick"
)

// fillStreams makes streams in every state the issue names.
func fillStreams(t *testing.T, s *redisserver.Server) {
	t.Helper()
	ctx := context.Background()
	c := redistest.Client(t, s, 0)
	do := func(args ...interface{}) {
		t.Helper()
		if err := c.Do(ctx, args...).Err(); err != nil && err != redis.Nil {
			t.Fatalf("%v: %v", args, err)
		}
	}
	// Groups, pending entries, a consumer with none, deletions of pending
	// and of delivered entries, repeated and binary field names.
	for i := 1; i <= 30; i++ {
		do("XADD", "events", fmt.Sprintf("1700000000000-%d", i), "user", fmt.Sprintf("u%d", i), "user", "again", "\xff\x00bin", allBytes)
	}
	do("XGROUP", "CREATE", "events", "workers", "0")
	do("XGROUP", "CREATE", "events", "late", "$")
	do("XGROUP", "CREATE", "events", "g\xffbinary", "1700000000000-5")
	do("XREADGROUP", "GROUP", "workers", "alice", "COUNT", 8, "STREAMS", "events", ">")
	do("XREADGROUP", "GROUP", "workers", "bob\xff", "COUNT", 5, "STREAMS", "events", ">")
	do("XACK", "events", "workers", "1700000000000-2", "1700000000000-3")
	do("XCLAIM", "events", "workers", "bob\xff", 0, "1700000000000-4", "RETRYCOUNT", 7)
	// A consumer with no pending entries: CREATECONSUMER (6.2+), or, on
	// older servers, a read of its own (empty) history, which makes it.
	switch err := c.Do(ctx, "XGROUP", "CREATECONSUMER", "events", "workers", "idle-consumer").Err(); {
	case err != nil && strings.Contains(err.Error(), "Unknown subcommand"):
		do("XREADGROUP", "GROUP", "workers", "idle-consumer", "COUNT", 1, "STREAMS", "events", "0")
	case err != nil:
		t.Fatalf("XGROUP CREATECONSUMER: %v", err)
	}
	do("XREADGROUP", "GROUP", "g\xffbinary", "carol", "COUNT", 3, "STREAMS", "events", ">")
	do("XDEL", "events", "1700000000000-1", "1700000000000-6", "1700000000000-20", "1700000000000-30")
	do("PEXPIREAT", "events", time.Now().Add(time.Hour).UnixMilli()+11)

	// Trimmed.
	for i := 1; i <= 20; i++ {
		do("XADD", "trimmed", "*", "n", i)
	}
	do("XTRIM", "trimmed", "MAXLEN", 5)

	// Emptied, with a group and a pending entry that is gone.
	do("XADD", "emptied", "5-1", "a", "1")
	do("XADD", "emptied", "5-2", "b", "2")
	do("XGROUP", "CREATE", "emptied", "g", "0")
	do("XREADGROUP", "GROUP", "g", "c", "COUNT", 1, "STREAMS", "emptied", ">")
	do("XDEL", "emptied", "5-1", "5-2")

	// Entries still pending, then trimmed, and the source's
	// max-deleted-entry-id 0-0 (trimming leaves it): the target had the
	// ID of the last such entry, as deleting crsload's placeholders for
	// them raised it and XSETID cannot set 0-0 (issue 28, item 5).
	for i := 1; i <= 6; i++ {
		do("XADD", "trimmed-pending", fmt.Sprintf("9-%d", i), "n", i)
	}
	do("XGROUP", "CREATE", "trimmed-pending", "g", "0")
	do("XREADGROUP", "GROUP", "g", "c", "COUNT", 10, "STREAMS", "trimmed-pending", ">")
	do("XTRIM", "trimmed-pending", "MAXLEN", 2)
	// The same with an entry deleted among the rest, still pending.
	for i := 1; i <= 6; i++ {
		do("XADD", "trimmed-and-deleted", fmt.Sprintf("9-%d", i), "n", i)
	}
	do("XGROUP", "CREATE", "trimmed-and-deleted", "g", "0")
	do("XREADGROUP", "GROUP", "g", "c", "COUNT", 10, "STREAMS", "trimmed-and-deleted", ">")
	do("XTRIM", "trimmed-and-deleted", "MAXLEN", 4)
	do("XDEL", "trimmed-and-deleted", "9-4")

	// Made by MKSTREAM, never written.
	do("XGROUP", "CREATE", "never-written", "g", "$", "MKSTREAM")
}

func TestRoundTripStreams(t *testing.T) {
	src := redistest.Start(t)
	fillStreams(t, src)
	for _, tt := range []struct {
		name string
		dump func(*dumpSetup)
	}{
		{"whole records", nil},
		{"in parts", func(o *dumpSetup) { o.PartElems = 4 }},
		{"in parts, pending read with XPENDING", func(o *dumpSetup) { o.PartElems = 2 }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dst := redistest.Start(t)
			file, _ := runDump(t, src, tt.dump)
			if records, keys := countRecords(t, file); (tt.dump != nil) != (records > keys) {
				t.Errorf("%d records for %d keys", records, keys)
			}
			if out, err := runLoad(t, dst, file, func(o *load.Options) { o.Concurrency = 3; o.Pipeline = 2 }); err != nil {
				t.Fatalf("load: %v\n%s", err, out)
			}
			// XPENDING gives idle times, not delivery times: within a few ms.
			diffs, err := redistest.Diff(context.Background(), src, dst, 0)
			if err != nil {
				t.Fatal(err)
			}
			for _, d := range diffs {
				if tt.name == "in parts, pending read with XPENDING" && strings.Contains(d, "pending") {
					continue // compared with a tolerance below
				}
				t.Error(d)
			}
			if tt.name == "in parts, pending read with XPENDING" {
				comparePendingWithin(t, src, dst, "events", "workers", 5)
			}
		})
	}
}

// comparePendingWithin checks pending entries field by field, allowing
// delivery times to differ by tolerance ms.
func comparePendingWithin(t *testing.T, a, b *redisserver.Server, key, group string, tolerance int64) {
	t.Helper()
	ctx := context.Background()
	read := func(s *redisserver.Server) []redis.XPendingExt {
		res, err := redistest.Client(t, s, 0).XPendingExt(ctx, &redis.XPendingExtArgs{Stream: key, Group: group, Start: "-", End: "+", Count: 1000}).Result()
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	pa, pb := read(a), read(b)
	if len(pa) != len(pb) || len(pa) == 0 {
		t.Fatalf("%d pending entries, target %d", len(pa), len(pb))
	}
	for i := range pa {
		d := pa[i].Idle - pb[i].Idle
		if pa[i].ID != pb[i].ID || pa[i].Consumer != pb[i].Consumer || pa[i].RetryCount != pb[i].RetryCount || d.Abs() > time.Duration(tolerance+50)*time.Millisecond {
			t.Errorf("pending %+v, target %+v", pa[i], pb[i])
		}
	}
}

func TestRoundTripInParts(t *testing.T) {
	src := redistest.Start(t)
	fill(t, src)
	ctx := context.Background()
	c := redistest.Client(t, src, 0)
	c.Set(ctx, "big-string", strings.Repeat("0123456789", 1000)+"\xff", 0)
	c.PExpireAt(ctx, "big-string", time.Now().Add(time.Hour))
	fillStreams(t, src)

	dir := t.TempDir()
	file, summary := runDump(t, src, func(o *dumpSetup) {
		o.PartElems, o.PartBytes = 7, 100
		o.Out.Output = filepath.Join(dir, "parts.jsonl.zst")
	})
	records, keys := countRecords(t, file)
	if records <= keys+100 {
		t.Errorf("%d records for %d keys: the big keys were not split", records, keys)
	}
	t.Logf("%s: %d records for %d keys", summary, records, keys)

	for _, conc := range []int{1, 4} {
		t.Run(fmt.Sprintf("concurrency %d", conc), func(t *testing.T) {
			dst := redistest.Start(t)
			if out, err := runLoad(t, dst, file, func(o *load.Options) { o.Concurrency = conc; o.Pipeline = 3 }); err != nil {
				t.Fatalf("load: %v\n%s", err, out)
			}
			assertNoDiffExceptSoon(t, src, dst)
		})
	}
}

// countRecords reads a dump and counts its records and keys.
func countRecords(t *testing.T, file string) (records, keys int64) {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, done, err := dumpfile.Decompress(f)
	if err != nil {
		t.Fatal(err)
	}
	defer done()
	fr := format.NewReader(r)
	for {
		_, err := fr.Read()
		if err != nil {
			break
		}
	}
	tr, ok := fr.Trailer()
	if !ok {
		t.Fatalf("no trailer in %s", file)
	}
	return tr.Records, tr.Keys
}

func TestReplaceChunkedKey(t *testing.T) {
	src := redistest.Start(t)
	ctx := context.Background()
	var items []interface{}
	for i := 0; i < 50; i++ {
		items = append(items, fmt.Sprintf("new-%d", i))
	}
	redistest.Client(t, src, 0).RPush(ctx, "list", items...)
	redistest.Client(t, src, 0).HSet(ctx, "hash", "a", "new", "b", "new", "c", "new")
	file, _ := runDump(t, src, func(o *dumpSetup) { o.PartElems = 2 })

	prepare := func(t *testing.T) *redisserver.Server {
		dst := redistest.Start(t)
		d := redistest.Client(t, dst, 0)
		d.RPush(ctx, "list", "old-1", "old-2")
		d.HSet(ctx, "hash", "a", "old", "z", "old")
		return dst
	}
	t.Run("replace", func(t *testing.T) {
		dst := prepare(t)
		if out, err := runLoad(t, dst, file, func(o *load.Options) { o.Replace = true; o.Concurrency = 2; o.Pipeline = 1 }); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		e2e.AssertNoDiff(t, src, dst)
	})
	t.Run("skip existing", func(t *testing.T) {
		dst := prepare(t)
		out, err := runLoad(t, dst, file, func(o *load.Options) { o.SkipExisting = true; o.Pipeline = 1 })
		if err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		d := redistest.Client(t, dst, 0)
		if got, _ := d.LRange(ctx, "list", 0, -1).Result(); strings.Join(got, ",") != "old-1,old-2" {
			t.Errorf("list is %v: a later part was written into the skipped key", got)
		}
		if got, _ := d.HGetAll(ctx, "hash").Result(); len(got) != 2 || got["a"] != "old" {
			t.Errorf("hash is %v", got)
		}
		if !strings.Contains(out, "2 existing") {
			t.Errorf("summary: %s", out)
		}
	})
}

// plainDump writes a dump with a correct trailer around record lines.
func plainDump(t *testing.T, lines ...string) string {
	t.Helper()
	return plainDumpWith(t, `{"format":"crs","version":1,"created_ms":1}`, lines...)
}

// plainDumpWith is plainDump with the header given.
func plainDumpWith(t *testing.T, header string, lines ...string) string {
	t.Helper()
	body := header + "\n"
	for _, l := range lines {
		body += l + "\n"
	}
	sum := crc32.Checksum([]byte(body), crc32.MakeTable(crc32.Castagnoli))
	body += fmt.Sprintf(`{"end":true,"records":%d,"keys":%d,"crc32c":"%08x"}`+"\n", len(lines), len(lines), sum)
	path := filepath.Join(t.TempDir(), "plain.jsonl")
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestFieldExpiryRefusedOnOldTarget(t *testing.T) {
	dst := redistest.Start(t)
	ctx := context.Background()
	if err := redistest.Client(t, dst, 0).Do(ctx, "HPEXPIRETIME", "x", "FIELDS", 1, "f").Err(); err == nil || !strings.Contains(err.Error(), "unknown command") {
		t.Skip("the target has hash field expiry; the refusal path needs one without")
	}
	far := time.Now().Add(time.Hour).UnixMilli()
	file := plainDump(t,
		`{"db":0,"key":"plain","type":"string","value":"v"}`,
		fmt.Sprintf(`{"db":0,"key":"session:1","type":"hash","field_expire_at_ms":{"token":%d},"value":{"token":"t","user":"u"}}`, far),
		fmt.Sprintf(`{"db":3,"key":"session:2","type":"hash","field_expire_at_ms":{"a":%d,"b":%d},"value":{"a":"1","b":"2"}}`, far, far+1),
	)
	for _, via := range []string{"file", "stdin"} {
		t.Run(via, func(t *testing.T) {
			opts := load.NewOptions()
			opts.Conn.URL = dst.URL
			spec := pick.NewSpec()
			spec.File = file
			if via == "stdin" {
				f, err := os.Open(file)
				if err != nil {
					t.Fatal(err)
				}
				defer f.Close()
				spec.File, spec.Stdin = "-", f
			}
			in := pick.Open(context.Background(), spec)
			defer in.Close()
			var stderr bytes.Buffer
			err := load.Run(ctx, opts, in, &stderr)
			if !errors.Is(err, load.ErrTargetLacks) || !strings.Contains(err.Error(), `"session:1" (db 0), "session:2" (db 3)`) || !strings.Contains(err.Error(), "nothing was written") {
				t.Fatalf("err = %v", err)
			}
			for _, db := range []int{0, 3} {
				if n, _ := redistest.Client(t, dst, db).DBSize(ctx).Result(); n != 0 {
					t.Errorf("db %d has %d keys after the refusal", db, n)
				}
			}
		})
	}
	t.Run("drop", func(t *testing.T) {
		out, err := runLoad(t, dst, file, func(o *load.Options) { o.DropFieldExpiry = true })
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(out, "DROPPED 3 hash field expiries") || !strings.Contains(out, "loaded 3 keys") {
			t.Errorf("summary: %s", out)
		}
		if v, _ := redistest.Client(t, dst, 3).HGet(ctx, "session:2", "b").Result(); v != "2" {
			t.Errorf("field b = %q", v)
		}
	})
}

func TestFieldExpiryRoundTrip(t *testing.T) {
	src, dst := redistest.Start(t), redistest.Start(t)
	ctx := context.Background()
	c := redistest.Client(t, src, 0)
	c.HSet(ctx, "session", "token", "t", "user", "u", "other", "o")
	at := time.Now().Add(time.Hour).UnixMilli() + 3
	if err := c.Do(ctx, "HPEXPIREAT", "session", at, "FIELDS", 2, "token", "other").Err(); err != nil {
		t.Skipf("the source has no hash field expiry (Redis 7.4+): %v", err)
	}
	file, _ := runDump(t, src, nil)
	if out, err := runLoad(t, dst, file, nil); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	got, err := redistest.Client(t, dst, 0).Do(ctx, "HPEXPIRETIME", "session", "FIELDS", 3, "token", "user", "other").Int64Slice()
	if err != nil || fmt.Sprint(got) != fmt.Sprint([]int64{at, -1, at}) {
		t.Errorf("field expiries %v (%v), want [%d -1 %d]", got, err, at, at)
	}
}

func TestDumpPayloads(t *testing.T) {
	src, dst := redistest.Start(t), redistest.Start(t)
	ctx := context.Background()
	c := redistest.Client(t, src, 0)
	c.Set(ctx, "module-stand-in", "payload value", 0)
	payload, err := c.Dump(ctx, "module-stand-in").Result()
	if err != nil {
		t.Fatal(err)
	}
	version := int(binary.LittleEndian.Uint16([]byte(payload[len(payload)-10:])))
	// A payload from a newer RDB version: the target refuses it.
	future := []byte(payload)
	binary.LittleEndian.PutUint16(future[len(future)-10:], 99)
	at := time.Now().Add(time.Hour).UnixMilli() + 5
	lines := []string{
		fmt.Sprintf(`{"db":0,"key":"doc:1","type":"ReJSON-RL","expire_at_ms":%d,"rdb_version":%d,"dump":"%s"}`, at, version, b64(payload)),
		fmt.Sprintf(`{"db":0,"key":"doc:2","type":"ReJSON-RL","rdb_version":99,"dump":"%s"}`, b64(string(future))),
	}
	file := plainDump(t, lines...)
	t.Run("pre-flight names the keys whose module the target lacks", func(t *testing.T) {
		_, err := runLoad(t, dst, file, nil)
		if !errors.Is(err, load.ErrTargetLacks) || !strings.Contains(err.Error(), `2 keys have the module type "ReJSON-RL" (DUMP payloads), which need the module "ReJSON"`) || !strings.Contains(err.Error(), `"doc:1" (db 0), "doc:2" (db 0)`) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("refused payload names key and versions", func(t *testing.T) {
		// A header that says the source had no module and no field expiry:
		// no pre-flight read,
		// and the target's refusal stops the load at the key.
		file := plainDumpWith(t, `{"format":"crs","version":1,"created_ms":1,"field_expiry":false,"modules":[]}`, lines...)
		_, err := runLoad(t, dst, file, nil)
		var ke *load.KeyError
		if !errors.As(err, &ke) || ke.Key != "doc:2" || ke.Line != 3 || !strings.Contains(err.Error(), "RDB version 99") || !strings.Contains(err.Error(), "redis 7.") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("skip unsupported", func(t *testing.T) {
		dst := redistest.Start(t)
		out, err := runLoad(t, dst, file, func(o *load.Options) { o.SkipUnsupported = true })
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(out, "1 whose DUMP payload the target refused") || !strings.Contains(out, "loaded 1 keys") {
			t.Errorf("summary: %s", out)
		}
		d := redistest.Client(t, dst, 0)
		if v, _ := d.Get(ctx, "doc:1").Result(); v != "payload value" {
			t.Errorf("doc:1 = %q", v)
		}
		if ms, _ := d.Do(ctx, "PEXPIRETIME", "doc:1").Int64(); ms != at {
			t.Errorf("doc:1 expires at %d, want %d", ms, at)
		}
	})
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

// TestDiffSeesStreamChanges guards the stream comparison the tests above
// rely on: each planted change must show as a difference.
func TestDiffSeesStreamChanges(t *testing.T) {
	src := redistest.Start(t)
	fillStreams(t, src)
	file, _ := runDump(t, src, nil)
	ctx := context.Background()
	for _, change := range [][]interface{}{
		{"XACK", "events", "workers", "1700000000000-5"},
		{"XSETID", "events", "1700000000000-99", "ENTRIESADDED", 200},
		{"XGROUP", "DELCONSUMER", "events", "workers", "idle-consumer"},
		{"XGROUP", "SETID", "emptied", "g", "0", "ENTRIESREAD", 1},
		{"XCLAIM", "events", "workers", "alice", 0, "1700000000000-7", "RETRYCOUNT", 9, "JUSTID"},
		{"XDEL", "trimmed", "0-0"},
	} {
		t.Run(fmt.Sprint(change[0], " ", change[1]), func(t *testing.T) {
			dst := redistest.Start(t)
			if out, err := runLoad(t, dst, file, nil); err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			if err := redistest.Client(t, dst, 0).Do(ctx, change...).Err(); err != nil {
				t.Fatal(err)
			}
			diffs, err := redistest.Diff(ctx, src, dst, 0)
			if err != nil {
				t.Fatal(err)
			}
			planted := change[0] != "XDEL" // deleting a missing ID changes nothing
			if planted && len(diffs) == 0 {
				t.Errorf("%v made no difference", change)
			}
			if !planted && len(diffs) != 0 {
				t.Errorf("a no-op made differences: %v", diffs)
			}
		})
	}
}

func TestConflictPoliciesForStreams(t *testing.T) {
	src := redistest.Start(t)
	fillStreams(t, src)
	ctx := context.Background()
	for _, parts := range []int{5000, 3} {
		file, _ := runDump(t, src, func(o *dumpSetup) { o.PartElems = parts })
		prepare := func(t *testing.T) *redisserver.Server {
			dst := redistest.Start(t)
			d := redistest.Client(t, dst, 0)
			d.Do(ctx, "XADD", "events", "1-1", "old", "entry")
			d.Do(ctx, "XGROUP", "CREATE", "events", "old-group", "0")
			return dst
		}
		t.Run(fmt.Sprintf("replace, parts of %d", parts), func(t *testing.T) {
			dst := prepare(t)
			if out, err := runLoad(t, dst, file, func(o *load.Options) { o.Replace = true }); err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			e2e.AssertNoDiff(t, src, dst) // no old entry, no old group
		})
		t.Run(fmt.Sprintf("skip existing, parts of %d", parts), func(t *testing.T) {
			dst := prepare(t)
			if out, err := runLoad(t, dst, file, func(o *load.Options) { o.SkipExisting = true }); err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			d := redistest.Client(t, dst, 0)
			if n, _ := d.XLen(ctx, "events").Result(); n != 1 {
				t.Errorf("the existing stream has %d entries: parts were written into it", n)
			}
			if n, _ := d.Exists(ctx, "trimmed", "emptied", "never-written").Result(); n != 3 {
				t.Errorf("%d of the other streams loaded", n)
			}
		})
		t.Run(fmt.Sprintf("refuse, parts of %d", parts), func(t *testing.T) {
			dst := prepare(t)
			if _, err := runLoad(t, dst, file, nil); !errors.Is(err, load.ErrTargetNotEmpty) {
				t.Fatalf("err = %v", err)
			}
		})
	}
}

// TestRoundTripFromOlderSource dumps a server without PEXPIRETIME and
// MEMORY USAGE, as servers before 7.0 (and some managed services) are:
// expiries then come from the server's TIME plus PTTL, and sizes from
// each type's length command.
func TestRoundTripFromOlderSource(t *testing.T) {
	src, dst := redistest.Start(t, oldCommands...), redistest.Start(t)
	fill(t, src)
	fillStreams(t, src)
	file, summary := runDump(t, src, func(o *dumpSetup) { o.PartElems = 50 })
	if !strings.Contains(summary, "crsdump: dumped") {
		t.Fatalf("dump: %s", summary)
	}
	if out, err := runLoad(t, dst, file, nil); err != nil {
		t.Fatalf("load: %v\n%s", err, out)
	}
	// Expiries computed from TIME and PTTL may be a few ms off.
	assertNoDiffWithin(t, src, dst, 50)
	if n, _ := redistest.Client(t, dst, 0).DBSize(context.Background()).Result(); n < 20 {
		t.Errorf("the target holds %d keys", n)
	}
}
