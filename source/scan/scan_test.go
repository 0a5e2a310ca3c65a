package scan

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/crs-tool/crs/format"
	"github.com/crs-tool/crs/internal/redisconn"
	"github.com/crs-tool/crs/internal/redistest"
	"github.com/crs-tool/crs/internal/resp"
)

func TestReadKeys(t *testing.T) {
	s := redistest.Start(t)
	c := redistest.Client(t, s, 0)
	ctx := context.Background()
	c.Set(ctx, "s", "v", 0)
	c.RPush(ctx, "l", "a", "b")
	c.HSet(ctx, "h", "f", "v")
	c.ZAdd(ctx, "z")
	c.Set(ctx, "ttl", "v", 0)
	at := time.Now().Add(time.Hour).UnixMilli() + 3
	c.PExpireAt(ctx, "ttl", time.UnixMilli(at))

	for _, hasExpireTime := range []bool{true, false} {
		// "gone" stands for a key deleted between SCAN and the read.
		keys := []string{"s", "gone", "l", "h", "ttl"}
		recs, vanished, err := readAll(t, ctx, c, keys, redisconn.Caps{ExpireTime: hasExpireTime, MemoryUsage: true}, NewOptions())
		if err != nil {
			t.Fatal(err)
		}
		if vanished != 1 {
			t.Errorf("vanished = %d, want 1", vanished)
		}
		var got []string
		for _, r := range recs {
			got = append(got, r.Key+":"+r.Type)
		}
		if strings.Join(got, ",") != "s:string,l:list,h:hash,ttl:string" {
			t.Errorf("records %v", got)
		}
		exp := recs[3].ExpireAtMs
		if hasExpireTime && exp != at {
			t.Errorf("PEXPIRETIME path: expiry %d, want %d", exp, at)
		}
		// TIME + PTTL (servers before 7.0) is exact to a few ms.
		if !hasExpireTime && (exp < at-50 || exp > at+50) {
			t.Errorf("PTTL path: expiry %d, want %d ± 50", exp, at)
		}
		if recs[0].ExpireAtMs != 0 {
			t.Errorf("key without expiry has %d", recs[0].ExpireAtMs)
		}
	}
}

// rawConn dials a RESP connection to db 0 of the server c talks to.
func rawConn(t *testing.T, c *redis.Client) *resp.Conn {
	t.Helper()
	rc, err := resp.Dial(context.Background(), resp.Options{Network: "tcp", Addr: c.Options().Addr})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rc.Close() })
	return rc
}

// readAll runs a reader over keys of db 0 and collects what it emits.
func readAll(t *testing.T, ctx context.Context, c *redis.Client, keys []string, cp redisconn.Caps, opts Options) ([]*format.Record, int64, error) {
	var recs []*format.Record
	var vanished int64
	r := &reader{c: c, rc: rawConn(t, c), db: 0, caps: cp, opts: opts,
		emit:     func(rec *format.Record) error { recs = append(recs, rec); return nil },
		vanished: func() { vanished++ },
	}
	err := r.readBatch(ctx, keys)
	return recs, vanished, err
}

// TestUnknownTypeCarriedAsDump drives the reader as if TYPE had answered
// with a module type: the key must come out as its DUMP payload with the
// payload's RDB version.
func TestUnknownTypeCarriedAsDump(t *testing.T) {
	s := redistest.Start(t)
	c := redistest.Client(t, s, 0)
	ctx := context.Background()
	c.Set(ctx, "doc", "stand-in for a module value", 0)
	want, _ := c.Dump(ctx, "doc").Result()
	var recs []*format.Record
	r := &reader{c: c, rc: rawConn(t, c), db: 0, opts: NewOptions(),
		emit:     func(rec *format.Record) error { recs = append(recs, rec); return nil },
		vanished: func() { t.Error("vanished") },
	}
	if _, err := r.readSmall(ctx, []probed{{key: "doc", typ: "ReJSON-RL", exp: 42}}); err != nil {
		t.Fatal(err)
	}
	if len(recs) != 1 || recs[0].Dump != want || recs[0].Type != "ReJSON-RL" || recs[0].ExpireAtMs != 42 {
		t.Fatalf("records %+v", recs)
	}
	if v := recs[0].RDBVersion; v < 9 || v > 20 {
		t.Errorf("RDB version %d", v)
	}
}

// TestBigStringInParts guards the probe's size check for strings: one
// larger than a part must be read in windows, not with one GET.
func TestBigStringInParts(t *testing.T) {
	s := redistest.Start(t)
	c := redistest.Client(t, s, 0)
	ctx := context.Background()
	c.Set(ctx, "big", strings.Repeat("x", 10_000), 0)
	opts := NewOptions()
	opts.PartBytes = 1000
	for _, cp := range []redisconn.Caps{{ExpireTime: true, MemoryUsage: true}, {ExpireTime: true}} {
		recs, _, err := readAll(t, ctx, c, []string{"big"}, cp, opts)
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) < 10 || recs[0].Part != 1 || len(recs[0].Str) > 1000 {
			t.Errorf("caps %+v: %d records, first part %d of %d bytes", cp, len(recs), recs[0].Part, len(recs[0].Str))
		}
	}
}
