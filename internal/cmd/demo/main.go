// Command demo is what make demo runs: it starts two throwaway
// redis-servers, fills the first with a keyspace shaped like the migration
// guide's, moves it to the second with the real crsdump and crsload
// through a shell, verifies the target with crs verify, prints the key
// counts per pattern on both sides, and stops the servers.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"text/tabwriter"

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
	dc := redis.NewClient(&redis.Options{Addr: dst.Addr})
	defer dc.Close()
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
	steps := []string{
		fmt.Sprintf("crsdump -u %s > %s", src.URL, file),
		fmt.Sprintf("crsload -u %s < %s", dst.URL, file),
		fmt.Sprintf(`zstd -dc %s | head -n 3 | cut -c 1-160`, file),
		fmt.Sprintf(`zstd -dc %s | jq -r 'select(.type=="hash") | .key' | grep -c '^client_keys:'`, file),
		fmt.Sprintf("crs verify -u %s %s", dst.URL, file),
		fmt.Sprintf("crs verify --source %s --target %s", src.URL, dst.URL),
	}
	for _, s := range steps {
		fmt.Println("$", s)
		cmd := exec.CommandContext(ctx, "sh", "-c", s)
		cmd.Env = append(os.Environ(), "PATH="+bin+string(os.PathListSeparator)+os.Getenv("PATH"))
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stdout
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("%s: %w", s, err)
		}
		fmt.Println()
	}

	fmt.Println("key counts per pattern (SCAN MATCH, as the guide's checklist asks):")
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "pattern\tsource\ttarget\t")
	mismatch := false
	for _, p := range append(keyspace.Patterns, "*") {
		a, err := keyspace.Count(ctx, sc, p)
		if err != nil {
			return err
		}
		b, err := keyspace.Count(ctx, dc, p)
		if err != nil {
			return err
		}
		mark := ""
		if a != b {
			mark, mismatch = "  <- differs", true
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\n", p, a, b, mark)
	}
	tw.Flush()
	if mismatch {
		return fmt.Errorf("the key counts differ")
	}
	fmt.Println("\nthe counts match; stopping both servers")
	return nil
}
