package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/crs-tool/crs/internal/e2e"
	"github.com/crs-tool/crs/internal/keyslot"

	"github.com/crs-tool/crs/format"
	"github.com/crs-tool/crs/internal/redisconn"
	"github.com/crs-tool/crs/internal/redisserver"
	"github.com/crs-tool/crs/internal/redistest"
)

func TestSlotsAgreeWithTheCluster(t *testing.T) {
	c := redistest.StartCluster(t, 3, 0, "")
	cl := redistest.Client(t, c.Nodes[0], 0)
	for _, k := range []string{"", "foo", "{user1000}.following", "foo{}{bar}", "foo{{bar}}zap", "foo{bar}{zap}", "\xff\x00", "a{b"} {
		want, err := cl.ClusterKeySlot(context.Background(), k).Result()
		if err != nil {
			t.Fatal(err)
		}
		if got := keyslot.Slot(k); int64(got) != want {
			t.Errorf("Slot(%q) = %d, CLUSTER KEYSLOT says %d", k, got, want)
		}
	}
}

func TestClusterDump(t *testing.T) {
	c := redistest.StartCluster(t, 3, 1, "")
	n := redistest.FillCluster(t, c, 600)
	dir := t.TempDir()
	// From any node, a replica too: the whole cluster.
	for _, node := range []string{c.Nodes[0].URL, c.Nodes[4].URL} {
		out, code := e2e.Sh(t, dir, "crsdump -u "+node+" -o all.zst")
		if code != 0 || !strings.Contains(out, fmt.Sprintf("dumped %d keys", n)) || !strings.Contains(out, "a cluster of 3 shards") {
			t.Fatalf("dump from %s: exit %d\n%s", node, code, out)
		}
	}
	// Every shard's replica known to the node asked (gossip takes a moment).
	redistest.WaitFor(t, "each shard's replica in the slot map", func() bool {
		//lint:ignore SA1019 CLUSTER SHARDS is Redis 7.0+, and crs reads clusters of 6.x too
		slots, err := redistest.Client(t, c.Nodes[0], 0).ClusterSlots(context.Background()).Result()
		if err != nil || len(slots) == 0 {
			return false
		}
		for _, sl := range slots {
			if len(sl.Nodes) < 2 {
				return false
			}
		}
		return true
	})
	out, code := e2e.Sh(t, dir, "crsdump --from-replicas -u "+c.Nodes[0].URL+" -o replicas.zst")
	if code != 0 || !strings.Contains(out, fmt.Sprintf("dumped %d keys", n)) {
		t.Fatalf("--from-replicas: exit %d\n%s", code, out)
	}
	out, code = e2e.Sh(t, dir, "crsdump --node-only -u "+c.Nodes[1].URL+" -o one.zst")
	if code != 0 || !strings.Contains(out, "node-only: 1 of 3 shards") {
		t.Fatalf("--node-only: exit %d\n%s", code, out)
	}
	nodeKeys, _ := redistest.Client(t, c.Nodes[1], 0).DBSize(context.Background()).Result()
	if !strings.Contains(out, fmt.Sprintf("dumped %d keys", nodeKeys)) {
		t.Errorf("--node-only dumped other than the node's %d keys: %s", nodeKeys, out)
	}
	out, _ = e2e.Sh(t, dir, "zstd -dc one.zst | head -1")
	if !strings.Contains(out, `"node_only":true`) || !strings.Contains(out, `"cluster":{"shards":[`) {
		t.Errorf("header: %s", out)
	}
	// The dumps hold what the cluster holds, key by key.
	for _, f := range []string{"all.zst", "replicas.zst"} {
		out, code = e2e.Sh(t, dir, "crs verify -u "+c.Nodes[2].URL+" "+f)
		if code != 0 || !strings.Contains(out, fmt.Sprintf("%d keys checked, 0 differences", n)) {
			t.Errorf("verify %s: exit %d\n%s", f, code, out)
		}
	}
}

