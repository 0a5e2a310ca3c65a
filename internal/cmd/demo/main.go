// Command demo is what make demo runs: it starts two throwaway
// redis-servers, fills the first with a keyspace shaped like the migration
// guide's, moves it to the second with the real crsdump and crsload
// through a shell, prints crs stats of both sides (key counts per pattern
// of the guide, biggest keys) and checks that they agree, verifies every
// key with crs verify, and stops the servers.
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/crs-tool/crs/internal/keyspace"
	"github.com/crs-tool/crs/internal/redisserver"
)

func main() {
	bin := flag.String("bin", "bin", "directory holding crsdump and crsload")
	keys := flag.Int("keys", 20000, "about how many keys to make")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, *bin, *keys); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, bin string, n int) error {
	bin, err := filepath.Abs(bin)
	if err != nil {
		return err
	}
	src, err := redisserver.Start(ctx)
	if err != nil {
		return err
	}
	defer src.Close()
	dst, err := redisserver.Start(ctx)
	if err != nil {
		return err
	}
	defer dst.Close()
	fmt.Printf("source redis-server on %s, target on %s (throwaway, nothing saved)\n", src.Addr, dst.Addr)

	sc := redis.NewClient(&redis.Options{Addr: src.Addr})
	defer sc.Close()
	written, err := keyspace.Fill(ctx, sc, n)
	if err != nil {
		return fmt.Errorf("fill: %w", err)
	}
	fmt.Printf("filled the source with %d writes shaped like the migration guide's keyspace\n\n", written)

	dir, err := os.MkdirTemp("", "crs-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	file := filepath.Join(dir, "crs.jsonl.zst")
	var patterns string
	for _, p := range keyspace.Patterns {
		patterns += fmt.Sprintf(" --pattern '%s'", p)
	}
	run := func(s string, out io.Writer) error {
		fmt.Println("$", s)
		cmd := exec.CommandContext(ctx, "sh", "-c", s)
		cmd.Env = append(os.Environ(), "PATH="+bin+string(os.PathListSeparator)+os.Getenv("PATH"))
		cmd.Stdout, cmd.Stderr = io.MultiWriter(os.Stdout, out), os.Stdout
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("%s: %w", s, err)
		}
		fmt.Println()
		return nil
	}
	for _, s := range []string{
		fmt.Sprintf("crsdump -u %s > %s", src.URL, file),
		fmt.Sprintf("crsload -u %s < %s", dst.URL, file),
		fmt.Sprintf(`zstd -dc %s | head -n 3 | cut -c 1-160`, file),
		fmt.Sprintf(`zstd -dc %s | jq -r 'select(.type=="hash") | .key' | grep -c '^client_keys:'`, file),
	} {
		if err := run(s, io.Discard); err != nil {
			return err
		}
	}

	// The guide's checklist after a move: key counts per pattern on both
	// sides, the biggest keys, then every key checked.
	fmt.Println("# the migration guide's checks, done by crs: key counts per pattern on both sides (SCAN, never KEYS)")
	var stats [2]bytes.Buffer
	for i, u := range []string{src.URL, dst.URL} {
		if err := run(fmt.Sprintf("crs stats --top 3%s -u %s", patterns, u), &stats[i]); err != nil {
			return err
		}
	}
	// The first line names each server (its address, its memory, when it
	// was read): the counts after it must be the same.
	body := func(b bytes.Buffer) string {
		_, rest, _ := strings.Cut(b.String(), "\n")
		return rest
	}
	if body(stats[0]) != body(stats[1]) {
		return fmt.Errorf("the stats of the two servers differ")
	}
	fmt.Println("# the stats of both sides are identical; now every key, by value and expiry")
	for _, s := range []string{
		fmt.Sprintf("crs verify -u %s %s", dst.URL, file),
		fmt.Sprintf("crs verify --source %s --target %s", src.URL, dst.URL),
	} {
		if err := run(s, io.Discard); err != nil {
			return err
		}
	}
	fmt.Println("the target holds what the source held")

	// The same dump into a Redis Cluster of three masters, and back out of
	// it, in one command each way.
	fmt.Println("\n# the same dump into a Redis Cluster of 3 masters (redis-cli --cluster create), then out of it")
	cl, err := redisserver.StartCluster(ctx, 3, 0, "")
	if err != nil {
		return err
	}
	defer cl.Close()
	clusterFile := filepath.Join(filepath.Dir(file), "cluster.jsonl.zst")
	for _, s := range []string{
		fmt.Sprintf("crsload -u %s %s", cl.URL(), file),
		fmt.Sprintf("crsdump -u %s -o %s", cl.Nodes[1].URL, clusterFile),
		fmt.Sprintf("crs verify --source %s --target %s", src.URL, cl.URL()),
	} {
		if err := run(s, io.Discard); err != nil {
			return err
		}
	}
	fmt.Println("the cluster holds what the source held; stopping the servers")
	return nil
}
