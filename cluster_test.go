package main

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/crs-tool/crs/internal/redistest"
	"github.com/crs-tool/crs/internal/slotmap"
	"github.com/redis/go-redis/v9"
)

// fillCluster writes keys with and without hash tags, of every type, with
// expiries, through a cluster client; it returns how many.
func fillCluster(t *testing.T, c *redistest.Cluster, n int) int {
	t.Helper()
	ctx := context.Background()
	cc := c.Client(t)
	for i := 0; i < n; i++ {
		tag := fmt.Sprintf("{user%d}", i%7)
		var args []interface{}
		key := fmt.Sprintf("k:%d", i)
		if i%3 == 0 {
			key = tag + key
		}
		switch i % 6 {
		case 0:
			args = []interface{}{"SET", key, i}
		case 1:
			args = []interface{}{"RPUSH", key, "a", "b", i}
		case 2:
			args = []interface{}{"HSET", key, "f", i, "g", "\xff"}
		case 3:
			args = []interface{}{"ZADD", key, 0.1, "m", 1e300, "n"}
		case 4:
			args = []interface{}{"SADD", key, "x", i}
		case 5:
			args = []interface{}{"XADD", key, "*", "f", i}
		}
		if err := cc.Do(ctx, args...).Err(); err != nil {
			t.Fatal(err)
		}
		if i%5 == 0 {
			if err := cc.Do(ctx, "PEXPIRE", key, 3_600_000+i).Err(); err != nil {
				t.Fatal(err)
			}
		}
	}
	return n
}

func TestSlotsAgreeWithTheCluster(t *testing.T) {
	c := redistest.StartCluster(t, 3, 0, "")
	cl := redistest.Client(t, c.Nodes[0], 0)
	for _, k := range []string{"", "foo", "{user1000}.following", "foo{}{bar}", "foo{{bar}}zap", "foo{bar}{zap}", "\xff\x00", "a{b"} {
		want, err := cl.ClusterKeySlot(context.Background(), k).Result()
		if err != nil {
			t.Fatal(err)
		}
		if got := slotmap.Slot(k); int64(got) != want {
			t.Errorf("Slot(%q) = %d, CLUSTER KEYSLOT says %d", k, got, want)
		}
	}
}

func TestClusterDump(t *testing.T) {
	c := redistest.StartCluster(t, 3, 1, "")
	n := fillCluster(t, c, 600)
	dir := t.TempDir()
	// From any node, a replica too: the whole cluster.
	for _, node := range []string{c.Nodes[0].URL, c.Nodes[4].URL} {
		out, code := sh(t, dir, "crsdump -u "+node+" -o all.zst")
		if code != 0 || !strings.Contains(out, fmt.Sprintf("dumped %d keys", n)) || !strings.Contains(out, "a cluster of 3 shards") {
			t.Fatalf("dump from %s: exit %d\n%s", node, code, out)
		}
	}
	out, code := sh(t, dir, "crsdump --from-replicas -u "+c.Nodes[0].URL+" -o replicas.zst")
	if code != 0 || !strings.Contains(out, fmt.Sprintf("dumped %d keys", n)) {
		t.Fatalf("--from-replicas: exit %d\n%s", code, out)
	}
	out, code = sh(t, dir, "crsdump --node-only -u "+c.Nodes[1].URL+" -o one.zst")
	if code != 0 || !strings.Contains(out, "node-only: 1 of 3 shards") {
		t.Fatalf("--node-only: exit %d\n%s", code, out)
	}
	nodeKeys, _ := redistest.Client(t, c.Nodes[1], 0).DBSize(context.Background()).Result()
	if !strings.Contains(out, fmt.Sprintf("dumped %d keys", nodeKeys)) {
		t.Errorf("--node-only dumped other than the node's %d keys: %s", nodeKeys, out)
	}
	out, _ = sh(t, dir, "zstd -dc one.zst | head -1")
	if !strings.Contains(out, `"node_only":true`) || !strings.Contains(out, `"cluster":{"shards":[`) {
		t.Errorf("header: %s", out)
	}
	// The dumps hold what the cluster holds, key by key.
	for _, f := range []string{"all.zst", "replicas.zst"} {
		out, code = sh(t, dir, "crs verify -u "+c.Nodes[2].URL+" "+f)
		if code != 0 || !strings.Contains(out, fmt.Sprintf("%d keys checked, 0 differences", n)) {
			t.Errorf("verify %s: exit %d\n%s", f, code, out)
		}
	}
}

// clusterKeys counts the keys on a cluster's masters.
func clusterKeys(t *testing.T, c *redistest.Cluster) int64 {
	t.Helper()
	var n int64
	err := c.Client(t).ForEachMaster(context.Background(), func(ctx context.Context, m *redis.Client) error {
		k, err := m.DBSize(ctx).Result()
		n += k
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
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
	if out, code := sh(t, dir, "crsdump -q -u "+src.URL+" -o standalone.zst"); code != 0 {
		t.Fatalf("dump: %d %s", code, out)
	}
	// Keys in database 15 do not fit a cluster without --db 0.
	out, code := sh(t, dir, "crsload -u "+c3.URL()+" standalone.zst")
	if code != 4 || !strings.Contains(out, "db 15 (2 keys)") || !strings.Contains(out, "--db 0") || clusterKeys(t, c3) != 0 {
		t.Fatalf("load of db 15 into a cluster: exit %d\n%s", code, out)
	}
	out, code = sh(t, dir, "crsload --db 0 -u "+c3.URL()+" standalone.zst")
	if code != 0 {
		t.Fatalf("standalone → cluster: exit %d\n%s", code, out)
	}
	if out, code := sh(t, dir, "crs verify --db 0 -u "+c3.URL()+" standalone.zst"); code != 0 || !strings.Contains(out, " 0 differences") {
		t.Errorf("verify standalone → cluster: exit %d\n%s", code, out)
	}
	n0, _ := redistest.Client(t, src, 0).DBSize(context.Background()).Result()
	n15, _ := redistest.Client(t, src, 15).DBSize(context.Background()).Result()
	if got := clusterKeys(t, c3); got != n0+n15 {
		t.Errorf("the cluster holds %d keys, the source %d", got, n0+n15)
	}

	// cluster (3 shards) → cluster (4 shards), and → standalone.
	if out, code := sh(t, dir, "crsdump -q -u "+c3.Nodes[1].URL+" -o cluster.zst"); code != 0 {
		t.Fatalf("cluster dump: %d %s", code, out)
	}
	if out, code := sh(t, dir, "crsload -u "+c4.URL()+" cluster.zst && crs verify -u "+c4.Nodes[3].URL+" cluster.zst"); code != 0 || !strings.Contains(out, " 0 differences") {
		t.Errorf("cluster 3 → cluster 4: exit %d\n%s", code, out)
	}
	if got := clusterKeys(t, c4); got != n0+n15 {
		t.Errorf("the 4-shard cluster holds %d keys, want %d", got, n0+n15)
	}
	dst := redistest.Start(t)
	if out, code := sh(t, dir, "crsload -u "+dst.URL+" cluster.zst && crs verify -u "+dst.URL+" cluster.zst"); code != 0 || !strings.Contains(out, " 0 differences") {
		t.Errorf("cluster → standalone: exit %d\n%s", code, out)
	}
	if got, _ := redistest.Client(t, dst, 0).DBSize(context.Background()).Result(); got != n0+n15 {
		t.Errorf("the standalone target holds %d keys, want %d", got, n0+n15)
	}
}