// TestClusterRoundTrips moves the round-trip corpus standalone → cluster,
// a cluster → standalone, and a cluster of 3 shards → one of 4, comparing
// each key with crs verify and the key counts.
func TestClusterRoundTrips(t *testing.T) {
	dir := t.TempDir()
	src := redistest.Start(t)
	soon := fill(t, src)
	fillStreams(t, src)
	// Keys about to expire would make the counts race the clock.
	if err := redistest.Client(t, src, 0).Del(context.Background(), soon...).Err(); err != nil {
		t.Fatal(err)
	}
	c3 := redistest.StartCluster(t, 3, 0, "")
	c4 := redistest.StartCluster(t, 4, 0, "")
	if out, code := e2e.Sh(t, dir, "crsdump -q -u "+src.URL+" -o standalone.zst"); code != 0 {
		t.Fatalf("dump: %d %s", code, out)
	}
	// Keys in database 15 do not fit a cluster without --db 0.
	out, code := e2e.Sh(t, dir, "crsload -u "+c3.URL()+" standalone.zst")
	if code != 4 || !strings.Contains(out, "db 15 (2 keys)") || !strings.Contains(out, "--db 0") || c3.Keys(t) != 0 {
		t.Fatalf("load of db 15 into a cluster: exit %d\n%s", code, out)
	}
	out, code = e2e.Sh(t, dir, "crsload --db 0 -u "+c3.URL()+" standalone.zst")
	if code != 0 {
		t.Fatalf("standalone → cluster: exit %d\n%s", code, out)
	}
	if out, code := e2e.Sh(t, dir, "crs verify --db 0 -u "+c3.URL()+" standalone.zst"); code != 0 || !strings.Contains(out, " 0 differences") {
		t.Errorf("verify standalone → cluster: exit %d\n%s", code, out)
	}
	n0, _ := redistest.Client(t, src, 0).DBSize(context.Background()).Result()
	n15, _ := redistest.Client(t, src, 15).DBSize(context.Background()).Result()
	if got := c3.Keys(t); got != n0+n15 {
		t.Errorf("the cluster holds %d keys, the source %d", got, n0+n15)
	}

	// cluster (3 shards) → cluster (4 shards), and → standalone.
	if out, code := e2e.Sh(t, dir, "crsdump -q -u "+c3.Nodes[1].URL+" -o cluster.zst"); code != 0 {
		t.Fatalf("cluster dump: %d %s", code, out)
	}
	if out, code := e2e.Sh(t, dir, "crsload -u "+c4.URL()+" cluster.zst && crs verify -u "+c4.Nodes[3].URL+" cluster.zst"); code != 0 || !strings.Contains(out, " 0 differences") {
		t.Errorf("cluster 3 → cluster 4: exit %d\n%s", code, out)
	}
	if got := c4.Keys(t); got != n0+n15 {
		t.Errorf("the 4-shard cluster holds %d keys, want %d", got, n0+n15)
	}
	dst := redistest.Start(t)
	if out, code := e2e.Sh(t, dir, "crsload -u "+dst.URL+" cluster.zst && crs verify -u "+dst.URL+" cluster.zst"); code != 0 || !strings.Contains(out, " 0 differences") {
		t.Errorf("cluster → standalone: exit %d\n%s", code, out)
	}
	if got, _ := redistest.Client(t, dst, 0).DBSize(context.Background()).Result(); got != n0+n15 {
		t.Errorf("the standalone target holds %d keys, want %d", got, n0+n15)
	}
	// stats and verify take a cluster on either side.
	if out, code := e2e.Sh(t, dir, "crs stats -u "+c4.Nodes[2].URL); code != 0 || !strings.Contains(out, fmt.Sprintf("db 0: %d keys", n0+n15)) {
		t.Errorf("stats of the cluster: exit %d\n%s", code, out)
	}
	var perShard int64
	for _, node := range c4.Nodes {
		out, code := e2e.Sh(t, dir, "crs stats --json --node-only -u "+node.URL)
		n, _ := redistest.Client(t, node, 0).DBSize(context.Background()).Result()
		if code != 0 || (n > 0 && !strings.Contains(out, fmt.Sprintf(`"keys": %d,`, n))) {
			t.Errorf("stats --node-only of %s (%d keys): exit %d\n%s", node.Addr, n, code, out)
		}
		perShard += n
	}
	if perShard != n0+n15 {
		t.Errorf("the shards hold %d keys, want %d", perShard, n0+n15)
	}
	for _, pair := range [][2]string{{c4.URL(), dst.URL}, {dst.URL, c3.URL()}} {
		if out, code := e2e.Sh(t, dir, "crs verify --source "+pair[0]+" --target "+pair[1]); code != 0 || !strings.Contains(out, fmt.Sprintf("%d keys checked, 0 differences", n0+n15)) {
			t.Errorf("verify --source %s --target %s: exit %d\n%s", pair[0], pair[1], code, out)
		}
	}
}

// keysInSlot returns n keys that hash to slot.
func keysInSlot(slot, n int) []string {
	var out []string
	for i := 0; len(out) < n; i++ {
		if k := fmt.Sprintf("key:%d", i); keyslot.Slot(k) == slot {
			out = append(out, k)
		}
	}
	return out
}

