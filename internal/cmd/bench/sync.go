package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
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
	Tool     string `json:"tool"`
	OK       bool   `json:"ok"`
	Error    string `json:"error"`
	Phase    string `json:"phase"`
	InSync   bool   `json:"in_sync"`
	Applied  int64  `json:"commands_applied"`
	LagBytes int64  `json:"lag_bytes"`
	LagMs    int64  `json:"lag_ms"`
	PausedMs int64  `json:"paused_ms"`
	Offset   int64  `json:"offset"`
}

// syncBench syncs the keyspace while redis-benchmark writes to the source
// as fast as it can (-P 8 -c 4: sets, increments and list pushes), and
// reports the source's write rate, crs's lag while the writes ran, how
// long it took to be in step after they stopped, and the cutover's pause;
// then it checks that the target's DEBUG DIGEST is the source's.
func syncBench(ctx context.Context, bin string, scale float64) error {
	bin, err := filepath.Abs(bin)
	if err != nil {
		return err
	}
	if _, err := exec.LookPath("redis-benchmark"); err != nil {
		return fmt.Errorf("sync: needs redis-benchmark (redis-tools): %w", err)
	}
	src, err := redisserver.Start(ctx, "--repl-diskless-sync-delay", "0", "--repl-backlog-size", "256mb")
	if err != nil {
		return err
	}
	defer src.Close()
	dst, err := redisserver.Start(ctx)
	if err != nil {
		return err
	}
	defer dst.Close()
	sc := redis.NewClient(&redis.Options{Addr: src.Addr, Protocol: 2, ReadTimeout: time.Minute})
	defer sc.Close()
	if _, err := keyspace.Fill(ctx, sc, max(int(450_000*scale), 1)); err != nil {
		return fmt.Errorf("fill: %w", err)
	}
	if err := keyspace.Stretch(ctx, sc, 3*time.Hour); err != nil {
		return err
	}
	keys, _ := sc.DBSize(ctx).Result()
	cmd := exec.CommandContext(ctx, filepath.Join(bin, "crs"), "sync", "--json", "--pause", "10s", "--source", src.URL, "-u", dst.URL)
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

	// The writer, for a fixed number of commands, as fast as it goes.
	n := max(int(3_000_000*scale), 30_000)
	before := commandsProcessed(ctx, sc)
	wstart := time.Now()
	w := exec.CommandContext(ctx, "redis-benchmark", "-p", port(src.Addr), "-t", "set,incr,lpush", "-P", "8", "-c", "4", "-r", "100000", "-n", strconv.Itoa(n/3), "-q")
	if err := w.Start(); err != nil {
		return err
	}
	wdone := make(chan error, 1)
	go func() { wdone <- w.Wait() }()
	var maxLagMs, maxLagBytes int64
	var writeEnd time.Time
	for writeEnd.IsZero() {
		select {
		case err := <-wdone:
			if err != nil {
				return fmt.Errorf("sync: redis-benchmark: %w", err)
			}
			writeEnd = time.Now()
		case p, ok := <-lines:
			if !ok {
				return fmt.Errorf("sync: crs sync ended while the writer ran")
			}
			if !p.OK {
				return fmt.Errorf("sync: crs sync failed: %s", p.Error)
			}
			maxLagMs, maxLagBytes = max(maxLagMs, p.LagMs), max(maxLagBytes, p.LagBytes)
		}
	}
	writes := commandsProcessed(ctx, sc) - before
	rate := float64(writes) / writeEnd.Sub(wstart).Seconds()
	p, err := next("in step after the writes", func(p syncProgress) bool {
		maxLagMs, maxLagBytes = max(maxLagMs, p.LagMs), max(maxLagBytes, p.LagBytes)
		return p.LagBytes == 0 || p.InSync
	})
	if err != nil {
		return err
	}
	catchUp := time.Since(writeEnd)
	cmd.Process.Signal(syscall.SIGUSR1)
	p, err = next("the cutover", func(p syncProgress) bool { return p.Phase == "done" })
	if err != nil {
		return err
	}
	cmd.Wait()
	same := digestOf(ctx, sc) == digestOf(ctx, redis.NewClient(&redis.Options{Addr: dst.Addr, Protocol: 2}))
	fmt.Printf("sync: %d keys: snapshot loaded and in step in %.1fs; redis-benchmark -P 8 -c 4 (set, incr, lpush) wrote %d commands at %.0f/s; crs sync applied them with a lag of at most %d ms (%d bytes), and was in step %.2fs after the writes stopped; the cutover: target ready %d ms after the pause began; DEBUG DIGEST of the target equals the source's: %v\n",
		keys, snapshot.Seconds(), writes, rate, maxLagMs, maxLagBytes, catchUp.Seconds(), p.PausedMs, same)
	if !same {
		return fmt.Errorf("sync: the target differs from the source")
	}
	return nil
}

// commandsProcessed is the server's total_commands_processed.
func commandsProcessed(ctx context.Context, c *redis.Client) int64 {
	info, _ := c.Info(ctx, "stats").Result()
	n, _ := strconv.ParseInt(infoField(info, "total_commands_processed"), 10, 64)
	return n
}

// digestOf is DEBUG DIGEST, or the error's text.
func digestOf(ctx context.Context, c *redis.Client) string {
	d, err := c.Do(ctx, "DEBUG", "DIGEST").Text()
	if err != nil {
		return strings.TrimSpace(err.Error())
	}
	return d
}
