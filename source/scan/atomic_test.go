package scan

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"testing"

	"github.com/crs-tool/crs/format"
	"github.com/crs-tool/crs/internal/redisconn"
	"github.com/crs-tool/crs/internal/redistest"
	"github.com/redis/go-redis/v9"
)

// TestNoTornKeys reads a list and a hash in parts while another client
// changes them between the read and its check (LPUSH+RPOP, HSET+HDEL),
// on the first read only, or on every read. Changed once, the key is read
// again and comes out as the value it holds; changed every time, the read
// fails naming the key, or with AllowChanging carries the last read and
// counts it.
func TestNoTornKeys(t *testing.T) {
	s := redistest.Start(t)
	c := redistest.Client(t, s, 0)
	w := redistest.Client(t, s, 0)
	ctx := context.Background()
	const n = 2000
	seed := func() {
		c.Del(ctx, "list", "hash")
		for i := 0; i < n; i += 500 {
			items := make([]interface{}, 0, 1000)
			for j := i; j < i+500; j++ {
				items = append(items, "e"+strconv.Itoa(j))
			}
			c.RPush(ctx, "list", items...)
			fields := make([]interface{}, 0, 1000)
			for j := i; j < i+500; j++ {
				fields = append(fields, "f"+strconv.Itoa(j), j)
			}
			c.HSet(ctx, "hash", fields...)
		}
	}
	next := n
	change := func(key string) {
		next++
		var err error
		if key == "list" {
			_, err = w.TxPipelined(ctx, func(p redis.Pipeliner) error {
				p.LPush(ctx, "list", "e"+strconv.Itoa(next))
				p.RPop(ctx, "list")
				return nil
			})
		} else {
			_, err = w.TxPipelined(ctx, func(p redis.Pipeliner) error {
				p.HSet(ctx, "hash", "g"+strconv.Itoa(next), next)
				p.HDel(ctx, "hash", "f"+strconv.Itoa(next-n-1))
				return nil
			})
		}
		if err != nil {
			t.Error(err)
		}
	}
	for _, tt := range []struct {
		name       string
		changeOn   func(attempt int) bool
		allow      bool
		wantErr    bool
		wantReread int64
		wantCarry  int64
	}{
		{"changed during the first read", func(a int) bool { return a == 1 }, false, false, 2, 0},
		{"changed during every read", func(int) bool { return true }, false, true, 0, 0},
		{"changed during every read, --allow-changing", func(int) bool { return true }, true, false, 2, 2},
	} {
		t.Run(tt.name, func(t *testing.T) {
			seed()
			opts := NewOptions()
			opts.PartElems, opts.AllowChanging = 100, tt.allow
			counts := &counters{}
			var recs []*format.Record
			r := &reader{c: c, rc: rawConn(t, c), caps: redisconn.Caps{ExpireTime: true, MemoryUsage: true}, opts: opts, counts: counts,
				emit:     func(rec *format.Record) error { recs = append(recs, rec); return nil },
				vanished: func() { t.Error("vanished") },
				afterRead: func(key string, attempt int) {
					if tt.changeOn(attempt) {
						change(key)
					}
				},
			}
			err := r.readBatch(ctx, []string{"list", "hash"})
			if tt.wantErr {
				if !errors.Is(err, ErrChanging) || err == nil {
					t.Fatalf("err %v, want ErrChanging", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if counts.reread != tt.wantReread || counts.changing != tt.wantCarry {
				t.Errorf("reread %d, carried %d; want %d, %d", counts.reread, counts.changing, tt.wantReread, tt.wantCarry)
			}
			list, hash := join(recs)
			if tt.allow {
				return // the last read is whatever it was
			}
			// One value the keys held: the server's, now that nothing
			// changes them.
			wantList, _ := c.LRange(ctx, "list", 0, -1).Result()
			wantHash, _ := c.HGetAll(ctx, "hash").Result()
			if fmt.Sprint(list) != fmt.Sprint(wantList) {
				t.Errorf("list of %d elements, the server's has %d (or differs)", len(list), len(wantList))
			}
			if len(hash) != len(wantHash) {
				t.Errorf("hash of %d fields, the server's has %d", len(hash), len(wantHash))
			}
			for f, v := range wantHash {
				if hash[f] != v {
					t.Fatalf("field %s = %q, server %q", f, hash[f], v)
				}
			}
		})
	}
}

// join puts the parts of the list and the hash back together.
func join(recs []*format.Record) ([]string, map[string]string) {
	var list []string
	hash := map[string]string{}
	for _, r := range recs {
		list = append(list, r.Elems...)
		for _, f := range r.Hash {
			hash[f.Name] = f.Value
		}
	}
	return list, hash
}
