package main

import (
	"context"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/crs-tool/crs/internal/e2e"

	"github.com/crs-tool/crs/internal/redisserver"
	"github.com/crs-tool/crs/internal/redistest"
)

// expiryTolerance is how far apart two servers' expiries of a key may
// read and still be equal, in ms: none where both have PEXPIRETIME (7.0+,
// exact); else a second, since the server's TIME plus PTTL is exact only
// to the time between two replies, which a busy machine stretches.
func expiryTolerance(t *testing.T, servers ...*redisserver.Server) int64 {
	for _, s := range servers {
		err := redistest.Client(t, s, 0).Do(context.Background(), "PEXPIRETIME", "nokey").Err()
		if err != nil && strings.Contains(err.Error(), "unknown command") {
			return 1000
		}
	}
	return 0
}

// hasFieldExpiry says whether the server has HPEXPIREAT.
func hasFieldExpiry(t *testing.T, s *redisserver.Server) bool {
	err := redistest.Client(t, s, 0).Do(context.Background(), "HPEXPIRETIME", "nokey", "FIELDS", 1, "f").Err()
	return err == nil || !strings.Contains(err.Error(), "unknown command")
}

// fillFieldExpiry adds hashes with field expiries, in both encodings.
func fillFieldExpiry(t *testing.T, s *redisserver.Server) {
	t.Helper()
	ctx := context.Background()
	c := redistest.Client(t, s, 0)
	far := time.Now().Add(24 * time.Hour).UnixMilli()
	for _, args := range [][]interface{}{
		{"HSET", "fe:small", "a", "1", "b", "2", "c", "3"},
		{"HPEXPIREAT", "fe:small", far + 1, "FIELDS", 2, "a", "c"},
	} {
		if err := c.Do(ctx, args...).Err(); err != nil {
			t.Fatalf("%v: %v", args, err)
		}
	}
	big := []interface{}{"HSET", "fe:big"}
	for i := 0; i < 700; i++ {
		big = append(big, "f"+strings.Repeat("x", i%7)+string(rune('a'+i%26))+strconv.Itoa(i), strconv.Itoa(i))
	}
	if err := c.Do(ctx, big...).Err(); err != nil {
		t.Fatal(err)
	}
	if err := c.Do(ctx, "HPEXPIREAT", "fe:big", far+2, "FIELDS", 1, big[2]).Err(); err != nil {
		t.Fatal(err)
	}
}

// TestRDBFromEveryServer takes an RDB file (SAVE) from every server version
// at hand, filled with the round-trip corpus, streams with groups, and
// field expiries where the version has them, and checks that crs reads it
// as the live server holds it: crs verify against the server, key by key,
// and a load of the file into a fresh server of the same version compared
// with the source.
func TestRDBFromEveryServer(t *testing.T) {
	bins := redistest.Servers(t)
	t.Logf("servers:\n%s", redistest.Describe(bins))
	for _, b := range bins {
		bin := b.Path
		t.Run(b.Name, func(t *testing.T) {
			src := redistest.StartBinary(t, bin)
			fill(t, src)
			fillStreams(t, src)
			if hasFieldExpiry(t, src) {
				fillFieldExpiry(t, src)
			}
			if b.IDMP {
				fillIDMP(t, src)
			}
			if err := redistest.Client(t, src, 0).Save(context.Background()).Err(); err != nil {
				t.Fatal(err)
			}
			file := filepath.Join(src.Dir, "dump.rdb")
			dir := t.TempDir()
			start := time.Now()
			out, code := e2e.Sh(t, dir, "crs verify -u "+src.URL+" "+file)
			if code != 0 || !strings.Contains(out, " 0 differences") {
				t.Fatalf("verify of the RDB file against its server: exit %d\n%s", code, out)
			}
			dst := redistest.StartBinary(t, bin)
			out, code = e2e.Sh(t, dir, "crsload --summary-json sum.json -u "+dst.URL+" "+file)
			if code != 0 {
				t.Fatalf("load of the RDB file: exit %d\n%s", code, out)
			}
			if summaryField(t, filepath.Join(dir, "sum.json"), "keys_restored") == 0 {
				t.Errorf("no key was written by RESTORE of a payload crs encoded:\n%s", out)
			}
			assertNoDiffWithin(t, src, dst, expiryTolerance(t, src, dst))
			// By commands alone, the same.
			byCommands := redistest.StartBinary(t, bin)
			if out, code := e2e.Sh(t, dir, "crsload --load-by commands -u "+byCommands.URL+" "+file); code != 0 {
				t.Fatalf("load of the RDB file by commands: exit %d\n%s", code, out)
			}
			assertNoDiffWithin(t, dst, byCommands, expiryTolerance(t, dst, byCommands))
			t.Logf("%s: %s", time.Since(start).Round(time.Millisecond), strings.TrimSpace(out))
		})
	}
}

// fillIDMP makes streams with idempotent producers (Redis 8.6): one with
// settings of its own and IDs of two producers tracked, one of them for an
// entry since deleted, and one with the defaults and nothing tracked.
func fillIDMP(t *testing.T, s *redisserver.Server) {
	t.Helper()
	ctx := context.Background()
	c := redistest.Client(t, s, 0)
	for _, args := range [][]interface{}{
		{"XCFGSET", "idmp:stream", "IDMP-DURATION", 3600, "IDMP-MAXSIZE", 50},
		{"XADD", "idmp:stream", "IDMP", "producer-1", "i1", "*", "n", 1},
		{"XADD", "idmp:stream", "IDMP", "producer-1", "i2", "*", "n", 2},
		{"XADD", "idmp:stream", "IDMP", "producer-\xff2", "i1", "*", "n", 3},
		{"XADD", "idmp:stream", "IDMP", "producer-1", "i2", "*", "n", 2}, // a retry: not added again
		{"XADD", "idmp:plain", "*", "n", 1},
	} {
		if err := c.Do(ctx, args...).Err(); err != nil && !strings.Contains(err.Error(), "no such key") {
			t.Fatalf("%v: %v", args, err)
		}
	}
	// The first producer's first entry, deleted; its ID is still tracked.
	ids, err := c.XRangeN(ctx, "idmp:stream", "-", "+", 1).Result()
	if err != nil || len(ids) != 1 {
		t.Fatalf("XRANGE: %v", err)
	}
	if err := c.XDel(ctx, "idmp:stream", ids[0].ID).Err(); err != nil {
		t.Fatal(err)
	}
}
