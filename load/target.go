package load

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/crs-tool/crs/internal/redisconn"
	"github.com/crs-tool/crs/internal/slotmap"
)

// A Target is where a load writes: one standalone server, or several
// servers each taking its share of the keys. The loader gives every node
// its own writers and sends each key to the writers of the node Node
// names. A new kind of target (a cluster, routed by hash slot) is one new
// type here and one case in openTarget.
type Target interface {
	// Nodes returns the servers that keys are written to.
	Nodes() []redisconn.Options
	// Node returns the index in Nodes of the server that takes key.
	Node(key string) int
	// Moved tells the target that a server answered MOVED: where keys go
	// has changed (a cluster's slot moved).
	Moved(ctx context.Context)
}

// standalone is one server: every key goes to it.
type standalone struct{ conn redisconn.Options }

func (s standalone) Nodes() []redisconn.Options { return []redisconn.Options{s.conn} }
func (s standalone) Node(string) int            { return 0 }
func (s standalone) Moved(context.Context)      {}

// openTarget chooses the target that opts.Conn points at: the server, or
// when it runs in cluster mode, the cluster's masters. done releases it.
func openTarget(ctx context.Context, opts Options) (tgt Target, done func(), err error) {
	c, _, err := redisconn.Open(ctx, readOnly(opts.Conn), 0, 1)
	if err != nil {
		return nil, nil, err
	}
	on, err := slotmap.Enabled(ctx, c)
	if err != nil || !on {
		c.Close()
		return standalone{conn: opts.Conn}, func() {}, err
	}
	ct := &clusterTarget{seed: c, index: map[string]int{}}
	m, err := slotmap.ReadMap(ctx, c)
	if err != nil {
		c.Close()
		return nil, nil, err
	}
	if n := m.Uncovered(); n > 0 {
		c.Close()
		return nil, nil, fmt.Errorf("%d of the target cluster's 16384 slots are served by no node: the cluster is not whole", n)
	}
	for i, sh := range m.Shards {
		ct.index[sh.Master.Addr] = i
		ct.nodes = append(ct.nodes, opts.Conn.At(sh.Master.Addr))
	}
	ct.m.Store(m)
	return ct, func() { c.Close() }, nil
}

// clusterTarget is a Redis Cluster: each key goes to the master that
// serves its slot. When a slot moves during the load, the writers follow
// the cluster's MOVED and ASK replies and the slot map is read again.
type clusterTarget struct {
	nodes []redisconn.Options // the masters when the load began
	index map[string]int      // a master's address to its index in nodes
	m     atomic.Pointer[slotmap.Map]
	seed  *redis.Client

	mu     sync.Mutex
	reread time.Time
}

func (c *clusterTarget) Nodes() []redisconn.Options { return c.nodes }

// Node returns the master that serves key's slot, as far as the loader
// knows; a master that joined since the load began is reached through
// redirections from the one that served the slot before.
func (c *clusterTarget) Node(key string) int {
	m := c.m.Load()
	if o := m.Owner(key); o >= 0 {
		if i, ok := c.index[m.Shards[o].Master.Addr]; ok {
			return i
		}
	}
	return 0
}

// Moved reads the slot map again after a MOVED reply, at most ten times
// a second.
func (c *clusterTarget) Moved(ctx context.Context) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if time.Since(c.reread) < 100*time.Millisecond {
		return
	}
	c.reread = time.Now()
	if m, err := slotmap.ReadMap(ctx, c.seed); err == nil && m.Uncovered() == 0 {
		c.m.Store(m)
	}
}

// nodeClients connects a read-only client to database 0 of each of tgt's
// nodes, for probes, clocks and key counts, and learns what each server
// can do.
func nodeClients(ctx context.Context, tgt Target) ([]*redis.Client, []serverInfo, error) {
	var cs []*redis.Client
	var infos []serverInfo
	for _, o := range tgt.Nodes() {
		c, srv, err := redisconn.Open(ctx, readOnly(o), 0, 2)
		if err != nil {
			closeAll(cs)
			return nil, nil, err
		}
		cs = append(cs, c)
		info, err := probeTarget(ctx, c, srv)
		if err != nil {
			closeAll(cs)
			return nil, nil, fmt.Errorf("%s: %w", o.Address(), err)
		}
		infos = append(infos, info)
	}
	return cs, infos, nil
}

func closeAll(cs []*redis.Client) {
	for _, c := range cs {
		c.Close()
	}
}
