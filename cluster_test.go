package main

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/crs-tool/crs/internal/redistest"
	"github.com/crs-tool/crs/internal/slotmap"
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
