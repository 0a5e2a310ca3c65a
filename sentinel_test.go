package main

import (
	"context"
	"strings"
	"testing"

	"github.com/crs-tool/crs/internal/e2e"

	"github.com/redis/go-redis/v9"

	"github.com/crs-tool/crs/internal/redistest"
)

// TestSentinelFailoverMidLoad loads a dump into a Sentinel-managed master
// (three sentinels, a master and a replica), found through the
// sentinels, and fails the master over mid-load with SENTINEL FAILOVER:
// the load follows the new master and ends with it holding the dump, key
// by key.
func TestSentinelFailoverMidLoad(t *testing.T) {
	ctx := context.Background()
	src := redistest.Start(t)
	e2e.FillMany(t, src, 20_000)
	dir := t.TempDir()
	if out, code := e2e.Sh(t, dir, "crsdump -q -u "+src.URL+" -o d.zst"); code != 0 {
		t.Fatalf("dump: exit %d\n%s", code, out)
	}
	master := redistest.Start(t)
	_, mport, _ := strings.Cut(master.Addr, ":")
	replica := redistest.Start(t, "--replicaof", "127.0.0.1", mport)
	sentinels := redistest.StartSentinels(t, master, 3)
	// Through the sentinels, a server that is not the master is no
	// target: the sentinels name it.
	cmd, output := e2e.Start(t, dir, "crsload --rate 8000 --retry-for 2m --sentinel-master mymaster --sentinel "+strings.Join(sentinels, ",")+" d.zst")
	mc := redistest.Client(t, master, 0)
	redistest.WaitFor(t, "keys on the master", func() bool {
		n, _ := mc.DBSize(ctx).Result()
		return n > 0
	})
	sc := redis.NewClient(&redis.Options{Addr: sentinels[0], Protocol: 2, DisableIdentity: true})
	defer sc.Close()
	if err := sc.Do(ctx, "SENTINEL", "FAILOVER", "mymaster").Err(); err != nil {
		t.Fatal(err)
	}
	err := cmd.Wait()
	out := output()
	if err != nil {
		t.Fatalf("the load across the failover: exit %d\n%s", e2e.ExitCodeOf(err), out)
	}
	hp, err := sc.Do(ctx, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", "mymaster").StringSlice()
	if err != nil || len(hp) != 2 || hp[0]+":"+hp[1] != replica.Addr {
		t.Fatalf("the master after the failover is %v (%v), want the replica %s", hp, err, replica.Addr)
	}
	if !strings.Contains(out, "reconnected and resent") {
		t.Errorf("the load did not say it followed the failover:\n%s", out)
	}
	t.Log(strings.TrimSpace(out))
	e2e.AssertNoDiff(t, src, replica)
}
