package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/redis/go-redis/v9"
	"golang.org/x/sync/errgroup"

	"github.com/crs-tool/crs/internal/keyspace"
	"github.com/crs-tool/crs/internal/redisserver"
)

// partsBench dumps a 6-master cluster into dump sets by 1, 2 and 3
// processes at once (--part I/P each) and loads each set by as many into
// a fresh 6-master cluster, printing wall times and throughput side by
// side; and the cost of a set's entries (a set of one part against a
// plain dump file of the same keys).
func partsBench(ctx context.Context, bin string, scale float64) error {
	bin, err := filepath.Abs(bin)
	if err != nil {
		return err
	}
	// The keys: the guide's keyspace, made on one server, moved to the
	// cluster by crsload.
	seed, err := redisserver.Start(ctx)
	if err != nil {
		return err
	}
	defer seed.Close()
	sc := redis.NewClient(&redis.Options{Addr: seed.Addr, Protocol: 2, ReadTimeout: time.Minute})
	defer sc.Close()
	if _, err := keyspace.Fill(ctx, sc, max(int(3_000_000*scale), 1)); err != nil {
		return fmt.Errorf("fill: %w", err)
	}
	if err := keyspace.Stretch(ctx, sc, 3*time.Hour); err != nil {
		return err
	}
	keys, _ := sc.DBSize(ctx).Result()
	dir, err := os.MkdirTemp("", "crs-bench-parts-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	seedFile := filepath.Join(dir, "seed.zst")
	if _, err := run(ctx, bin, fmt.Sprintf("crsdump -q -u %s -o %s", seed.URL, seedFile)); err != nil {
		return err
	}
	seed.Close()
	src, err := redisserver.StartCluster(ctx, 6, 0, "")
	if err != nil {
		return err
	}
	defer src.Close()
	if _, err := run(ctx, bin, fmt.Sprintf("crsload -q -u %s %s", src.URL(), seedFile)); err != nil {
		return err
	}
	fmt.Printf("parts: %d keys shaped like the migration guide's on a 6-master cluster; this machine has %d cores for the servers and crs together\n", keys, runtime.NumCPU())

	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "processes\tdump wall\tkeys/s\tper process\tpeak RSS\tload wall\tkeys/s\tper process\tpeak RSS\t")
	for p := 1; p <= 3; p++ {
		set := filepath.Join(dir, fmt.Sprintf("set%d", p)) + "/"
		d, err := together(ctx, bin, p, func(i int) string {
			return fmt.Sprintf("crsdump -q --part %d/%d -u %s -o %s", i, p, src.URL(), set)
		})
		if err != nil {
			return err
		}
		dst, err := redisserver.StartCluster(ctx, 6, 0, "")
		if err != nil {
			return err
		}
		l, err := together(ctx, bin, p, func(i int) string {
			return fmt.Sprintf("crsload -q --replace --part %d/%d -u %s %s", i, p, dst.URL(), set)
		})
		if err == nil {
			_, err = run(ctx, bin, fmt.Sprintf("crs verify -q -u %s %s", dst.URL(), set))
		}
		dst.Close()
		if err != nil {
			return err
		}
		rate := func(m measured) float64 { return float64(keys) / m.wall.Seconds() }
		fmt.Fprintf(tw, "%d\t%.2fs\t%.0f\t%.0f\t%.1f MiB\t%.2fs\t%.0f\t%.0f\t%.1f MiB\t\n", p,
			d.wall.Seconds(), rate(d), rate(d)/float64(p), float64(d.maxRSS)/(1<<20),
			l.wall.Seconds(), rate(l), rate(l)/float64(p), float64(l.maxRSS)/(1<<20))
	}
	tw.Flush()
	// What a set's entries cost: the same keys as a plain file, and as a
	// set of one part (its entry: a CRC-32C pass over the file).
	plain, err := run(ctx, bin, fmt.Sprintf("crsdump -q -u %s -o %s", src.URL(), filepath.Join(dir, "plain.zst")))
	if err != nil {
		return err
	}
	one, err := run(ctx, bin, fmt.Sprintf("crsdump -q --parts 1 -u %s -o %s", src.URL(), filepath.Join(dir, "one")+"/"))
	if err != nil {
		return err
	}
	fmt.Printf("a set of one part / a plain dump file of the same keys: %.2fs / %.2fs = %.2f (the entry: a CRC-32C pass over the file, and its JSON)\n",
		one.wall.Seconds(), plain.wall.Seconds(), one.wall.Seconds()/plain.wall.Seconds())
	return nil
}

// together runs p command lines at once, line(0) to line(p-1), and
// returns the wall time until the last ended and the highest peak RSS.
func together(ctx context.Context, bin string, p int, line func(i int) string) (measured, error) {
	start := time.Now()
	ms := make([]measured, p)
	g, gctx := errgroup.WithContext(ctx)
	for i := 0; i < p; i++ {
		g.Go(func() error {
			m, err := run(gctx, bin, line(i))
			ms[i] = m
			return err
		})
	}
	err := g.Wait()
	all := measured{wall: time.Since(start)}
	var outs []string
	for _, m := range ms {
		all.maxRSS = max(all.maxRSS, m.maxRSS)
		outs = append(outs, m.out)
	}
	all.out = strings.Join(outs, "")
	return all, err
}
