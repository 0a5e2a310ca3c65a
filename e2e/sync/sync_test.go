package sync_test

import (
	"context"
	"fmt"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/crs-tool/crs/internal/e2e"

	"github.com/redis/go-redis/v9"

	"github.com/crs-tool/crs/internal/redisserver"
	"github.com/crs-tool/crs/internal/redistest"
	"github.com/crs-tool/crs/livesync"
)

// writer writes to a server the whole time a sync runs: transactions
// that increment a and b together, pushes and pops on a long list, keys
// set with PX and deleted, hash fields, stream entries read and
// acknowledged by a consumer group, and a counter incremented once per
// round. Rounds counts the rounds done.
type writer struct {
	Rounds atomic.Int64
	// refused is set when the source refused a write (after a cutover),
	// which ended the writer.
	refused atomic.Bool
	stop    chan struct{}
	done    sync.WaitGroup
	err     error
}

func startMixWriter(t *testing.T, s *redisserver.Server) *writer {
	return startMixWriterOn(t, redistest.Client(t, s, 0))
}

// startMixWriterOn runs the writer through c (a cluster client too: the
// transaction's keys share a hash tag).
func startMixWriterOn(t *testing.T, c redis.UniversalClient) *writer {
	t.Helper()
	ctx := context.Background()
	c.Do(ctx, "XGROUP", "CREATE", "w:stream", "g", "$", "MKSTREAM")
	for i := 0; i < 2000; i++ {
		c.RPush(ctx, "w:list", i)
	}
	return startWriterLoop(c, 0, func(p redis.Pipeliner, i int) {
		p.LPush(ctx, "w:list", i)
		p.RPop(ctx, "w:list")
		p.Set(ctx, fmt.Sprintf("w:px:%d", i%50), i, time.Hour)
		p.Del(ctx, fmt.Sprintf("w:px:%d", (i+25)%50))
		p.HSet(ctx, "w:hash", fmt.Sprintf("f%d", i%20), i)
		p.XAdd(ctx, &redis.XAddArgs{Stream: "w:stream", Values: []any{"n", i}})
		if i%10 == 0 {
			p.XReadGroup(ctx, &redis.XReadGroupArgs{Group: "g", Consumer: "c1", Streams: []string{"w:stream", ">"}, Count: 3})
		}
	})
}

// startWriterLoop writes rounds through c until stopped, at most one per
// pace (0: flat out): a transaction that increments a and b together,
// the writes round queues on a pipeline, then the round counter. A source
// that refuses writes (after a cutover) ends it.
func startWriterLoop(c redis.UniversalClient, pace time.Duration, round func(p redis.Pipeliner, i int)) *writer {
	ctx := context.Background()
	w := &writer{stop: make(chan struct{})}
	w.done.Add(1)
	go func() {
		defer w.done.Done()
		var tick <-chan time.Time
		if pace > 0 {
			t := time.NewTicker(pace)
			defer t.Stop()
			tick = t.C
		}
		for i := 0; ; i++ {
			if tick == nil {
				select {
				case <-w.stop:
					return
				default:
				}
			} else {
				select {
				case <-w.stop:
					return
				case <-tick:
				}
			}
			_, err := c.TxPipelined(ctx, func(p redis.Pipeliner) error {
				p.Incr(ctx, "{w}:a")
				p.Incr(ctx, "{w}:b")
				return nil
			})
			if err == nil {
				_, err = c.Pipelined(ctx, func(p redis.Pipeliner) error {
					round(p, i)
					return nil
				})
			}
			if err == nil {
				err = c.Incr(ctx, "w:rounds").Err()
			}
			if refusedWrite(err) {
				w.refused.Store(true)
				return
			}
			if err != nil && err != redis.Nil {
				w.err = err
				return
			}
			w.Rounds.Add(1)
		}
	}()
	return w
}

// refusedWrite reports whether err is the refusal of a source that takes
// no more writes after a cutover: NOREPLICAS, or, for a transaction,
// EXECABORT (its commands were refused as they were queued).
func refusedWrite(err error) bool {
	return err != nil && (strings.HasPrefix(err.Error(), "NOREPLICAS") || strings.HasPrefix(err.Error(), "EXECABORT"))
}

// Stop stops the writer: the pause of each server is ended first so
// that a write waiting for it completes.
func (w *writer) Stop(t *testing.T, servers ...*redisserver.Server) {
	close(w.stop)
	for _, s := range servers {
		redistest.Client(t, s, 0).Do(context.Background(), "CLIENT", "UNPAUSE")
	}
	w.done.Wait()
	if w.err != nil {
		t.Errorf("the writer: %v", w.err)
	}
}

// assertSynced checks, while the source's writes are paused, that the
// target equals the source key by key and holds a == b and the writer's
// round count.
func assertSynced(t *testing.T, src, dst *redisserver.Server, w *writer) {
	t.Helper()
	e2e.AssertNoDiff(t, src, dst)
	assertCounters(t, redistest.Client(t, dst, 0), w)
}

// assertCounters checks that the target holds a == b and the writer's
// round count, and not the sync's position.
func assertCounters(t *testing.T, dc redis.UniversalClient, w *writer) {
	t.Helper()
	ctx := context.Background()
	a, _ := dc.Get(ctx, "{w}:a").Int64()
	b, _ := dc.Get(ctx, "{w}:b").Int64()
	rounds, _ := dc.Get(ctx, "w:rounds").Int64()
	if a != b || a == 0 {
		t.Errorf("on the target a = %d, b = %d", a, b)
	}
	if done := w.Rounds.Load(); rounds != done {
		t.Errorf("the target's counter is %d, and the writer did %d rounds", rounds, done)
	}
	if n, _ := dc.Exists(ctx, livesync.CheckpointKey).Result(); n != 0 {
		t.Errorf("the checkpoint %s is still on the target after the cutover", livesync.CheckpointKey)
	}
	t.Logf("a = b = %d, %d rounds of writes", a, rounds)
}

// syncPair starts a source holding n keys (with args), an empty target
// and the writer on the source.
func syncPair(t *testing.T, n int, args ...string) (src, dst *redisserver.Server, w *writer, dir string) {
	src = redistest.Start(t, args...)
	e2e.FillMany(t, src, n)
	dst = redistest.Start(t)
	return src, dst, startMixWriter(t, src), t.TempDir()
}

