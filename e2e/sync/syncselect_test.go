package sync_test

import (
	"context"
	"strings"
	"syscall"
	"testing"

	"github.com/crs-tool/crs/internal/e2e"

	"github.com/redis/go-redis/v9"

	"github.com/crs-tool/crs/internal/redistest"
)

// TestSyncByTypeAndSize syncs with --type string --type list
// --max-key-bytes 2000 (both modes) while the source changes keys' types
// and sizes in ways no single command says: a hash renamed onto a
// string, a hash overwritten by SET, a list deleted and made a set, a
// list grown past the limit, a big list deleted and made small, a
// RESTORE; by replication also a FLUSHDB between writes and a MOVE. The
// target ends holding exactly the keys the selection takes.
func TestSyncByTypeAndSize(t *testing.T) {
	for _, mode := range []string{"replication", "notify"} {
		t.Run(mode, func(t *testing.T) {
			ctx := context.Background()
			dir := t.TempDir()
			src, dst := redistest.Start(t), redistest.Start(t)
			c, c1 := redistest.Client(t, src, 0), redistest.Client(t, src, 1)
			c.Set(ctx, "s:r", "x", 0)
			c.HSet(ctx, "h:1", "f", "v")
			c.RPush(ctx, "l:1", "a")
			c.RPush(ctx, "l:2", "a")
			for i := 0; i < 20; i++ {
				c.RPush(ctx, "shrink", strings.Repeat("b", 1000))
			}
			c1.Set(ctx, "d1:x", "x", 0)
			flags := " --type string --type list --max-key-bytes 2000"
			cmd, output := e2e.Start(t, dir, "crs sync --mode "+mode+" --progress plain --pause 30s"+flags+" --source "+src.URL+" -u "+dst.URL)
			redistest.WaitFor(t, "the stream phase", func() bool { return strings.Contains(output(), "phase 2") })

			c.HSet(ctx, "tmp", "f", "v")
			c.Rename(ctx, "tmp", "s:r")          // s:r: a hash now, left out
			c.Set(ctx, "h:1", "now a string", 0) // taken now
			c.Del(ctx, "l:1")                    // and made a set, left out
			c.SAdd(ctx, "l:1", "a")              //
			for i := 0; i < 30; i++ {            // past 2,000 bytes: left out
				c.RPush(ctx, "grow", strings.Repeat("g", 100))
			}
			c.Del(ctx, "shrink")             // left out of the snapshot,
			c.RPush(ctx, "shrink", "a", "b") // small now: taken
			for i := 0; i < 100; i++ {
				c.Incr(ctx, "s:n")
				c.RPush(ctx, "l:2", i)
				c.HSet(ctx, "h:2", i, i)
			}
			c.ZAdd(ctx, "z:1", redis.Z{Score: 1, Member: "m"})
			payload := c.Dump(ctx, "s:n").Val()
			c.Restore(ctx, "s:copy", 0, payload)
			if mode == "replication" { // no keyspace notification says these
				c1.Set(ctx, "d1:y", "y", 0)
				c1.FlushDB(ctx)
				c1.Set(ctx, "d1:z", "z", 0)
				c.Set(ctx, "s:m", "m", 0)
				c.Move(ctx, "s:m", 1)
			}
			c.Set(ctx, "last", "1", 0)
			redistest.WaitFor(t, "the last write on the target", func() bool {
				return redistest.Client(t, dst, 0).Exists(ctx, "last").Val() == 1
			})
			cmd.Process.Signal(syscall.SIGUSR1)
			err := cmd.Wait()
			c.Do(ctx, "CLIENT", "UNPAUSE")
			if code := e2e.ExitCodeOf(err); code != 0 || !strings.Contains(output(), "cutover done") {
				t.Fatalf("exit %d\n%s", code, output())
			}
			if !strings.Contains(output(), `LEFT OUT as larger than --max-key-bytes: "grow" (db 0, list)`) {
				t.Errorf("the summary names no key left out for its size:\n%s", output())
			}
			d, d1 := redistest.Client(t, dst, 0), redistest.Client(t, dst, 1)
			want := map[string]string{"s:r": "none", "h:1": "string", "l:1": "none", "grow": "none", "shrink": "list",
				"s:n": "string", "l:2": "list", "h:2": "none", "z:1": "none", "s:copy": "string", "last": "string"}
			want1 := map[string]string{}
			if mode == "replication" {
				want["s:m"] = "none"
				want1 = map[string]string{"d1:x": "none", "d1:y": "none", "d1:z": "string", "s:m": "string"}
			}
			for k, typ := range want {
				if got := d.Type(ctx, k).Val(); got != typ {
					t.Errorf("%q on the target: %s, want %s", k, got, typ)
				}
			}
			for k, typ := range want1 {
				if got := d1.Type(ctx, k).Val(); got != typ {
					t.Errorf("%q in database 1 of the target: %s, want %s", k, got, typ)
				}
			}
			if got := d.LRange(ctx, "shrink", 0, -1).Val(); strings.Join(got, ",") != "a,b" || d.Get(ctx, "s:n").Val() != "100" || d.LLen(ctx, "l:2").Val() != 101 {
				t.Errorf("shrink %v, s:n %s, l:2 of %d", got, d.Get(ctx, "s:n").Val(), d.LLen(ctx, "l:2").Val())
			}
			if out, code := e2e.Sh(t, dir, "crs verify"+flags+" --source "+src.URL+" --target "+dst.URL); code != 0 || !strings.Contains(out, " 0 differences") {
				t.Errorf("verify: exit %d\n%s", code, out)
			}
			t.Log(e2e.LineWith(output(), "crs sync: done"))
		})
	}
}
