// Command bench is what make bench runs after the Go benchmarks. It starts
// its own throwaway redis-servers, fills the source, runs the built
// crsdump and crsload as a user would, and prints what the OS measured:
// wall time and peak RSS (getrusage of each child process).
//
// The "keyspace" scenario fills a server with about 500,000 keys shaped
// like the migration guide's and measures, side by side on the same data,
// crsdump against redis-cli --rdb (the RDB snapshot) and crsload against
// redis-cli --pipe (mass insertion of RESP the bench writes itself, one
// command per key plus its expiry).
//
// The "restore" scenario loads the same keyspace by RESTORE of payloads
// crsload encodes and by commands, from the dump and from an RDB file,
// against redis-cli --pipe and the server's own load of the RDB file,
// with the server's CPU per key for each.
//
// The "parts" scenario dumps a 6-master cluster of about 3M keys into a
// dump set by 1, 2 and 3 processes at once and loads it by as many into
// another, side by side, and measures what a set's entries cost.
//
// The "bigkeys" scenario moves one huge key of each kind and checks that
// each tool's peak RSS stays under 64 MiB, and that every key arrives
// intact (DEBUG DIGEST-VALUE on both servers).
//
// The "sync" scenario syncs the keyspace (or -sync-keys small keys) while
// redis-benchmark writes to the source as fast as it can for -sync-writes,
// cuts over while it still writes, and reports the write rate, crs sync's
// applied rate and lag meanwhile, and how long the cutover held writes.
//
// The "manykeys" scenario moves 1M and then 10M small keys and checks
// that each tool's peak RSS stays under 64 MiB whatever the key count,
// and that the target's DEBUG DIGEST equals the source's.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/crs-tool/crs/internal/redisserver"
)

const rssLimit = 64 << 20

func main() {
	if len(os.Args) > 2 && os.Args[1] == rssWrap {
		os.Exit(wrap(os.Args[2]))
	}
	bin := flag.String("bin", "bin", "directory holding crsdump and crsload")
	scale := flag.Float64("scale", 1, "multiply the sizes by this (0.01 for a quick run)")
	keep := flag.String("keep", "", "keep the dump file at this path, for profiling")
	scenario := flag.String("scenario", "all", "keyspace, restore, parts, bigkeys, manykeys, sync or all")
	rounds := flag.Int("rounds", 3, "keyspace: run each tool this many times, and count its best")
	syncKeys := flag.Int("sync-keys", 0, "sync: that many small keys (DEBUG POPULATE) instead of the guide's keyspace")
	syncFor := flag.Duration("sync-writes", time.Minute, "sync: how long the writer writes before and through the cutover")
	syncPipeline := flag.Int("sync-pipeline", 8, "sync: redis-benchmark's -P (8: the source's full rate; 1: about a third of it)")
	syncMetrics := flag.Bool("sync-metrics", false, "sync: run it twice, without and then with --metrics-addr scraped every second, for the metrics' overhead")
	flag.Parse()
	ctx := context.Background()
	var failed bool
	if *scenario == "all" || *scenario == "keyspace" {
		if err := keyspaceBench(ctx, *bin, *scale, *keep, max(*rounds, 1)); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			failed = true
		}
	}
	if *scenario == "all" || *scenario == "restore" {
		if err := restoreBench(ctx, *bin, *scale, max(*rounds, 1)); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			failed = true
		}
	}
	if *scenario == "all" || *scenario == "parts" {
		if err := partsBench(ctx, *bin, *scale); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			failed = true
		}
	}
	if *scenario == "all" || *scenario == "bigkeys" {
		if err := bigKeys(ctx, *bin, *scale, *keep); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			failed = true
		}
	}
	if *scenario == "all" || *scenario == "manykeys" {
		if err := manyKeys(ctx, *bin, *scale); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			failed = true
		}
	}
	if *scenario == "all" || *scenario == "sync" {
		runs := []bool{false}
		if *syncMetrics {
			runs = append(runs, true)
		}
		for _, m := range runs {
			if err := syncBench(ctx, *bin, *scale, *syncKeys, *syncFor, m, *syncPipeline); err != nil {
				fmt.Fprintln(os.Stderr, "bench:", err)
				failed = true
			}
		}
	}
	if failed {
		os.Exit(1)
	}
}

// measured is one run of a tool.
type measured struct {
	wall   time.Duration
	maxRSS int64 // bytes
	out    string
	// busy is the CPU the server read or written used over the run,
	// as a share of the wall time (1: a core all the time), where measured.
	busy float64
}

// rssWrap is the first argument under which the bench runs itself as a
// small wrapper around one command.
const rssWrap = "-rss-wrap"

