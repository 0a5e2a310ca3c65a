package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/crs-tool/crs/internal/e2e"
	"github.com/crs-tool/crs/internal/keyslot"
	"github.com/redis/go-redis/v9"

	"github.com/crs-tool/crs/internal/redisserver"
	"github.com/crs-tool/crs/internal/redistest"
)

// writeAOF fills a server of bin that keeps an AOF (fsynced at every
// write), rewrites it (so it starts with an RDB preamble, or a base RDB
// file from 7.0 on), and writes more after the rewrite, transactions,
// list pushes and pops, expiring keys, deletions, hashes, a stream with a
// group and a second database among them. It returns the server and the
// AOF's path: appendonlydir/ or appendonly.aof.
func writeAOF(t *testing.T, bin redistest.Binary) (*redisserver.Server, string) {
	t.Helper()
	s := redistest.StartBinary(t, bin.Path, "--appendonly", "yes", "--appendfsync", "always", "--aof-use-rdb-preamble", "yes")
	ctx := context.Background()
	c := redistest.Client(t, s, 0)
	fill(t, s)
	if err := c.Do(ctx, "BGREWRITEAOF").Err(); err != nil {
		t.Fatal(err)
	}
	redistest.WaitFor(t, "the AOF rewrite to end", func() bool {
		info, _ := c.Info(ctx, "persistence").Result()
		return strings.Contains(info, "aof_rewrite_in_progress:0") && strings.Contains(info, "aof_rewrite_scheduled:0")
	})
	for i := 0; i < 200; i++ {
		p := c.TxPipeline()
		p.Incr(ctx, "aof:a")
		p.Incr(ctx, "aof:b")
		if _, err := p.Exec(ctx); err != nil {
			t.Fatal(err)
		}
		c.LPush(ctx, "aof:list", i)
		if i%3 == 0 {
			c.RPop(ctx, "aof:list")
		}
		c.Set(ctx, fmt.Sprintf("aof:px:%d", i%10), i, 3600_000_000_000) // an hour
		c.HSet(ctx, "aof:hash", fmt.Sprintf("f%d", i%7), i)
		c.Do(ctx, "XADD", "aof:stream", "*", "n", i)
	}
	c.Do(ctx, "XGROUP", "CREATE", "aof:stream", "g", "0")
	c.Do(ctx, "XREADGROUP", "GROUP", "g", "c1", "COUNT", 5, "STREAMS", "aof:stream", ">")
	c.Del(ctx, "aof:px:3")
	c3 := redistest.Client(t, s, 3)
	c3.Set(ctx, "aof:db3", "three", 0)
	if dir := filepath.Join(s.Dir, "appendonlydir"); isDir(dir) {
		return s, dir
	}
	return s, filepath.Join(s.Dir, "appendonly.aof")
}

func isDir(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.IsDir()
}

// TestAOFLoadsAnywhere loads the AOF of every server at hand (Redis 6.0's
// single file with an RDB preamble, 7.0 and later's appendonlydir with a
// base RDB and increments) into a server of its own version and into the
// newest Redis, and compares each with the server that wrote it, key by
// key. A difference is allowed only where the writer's own version,
// started on a copy of its AOF, shows the same (Redis 7.0 does not write
// a group's entries-read to its AOF, so no reader of it can know it).
func TestAOFLoadsAnywhere(t *testing.T) {
	bins := redistest.Servers(t)
	newest, _ := redistest.Newest(bins, "redis")
	var table []string
	for _, w := range bins {
		t.Run(w.Name, func(t *testing.T) {
			src, path := writeAOF(t, w)
			ctx := context.Background()
			// What the writer's own version makes of its AOF.
			copyDir := t.TempDir()
			if isDir(path) {
				if err := os.CopyFS(filepath.Join(copyDir, "appendonlydir"), os.DirFS(path)); err != nil {
					t.Fatal(err)
				}
			} else if b, err := os.ReadFile(path); err != nil || os.WriteFile(filepath.Join(copyDir, "appendonly.aof"), b, 0o644) != nil {
				t.Fatal(err)
			}
			reloaded := redistest.StartBinary(t, w.Path, "--appendonly", "yes", "--dir", copyDir)
			ownDiffs, err := redistest.Diff(ctx, src, reloaded, expiryTolerance(t, src, reloaded))
			if err != nil {
				t.Fatal(err)
			}
			targets := []redistest.Binary{w}
			if newest.Path != w.Path {
				targets = append(targets, newest)
			}
			for _, to := range targets {
				dst := redistest.StartBinary(t, to.Path)
				out, code := e2e.Sh(t, t.TempDir(), "crsload -u "+dst.URL+" "+path)
				if code != 0 || !strings.Contains(out, "then applied") {
					t.Fatalf("load of %s's AOF into %s: exit %d\n%s", w.Name, to.Name, code, out)
				}
				diffs, err := redistest.Diff(ctx, src, dst, expiryTolerance(t, src, dst))
				if err != nil {
					t.Fatal(err)
				}
				n, own := 0, 0
				for _, d := range diffs {
					// A 6.x source reports no stream counters; the target
					// makes its own.
					if !w.StreamCounters && counterLine.MatchString(d) {
						continue
					}
					if slices.Contains(ownDiffs, d) {
						own++
						continue
					}
					t.Error(d)
					n++
				}
				keys, _ := redistest.Client(t, dst, 0).DBSize(ctx).Result()
				table = append(table, fmt.Sprintf("%-14s %-16s → %-14s %4d keys (db 0) %2d differences, %d as the writer's own reload has them", w.Name, filepath.Base(path), to.Name, keys, n, own))
			}
		})
	}
	t.Logf("AOFs:\n%s", strings.Join(table, "\n"))
}