// TestSyncCutover syncs a source that takes writes the whole time and
// cuts over: the target equals the source, key by key, and a == b.
func TestSyncCutover(t *testing.T) {
	src, dst, w, dir := syncPair(t, 5000)
	out, code := e2e.Sh(t, dir, "crs sync --progress plain --cutover --pause 60s --source "+src.URL+" -u "+dst.URL)
	// Before the snapshot, what it takes on disk and what is free.
	if !regexp.MustCompile(`the snapshot spools to \S+: about [0-9.]+ [KMG]?i?B, then the stream that arrives while it loads; [0-9.]+ [KMGT]?i?B free there`).MatchString(out) {
		t.Errorf("no word of the spool's space:\n%s", out)
	}
	if code != 0 || !strings.Contains(out, "crs sync: in sync: lag ") || !strings.Contains(out, "cutover done") {
		w.Stop(t, src)
		t.Fatalf("crs sync --cutover: exit %d\n%s", code, out)
	}
	assertSynced(t, src, dst, w)
	w.Stop(t, src)
	t.Log(e2e.LineWith(out, "cutover done"))
	t.Log(e2e.LineWith(out, "crs sync: done"))
}

// checkpointOffset is the offset the target's checkpoint records, 0
// when it has none.
func checkpointOffset(t *testing.T, dst *redisserver.Server) int64 {
	v, _ := redistest.Client(t, dst, 0).HGet(context.Background(), livesync.CheckpointKey, "offset").Result()
	n, _ := strconv.ParseInt(v, 10, 64)
	return n
}

// TestSyncResumes stops a sync with ^C, then kills one with SIGKILL, both
// mid-stream while the writer runs; each run again continues from the
// target's position, with no full copy, and after the cutover the
// counter incremented once per round equals the writer's rounds.
func TestSyncResumes(t *testing.T) {
	// A backlog that holds the writer's writes between two runs.
	src, dst, w, dir := syncPair(t, 3000, "--repl-backlog-size", "256mb")
	defer w.Stop(t, src)
	args := " --progress plain --source " + src.URL + " -u " + dst.URL
	var first int64
	for i, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGKILL} {
		cmd, output := e2e.Start(t, dir, "crs sync"+args)
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		base := checkpointOffset(t, dst)
		var err error
		redistest.WaitFor(t, "the stream applied on the target", func() bool {
			select {
			case err = <-exited:
				t.Fatalf("run %d ended by itself: exit %d\n%s", i+1, e2e.ExitCodeOf(err), output())
			default:
			}
			off := checkpointOffset(t, dst)
			if first == 0 && off > 0 {
				first = off
			}
			return off > base+10_000 && off > first+10_000
		})
		cmd.Process.Signal(sig)
		err = <-exited
		out := output()
		switch {
		case i == 0 && !strings.Contains(out, "phase 1: loading the snapshot"):
			t.Fatalf("the first run did not load a snapshot:\n%s", out)
		case i > 0 && (strings.Contains(out, "phase 1") || !strings.Contains(out, "continuing from offset")):
			t.Fatalf("run %d did not continue from the target's position:\n%s", i+1, out)
		case sig == syscall.SIGINT && (e2e.ExitCodeOf(err) != 130 || !strings.Contains(out, "the same crs sync continues from there")):
			t.Fatalf("^C: exit %d\n%s", e2e.ExitCodeOf(err), out)
		}
		t.Logf("run %d stopped by %v at offset %d", i+1, sig, checkpointOffset(t, dst))
	}
	out, code := e2e.Sh(t, dir, "crs sync --cutover --pause 60s"+args)
	if code != 0 || strings.Contains(out, "phase 1") || !strings.Contains(out, "continuing from offset") {
		t.Fatalf("the last run: exit %d\n%s", code, out)
	}
	assertSynced(t, src, dst, w)
	t.Log(e2e.LineWith(out, "crs sync: done"))
}

// TestSyncSourceRestarts restarts the source mid-sync: crs stops, loudly.
func TestSyncSourceRestarts(t *testing.T) {
	src, dst, w, dir := syncPair(t, 1000)
	cmd, output := e2e.Start(t, dir, "crs sync --progress plain --source "+src.URL+" -u "+dst.URL)
	redistest.WaitFor(t, "the stream applied on the target", func() bool {
		return strings.Contains(output(), "phase 2")
	})
	redistest.Client(t, src, 0).Do(context.Background(), "SHUTDOWN", "NOSAVE")
	w.done.Wait()
	err := cmd.Wait()
	out := output()
	if code := e2e.ExitCodeOf(err); code != 7 || !strings.Contains(out, "the replication link was lost: the source closed it") {
		t.Fatalf("exit %d\n%s", code, out)
	}
	t.Log(e2e.LineWith(out, "the replication link was lost"))
}

// TestSyncRefusesACommandTheTargetLacks syncs a server with hash field
// expiries into one without: the field expiry written during the sync
// stops it, naming the command, its key and offset.
func TestSyncRefusesACommandTheTargetLacks(t *testing.T) {
	bins := redistest.Servers(t)
	var from, to *redistest.Binary
	for i := range bins {
		b := &bins[i]
		switch {
		case b.FieldExpiry && from == nil:
			from = b
		case !b.FieldExpiry && b.AtLeast(6, 2) && to == nil:
			to = b
		}
	}
	if from == nil || to == nil {
		t.Skipf("needs a server with hash field expiries and one without: %s", redistest.Describe(bins))
	}
	src := redistest.StartBinary(t, from.Path)
	dst := redistest.StartBinary(t, to.Path)
	ctx := context.Background()
	c := redistest.Client(t, src, 0)
	c.HSet(ctx, "h", "f", "v", "g", "w")
	dir := t.TempDir()
	cmd, output := e2e.Start(t, dir, "crs sync --progress plain --source "+src.URL+" -u "+dst.URL)
	redistest.WaitFor(t, "the stream phase", func() bool { return strings.Contains(output(), "phase 2") })
	if err := c.Do(ctx, "HPEXPIRE", "h", 600000, "FIELDS", 1, "f").Err(); err != nil {
		t.Fatal(err)
	}
	err := cmd.Wait()
	out := output()
	if code := e2e.ExitCodeOf(err); code != 4 || !strings.Contains(out, "HPEXPIRE") || !strings.Contains(out, `"h"`) || !strings.Contains(out, "offset") {
		t.Fatalf("%s → %s: exit %d\n%s", from, to, code, out)
	}
	t.Logf("%s → %s: %s", from, to, e2e.LineWith(out, "HPEXPIRE"))
	// Run again with --skip-unsupported: it continues from the position
	// the target holds, skips the command and says so in the summary.
	out, code := e2e.Sh(t, dir, "crs sync --skip-unsupported --cutover --pause 30s --source "+src.URL+" -u "+dst.URL)
	if code != 0 || !strings.Contains(out, "continuing from offset") || !strings.Contains(out, "SKIPPED 1 commands the target lacks (--skip-unsupported) (HPEXPIREAT 1)") {
		t.Errorf("--skip-unsupported: exit %d\n%s", code, out)
	}
}

