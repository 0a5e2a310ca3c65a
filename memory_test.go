package main

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/crs-tool/crs/internal/redistest"
	"github.com/crs-tool/crs/load"
	"github.com/redis/go-redis/v9"
)

// TestKeysPastMemoryLimit dumps and loads more keys than the tools hold
// in memory: the rest go through temporary files, and the target must
// still equal the source, with the keys checked on disk counted.
func TestKeysPastMemoryLimit(t *testing.T) {
	src, dst := redistest.Start(t, "--enable-debug-command", "yes"), redistest.Start(t)
	ctx := context.Background()
	for db, n := range map[int]int{0: 3000, 5: 2000} {
		c := redistest.Client(t, src, db)
		if err := c.Do(ctx, "DEBUG", "POPULATE", n, fmt.Sprintf("db%d", db)).Err(); err != nil {
			t.Fatal(err)
		}
		c.RPush(ctx, "list", "a", "b", "c")
		c.HSet(ctx, "hash", "f", "v")
		c.ZAdd(ctx, "zset", redis.Z{Score: 1.5, Member: "m"})
	}
	file, stderr := runDump(t, src, func(o *dumpSetup) { o.SeenLimit = 500 })
	if want := fmt.Sprintf("; %d keys past the memory limit checked for repeats on disk", 3003-500+2003-500); !strings.Contains(stderr, want) {
		t.Errorf("dump summary lacks %q:\n%s", want, stderr)
	}
	out, err := runLoad(t, dst, file, func(o *load.Options) { o.SeenLimit = 700 })
	if err != nil {
		t.Fatalf("load: %v\n%s", err, out)
	}
	if want := fmt.Sprintf("; %d keys past the memory limit checked for repeats on disk", 5006-700); !strings.Contains(out, want) {
		t.Errorf("load summary lacks %q:\n%s", want, out)
	}
	diffs, err := redistest.Diff(ctx, src, dst, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(diffs) > 0 {
		t.Fatalf("%d differences, first: %v", len(diffs), diffs[0])
	}
}
