package redistest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/crs-tool/crs/internal/redisserver"
)

// FillCluster writes keys with and without hash tags, of every type, with
// expiries, through a cluster client; it returns how many.
func FillCluster(t testing.TB, c *Cluster, n int) int {
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

// Keys counts the keys on a cluster's masters.
func (c *Cluster) Keys(t testing.TB) int64 {
	t.Helper()
	var n int64
	var addrs []string
	for _, s := range c.Nodes {
		addrs = append(addrs, s.Addr)
	}
	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs, Protocol: 2, DisableIdentity: true, ReadTimeout: 2 * time.Minute})
	defer cc.Close()
	err := cc.ForEachMaster(context.Background(), func(ctx context.Context, m *redis.Client) error {
		k, err := m.DBSize(ctx).Result()
		n += k
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// NodeID returns the cluster node ID of s.
func NodeID(t testing.TB, s *redisserver.Server) string {
	t.Helper()
	id, err := Client(t, s, 0).Do(context.Background(), "CLUSTER", "MYID").Text()
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// EmptySlot returns a slot of the first master, a, that holds no key.
func EmptySlot(t testing.TB, a *redisserver.Server) int {
	ac := Client(t, a, 0)
	for s := 0; s < 5461; s++ {
		if n, _ := ac.ClusterCountKeysInSlot(context.Background(), s).Result(); n == 0 {
			return s
		}
	}
	t.Fatal("no empty slot")
	return -1
}