// TestClusterLoadFollowsRedirections feeds crsload a dump through its
// standard input, and between two halves of it moves one slot from a
// master to another (the second half's keys in it get MOVED) and starts
// moving a second slot (its keys get ASK). Every key must land, on the
// node that serves its slot in the end.
func TestClusterLoadFollowsRedirections(t *testing.T) {
	c := redistest.StartCluster(t, 3, 0, "")
	ctx := context.Background()
	a, b := c.Nodes[0], c.Nodes[1]
	aID, bID := redistest.NodeID(t, a), redistest.NodeID(t, b)
	// Slots 100 and 101 are a's (redis-cli gives the first node 0-5460).
	moved, asked := keysInSlot(100, 50), keysInSlot(101, 50)
	var first []string
	for i := 0; len(first) < 3000; i++ {
		if k := fmt.Sprintf("other:%d", i); keyslot.Slot(k) != 100 && keyslot.Slot(k) != 101 {
			first = append(first, k)
		}
	}
	pr, pw := io.Pipe()
	dir := t.TempDir()
	cmd := exec.Command(filepath.Join(e2e.Binaries(t), "crsload"), "-u", c.URL())
	cmd.Dir, cmd.Stdin = dir, pr
	var out strings.Builder
	cmd.Stderr = &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	fw := format.NewWriter(pw)
	total := len(first) + len(moved) + len(asked)
	// No field expiries, no modules: crsload need not read the whole
	// input before it writes (as it would to look for them against this
	// 7.0 target).
	hdr := format.Header{CreatedMs: time.Now().UnixMilli(), NoFieldExpiry: true, Modules: []string{}, Databases: []format.Database{{DB: 0, Keys: int64(total)}}}
	if err := fw.WriteHeader(hdr); err != nil {
		t.Fatal(err)
	}
	value := strings.Repeat("v", 200)
	write := func(keys []string) {
		for _, k := range keys {
			if err := fw.Write(&format.Record{Key: k, Type: format.TypeList, Elems: []string{k, value}}); err != nil {
				t.Fatal(err)
			}
		}
	}
	write(first)
	redistest.WaitFor(t, "the first half on the cluster", func() bool { return c.Keys(t) > 0 })
	setslot := func(s *redisserver.Server, args ...interface{}) {
		t.Helper()
		if err := redistest.Client(t, s, 0).Do(ctx, append([]interface{}{"CLUSTER", "SETSLOT"}, args...)...).Err(); err != nil {
			t.Fatal(err)
		}
	}
	// Slot 100 moves to b (it holds no keys yet); slot 101 starts to.
	setslot(b, 100, "IMPORTING", aID)
	setslot(a, 100, "MIGRATING", bID)
	for _, s := range c.Nodes {
		setslot(s, 100, "NODE", bID)
	}
	setslot(b, 101, "IMPORTING", aID)
	setslot(a, 101, "MIGRATING", bID)
	write(moved)
	write(asked)
	if err := fw.Close(); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("crsload: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "cluster redirections") {
		t.Errorf("no redirection in the summary:\n%s", out.String())
	}
	for _, s := range c.Nodes { // slot 101's move completes
		setslot(s, 101, "NODE", bID)
	}
	c.WaitStable(t)
	bc := redistest.Client(t, b, 0)
	for _, k := range append(append([]string{}, moved...), asked...) {
		if v, err := bc.LRange(ctx, k, 0, -1).Result(); err != nil || len(v) != 2 || v[0] != k {
			t.Fatalf("key %s on %s: %v %v", k, b.Addr, v, err)
		}
	}
	if got := c.Keys(t); got != int64(total) {
		t.Errorf("the cluster holds %d keys, want %d", got, total)
	}
	t.Log(strings.TrimSpace(out.String()))
}

// TestClusterDumpDuringResharding: a slot that changes hands while the
// dump runs fails the dump, naming it. The third master is paused before
// the dump starts, so the dump waits on it after it has read the slot map
// and readied the first two shards (the second sees its connection); an
// empty slot moves then, and the paused master resumes: no timing.
func TestClusterDumpDuringResharding(t *testing.T) {
	reshardDuringDump(t, "", func(t *testing.T, slot int, a, b *redisserver.Server, bID string) {
		for _, s := range []*redisserver.Server{a, b} {
			if err := redistest.Client(t, s, 0).Do(context.Background(), "CLUSTER", "SETSLOT", slot, "NODE", bID).Err(); err != nil {
				t.Error(err)
			}
		}
	})
}