// run runs a command line through sh with bin first on the PATH and
// returns its wall time and peak RSS.
//
// The peak RSS comes from getrusage of the command, as a fresh copy of
// this program (started before it holds any data) reports it: Linux
// carries a process's memory high-water mark across exec, so a command
// started straight from this process, which has filled servers by then,
// would be charged with this process's own RSS.
func run(ctx context.Context, bin, script string) (measured, error) {
	self, err := os.Executable()
	if err != nil {
		return measured{}, err
	}
	rssFile, err := os.CreateTemp("", "crs-bench-rss-")
	if err != nil {
		return measured{}, err
	}
	rssFile.Close()
	defer os.Remove(rssFile.Name())
	cmd := exec.CommandContext(ctx, self, rssWrap, script)
	cmd.Env = append(os.Environ(), "PATH="+bin+string(os.PathListSeparator)+os.Getenv("PATH"), "CRS_BENCH_RSS="+rssFile.Name())
	var out strings.Builder
	cmd.Stderr = &out
	start := time.Now()
	err = cmd.Run()
	m := measured{wall: time.Since(start), out: out.String()}
	b, _ := os.ReadFile(rssFile.Name())
	fmt.Sscan(string(b), &m.maxRSS)
	if err != nil {
		return m, fmt.Errorf("%s: %w\n%s", script, err, m.out)
	}
	return m, nil
}

// wrap runs script with sh, writes its peak RSS in bytes to the file
// named by CRS_BENCH_RSS, and returns its exit code.
func wrap(script string) int {
	cmd := exec.Command("sh", "-c", "exec "+script)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	err := cmd.Run()
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		os.WriteFile(os.Getenv("CRS_BENCH_RSS"), []byte(fmt.Sprint(ru.Maxrss*1024)), 0o600) // kilobytes on Linux
	}
	if err != nil {
		return 1
	}
	return 0
}

func bigKeys(ctx context.Context, bin string, scale float64, keep string) error {
	bin, err := filepath.Abs(bin)
	if err != nil {
		return err
	}
	n := func(x int) int { return max(int(float64(x)*scale), 1) }
	src, err := redisserver.Start(ctx, "--enable-debug-command", "yes")
	if err != nil {
		return err
	}
	defer src.Close()
	dst, err := redisserver.Start(ctx, "--enable-debug-command", "yes")
	if err != nil {
		return err
	}
	defer dst.Close()
	sc := redis.NewClient(&redis.Options{Addr: src.Addr, Protocol: 2, ReadTimeout: time.Minute})
	defer sc.Close()
	dc := redis.NewClient(&redis.Options{Addr: dst.Addr, Protocol: 2, ReadTimeout: time.Minute})
	defer dc.Close()

	sizes := []struct {
		key, what string
		count     int
	}{
		{"big:hash", "fields", n(2_000_000)},
		{"big:list", "items", n(2_000_000)},
		{"big:zset", "members", n(1_000_000)},
		{"big:stream", "entries", n(1_000_000)},
		{"big:string", "MiB", n(256)},
	}
	fmt.Printf("filling the source: ")
	start := time.Now()
	for _, s := range sizes {
		if err := fillBig(ctx, sc, s.key, s.count); err != nil {
			return fmt.Errorf("fill %s: %w", s.key, err)
		}
		fmt.Printf("%s %d %s; ", s.key, s.count, s.what)
	}
	used, _ := sc.Info(ctx, "memory").Result()
	fmt.Printf("in %.1fs (%s)\n", time.Since(start).Seconds(), infoField(used, "used_memory_human"))

	dir, err := os.MkdirTemp("", "crs-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	file := filepath.Join(dir, "big.jsonl.zst")
	if keep != "" {
		file = keep
	}
	d, err := run(ctx, bin, fmt.Sprintf("crsdump -u %s -o %s", src.URL, file))
	if err != nil {
		return err
	}
	fi, err := os.Stat(file)
	if err != nil {
		return err
	}
	l, err := run(ctx, bin, fmt.Sprintf("crsload -u %s %s", dst.URL, file))
	if err != nil {
		return err
	}
	// The same keys from an RDB file: SAVE, then crsdump --rdb, which must
	// stay under the same bound, and a load of what it wrote elsewhere.
	if err := sc.Save(ctx).Err(); err != nil {
		return err
	}
	rdbFile := filepath.Join(src.Dir, "dump.rdb")
	rdbDump := filepath.Join(dir, "big-from-rdb.jsonl.zst")
	conv, err := run(ctx, bin, fmt.Sprintf("crsdump --rdb %s -o %s", rdbFile, rdbDump))
	if err != nil {
		return err
	}
	dst2, err := redisserver.Start(ctx, "--enable-debug-command", "yes")
	if err != nil {
		return err
	}
	defer dst2.Close()
	if _, err := run(ctx, bin, fmt.Sprintf("crsload -q -u %s %s", dst2.URL, rdbDump)); err != nil {
		return err
	}
	dc2 := redis.NewClient(&redis.Options{Addr: dst2.Addr, Protocol: 2, ReadTimeout: time.Minute})
	defer dc2.Close()

	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "\nbig keys\twall\tpeak RSS\tlimit\tresult")
	ok := true
	for _, row := range []struct {
		name string
		m    measured
	}{{"crsdump", d}, {"crsload", l}, {"crsdump --rdb FILE", conv}} {
		verdict := "under the limit"
		if row.m.maxRSS >= rssLimit {
			verdict, ok = "OVER THE LIMIT", false
		}
		fmt.Fprintf(tw, "%s\t%.1fs\t%.1f MiB\t%d MiB\t%s\n", row.name, row.m.wall.Seconds(), float64(row.m.maxRSS)/(1<<20), rssLimit>>20, verdict)
	}
	tw.Flush()
	fmt.Printf("dump file: %.1f MiB\n", float64(fi.Size())/(1<<20))
	fmt.Print(strings.TrimSpace(d.out) + "\n" + strings.TrimSpace(l.out) + "\n" + strings.TrimSpace(conv.out) + "\n")

	for _, s := range sizes {
		a, err := sc.Do(ctx, "DEBUG", "DIGEST-VALUE", s.key).StringSlice()
		if err != nil {
			return err
		}
		b, err := dc.Do(ctx, "DEBUG", "DIGEST-VALUE", s.key).StringSlice()
		if err != nil {
			return err
		}
		b2, err := dc2.Do(ctx, "DEBUG", "DIGEST-VALUE", s.key).StringSlice()
		if err != nil {
			return err
		}
		same := len(a) == 1 && len(b) == 1 && len(b2) == 1 && a[0] == b[0] && a[0] == b2[0] && !strings.HasPrefix(a[0], "00000000")
		fmt.Printf("%s: digest %s on the source, the live dump's target and the RDB file's: %v\n", s.key, a, same)
		if !same {
			ok = false
		}
	}
	if !ok {
		return fmt.Errorf("a key differs or a tool went over %d MiB", rssLimit>>20)
	}
	return nil
}