// noReplication starts a server that refuses replication, as managed
// services do.
func noReplication(t *testing.T, args ...string) *redisserver.Server {
	return redistest.Start(t, append([]string{"--rename-command", "PSYNC", "", "--rename-command", "SYNC", ""}, args...)...)
}

// TestSyncByNotifications syncs a source that refuses replication while
// the writer runs, with keys that expire during the copy: crs says which
// mode it took and why, and after the cutover the target equals the
// source key by key, and the source's notification setting is back.
func TestSyncByNotifications(t *testing.T) {
	ctx := context.Background()
	src := noReplication(t)
	e2e.FillMany(t, src, 3000)
	c := redistest.Client(t, src, 0)
	for i := 0; i < 300; i++ {
		c.Set(ctx, fmt.Sprintf("soon:%d", i), i, time.Duration(100+i)*time.Millisecond)
	}
	dst := redistest.Start(t)
	w := startMixWriter(t, src)
	defer w.Stop(t, src)
	out, code := e2e.Sh(t, t.TempDir(), "crs sync --progress plain --cutover --pause 60s --source "+src.URL+" -u "+dst.URL)
	if code != 0 || !strings.Contains(out, "so it syncs by keyspace notifications") || !strings.Contains(out, "cutover done") {
		t.Fatalf("exit %d\n%s", code, out)
	}
	assertSynced(t, src, dst, w)
	if v, _ := c.ConfigGet(ctx, "notify-keyspace-events").Result(); v["notify-keyspace-events"] != "" {
		t.Errorf("notify-keyspace-events left at %q", v["notify-keyspace-events"])
	}
	t.Log(e2e.LineWith(out, "cutover done"))
	t.Log(e2e.LineWith(out, "crs sync: done"))
}

// TestSyncNotifyRefusals: an ACL user without +psync gets the
// notification mode (and --mode replication a refusal); a source whose
// CONFIG is renamed away and whose notifications are off is refused
// naming the setting; a subscription killed mid-sync stops the sync.
func TestSyncNotifyRefusals(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	src := redistest.Start(t)
	e2e.FillMany(t, src, 500)
	c := redistest.Client(t, src, 0)
	if err := c.Do(ctx, "ACL", "SETUSER", "mover", "on", ">pw", "~*", "&*", "+@all", "-psync", "-sync").Err(); err != nil {
		t.Fatal(err)
	}
	user := "redis://mover:pw@" + src.Addr
	dst := redistest.Start(t)
	if out, code := e2e.Sh(t, dir, "crs sync --mode replication --source "+user+" -u "+dst.URL); code != 5 || !strings.Contains(out, "refuses replication") {
		t.Errorf("--mode replication without +psync: exit %d\n%s", code, out)
	}
	if out, code := e2e.Sh(t, dir, "crs sync --cutover --source "+user+" -u "+dst.URL); code != 0 || !strings.Contains(out, "so it syncs by keyspace notifications") {
		t.Errorf("auto without +psync: exit %d\n%s", code, out)
	}
	e2e.AssertNoDiff(t, src, dst)

	// A managed service: CONFIG refused. With the notifications off, the
	// probe keys bring none and the sync is refused naming the setting;
	// with them on (the service's parameter group), it runs.
	noConfig := noReplication(t, "--rename-command", "CONFIG", "")
	if out, code := e2e.Sh(t, dir, "crs sync --source "+noConfig.URL+" -u "+redistest.Start(t).URL); code != 4 || !strings.Contains(out, "parameter group") || !strings.Contains(out, "brought no set notification") {
		t.Errorf("CONFIG renamed away: exit %d\n%s", code, out)
	}
	managed := noReplication(t, "--rename-command", "CONFIG", "", "--notify-keyspace-events", "KEA")
	e2e.FillMany(t, managed, 300)
	dst2 := redistest.Start(t)
	if out, code := e2e.Sh(t, dir, "crs sync --cutover --source "+managed.URL+" -u "+dst2.URL); code != 0 || !strings.Contains(out, "probe keys") {
		t.Errorf("CONFIG refused, notifications on: exit %d\n%s", code, out)
	}
	e2e.AssertNoDiff(t, managed, dst2)

	cut := noReplication(t)
	e2e.FillMany(t, cut, 500)
	cmd, output := e2e.Start(t, dir, "crs sync --progress plain --source "+cut.URL+" -u "+redistest.Start(t).URL)
	redistest.WaitFor(t, "the notified phase", func() bool { return strings.Contains(output(), "phase 2") })
	if err := redistest.Client(t, cut, 0).Do(ctx, "CLIENT", "KILL", "TYPE", "pubsub").Err(); err != nil {
		t.Fatal(err)
	}
	err := cmd.Wait()
	if code := e2e.ExitCodeOf(err); code != 4 || !strings.Contains(output(), "keyspace notifications were lost") {
		t.Errorf("a killed subscription: exit %d\n%s", code, output())
	}
	t.Log(e2e.LineWith(output(), "were lost"))
}

// masters are the first n nodes of a cluster.
func masters(c *redistest.Cluster, n int) []*redisserver.Server { return c.Nodes[:n] }

// assertClustersSynced checks, while the source's writes are paused, that
// crs verify finds the target equal to the source, that they hold as many
// keys, and the writer's counters.
func assertClustersSynced(t *testing.T, dir, src, dst string, srcKeys, dstKeys int64, dc redis.UniversalClient, w *writer) {
	t.Helper()
	if out, code := e2e.Sh(t, dir, "crs verify --source "+src+" --target "+dst); code != 0 || !strings.Contains(out, " 0 differences") {
		t.Errorf("verify: exit %d\n%s", code, out)
	}
	if srcKeys != dstKeys {
		t.Errorf("the source holds %d keys, the target %d", srcKeys, dstKeys)
	}
	assertCounters(t, dc, w)
}

// TestSyncClusterToCluster syncs a 3-master cluster into a 4-master one
// while the writer runs, by replication (one link per master, in
// parallel) and by keyspace notifications (one subscription per master);
// after the cutover crs verify finds them equal.
func TestSyncClusterToCluster(t *testing.T) {
	for _, mode := range []string{"replication", "notify"} {
		t.Run(mode, func(t *testing.T) {
			dir := t.TempDir()
			c3 := redistest.StartCluster(t, 3, 0, "")
			c4 := redistest.StartCluster(t, 4, 0, "")
			redistest.FillCluster(t, c3, 3000)
			w := startMixWriterOn(t, c3.Client(t))
			defer w.Stop(t, masters(c3, 3)...)
			out, code := e2e.Sh(t, dir, "crs sync --mode "+mode+" --progress plain --cutover --pause 60s --source "+c3.Nodes[0].URL+" -u "+c4.URL())
			if code != 0 || !strings.Contains(out, "cutover done") || strings.Count(out, "phase 1") != map[string]int{"replication": 3, "notify": 1}[mode] {
				t.Fatalf("exit %d\n%s", code, out)
			}
			assertClustersSynced(t, dir, c3.URL(), c4.URL(), c3.Keys(t), c4.Keys(t), c4.Client(t), w)
			t.Log(e2e.LineWith(out, "cutover done"))
		})
	}
}