// TestClusterDumpDuringAtomicSlotMigration is the same with Redis 8.4's
// atomic slot migration (CLUSTER MIGRATION IMPORT on the node that takes
// the slot), on the newest Redis at hand that has it.
func TestClusterDumpDuringAtomicSlotMigration(t *testing.T) {
	var bin *redistest.Binary
	for _, b := range redistest.Servers(t) {
		if b.Engine == "redis" && b.AtLeast(8, 4) {
			bin = &b
		}
	}
	if bin == nil {
		t.Skip("no Redis 8.4 or later at hand")
	}
	t.Logf("on %s", bin.Name)
	reshardDuringDump(t, bin.Path, func(t *testing.T, slot int, a, b *redisserver.Server, bID string) {
		ctx := context.Background()
		bc := redistest.Client(t, b, 0)
		if err := bc.Do(ctx, "CLUSTER", "MIGRATION", "IMPORT", slot, slot).Err(); err != nil {
			t.Error(err)
			return
		}
		redistest.WaitFor(t, "the migration to complete", func() bool {
			ac := redistest.Client(t, a, 0)
			nodes, _ := ac.ClusterNodes(ctx).Result()
			for _, line := range strings.Split(nodes, "\n") {
				f := strings.Fields(line)
				if len(f) > 8 && f[0] == bID {
					for _, r := range f[8:] {
						if r == strconv.Itoa(slot) {
							return true
						}
					}
				}
			}
			return false
		})
	})
}

// reshardDuringDump runs the resharding test on a cluster of bin
// (Debian's with ""), moving the slot with move.
func reshardDuringDump(t *testing.T, bin string, move func(t *testing.T, slot int, a, b *redisserver.Server, bID string)) {
	c := redistest.StartCluster(t, 3, 0, bin, "--cluster-node-timeout", "60000") // the pause must not look like a failure
	redistest.FillCluster(t, c, 3000)
	ctx := context.Background()
	a, b, paused := c.Nodes[0], c.Nodes[1], c.Nodes[2]
	slot := redistest.EmptySlot(t, a)
	dir := t.TempDir()
	bID := redistest.NodeID(t, b)
	bc := redistest.Client(t, b, 0)
	connections := func() int64 {
		info, _ := bc.Info(ctx, "stats").Result()
		n, _ := strconv.ParseInt(redisconn.InfoFields(info)["total_connections_received"], 10, 64)
		return n
	}
	before := connections()
	paused.Pause()
	cmd, output := e2e.Start(t, dir, "crsdump --scan-count 10 -u "+a.URL+" -o d.zst")
	redistest.WaitFor(t, "the dump to ready the second shard", func() bool { return connections() > before })
	move(t, slot, a, b, bID)
	paused.Resume()
	err := cmd.Wait()
	if code := e2e.ExitCodeOf(err); code == 0 || !strings.Contains(output(), "slot map changed during the dump") || !strings.Contains(output(), fmt.Sprintf("slot %d (", slot)) {
		t.Errorf("exit %d:\n%s", code, output())
	}
	if _, err := os.Stat(filepath.Join(dir, "d.zst")); !os.IsNotExist(err) {
		t.Errorf("d.zst exists after a failed dump")
	}
}

// TestClusterFailoverMidLoad kills a master while a load runs; once its
// replica has taken over, the load run again with --replace completes,
// and the cluster holds the dump, key by key.
func TestClusterFailoverMidLoad(t *testing.T) {
	src := redistest.Start(t)
	e2e.FillMany(t, src, 60_000)
	dir := t.TempDir()
	if out, code := e2e.Sh(t, dir, "crsdump -q -u "+src.URL+" -o d.zst"); code != 0 {
		t.Fatalf("dump: %d %s", code, out)
	}
	c := redistest.StartCluster(t, 3, 1, "")
	survivor := c.Nodes[1]
	cmd, output := e2e.Start(t, dir, "crsload --retry-for 1s -u "+survivor.URL+" d.zst")
	redistest.WaitFor(t, "keys on the cluster", func() bool { return c.Keys(t) > 0 })
	c.Nodes[0].Kill()
	err := cmd.Wait()
	t.Logf("the load the failover interrupted: exit %d\n%s", e2e.ExitCodeOf(err), output())
	sc := redistest.Client(t, survivor, 0)
	redistest.WaitFor(t, "the replica to take over", func() bool {
		info, _ := sc.ClusterInfo(context.Background()).Result()
		//lint:ignore SA1019 CLUSTER SHARDS is Redis 7.0+, and crs reads clusters of 6.x too
		slots, _ := sc.ClusterSlots(context.Background()).Result()
		for _, s := range slots {
			if s.Nodes[0].Addr == c.Nodes[0].Addr {
				return false
			}
		}
		return strings.Contains(info, "cluster_state:ok")
	})
	out, code := e2e.Sh(t, dir, "crsload --replace -u "+survivor.URL+" d.zst && crs verify -u "+survivor.URL+" d.zst")
	if code != 0 || !strings.Contains(out, " 0 differences") {
		t.Fatalf("re-run after the failover: exit %d\n%s", code, out)
	}
}