// TestAOFTruncated: an AOF whose last command was cut short (a crash) is
// refused, naming the file and the command's offset, with nothing
// written; --allow-truncated loads everything before it and says so.
func TestAOFTruncated(t *testing.T) {
	src := redistest.Start(t, "--appendonly", "yes", "--appendfsync", "always")
	ctx := context.Background()
	c := redistest.Client(t, src, 0)
	for i := 0; i < 10; i++ {
		c.Set(ctx, fmt.Sprintf("k%d", i), i, 0)
	}
	incr, _ := filepath.Glob(filepath.Join(src.Dir, "appendonlydir", "*.incr.aof"))
	if len(incr) != 1 {
		t.Fatalf("incr files %v", incr)
	}
	b, err := os.ReadFile(incr[0])
	if err != nil {
		t.Fatal(err)
	}
	// A copy of the directory, its last command cut in its middle.
	dir := filepath.Join(t.TempDir(), "appendonlydir")
	if err := os.CopyFS(dir, os.DirFS(filepath.Dir(incr[0]))); err != nil {
		t.Fatal(err)
	}
	last := strings.LastIndex(string(b), "*3\r\n")
	if err := os.WriteFile(filepath.Join(dir, filepath.Base(incr[0])), b[:len(b)-4], 0o644); err != nil {
		t.Fatal(err)
	}
	dst := redistest.Start(t)
	out, code := e2e.Sh(t, t.TempDir(), "crsload -u "+dst.URL+" "+dir)
	want := fmt.Sprintf("%s: offset %d: the AOF ends inside a command", filepath.Join(dir, filepath.Base(incr[0])), last)
	if code != 3 || !strings.Contains(out, want) {
		t.Errorf("exit %d, want 3 and %q:\n%s", code, want, out)
	}
	if n, _ := redistest.Client(t, dst, 0).DBSize(ctx).Result(); n != 0 {
		t.Errorf("the refused load wrote %d keys", n)
	}
	out, code = e2e.Sh(t, t.TempDir(), "crsload --allow-truncated -u "+dst.URL+" "+dir)
	if code != 0 || !strings.Contains(out, "LEFT OUT the command cut short at") || !strings.Contains(out, "then applied 9 commands") {
		t.Errorf("--allow-truncated: exit %d\n%s", code, out)
	}
	if n, _ := redistest.Client(t, dst, 0).DBSize(ctx).Result(); n != 9 {
		t.Errorf("%d keys after --allow-truncated, want 9", n)
	}
}

// TestRDBWithCommandsAfterIt: an RDB file followed by more bytes (an AOF
// with a preamble under another name) is refused, never loaded in part.
func TestRDBWithCommandsAfterIt(t *testing.T) {
	src := redistest.Start(t)
	c := redistest.Client(t, src, 0)
	c.Set(context.Background(), "k", "v", 0)
	if err := c.Save(context.Background()).Err(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(src.Dir, "dump.rdb"))
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "backup.rdb")
	os.WriteFile(file, append(b, "*2\r\n$3\r\nDEL\r\n$1\r\nk\r\n"...), 0o644)
	dst := redistest.Start(t)
	out, code := e2e.Sh(t, t.TempDir(), "crsload -u "+dst.URL+" "+file)
	if code != 3 || !strings.Contains(out, fmt.Sprintf("offset %d: the RDB data ends here and more bytes follow: commands (an AOF with an RDB preamble", len(b))) {
		t.Errorf("exit %d\n%s", code, out)
	}
}

// TestAOFCommandTheTargetLacks: an AOF whose commands include hash field
// expiries (HPEXPIRE, propagated as HPEXPIREAT), into a server without
// them, is refused before anything is written, naming the command, its
// file and offset, and its key.
func TestAOFCommandTheTargetLacks(t *testing.T) {
	var from, to *redistest.Binary
	for _, b := range redistest.Servers(t) {
		switch {
		case b.FieldExpiry && from == nil:
			from = &b
		case !b.FieldExpiry && b.AtLeast(7, 0) && to == nil:
			to = &b
		}
	}
	if from == nil || to == nil {
		t.Skip("no server with hash field expiry, or none without it")
	}
	t.Logf("%s → %s", from.Name, to.Name)
	src := redistest.StartBinary(t, from.Path, "--appendonly", "yes", "--appendfsync", "always")
	c := redistest.Client(t, src, 0)
	ctx := context.Background()
	c.HSet(ctx, "sessions", "token", "t")
	if err := c.Do(ctx, "HPEXPIRE", "sessions", 3600_000, "FIELDS", 1, "token").Err(); err != nil {
		t.Fatal(err)
	}
	dst := redistest.StartBinary(t, to.Path)
	out, code := e2e.Sh(t, t.TempDir(), "crsload -u "+dst.URL+" "+filepath.Join(src.Dir, "appendonlydir"))
	if code != 4 || !strings.Contains(out, `HPEXPIREAT commands (the first at `) || !strings.Contains(out, `key "sessions"), and the target, redis `) {
		t.Errorf("exit %d\n%s", code, out)
	}
	if n, _ := redistest.Client(t, dst, 0).DBSize(ctx).Result(); n != 0 {
		t.Errorf("the refused load wrote %d keys", n)
	}
}

