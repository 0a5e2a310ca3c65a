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

	"github.com/crs-tool/crs/internal/keyspace"
	"github.com/crs-tool/crs/internal/redisserver"
)

// restoreBench measures the two ways crsload writes a key, on the guide's
// keyspace: RESTORE of payloads it encodes (the default) and commands
// (--load-by commands), each from a dump file and from an RDB file,
// against redis-cli --pipe of the same keys and the server's own load of
// the RDB file. Rounds alternate the tools; each tool's best round counts.
// The server's CPU per key is INFO cpu before and after each load.
func restoreBench(ctx context.Context, bin string, scale float64, rounds int) error {
	bin, err := filepath.Abs(bin)
	if err != nil {
		return err
	}
	src, err := redisserver.Start(ctx)
	if err != nil {
		return err
	}
	defer src.Close()
	sc := redis.NewClient(&redis.Options{Addr: src.Addr, Protocol: 2, ReadTimeout: time.Minute})
	defer sc.Close()
	if _, err := keyspace.Fill(ctx, sc, max(int(450_000*scale), 1)); err != nil {
		return fmt.Errorf("fill: %w", err)
	}
	if err := keyspace.Stretch(ctx, sc, 3*time.Hour); err != nil {
		return err
	}
	keys, _ := sc.DBSize(ctx).Result()
	dir, err := os.MkdirTemp("", "crs-bench-restore-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	file, rdb, resp := filepath.Join(dir, "d.jsonl.zst"), filepath.Join(dir, "dump.rdb"), filepath.Join(dir, "d.resp")
	if _, err := run(ctx, bin, fmt.Sprintf("crsdump -q -u %s -o %s", src.URL, file)); err != nil {
		return err
	}
	if _, err := run(ctx, bin, fmt.Sprintf("redis-cli -h 127.0.0.1 -p %s --rdb %s", port(src.Addr), rdb)); err != nil {
		return err
	}
	if err := writeRESP(file, resp); err != nil {
		return err
	}
	srcDigest, err := sc.Do(ctx, "DEBUG", "DIGEST").Text()
	if err != nil {
		return fmt.Errorf("DEBUG DIGEST of the source: %w", err)
	}
	fmt.Printf("restore: %d keys shaped like the migration guide's; %d rounds, the tools alternating, each one's best round counts\n", keys, rounds)

	tools := []struct{ name, script string }{
		{"crsload (RESTORE of payloads)", "crsload -q -u %[1]s " + file},
		{"crsload --load-by commands", "crsload -q --load-by commands -u %[1]s " + file},
		{"crsload FILE.rdb", "crsload -q -u %[1]s " + rdb},
		{"crsload --load-by commands FILE.rdb", "crsload -q --load-by commands -u %[1]s " + rdb},
		{"redis-cli --pipe", "redis-cli -h 127.0.0.1 -p %[2]s --pipe < " + resp},
	}
	best := make([]measured, len(tools))
	cpu := make([]float64, len(tools)) // the server's CPU seconds in the best round
	ratios := make([][]string, len(tools))
	var serverLoad time.Duration
	for round := 0; round < rounds; round++ {
		walls := make([]time.Duration, len(tools))
		for i, tool := range tools {
			m, used, err := loadOnce(ctx, bin, tool.script, srcDigest)
			if err != nil {
				return fmt.Errorf("%s: %w", tool.name, err)
			}
			walls[i] = m.wall
			if best[i].wall == 0 || m.wall < best[i].wall {
				rss := max(best[i].maxRSS, m.maxRSS)
				best[i], cpu[i] = m, used
				best[i].maxRSS = rss
			} else {
				best[i].maxRSS = max(best[i].maxRSS, m.maxRSS)
			}
		}
		for i := range tools {
			ratios[i] = append(ratios[i], fmt.Sprintf("%.2f", walls[i].Seconds()/walls[len(tools)-1].Seconds()))
		}
		loaded, err := serverLoadTime(ctx, rdb)
		if err != nil {
			return err
		}
		if round == 0 || loaded < serverLoad {
			serverLoad = loaded
		}
	}
	pipe := best[len(tools)-1].wall.Seconds()
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "\tbest wall\t/ --pipe\tround by round\tserver CPU\tserver µs/key\tpeak RSS\t")
	for i, tool := range tools {
		fmt.Fprintf(tw, "%s\t%.2fs\t%.2f\t%s\t%.2fs\t%.2f\t%.1f MiB\t\n", tool.name, best[i].wall.Seconds(), best[i].wall.Seconds()/pipe,
			strings.Join(ratios[i], " "), cpu[i], 1e6*cpu[i]/float64(keys), float64(best[i].maxRSS)/(1<<20))
	}
	fmt.Fprintf(tw, "redis-server loading the RDB file\t%.2fs\t%.2f\t\t\t\t\t\n", serverLoad.Seconds(), serverLoad.Seconds()/pipe)
	tw.Flush()
	verdict := func(ok bool) string {
		if ok {
			return "met"
		}
		return "NOT MET"
	}
	r0, r2 := best[0].wall.Seconds()/pipe, best[2].wall.Seconds()/pipe
	fmt.Printf("crsload / redis-cli --pipe: %.2f (target <= 0.75: %s); crsload FILE.rdb / redis-cli --pipe: %.2f (target <= 0.75: %s); peak RSS under 64 MiB: %s\n",
		r0, verdict(r0 <= 0.75), r2, verdict(r2 <= 0.75), verdict(best[0].maxRSS < rssLimit && best[2].maxRSS < rssLimit))
	return nil
}

// loadOnce runs script (its %[1]s the URL, %[2]s the port of a new empty
// server) and returns its measure and the server's CPU seconds, after
// checking that the server then holds the source's keys (DEBUG DIGEST).
func loadOnce(ctx context.Context, bin, script, digest string) (measured, float64, error) {
	dst, err := redisserver.Start(ctx)
	if err != nil {
		return measured{}, 0, err
	}
	defer dst.Close()
	dc := redis.NewClient(&redis.Options{Addr: dst.Addr, Protocol: 2, ReadTimeout: time.Minute})
	defer dc.Close()
	before := serverCPU(ctx, dc)
	m, err := run(ctx, bin, fmt.Sprintf(script, dst.URL, port(dst.Addr)))
	if err != nil {
		return m, 0, err
	}
	used := serverCPU(ctx, dc) - before
	got, err := dc.Do(ctx, "DEBUG", "DIGEST").Text()
	if err != nil {
		return m, 0, fmt.Errorf("DEBUG DIGEST: %w", err)
	}
	if got != digest {
		return m, 0, fmt.Errorf("the target's DEBUG DIGEST %s is not the source's %s", got, digest)
	}
	return m, used, nil
}
