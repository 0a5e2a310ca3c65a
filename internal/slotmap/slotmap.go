// Package slotmap knows what crs needs of Redis Cluster: the slot map
// (which master, and which replicas, serve each slot), read with CLUSTER
// SLOTS from any node. Package keyslot computes a key's slot.
package slotmap

import (
	"context"
	"fmt"
	"net"
	"sort"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/crs-tool/crs/internal/keyslot"
	"github.com/crs-tool/crs/internal/redisconn"
)

// Node is one server of the cluster.
type Node struct {
	ID   string
	Addr string // host:port
}

// Shard is a master, its replicas and the slots it serves.
type Shard struct {
	Master   Node
	Replicas []Node
	Ranges   [][2]int // slot ranges, inclusive
}

// SlotsText renders the shard's slot ranges as "0-5460,10923".
func (s Shard) SlotsText() string {
	var b strings.Builder
	for i, r := range s.Ranges {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.Itoa(r[0]))
		if r[1] != r[0] {
			b.WriteString("-" + strconv.Itoa(r[1]))
		}
	}
	return b.String()
}

// Map is the slot map: the shards, and the shard that serves each slot.
type Map struct {
	Shards []Shard
	owner  [keyslot.Slots]int16 // index in Shards, -1 for a slot no one serves
}

// Owner returns the index in Shards of the shard that serves key's slot,
// or -1.
func (m *Map) Owner(key string) int { return int(m.owner[keyslot.Slot(key)]) }

// OwnerOfSlot returns the index in Shards of the shard that serves slot.
func (m *Map) OwnerOfSlot(slot int) int { return int(m.owner[slot]) }

// Uncovered returns how many slots no shard serves.
func (m *Map) Uncovered() int {
	n := 0
	for _, o := range m.owner {
		if o < 0 {
			n++
		}
	}
	return n
}

// Enabled reports whether the server c talks to runs in cluster mode.
func Enabled(ctx context.Context, c *redis.Client) (bool, error) {
	info, err := c.Info(ctx, "cluster").Result()
	if err != nil {
		return false, fmt.Errorf("info cluster: %w", err)
	}
	return redisconn.InfoFields(info)["cluster_enabled"] == "1", nil
}

// ReadMap reads the slot map with CLUSTER SLOTS. A node's address is the
// one the cluster announces; an empty host (a node that knows itself
// only by its port) is taken to be the host c talks to.
func ReadMap(ctx context.Context, c *redis.Client) (*Map, error) {
	//lint:ignore SA1019 CLUSTER SHARDS is Redis 7.0+, and crs reads clusters of 6.x too
	slots, err := c.ClusterSlots(ctx).Result()
	if err != nil {
		return nil, fmt.Errorf("cluster slots: %w", err)
	}
	host, _, _ := net.SplitHostPort(c.Options().Addr)
	m := &Map{}
	for i := range m.owner {
		m.owner[i] = -1
	}
	byMaster := map[string]int{}
	for _, s := range slots {
		if len(s.Nodes) == 0 {
			continue
		}
		node := func(n redis.ClusterNode) Node {
			addr := n.Addr
			if h, p, err := net.SplitHostPort(addr); err == nil && (h == "" || h == "?") {
				addr = net.JoinHostPort(host, p)
			}
			return Node{ID: n.ID, Addr: addr}
		}
		master := node(s.Nodes[0])
		k, ok := byMaster[master.Addr]
		if !ok {
			k = len(m.Shards)
			byMaster[master.Addr] = k
			sh := Shard{Master: master}
			for _, r := range s.Nodes[1:] {
				sh.Replicas = append(sh.Replicas, node(r))
			}
			m.Shards = append(m.Shards, sh)
		}
		m.Shards[k].Ranges = append(m.Shards[k].Ranges, [2]int{int(s.Start), int(s.End)})
		for slot := s.Start; slot <= s.End && slot < keyslot.Slots; slot++ {
			m.owner[slot] = int16(k)
		}
	}
	if len(m.Shards) == 0 {
		return nil, fmt.Errorf("cluster slots: no slot is served (is the cluster set up?)")
	}
	sort.SliceStable(m.Shards, func(i, j int) bool { return m.Shards[i].Ranges[0][0] < m.Shards[j].Ranges[0][0] })
	for k := range m.Shards {
		sort.Slice(m.Shards[k].Ranges, func(i, j int) bool { return m.Shards[k].Ranges[i][0] < m.Shards[k].Ranges[j][0] })
		for _, r := range m.Shards[k].Ranges {
			for slot := r[0]; slot <= r[1]; slot++ {
				m.owner[slot] = int16(k)
			}
		}
	}
	return m, nil
}

// Moved lists the slots whose master differs between two maps, as
// "slot 42 (a:1 -> b:2)", at most max of them, and how many there are.
func Moved(a, b *Map, max int) ([]string, int) {
	var out []string
	n := 0
	addr := func(m *Map, slot int) string {
		if o := m.owner[slot]; o >= 0 {
			return m.Shards[o].Master.Addr
		}
		return "none"
	}
	for slot := 0; slot < keyslot.Slots; slot++ {
		if x, y := addr(a, slot), addr(b, slot); x != y {
			n++
			if len(out) < max {
				out = append(out, fmt.Sprintf("slot %d (%s -> %s)", slot, x, y))
			}
		}
	}
	return out, n
}