// TestAOFIntoCluster loads a 7.0 appendonlydir (an RDB base, then
// commands: transactions over keys of different masters, expiries,
// deletions, list pops, a stream and its group, a function library) into a
// 3-master cluster: each command goes to the master of its keys, a
// transaction's commands one by one. crs verify of what the AOF's own
// server makes of it against the cluster: 0 differences. Before, the pre-flight refused any
// cluster ("not supported yet").
func TestAOFIntoCluster(t *testing.T) {
	ctx := context.Background()
	src := redistest.Start(t, "--appendonly", "yes", "--appendfsync", "always", "--aof-use-rdb-preamble", "yes")
	c := redistest.Client(t, src, 0)
	for i := 0; i < 300; i++ {
		c.Set(ctx, fmt.Sprintf("base:%d", i), i, 0)
	}
	if err := c.Do(ctx, "BGREWRITEAOF").Err(); err != nil {
		t.Fatal(err)
	}
	redistest.WaitFor(t, "the AOF rewrite to end", func() bool {
		info, _ := c.Info(ctx, "persistence").Result()
		return strings.Contains(info, "aof_rewrite_in_progress:0") && strings.Contains(info, "aof_rewrite_scheduled:0")
	})
	if err := c.FunctionLoad(ctx, "#!lua name=aoflib\nredis.register_function('f', function() return 1 end)").Err(); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 200; i++ {
		p := c.TxPipeline()
		p.Incr(ctx, "tx:a") // tx:a and tx:b hash to different masters of three
		p.Incr(ctx, "tx:b")
		if _, err := p.Exec(ctx); err != nil {
			t.Fatal(err)
		}
		c.LPush(ctx, fmt.Sprintf("list:%d", i%5), i)
		if i%3 == 0 {
			c.RPop(ctx, fmt.Sprintf("list:%d", i%5))
		}
		c.Set(ctx, fmt.Sprintf("px:%d", i%10), i, time.Hour)
		c.HSet(ctx, fmt.Sprintf("hash:%d", i%7), "f", i)
		c.Do(ctx, "XADD", "stream", "*", "n", i)
		c.Del(ctx, fmt.Sprintf("base:%d", i))
	}
	c.Do(ctx, "XGROUP", "CREATE", "stream", "g", "0")
	c.Do(ctx, "XREADGROUP", "GROUP", "g", "c1", "COUNT", 5, "STREAMS", "stream", ">")
	cl := redistest.StartCluster(t, 3, 0, "")
	if keyslot.Slot("tx:a")*3/16384 == keyslot.Slot("tx:b")*3/16384 {
		t.Fatal("tx:a and tx:b are on one master: the test does not test transactions across masters")
	}
	dir := t.TempDir()
	out, code := e2e.Sh(t, dir, "crsload -n 0 -u "+cl.URL()+" "+filepath.Join(src.Dir, "appendonlydir"))
	if code != 0 || !strings.Contains(out, "then applied") || !strings.Contains(out, "transactions applied command by command") {
		t.Fatalf("crsload of the AOF into the cluster: exit %d\n%s", code, out)
	}
	t.Log(e2e.LineWith(out, "then applied"))
	// What the AOF's own server makes of it (Redis's AOF itself drops a
	// group's entries-read, say), against the cluster.
	own := t.TempDir()
	if err := os.CopyFS(filepath.Join(own, "appendonlydir"), os.DirFS(filepath.Join(src.Dir, "appendonlydir"))); err != nil {
		t.Fatal(err)
	}
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatal(err)
	}
	reloaded := redistest.StartBinary(t, bin, "--appendonly", "yes", "--dir", own)
	if out, code := e2e.Sh(t, dir, "crs verify --source "+reloaded.URL+" --target "+cl.URL()); code != 0 || !strings.Contains(out, " 0 differences") {
		t.Fatalf("crs verify of the AOF, reloaded by its own server, against the cluster: exit %d\n%s", code, out)
	}
	for _, n := range cl.Nodes { // the function library reached every master
		if libs, _ := redistest.Client(t, n, 0).FunctionList(ctx, redis.FunctionListQuery{}).Result(); len(libs) != 1 || libs[0].Name != "aoflib" {
			t.Errorf("%s has the libraries %v", n.Addr, libs)
		}
	}
}
