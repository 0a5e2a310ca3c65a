package redisserver

import (
	"context"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Cluster is a throwaway Redis Cluster: its nodes, masters first.
type Cluster struct {
	Nodes []*Server
}

// URL is a URL of the cluster's first node.
func (c *Cluster) URL() string { return c.Nodes[0].URL }

// Close kills every node.
func (c *Cluster) Close() {
	for _, s := range c.Nodes {
		s.Close()
	}
}

// StartCluster starts a Redis Cluster of masters masters with replicas
// replicas each, from the server binary bin (redis-server on the PATH
// when empty), creates it with redis-cli --cluster create, and waits until
// every node sees every slot served.
func StartCluster(ctx context.Context, masters, replicas int, bin string, args ...string) (*Cluster, error) {
	if bin == "" {
		var err error
		if bin, err = exec.LookPath("redis-server"); err != nil {
			return nil, ErrNotInstalled
		}
	}
	if _, err := exec.LookPath("redis-cli"); err != nil {
		return nil, fmt.Errorf("redis-cli is not installed (Debian: apt-get install redis-tools)")
	}
	c := &Cluster{}
	var addrs []string
	for i := 0; i < masters*(1+replicas); i++ {
		a := append([]string{"--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "2000"}, args...)
		s, err := StartBinary(ctx, bin, a...)
		if err != nil {
			c.Close()
			return nil, err
		}
		c.Nodes = append(c.Nodes, s)
		addrs = append(addrs, s.Addr)
	}
	cmd := append([]string{"--cluster", "create"}, addrs...)
	cmd = append(cmd, "--cluster-replicas", strconv.Itoa(replicas), "--cluster-yes")
	if out, err := exec.CommandContext(ctx, "redis-cli", cmd...).CombinedOutput(); err != nil {
		c.Close()
		return nil, fmt.Errorf("redis-cli --cluster create: %v\n%s", err, out)
	}
	if err := c.WaitStable(ctx, time.Minute); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// WaitStable waits, up to limit, until every node says the cluster is ok
// and serves all 16384 slots with the same masters, and every replica is
// in sync.
func (c *Cluster) WaitStable(ctx context.Context, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for !c.stable(ctx) {
		if time.Now().After(deadline) {
			return fmt.Errorf("the cluster did not agree on its slots within %s", limit)
		}
		select {
		case <-time.After(20 * time.Millisecond):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

func (c *Cluster) stable(ctx context.Context) bool {
	want := ""
	for _, s := range c.Nodes {
		cl := redis.NewClient(&redis.Options{Addr: s.Addr, Protocol: 2, DisableIdentity: true})
		info, err := cl.ClusterInfo(ctx).Result()
		//lint:ignore SA1019 CLUSTER SHARDS is Redis 7.0+, and crs reads clusters of 6.x too
		slots, err2 := cl.ClusterSlots(ctx).Result()
		repl, _ := cl.Info(ctx, "replication").Result()
		cl.Close()
		if err != nil || err2 != nil || !strings.Contains(info, "cluster_state:ok") || !strings.Contains(info, "cluster_slots_assigned:16384") {
			return false
		}
		if strings.Contains(repl, "role:slave") && !strings.Contains(repl, "master_link_status:up") {
			return false
		}
		var b strings.Builder
		for _, r := range slots {
			fmt.Fprintf(&b, "%d-%d:%s/%d;", r.Start, r.End, r.Nodes[0].Addr, len(r.Nodes))
		}
		if want == "" {
			want = b.String()
		} else if b.String() != want {
			return false
		}
	}
	return true
}
