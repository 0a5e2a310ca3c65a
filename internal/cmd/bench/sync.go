package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/crs-tool/crs/internal/keyspace"
	"github.com/crs-tool/crs/internal/redisserver"
)

// syncProgress is what a crs sync --json line says.
type syncProgress struct {
	Tool     string  `json:"tool"`
	OK       bool    `json:"ok"`
	Error    string  `json:"error"`
	Phase    string  `json:"phase"`
	InSync   bool    `json:"in_sync"`
	Applied  int64   `json:"commands_applied"`
	LagBytes int64   `json:"lag_bytes"`
	LagMs    int64   `json:"lag_ms"`
	PausedMs int64   `json:"paused_ms"`
	HeldMs   int64   `json:"writes_held_ms"`
	Verified int64   `json:"keys_verified"`
	Compared int64   `json:"keys_compared_streaming"`
	PerSec   float64 `json:"commands_per_second"`
	Offset   int64   `json:"offset"`
}

// syncBench syncs the keyspace (keys: the guide's, about 500,000 at scale
// 1; or that many small keys by DEBUG POPULATE) while redis-benchmark
// writes to the source as fast as it can (-P 8 -c 4: sets, increments and
// list pushes over 100,000 random keys each) for the time given, and cuts
// over while it still writes. It reports the source's write rate, crs's
// applied rate and lag every 10 s, the keys compared while streaming and
// in the pause, and how long the cutover held the writes; then it checks
// that the target's DEBUG DIGEST is the source's (which refuses writes
// after the cutover).
//
// With metrics, crs sync serves --metrics-addr, scraped every second.
//
// pipeline is redis-benchmark's -P: 8 writes as fast as the source goes;
// 1, about a third of that, a rate crs keeps up with on a busy machine.
func syncBench(ctx context.Context, bin string, scale float64, populate int, writeFor time.Duration, metrics bool, pipeline int) error {
	bin, err := filepath.Abs(bin)
	if err != nil {
		return err
	}
	if _, err := exec.LookPath("redis-benchmark"); err != nil {
		return fmt.Errorf("sync: needs redis-benchmark (redis-tools): %w", err)
	}
	src, err := redisserver.Start(ctx, "--repl-diskless-sync-delay", "0", "--repl-backlog-size", "1gb", "--enable-debug-command", "yes")
	if err != nil {
		return err
	}
	defer src.Close()
	dst, err := redisserver.Start(ctx, "--enable-debug-command", "yes")
	if err != nil {
		return err
	}
	defer dst.Close()
	sc := redis.NewClient(&redis.Options{Addr: src.Addr, Protocol: 2, ReadTimeout: 5 * time.Minute})
	defer sc.Close()
	if populate > 0 {
		if err := sc.Do(ctx, "DEBUG", "POPULATE", populate, "pop", 20).Err(); err != nil {
			return fmt.Errorf("populate: %w", err)
		}
	} else {
		if _, err := keyspace.Fill(ctx, sc, max(int(450_000*scale), 1)); err != nil {
			return fmt.Errorf("fill: %w", err)
		}
		if err := keyspace.Stretch(ctx, sc, 3*time.Hour); err != nil {
			return err
		}
	}
	keys, _ := sc.DBSize(ctx).Result()
	args := []string{"sync", "--json", "--pause", "30s", "--cutover-timeout", "3m", "--source", src.URL, "-u", dst.URL}
	if metrics {
		args = append(args, "--metrics-addr", "127.0.0.1:0")
	}
	cmd := exec.CommandContext(ctx, filepath.Join(bin, "crs"), args...)
	stderr, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	cmd.Stderr = cmd.Stdout
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return err
	}
	defer cmd.Process.Kill()
	lines := make(chan syncProgress, 1024)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if _, addr, ok := strings.Cut(sc.Text(), "metrics at http://"); ok {
				go scrapeEvery(ctx, "http://"+strings.Fields(addr)[0], time.Second)
			}
			var p syncProgress
			if json.Unmarshal(sc.Bytes(), &p) == nil && p.Tool == "crs sync" {
				lines <- p
			}
		}
	}()
	next := func(what string, ok func(syncProgress) bool) (syncProgress, error) {
		for p := range lines {
			if !p.OK {
				return p, fmt.Errorf("sync: crs sync failed: %s", p.Error)
			}
			if ok(p) {
				return p, nil
			}
		}
		return syncProgress{}, fmt.Errorf("sync: crs sync ended before %s", what)
	}
	if _, err := next("streaming", func(p syncProgress) bool { return p.Phase == "streaming" && p.InSync }); err != nil {
		return err
	}
	snapshot := time.Since(start)

	// The writer, as fast as it goes, until the cutover refuses it.
	before := commandsProcessed(ctx, sc)
	wstart := time.Now()
	w := exec.CommandContext(ctx, "redis-benchmark", "-p", port(src.Addr), "-t", "set,incr,lpush", "-P", strconv.Itoa(pipeline), "-c", "4", "-r", "100000", "-n", "1000000000", "-q")
	if err := w.Start(); err != nil {
		return err
	}
	defer w.Process.Kill()
	var maxLagMs, maxLagBytes int64
	var samples []string
	lastSample, lastApplied, lastWrites := wstart, int64(0), before
	for time.Since(wstart) < writeFor {
		p, ok := <-lines
		if !ok {
			return fmt.Errorf("sync: crs sync ended while the writer ran")
		}
		if !p.OK {
			return fmt.Errorf("sync: crs sync failed: %s", p.Error)
		}
		maxLagMs, maxLagBytes = max(maxLagMs, p.LagMs), max(maxLagBytes, p.LagBytes)
		if since := time.Since(lastSample); since >= 10*time.Second {
			writes := commandsProcessed(ctx, sc)
			samples = append(samples, fmt.Sprintf("%3.0fs: source %6.0f writes/s, crs %6.0f/s, lag %d ms %d bytes", time.Since(wstart).Seconds(), float64(writes-lastWrites)/since.Seconds(), float64(p.Applied-lastApplied)/since.Seconds(), p.LagMs, p.LagBytes))
			lastSample, lastApplied, lastWrites = time.Now(), p.Applied, writes
		}
	}
	writes := commandsProcessed(ctx, sc) - before
	rate := float64(writes) / time.Since(wstart).Seconds()
	cutAt := time.Now()
	cmd.Process.Signal(syscall.SIGUSR1)
	p, err := next("the cutover", func(p syncProgress) bool {
		maxLagMs, maxLagBytes = max(maxLagMs, p.LagMs), max(maxLagBytes, p.LagBytes)
		return p.Phase == "done"
	})
	if err != nil {
		return err
	}
	cmd.Wait()
	w.Process.Kill()
	w.Wait()
	dc := redis.NewClient(&redis.Options{Addr: dst.Addr, Protocol: 2, ReadTimeout: 5 * time.Minute})
	defer dc.Close()
	a, erra := sc.Do(ctx, "DEBUG", "DIGEST").Text()
	b, errb := dc.Do(ctx, "DEBUG", "DIGEST").Text()
	if erra != nil || errb != nil {
		return fmt.Errorf("sync: DEBUG DIGEST: %v, %v", erra, errb)
	}
	same := a == b
	if metrics {
		fmt.Print("sync with --metrics-addr, scraped every second: ")
	}
	fmt.Printf("sync: %d keys: snapshot loaded and in step in %.1fs; redis-benchmark -P %d -c 4 -r 100000 (set, incr, lpush) wrote %d commands in %.0fs at %.0f/s, through the cutover; crs sync's lag at most %d ms (%d bytes); the cutover, asked for %.1fs after the writes began and done %.1fs later: writes held %d ms (target ready after %d ms), keys changed during the sync compared: %d while streaming, %d in the pause; DEBUG DIGEST of the target equals the source's: %v\n",
		keys, snapshot.Seconds(), pipeline, writes, time.Since(wstart).Seconds(), rate, maxLagMs, maxLagBytes, cutAt.Sub(wstart).Seconds(), time.Since(cutAt).Seconds(), p.HeldMs, p.PausedMs, p.Compared, p.Verified, same)
	for _, l := range samples {
		fmt.Println("  " + l)
	}
	if !same {
		return fmt.Errorf("sync: the target differs from the source")
	}
	return nil
}

// commandsProcessed is how many writes of the benchmark's kinds (SET,
// INCR, LPUSH) the server has run: not crs's own reads.
func commandsProcessed(ctx context.Context, c *redis.Client) int64 {
	info, _ := c.Info(ctx, "commandstats").Result()
	var n int64
	for _, name := range []string{"set", "incr", "lpush"} {
		f := infoField(info, "cmdstat_"+name)
		calls, _, _ := strings.Cut(strings.TrimPrefix(f, "calls="), ",")
		k, _ := strconv.ParseInt(calls, 10, 64)
		n += k
	}
	return n
}

// scrapeEvery reads url every interval, as Prometheus would, until ctx
// ends or the server is gone.
func scrapeEvery(ctx context.Context, url string, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		resp, err := http.Get(url)
		if err != nil {
			return
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
}
