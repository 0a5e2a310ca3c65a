package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/crs-tool/crs/internal/e2e"
	"github.com/crs-tool/crs/internal/redisserver"
	"github.com/crs-tool/crs/internal/redistest"
)

// TestConformance passes one keyspace — every type and encoding fill
// writes, in two databases: strings of every byte, exact scores, a stream
// with its group, expiries to the millisecond — through every source
// and into every target, as restic's tests pass one table through every
// backend. Each source's dump (a live server by SCAN, a replication
// snapshot, an RDB file, an AOF, a cluster, a Sentinel-managed master)
// loads into a fresh server equal to the keyspace; the keyspace's dump
// loads into each target (a server, a cluster, a Sentinel-managed
// master) and crs verify finds no difference. Clusters hold database 0
// only, so what goes through one is compared with the keyspace's
// databases loaded into one (-n 0).
func TestConformance(t *testing.T) {
	ctx := context.Background()
	fixture := redistest.Start(t, "--appendonly", "yes", "--appendfsync", "always")
	c := redistest.Client(t, fixture, 0)
	if soon := fill(t, fixture); c.Del(ctx, soon...).Err() != nil {
		t.Fatal("DEL")
	}
	if err := c.Do(ctx, "SAVE").Err(); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	sh := func(t *testing.T, line string) string {
		t.Helper()
		out, code := e2e.Sh(t, dir, line)
		if code != 0 {
			t.Fatalf("%s: exit %d\n%s", line, code, out)
		}
		return out
	}
	sh(t, "crsdump -q -u "+fixture.URL+" -o ref.zst")
	flat := redistest.Start(t) // the keyspace in database 0 alone
	sh(t, "crsload -q -n 0 -u "+flat.URL+" ref.zst")

	// Targets: the keyspace's dump into each.
	cluster := redistest.StartCluster(t, 3, 0, "")
	master := redistest.Start(t)
	_, mport, _ := strings.Cut(master.Addr, ":")
	redistest.Start(t, "--replicaof", "127.0.0.1", mport)
	sentinels := strings.Join(redistest.StartSentinels(t, master, 3), ",")
	for _, tt := range []struct {
		name, load, verify string
		equal              *redisserver.Server // the server the target must equal
		target             *redisserver.Server
	}{
		{"server", "-u %s", "-u %s ref.zst", fixture, redistest.Start(t)},
		{"cluster", "-n 0 -u " + cluster.URL(), "--source " + flat.URL + " --target " + cluster.URL(), nil, nil},
		{"sentinel", "--sentinel-master mymaster --sentinel " + sentinels, "-u %s ref.zst", fixture, master},
	} {
		t.Run("into "+tt.name, func(t *testing.T) {
			load, verify := tt.load, tt.verify
			if tt.target != nil {
				load, verify = strings.ReplaceAll(load, "%s", tt.target.URL), strings.ReplaceAll(verify, "%s", tt.target.URL)
			}
			sh(t, "crsload -q "+load+" ref.zst")
			if out := sh(t, "crs verify "+verify); !strings.Contains(out, " 0 differences") {
				t.Errorf("verify: %s", out)
			}
			if tt.equal != nil {
				e2e.AssertNoDiff(t, tt.equal, tt.target)
			}
		})
	}

	// Sources: each one's dump into a fresh server.
	for _, tt := range []struct {
		name, dump string
		equal      *redisserver.Server
	}{
		{"a server by SCAN", "crsdump -q -u " + fixture.URL, fixture},
		{"a replication snapshot", "crsdump -q --snapshot -u " + fixture.URL, fixture},
		{"an RDB file", "crsdump -q -i " + filepath.Join(fixture.Dir, "dump.rdb"), fixture},
		{"an AOF", "crs load -q -u %s " + filepath.Join(fixture.Dir, "appendonlydir"), fixture},
		{"a cluster", "crsdump -q -u " + cluster.URL(), flat},
		{"a Sentinel-managed master", "crsdump -q --sentinel-master mymaster --sentinel " + sentinels, fixture},
	} {
		t.Run("from "+tt.name, func(t *testing.T) {
			dst := redistest.Start(t)
			if strings.Contains(tt.dump, "%s") { // read and loaded in one
				sh(t, strings.ReplaceAll(tt.dump, "%s", dst.URL))
			} else {
				sh(t, tt.dump+" -o from.zst && crsload -q -u "+dst.URL+" from.zst")
			}
			e2e.AssertNoDiff(t, tt.equal, dst)
		})
	}
}
