package dump

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/crs-tool/crs/format"
	"github.com/crs-tool/crs/internal/redisconn"
	"github.com/crs-tool/crs/internal/redistest"
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
		recs, vanished, err := readKeys(ctx, c, 0, keys, hasExpireTime)
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

func TestDumpRefusesUnsupportedType(t *testing.T) {
	s := redistest.Start(t)
	c := redistest.Client(t, s, 0)
	ctx := context.Background()
	if err := c.Do(ctx, "XADD", "events", "*", "f", "v").Err(); err != nil {
		t.Fatal(err)
	}
	opts := NewOptions()
	opts.Conn = redisconn.Options{URL: s.URL, DB: -1}
	_, err := Dump(ctx, format.NewWriter(discard{}), opts)
	if !errors.Is(err, ErrUnsupportedType) || !strings.Contains(err.Error(), `"events"`) {
		t.Fatalf("err = %v", err)
	}
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