// fillBig writes one key of count elements (MiB for the string),
// pipelined.
func fillBig(ctx context.Context, c *redis.Client, key string, count int) error {
	p := c.Pipeline()
	flush := func(force bool) error {
		if p.Len() < 100 && !force {
			return nil
		}
		_, err := p.Exec(ctx)
		return err
	}
	const batch = 1000
	for i := 0; i < count; i += batch {
		args := []interface{}{}
		for j := i; j < min(i+batch, count); j++ {
			switch key {
			case "big:hash":
				args = append(args, fmt.Sprintf("field:%09d", j), fmt.Sprintf("value-%d-%x", j, j*7919))
			case "big:list":
				args = append(args, fmt.Sprintf("item-%d", j))
			case "big:zset":
				args = append(args, float64(j)/3, fmt.Sprintf("member:%09d", j))
			}
		}
		switch key {
		case "big:hash":
			p.Do(ctx, append([]interface{}{"HSET", key}, args...)...)
		case "big:list":
			p.Do(ctx, append([]interface{}{"RPUSH", key}, args...)...)
		case "big:zset":
			p.Do(ctx, append([]interface{}{"ZADD", key}, args...)...)
		case "big:stream":
			for j := i; j < min(i+batch, count); j++ {
				p.Do(ctx, "XADD", key, fmt.Sprintf("%d-1", j+1), "n", j, "payload", "abcdefghij")
			}
		case "big:string":
			if i > 0 {
				return flush(true)
			}
			chunk := strings.Repeat("0123456789abcdef", 1<<16) // 1 MiB
			for j := 0; j < count; j++ {
				p.Do(ctx, "APPEND", key, chunk)
				if err := flush(false); err != nil {
					return err
				}
			}
		}
		if err := flush(false); err != nil {
			return err
		}
	}
	if key == "big:stream" {
		// A group with pending entries, so the bench covers them too.
		p.Do(ctx, "XGROUP", "CREATE", key, "g", "0")
		p.Do(ctx, "XREADGROUP", "GROUP", "g", "c", "COUNT", 1000, "STREAMS", key, ">")
	}
	return flush(true)
}

func infoField(info, name string) string {
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), name+":"); ok {
			return v
		}
	}
	return "?"
}