// TestSyncIntoCluster syncs a standalone server into a cluster by
// replication while the writer runs, each command sent to the master of
// its slot; a cluster target keeps no position, so a sync stopped part
// way starts over only with --replace.
func TestSyncIntoCluster(t *testing.T) {
	dir, src, c3, w, cmd, _ := syncIntoCluster(t, "")
	defer w.Stop(t, src)
	cmd.Process.Kill()
	cmd.Wait()
	if out, code := e2e.Sh(t, dir, "crs sync --db 0 --source "+src.URL+" -u "+c3.URL()); code != 4 || !strings.Contains(out, "--replace") {
		t.Errorf("a second run without --replace: exit %d\n%s", code, out)
	}
	out, code := e2e.Sh(t, dir, "crs sync --progress plain --replace --cutover --pause 60s --db 0 --source "+src.URL+" -u "+c3.URL())
	if code != 0 || !strings.Contains(out, "cutover done") {
		t.Fatalf("exit %d\n%s", code, out)
	}
	n, _ := redistest.Client(t, src, 0).DBSize(context.Background()).Result()
	assertClustersSynced(t, dir, src.URL, c3.URL(), n, c3.Keys(t), c3.Client(t), w)
	t.Log(e2e.LineWith(out, "cutover done"))
}

// syncIntoCluster starts a server of 3,000 keys, a writer on it and a
// 3-master cluster, and crs sync (with flags) from the one into the
// other; it returns once the sync streams.
func syncIntoCluster(t *testing.T, flags string) (dir string, src *redisserver.Server, c3 *redistest.Cluster, w *writer, cmd *exec.Cmd, output func() string) {
	t.Helper()
	dir = t.TempDir()
	src = redistest.Start(t)
	e2e.FillMany(t, src, 3000)
	c3 = redistest.StartCluster(t, 3, 0, "")
	w = startMixWriter(t, src)
	cmd, output = e2e.Start(t, dir, "crs sync --progress plain"+flags+" --db 0 --source "+src.URL+" -u "+c3.URL())
	redistest.WaitFor(t, "the stream phase", func() bool { return strings.Contains(output(), "phase 2") })
	return dir, src, c3, w, cmd, output
}

// TestSyncIntoReshardingCluster syncs a server into a 3-master cluster
// while the writer runs, and moves every slot of the first master to the
// second (redis-cli --cluster reshard: ASK while each slot moves, MOVED
// after) while the stream is applied: crs follows the redirections, and
// after the cutover crs verify finds the target equal to the source.
func TestSyncIntoReshardingCluster(t *testing.T) {
	dir, src, c3, w, cmd, output := syncIntoCluster(t, " --pause 60s")
	defer w.Stop(t, src)
	a, b := c3.Nodes[0], c3.Nodes[1]
	reshard := fmt.Sprintf("redis-cli --cluster reshard %s --cluster-from %s --cluster-to %s --cluster-slots 16384 --cluster-yes --cluster-pipeline 20 >reshard.log 2>&1 || { tail -5 reshard.log; exit 1; }",
		a.Addr, redistest.NodeID(t, a), redistest.NodeID(t, b))
	if out, code := e2e.Sh(t, dir, reshard); code != 0 {
		cmd.Process.Kill()
		t.Fatalf("reshard: exit %d\n%s\n%s", code, out, output())
	}
	cmd.Process.Signal(syscall.SIGUSR1)
	if err := cmd.Wait(); e2e.ExitCodeOf(err) != 0 || !strings.Contains(output(), "cutover done") || !strings.Contains(output(), "followed the target cluster's redirections") {
		t.Fatalf("exit %d\n%s", e2e.ExitCodeOf(err), output())
	}
	n, _ := redistest.Client(t, src, 0).DBSize(context.Background()).Result()
	assertClustersSynced(t, dir, src.URL, c3.URL(), n, c3.Keys(t), c3.Client(t), w)
	t.Log(e2e.LineWith(output(), "redirections"))
}

// TestSyncClusterResumes syncs a cluster into a standalone server, one
// link per master, kills crs mid-stream and runs it again: each link
// continues from its own position on the target, with no full copy, and
// after the cutover the counters equal the writer's.
func TestSyncClusterResumes(t *testing.T) {
	dir := t.TempDir()
	c3 := redistest.StartCluster(t, 3, 0, "", "--repl-backlog-size", "256mb")
	redistest.FillCluster(t, c3, 2000)
	dst := redistest.Start(t)
	w := startMixWriterOn(t, c3.Client(t))
	defer w.Stop(t, masters(c3, 3)...)
	args := " --progress plain --source " + c3.Nodes[0].URL + " -u " + dst.URL
	cmd, _ := e2e.Start(t, dir, "crs sync"+args)
	// Every link streams once the target holds its position.
	dc := redistest.Client(t, dst, 0)
	redistest.WaitFor(t, "every link streaming", func() bool {
		keys, _ := dc.Keys(context.Background(), livesync.CheckpointKey+":*").Result()
		return len(keys) == 3
	})
	cmd.Process.Kill()
	cmd.Wait()
	out, code := e2e.Sh(t, dir, "crs sync --cutover --pause 60s"+args)
	if code != 0 || strings.Contains(out, "phase 1") || strings.Count(out, "continuing from offset") != 3 {
		t.Fatalf("the second run: exit %d\n%s", code, out)
	}
	n, _ := redistest.Client(t, dst, 0).DBSize(context.Background()).Result()
	assertClustersSynced(t, dir, c3.URL(), dst.URL, c3.Keys(t), n, redistest.Client(t, dst, 0), w)
	t.Log(e2e.LineWith(out, "crs sync: done"))
}

