package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/crs-tool/crs/internal/redisserver"
)

// manyKeys moves 1M and 10M small keys (times scale) and checks that each
// tool's peak RSS stays under 64 MiB whatever the key count, and that the
// target's DEBUG DIGEST equals the source's.
func manyKeys(ctx context.Context, bin string, scale float64) error {
	bin, err := filepath.Abs(bin)
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "crs-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "\nmany keys\tkeys\twall\tkeys/s\tpeak RSS\tlimit\tresult")
	ok := true
	for _, n := range []int{1_000_000, 10_000_000} {
		n = max(int(float64(n)*scale), 1)
		rows, err := manyKeysOnce(ctx, bin, dir, n)
		if err != nil {
			return err
		}
		for _, r := range rows {
			verdict := "under the limit"
			if r.m.maxRSS >= rssLimit {
				verdict, ok = "OVER THE LIMIT", false
			}
			fmt.Fprintf(tw, "%s\t%d\t%.1fs\t%.0f\t%.1f MiB\t%d MiB\t%s\n", r.name, n, r.m.wall.Seconds(),
				float64(n)/r.m.wall.Seconds(), float64(r.m.maxRSS)/(1<<20), rssLimit>>20, verdict)
		}
	}
	tw.Flush()
	if !ok {
		return fmt.Errorf("a tool went over %d MiB", rssLimit>>20)
	}
	return nil
}

type row struct {
	name string
	m    measured
}

// manyKeysOnce fills a server with n keys (DEBUG POPULATE), dumps it,
// loads the dump into another and compares their digests.
func manyKeysOnce(ctx context.Context, bin, dir string, n int) ([]row, error) {
	src, err := redisserver.Start(ctx, "--enable-debug-command", "yes")
	if err != nil {
		return nil, err
	}
	defer src.Close()
	dst, err := redisserver.Start(ctx, "--enable-debug-command", "yes")
	if err != nil {
		return nil, err
	}
	defer dst.Close()
	sc := redis.NewClient(&redis.Options{Addr: src.Addr, Protocol: 2, ReadTimeout: 5 * time.Minute})
	defer sc.Close()
	dc := redis.NewClient(&redis.Options{Addr: dst.Addr, Protocol: 2, ReadTimeout: 5 * time.Minute})
	defer dc.Close()
	start := time.Now()
	if err := sc.Do(ctx, "DEBUG", "POPULATE", n, "client_keys:sk-cli-v1").Err(); err != nil {
		return nil, fmt.Errorf("populate: %w", err)
	}
	fmt.Printf("many keys: %d filled in %.1fs\n", n, time.Since(start).Seconds())
	file := filepath.Join(dir, fmt.Sprintf("many-%d.jsonl.zst", n))
	defer os.Remove(file)
	d, err := run(ctx, bin, fmt.Sprintf("crsdump -u %s -o %s", src.URL, file))
	if err != nil {
		return nil, err
	}
	l, err := run(ctx, bin, fmt.Sprintf("crsload -u %s %s", dst.URL, file))
	if err != nil {
		return nil, err
	}
	fmt.Print(strings.TrimSpace(d.out) + "\n" + strings.TrimSpace(l.out) + "\n")
	a, err := sc.Do(ctx, "DEBUG", "DIGEST").Text()
	if err != nil {
		return nil, err
	}
	b, err := dc.Do(ctx, "DEBUG", "DIGEST").Text()
	if err != nil {
		return nil, err
	}
	if a != b {
		return nil, fmt.Errorf("%d keys: the target's digest %s differs from the source's %s", n, b, a)
	}
	fmt.Printf("many keys: %d: digest %s on both servers\n", n, a)
	return []row{{"crsdump", d}, {"crsload", l}}, nil
}
