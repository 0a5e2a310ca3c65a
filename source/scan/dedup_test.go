package scan

import (
	"context"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/crs-tool/crs/format"
	"github.com/crs-tool/crs/internal/redistest"
)

// TestScanRepeatsKeysOnce makes a real server's SCAN return keys twice and
// checks that each is handed on once, whether the keys seen are held in
// memory or past the limit on disk.
//
// How the server repeats them: 20,000 keys fill a table of 32,768
// buckets. The first SCAN reply covers the first buckets in SCAN's
// (reversed-bit) order. Then every other key is deleted, the server
// shrinks the table to 128 buckets, and each of its buckets holds the
// keys of 256 consecutive old ones: the first, where SCAN goes on, holds
// every key of the first reply again.
func TestScanRepeatsKeysOnce(t *testing.T) {
	for _, limit := range []int{1 << 20, 10} {
		t.Run(fmt.Sprintf("limit %d", limit), func(t *testing.T) {
			s := redistest.Start(t, "--enable-debug-command", "yes")
			c := redistest.Client(t, s, 0)
			ctx := context.Background()
			if err := c.Do(ctx, "DEBUG", "POPULATE", 20000, "k").Err(); err != nil {
				t.Fatal(err)
			}
			first, _, err := c.Scan(ctx, 0, "", 100).Result()
			if err != nil {
				t.Fatal(err)
			}
			keep := make(map[string]bool)
			for _, k := range first {
				keep[k] = true
			}
			opts := NewOptions()
			opts.ScanCount = 100
			opts.SeenLimit = limit
			shrunk := false
			opts.Keep = func(string) bool {
				if !shrunk { // between the first reply and the second
					shrunk = true
					shrink(t, ctx, c, keep)
				}
				return true
			}
			work := make(chan batch)
			order := make(chan chan *format.Record, 1)
			var sc scanCounts
			done := make(chan error, 1)
			go func() {
				defer close(work)
				defer close(order)
				done <- scanKeys(ctx, c, opts, format.Database{DB: 0, Keys: 20000}, work, order, &sc)
			}()
			var got []string
			go func() {
				for range order {
				}
			}()
			for b := range work {
				got = append(got, b.keys...)
				close(b.out)
			}
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			sort.Strings(got)
			var want []string
			for k := range keep {
				want = append(want, k)
			}
			sort.Strings(want)
			if strings.Join(got, ",") != strings.Join(want, ",") {
				t.Fatalf("handed on %d keys, want the %d of the first reply once each:\n%v", len(got), len(want), got)
			}
			if sc.dups == 0 {
				t.Fatal("SCAN returned no key twice: the test did not make the server repeat keys")
			}
			t.Logf("%d keys, %d returned twice by SCAN, %d checked on disk", len(got), sc.dups, sc.deferred)
			if limit < len(want) && sc.deferred != int64(len(want)-limit) {
				t.Errorf("checked on disk %d keys, want %d", sc.deferred, len(want)-limit)
			}
		})
	}
}

// smallTable matches DEBUG HTSTATS when a table of 128 or 256 buckets
// exists (256 if the first reply held more than 128 keys).
var smallTable = regexp.MustCompile(`table size: (128|256)\n`)

// shrink deletes every key but keep's and waits until the server has
// begun to shrink its table (DEBUG HTSTATS).
func shrink(t *testing.T, ctx context.Context, c *redis.Client, keep map[string]bool) {
	t.Helper()
	p := c.Pipeline()
	for i := 0; i < 20000; i++ {
		if k := fmt.Sprintf("k:%d", i); !keep[k] {
			p.Del(ctx, k)
		}
	}
	if _, err := p.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	redistest.WaitFor(t, "the table to shrink", func() bool {
		s, err := c.Do(ctx, "DEBUG", "HTSTATS", 0).Text()
		return err == nil && smallTable.MatchString(s)
	})
}