// TestSyncSelection syncs only some keys under new names while a writer
// writes those and others: the target holds the chosen keys, renamed,
// equal to the source's; a command that writes chosen and other keys at
// once stops the sync, naming it.
func TestSyncSelection(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	for _, mode := range []string{"replication", "notify"} {
		src := redistest.Start(t)
		c := redistest.Client(t, src, 0)
		for i := 0; i < 200; i++ {
			c.Set(ctx, fmt.Sprintf("app:%d", i), i, 0)
			c.Set(ctx, fmt.Sprintf("other:%d", i), i, 0)
		}
		dst := redistest.Start(t)
		stop := make(chan struct{})
		done := make(chan struct{})
		go func() {
			defer close(done)
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				c.Incr(ctx, fmt.Sprintf("app:%d", i%300))
				c.Incr(ctx, fmt.Sprintf("other:%d", i%300))
				c.RPush(ctx, "app:list", i)
				if i%50 == 0 {
					// A container's keys (XGROUP CREATE key …) are renamed
					// and chosen like any other's.
					for _, s := range []string{"app:stream", "other:stream"} {
						c.XGroupCreateMkStream(ctx, s, fmt.Sprintf("g%d", i), "$")
						c.XAdd(ctx, &redis.XAddArgs{Stream: s, Values: []any{"i", i}})
					}
				}
			}
		}()
		flags := " --match 'app:*' --key-prefix new:"
		out, code := e2e.Sh(t, dir, "crs sync --mode "+mode+" --cutover --pause 30s"+flags+" --source "+src.URL+" -u "+dst.URL)
		if code != 0 || !strings.Contains(out, "cutover done") {
			close(stop)
			t.Fatalf("%s: exit %d\n%s", mode, code, out)
		}
		if out, code := e2e.Sh(t, dir, "crs verify"+flags+" --source "+src.URL+" --target "+dst.URL); code != 0 || !strings.Contains(out, " 0 differences") {
			t.Errorf("%s: verify: exit %d\n%s", mode, code, out)
		}
		keys, _ := redistest.Keys(ctx, redistest.Client(t, dst, 0))
		for _, k := range keys {
			if !strings.HasPrefix(k, "new:app:") {
				t.Errorf("%s: the target holds %q", mode, k)
				break
			}
		}
		c.Do(ctx, "CLIENT", "UNPAUSE")
		close(stop)
		<-done
		t.Logf("%s: %d keys on the target; %s", mode, len(keys), e2e.LineWith(out, "crs sync: done"))
	}
	// A command on a chosen key and another at once cannot be split.
	src := redistest.Start(t)
	c := redistest.Client(t, src, 0)
	c.Set(ctx, "app:1", 1, 0)
	cmd, output := e2e.Start(t, dir, "crs sync --match 'app:*' --source "+src.URL+" -u "+redistest.Start(t).URL)
	redistest.WaitFor(t, "the stream phase", func() bool { return strings.Contains(output(), "phase 2") })
	c.MSet(ctx, "app:2", 2, "other:2", 2)
	err := cmd.Wait()
	if code := e2e.ExitCodeOf(err); code != 4 || !strings.Contains(output(), "MSET writes keys the selection takes and keys it does not") {
		t.Errorf("a split command: exit %d\n%s", code, output())
	}
}

// TestSyncStopsWhenTheSourceReshards moves an empty slot of the source
// cluster to another master mid-sync (both modes): crs stops, naming the
// slot.
func TestSyncStopsWhenTheSourceReshards(t *testing.T) {
	for _, mode := range []string{"replication", "notify"} {
		t.Run(mode, func(t *testing.T) {
			ctx := context.Background()
			c := redistest.StartCluster(t, 3, 0, "")
			redistest.FillCluster(t, c, 500)
			a, b := c.Nodes[0], c.Nodes[1]
			slot := redistest.EmptySlot(t, a)
			dir := t.TempDir()
			cmd, output := e2e.Start(t, dir, "crs sync --mode "+mode+" --progress plain --source "+a.URL+" -u "+redistest.Start(t).URL)
			redistest.WaitFor(t, "the stream phase", func() bool { return strings.Contains(output(), "phase 2") })
			for _, s := range []*redisserver.Server{a, b} {
				if err := redistest.Client(t, s, 0).Do(ctx, "CLUSTER", "SETSLOT", slot, "NODE", redistest.NodeID(t, b)).Err(); err != nil {
					t.Fatal(err)
				}
			}
			err := cmd.Wait()
			if code := e2e.ExitCodeOf(err); code != 4 || !strings.Contains(output(), "the source cluster moved") || !strings.Contains(output(), fmt.Sprintf("slot %d (", slot)) {
				t.Errorf("exit %d\n%s", code, output())
			}
			t.Log(e2e.LineWith(output(), "moved"))
		})
	}
}

// TestSyncCutoverOnSignal cuts over a running sync with SIGUSR1.
func TestSyncCutoverOnSignal(t *testing.T) {
	src, dst, w, dir := syncPair(t, 500)
	cmd, output := e2e.Start(t, dir, "crs sync --progress plain --pause 60s --source "+src.URL+" -u "+dst.URL)
	redistest.WaitFor(t, "in sync", func() bool { return strings.Contains(output(), "crs sync: in sync") })
	cmd.Process.Signal(syscall.SIGUSR1)
	if err := cmd.Wait(); e2e.ExitCodeOf(err) != 0 || !strings.Contains(output(), "cutover asked for") || !strings.Contains(output(), "cutover done") {
		w.Stop(t, src)
		t.Fatalf("exit %d\n%s", e2e.ExitCodeOf(err), output())
	}
	assertSynced(t, src, dst, w)
	w.Stop(t, src)
}

// TestSyncBacklogLost: a sync stopped while the source took more writes
// than its backlog holds cannot continue: crs says so, naming the
// offsets, and --replace starts over.
func TestSyncBacklogLost(t *testing.T) {
	ctx := context.Background()
	src := redistest.Start(t, "--repl-backlog-size", "16kb")
	e2e.FillMany(t, src, 500)
	dst := redistest.Start(t)
	dir := t.TempDir()
	args := " --progress plain --source " + src.URL + " -u " + dst.URL
	cmd, output := e2e.Start(t, dir, "crs sync"+args)
	redistest.WaitFor(t, "the stream phase", func() bool { return strings.Contains(output(), "phase 2") })
	cmd.Process.Kill()
	cmd.Wait()
	c := redistest.Client(t, src, 0)
	for i := 0; i < 2000; i++ { // about 100 KB of writes, past the 16 KB backlog
		c.Set(ctx, fmt.Sprintf("more:%d", i), strings.Repeat("x", 20), 0)
	}
	out, code := e2e.Sh(t, dir, "crs sync --cutover"+args)
	if code != 4 || !strings.Contains(out, "no longer holds the position") || !strings.Contains(out, "--replace") {
		t.Fatalf("exit %d\n%s", code, out)
	}
	t.Log(e2e.LineWith(out, "no longer holds"))
	if out, code := e2e.Sh(t, dir, "crs sync --replace --cutover"+args); code != 0 || !strings.Contains(out, "phase 1") {
		t.Fatalf("--replace: exit %d\n%s", code, out)
	}
	e2e.AssertNoDiff(t, src, dst)
}

// TestSyncSourceRestartsWithItsData shuts the source down with SAVE while
// it takes writes and crs syncs it, then starts it again with its data:
// the same crs sync continues from the position the target recorded, with
// no full copy, and cuts over. The REPLCONF GETACK a source sends while
// shutting down counts toward the position like every byte of the stream
// (it was once consumed and not recorded, which left the target 37 bytes
// behind the restarted source's backlog).
func TestSyncSourceRestartsWithItsData(t *testing.T) {
	ctx := context.Background()
	src, dst := redistest.Start(t), redistest.Start(t)
	e2e.FillMany(t, src, 1000)
	dir := t.TempDir()
	args := " --progress plain --source " + src.URL + " -u " + dst.URL
	cmd, output := e2e.Start(t, dir, "crs sync"+args)
	redistest.WaitFor(t, "the stream phase", func() bool { return strings.Contains(output(), "phase 2") })
	c := redistest.Client(t, src, 0)
	for i := range 500 {
		if err := c.Set(ctx, fmt.Sprintf("during:%d", i), i, 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	redistest.WaitFor(t, "the writes applied", func() bool {
		n, _ := redistest.Client(t, dst, 0).Exists(ctx, "during:499").Result()
		return n == 1
	})
	c.Do(ctx, "SHUTDOWN", "SAVE")
	if err := cmd.Wait(); e2e.ExitCodeOf(err) == 0 {
		t.Fatalf("crs sync went on after the source shut down:\n%s", output())
	}
	if err := src.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	c.Set(ctx, "after:restart", "1", 0)
	out, code := e2e.Sh(t, dir, "crs sync --cutover"+args)
	if code != 0 || strings.Contains(out, "phase 1") || !strings.Contains(out, "continuing from offset") {
		t.Fatalf("after the restart: exit %d\n%s", code, out)
	}
	e2e.AssertNoDiff(t, src, dst)
	t.Log(e2e.LineWith(out, "continuing from offset"))
}

// TestSyncOnePerTarget starts a second crs sync into a target while the
// first runs: it stops at once, exit 4, naming the first (pid, since),
// and the first goes on to a cutover that leaves the target equal to the
// source, with a == b (two syncs applying the stream from one position
// would have doubled it).
func TestSyncOnePerTarget(t *testing.T) {
	src, dst, w, dir := syncPair(t, 1000)
	defer w.Stop(t, src)
	args := " --progress plain --source " + src.URL + " -u " + dst.URL
	cmd, output := e2e.Start(t, dir, "crs sync"+args)
	redistest.WaitFor(t, "in sync", func() bool { return strings.Contains(output(), "crs sync: in sync") })
	out, code := e2e.Sh(t, t.TempDir(), "crs sync"+args)
	if code != 4 || !strings.Contains(out, "another crs sync writes to this target") || !strings.Contains(out, fmt.Sprintf("pid %d ", cmd.Process.Pid)) {
		t.Fatalf("the second sync: exit %d\n%s", code, out)
	}
	t.Log(e2e.LineWith(out, "another crs sync"))
	cmd.Process.Signal(syscall.SIGUSR1)
	if err := cmd.Wait(); e2e.ExitCodeOf(err) != 0 || !strings.Contains(output(), "cutover done") {
		t.Fatalf("the first sync: exit %d\n%s", e2e.ExitCodeOf(err), output())
	}
	assertSynced(t, src, dst, w)
}

// TestSyncFailedCheckGoesOn: a key written to the target behind the
// sync's back fails a rehearsal's check, naming the count that differs,
// and the sync goes on (the pause ended: the writer keeps writing to the
// source); once the key is gone, the cutover's check passes.
func TestSyncFailedCheckGoesOn(t *testing.T) {
	ctx := context.Background()
	src, dst, w, dir := syncPair(t, 1000)
	defer w.Stop(t, src)
	cmd, output := e2e.Start(t, dir, "crs sync --progress plain --source "+src.URL+" -u "+dst.URL)
	redistest.WaitFor(t, "in sync", func() bool { return strings.Contains(output(), "crs sync: in sync") })
	dc := redistest.Client(t, dst, 0)
	dc.Set(ctx, "stray", "1", 0)
	cmd.Process.Signal(syscall.SIGUSR2)
	redistest.WaitFor(t, "the rehearsal's check to fail", func() bool { return strings.Contains(output(), "rehearsal FAILED") })
	if !strings.Contains(output(), "keys without an expiry on the target") {
		t.Fatalf("the failed check does not say what differed:\n%s", output())
	}
	rounds := w.Rounds.Load()
	redistest.WaitFor(t, "the writer going on after the failed check", func() bool { return w.Rounds.Load() > rounds+100 })
	dc.Del(ctx, "stray")
	cmd.Process.Signal(syscall.SIGUSR1)
	if err := cmd.Wait(); e2e.ExitCodeOf(err) != 0 || !strings.Contains(output(), "cutover done") {
		t.Fatalf("exit %d\n%s", e2e.ExitCodeOf(err), output())
	}
	assertSynced(t, src, dst, w)
	t.Log(e2e.LineWith(output(), "rehearsal FAILED"))
}

// TestSyncPreflightFirst: a target that holds keys is refused before the
// source is asked for a snapshot, naming the databases and the flag crs
// sync takes (not crsload's --skip-existing); --replace says what it
// empties, and --cutover is refused up front where the source cannot
// pause its writes.
func TestSyncPreflightFirst(t *testing.T) {
	ctx := context.Background()
	src, dst := redistest.Start(t), redistest.Start(t)
	e2e.FillMany(t, src, 100)
	redistest.Client(t, dst, 3).Set(ctx, "old", "1", 0)
	dir := t.TempDir()
	out, code := e2e.Sh(t, dir, "crs sync --cutover --source "+src.URL+" -u "+dst.URL)
	if code != 4 || !strings.Contains(out, "db 3 holds 1 keys") || !strings.Contains(out, "--replace") || strings.Contains(out, "--skip-existing") || strings.Contains(out, "phase 1") {
		t.Fatalf("a target that holds keys: exit %d\n%s", code, out)
	}
	if n, _ := redistest.Client(t, src, 0).Info(ctx, "replication").Result(); !strings.Contains(n, "connected_slaves:0") {
		t.Errorf("the source was asked for a snapshot before the pre-flight:\n%s", n)
	}
	out, code = e2e.Sh(t, dir, "crs sync --replace --cutover --source "+src.URL+" -u "+dst.URL)
	if code != 0 || !strings.Contains(out, "--replace empties the whole target (FLUSHALL) before the copy: db 3 holds 1 keys") {
		t.Fatalf("--replace: exit %d\n%s", code, out)
	}
	for _, b := range redistest.Servers(t) {
		if b.AtLeast(6, 2) {
			continue
		}
		old := redistest.StartBinary(t, b.Path)
		out, code := e2e.Sh(t, dir, "crs sync --cutover --source "+old.URL+" -u "+redistest.Start(t).URL)
		if code != 4 || !strings.Contains(out, "--cutover pauses the source's writes") || strings.Contains(out, "phase 1") {
			t.Fatalf("--cutover from %s: exit %d\n%s", b, code, out)
		}
		t.Logf("%s: %s", b, e2e.LineWith(out, "--cutover pauses"))
	}
}

// TestSyncSourceCredentials: the source's password comes from
// CRS_SOURCE_AUTH (REDISCLI_AUTH is the target's), never the URL; a
// wrong one names the source.
func TestSyncSourceCredentials(t *testing.T) {
	src := redistest.Start(t, "--requirepass", "s3cret-src")
	dst := redistest.Start(t, "--requirepass", "s3cret-dst")
	c := redis.NewClient(&redis.Options{Addr: src.Addr, Password: "s3cret-src", Protocol: 2})
	defer c.Close()
	c.Set(context.Background(), "k", "v", 0)
	dir := t.TempDir()
	args := "crs sync --cutover --source " + src.URL + " -u " + dst.URL
	out, code := e2e.Sh(t, dir, args, "CRS_SOURCE_AUTH=s3cret-src", "REDISCLI_AUTH=s3cret-dst")
	if code != 0 || !strings.Contains(out, "cutover done") {
		t.Fatalf("exit %d\n%s", code, out)
	}
	out, code = e2e.Sh(t, dir, args+" --replace", "CRS_SOURCE_AUTH=wrong", "REDISCLI_AUTH=s3cret-dst")
	if code != 5 || !strings.Contains(out, "the source") || strings.Contains(out, "wrong") {
		t.Fatalf("a wrong source password: exit %d\n%s", code, out)
	}
	t.Log(e2e.LineWith(out, "the source"))
}

// TestSyncSourceDemoted: the source made a replica of another server
// mid-sync (a failover that demotes it) stops the sync loudly, exit 4,
// naming its new master, instead of syncing a server whose writes now
// come from elsewhere.
func TestSyncSourceDemoted(t *testing.T) {
	src, dst, other := redistest.Start(t), redistest.Start(t), redistest.Start(t)
	e2e.FillMany(t, src, 200)
	cmd, output := e2e.Start(t, t.TempDir(), "crs sync --progress plain --source "+src.URL+" -u "+dst.URL)
	redistest.WaitFor(t, "in sync", func() bool { return strings.Contains(output(), "crs sync: in sync") })
	host, port, _ := strings.Cut(other.Addr, ":")
	redistest.Client(t, src, 0).Do(context.Background(), "REPLICAOF", host, port)
	err := cmd.Wait()
	if code := e2e.ExitCodeOf(err); code != 4 || !strings.Contains(output(), "is now a replica (of "+other.Addr) {
		t.Fatalf("exit %d\n%s", code, output())
	}
	t.Log(e2e.LineWith(output(), "is now a replica"))
}

// TestSyncKilledPutsSettingsBack: a sync by notifications killed with
// SIGKILL leaves the source's notify-keyspace-events on (and the target's
// expired events, in a sync by replication); the next crs sync puts back
// what the killed one changed before it changes it again, so that at its
// end both settings are what they were before either ran.
func TestSyncKilledPutsSettingsBack(t *testing.T) {
	ctx := context.Background()
	src := noReplication(t)
	dst := redistest.Start(t)
	e2e.FillMany(t, src, 200)
	setting := func(s *redisserver.Server) string {
		v, _ := redistest.Client(t, s, 0).ConfigGet(ctx, "notify-keyspace-events").Result()
		return v["notify-keyspace-events"]
	}
	dir := t.TempDir()
	args := " --progress plain --source " + src.URL + " -u " + dst.URL
	cmd, output := e2e.Start(t, dir, "crs sync --mode notify"+args)
	redistest.WaitFor(t, "in sync", func() bool { return strings.Contains(output(), "crs sync: in sync") })
	cmd.Process.Kill()
	cmd.Wait()
	if setting(src) == "" {
		t.Fatal("the killed sync left the source's notifications off: nothing to put back")
	}
	out, code := e2e.Sh(t, dir, "crs sync --mode notify --replace --cutover"+args)
	if code != 0 || !strings.Contains(out, "put notify-keyspace-events of "+src.Addr+` back to ""`) {
		t.Fatalf("exit %d\n%s", code, out)
	}
	if v := setting(src); v != "" {
		t.Errorf("the source's notify-keyspace-events is %q after the second sync", v)
	}
	t.Log(e2e.LineWith(out, "put notify-keyspace-events"))
}

// TestSyncSourceFailover: a Sentinel-managed source fails over while the
// old master stays a master (it refuses REPLICAOF, as one cut off from
// its sentinels would go on): the sync read it on, and no one said so.
// Now it stops, naming the new master, exit 4; run again against the
// sentinels, it continues from the target's position on the new master.
func TestSyncSourceFailover(t *testing.T) {
	ctx := context.Background()
	master := redistest.Start(t, "--rename-command", "REPLICAOF", "", "--rename-command", "SLAVEOF", "")
	e2e.FillMany(t, master, 2000)
	_, mport, _ := strings.Cut(master.Addr, ":")
	replica := redistest.Start(t, "--replicaof", "127.0.0.1", mport)
	sentinels := redistest.StartSentinels(t, master, 3)
	dst := redistest.Start(t)
	dir := t.TempDir()
	args := "crs sync --progress plain --source redis://" + sentinels[0] + " --source-sentinel-master mymaster --source-sentinel " + strings.Join(sentinels, ",") + " -u " + dst.URL
	cmd, output := e2e.Start(t, dir, args)
	redistest.WaitFor(t, "in sync", func() bool { return strings.Contains(output(), "crs sync: in sync") })
	redistest.WaitFor(t, "the replica in step with its master", func() bool {
		info, _ := redistest.Client(t, replica, 0).Info(ctx, "replication").Result()
		return strings.Contains(info, "master_link_status:up")
	})
	sc := redis.NewClient(&redis.Options{Addr: sentinels[0], Protocol: 2, DisableIdentity: true})
	defer sc.Close()
	if err := sc.Do(ctx, "SENTINEL", "FAILOVER", "mymaster").Err(); err != nil {
		t.Fatal(err)
	}
	err := cmd.Wait()
	if code := e2e.ExitCodeOf(err); code != 4 || !strings.Contains(output(), "the sentinels now name "+replica.Addr+" as master") {
		t.Fatalf("exit %d:\n%s", code, output())
	}
	if role, _ := redistest.Client(t, master, 0).Do(ctx, "ROLE").Slice(); len(role) == 0 || role[0] != "master" {
		t.Fatalf("the old master is no longer a master (%v): the test does not test what it says", role)
	}
	t.Log(e2e.LineWith(output(), "sentinels now name"))
	// Again, the same command: it continues on the new master where that
	// holds what crs applied; where crs applied what the old master took
	// after the failover (the sentinels' hellos at least), it says so and
	// --replace starts over.
	redistest.Client(t, replica, 0).Set(ctx, "after-failover", "1", 0)
	out, code := e2e.Sh(t, dir, args+" --cutover --pause 30s")
	switch {
	case code == 0 && strings.Contains(out, "continuing from offset"):
	case code == 4 && strings.Contains(out, "which the new master does not hold"):
		t.Log(e2e.LineWith(out, "does not hold"))
		if out, code = e2e.Sh(t, dir, args+" --replace --cutover --pause 30s"); code != 0 {
			t.Fatalf("--replace after the failover: exit %d:\n%s", code, out)
		}
	default:
		info, _ := redistest.Client(t, replica, 0).Info(ctx, "replication").Result()
		t.Fatalf("the sync again, after the failover: exit %d:\n%s\nthe new master: %s", code, out, info)
	}
	e2e.AssertNoDiff(t, replica, dst)
}

// TestSyncMovableKeys: commands whose keys' places depend on their
// arguments (ZUNIONSTORE, ZINTERSTORE, SORT … STORE) arrive while the
// sync streams. crs asks the target where their keys are (COMMAND
// GETKEYS), and sent that question with one argument too few, which put
// the connection out of step with its replies.
func TestSyncMovableKeys(t *testing.T) {
	ctx := context.Background()
	src, dst, w, dir := syncPair(t, 500)
	defer w.Stop(t, src)
	cmd, output := e2e.Start(t, dir, "crs sync --progress plain --pause 30s --source "+src.URL+" -u "+dst.URL)
	redistest.WaitFor(t, "in sync", func() bool { return strings.Contains(output(), "crs sync: in sync") })
	c := redistest.Client(t, src, 0)
	for i := 0; i < 50; i++ {
		c.ZAdd(ctx, "mz:a", redis.Z{Score: float64(i), Member: fmt.Sprint(i)})
		c.ZAdd(ctx, "mz:b", redis.Z{Score: float64(2 * i), Member: fmt.Sprint(i * 3)})
		c.ZUnionStore(ctx, "mz:union", &redis.ZStore{Keys: []string{"mz:a", "mz:b"}})
		c.ZInterStore(ctx, "mz:inter", &redis.ZStore{Keys: []string{"mz:a", "mz:b"}, Weights: []float64{1, 2}})
		c.RPush(ctx, "mz:list", i)
		c.SortStore(ctx, "mz:list", "mz:sorted", &redis.Sort{Order: "DESC"})
	}
	want, _ := c.ZCard(ctx, "mz:union").Result()
	redistest.WaitFor(t, "the last ZUNIONSTORE on the target", func() bool {
		n, _ := redistest.Client(t, dst, 0).ZCard(ctx, "mz:union").Result()
		return n == want
	})
	cmd.Process.Signal(syscall.SIGUSR1)
	if err := cmd.Wait(); e2e.ExitCodeOf(err) != 0 || !strings.Contains(output(), "cutover done") {
		t.Fatalf("exit %d\n%s", e2e.ExitCodeOf(err), output())
	}
	assertSynced(t, src, dst, w)
}

// TestSyncKeyExpiringBeforeItsLoad: a key of the snapshot whose expiry
// passes before the snapshot is loaded, and which the source renewed
// after the snapshot was taken (a rate-limit count: INCR, PEXPIRE),
// arrives with the source's value: the loader leaves it out and names
// it, and the sync reads it again from the source. (The RDB decoder used
// to drop it, unnamed, and the stream's INCR then made it 1 on the
// target: the cutover's check failed, exit 6.) The source
// writes its RDB slowly (rdb-key-save-delay), so the transfer outlasts
// the key's TTL, set before the snapshot began, whatever the machine's
// speed; the renewal runs once the snapshot is under way, and its INCR's
// reply shows it came before the expiry (else it runs again with a
// longer TTL).
func TestSyncKeyExpiringBeforeItsLoad(t *testing.T) {
	ctx := context.Background()
	for ttl := 3 * time.Second; ; ttl *= 2 {
		src := redistest.Start(t, "--repl-diskless-sync", "yes", "--repl-diskless-sync-delay", "0")
		c := redistest.Client(t, src, 0)
		const keys = 2000
		p := c.Pipeline()
		for i := range keys {
			p.Set(ctx, fmt.Sprintf("k:%d", i), i, 0)
		}
		if _, err := p.Exec(ctx); err != nil {
			t.Fatal(err)
		}
		delay := (ttl + time.Second).Microseconds() / keys
		if err := c.ConfigSet(ctx, "rdb-key-save-delay", fmt.Sprint(delay)).Err(); err != nil {
			t.Fatal(err)
		}
		c.Set(ctx, "count", 5, ttl)
		dst := redistest.Start(t)
		cmd, output := e2e.Start(t, t.TempDir(), "crs sync --cutover --pause 60s --progress plain --source "+src.URL+" -u "+dst.URL)
		redistest.WaitFor(t, "the snapshot under way", func() bool {
			return strings.Contains(c.Info(ctx, "persistence").Val(), "rdb_bgsave_in_progress:1")
		})
		if n, err := c.Incr(ctx, "count").Result(); err != nil || n != 6 {
			// The renewal came after the expiry: this machine is slow.
			cmd.Process.Kill()
			cmd.Wait()
			if ttl > 20*time.Second {
				t.Fatalf("the renewal never came before the key's expiry (INCR: %d, %v)", n, err)
			}
			continue
		}
		c.PExpire(ctx, "count", time.Hour)
		if err := cmd.Wait(); e2e.ExitCodeOf(err) != 0 || !strings.Contains(output(), "cutover done") {
			t.Fatalf("exit %d\n%s", e2e.ExitCodeOf(err), output())
		}
		d := redistest.Client(t, dst, 0)
		if v, ttl := d.Get(ctx, "count").Val(), d.PTTL(ctx, "count").Val(); v != "6" || ttl < 50*time.Minute {
			t.Errorf("the target's count: %q expiring in %s, want \"6\" in about an hour\n%s", v, ttl, output())
		}
		if n := d.DBSize(ctx).Val(); n != keys+1 {
			t.Errorf("the target holds %d keys, want %d", n, keys+1)
		}
		t.Log(e2e.LineWith(output(), "crs sync: done"))
		return
	}
}
