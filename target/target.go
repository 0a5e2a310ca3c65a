// Package target is where writes go, and the only package that sends
// them: one standalone server, a Redis Cluster whose masters each take
// the keys of their slots, or the master a set of sentinels names.
//
// A Target says which servers there are, which one takes a key, what a
// refusal that redirects means, and learns where keys go when a cluster
// says they moved. Two seams write through it:
//
//   - a Writer takes records (a dump's, a snapshot's, keys a sync reads
//     again): the commands of each type or one RESTORE of a payload it
//     encodes, pipelined, a lost connection retried with back-off, MOVED
//     and ASK followed (writer.go, commands.go, writer_redirect.go);
//   - a Router takes batches of commands (an AOF's, a replication
//     stream's): in order on each server, redirections followed, a
//     transaction whole; SendTx sends a batch with a position in one
//     MULTI … EXEC (route.go).
//
// Keys finds a command's keys as the server does (keys.go). A new kind of
// target is one new type implementing Target here and one case in Open;
// the Writer and the Router then write to it unchanged. TestOnlyTargetWrites
// checks that no other package of crs sends a write.
package target

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/crs-tool/crs/internal/redisconn"
	"github.com/crs-tool/crs/internal/resp"
	"github.com/crs-tool/crs/internal/slotmap"
)

// A Target is where a load writes: one standalone server, or several
// servers each taking its share of the keys. The loader gives every node
// its own writers and sends each key to the writers of the node Node
// names.
type Target interface {
	// Nodes returns the servers that keys are written to.
	Nodes() []redisconn.Options
	// Node returns the index in Nodes of the server that takes key.
	Node(key string) int
	// Redirection reads a server's refusal: whether it sends the key to
	// another node (a cluster's MOVED, or ASK while a slot moves), and
	// that node's address.
	Redirection(refusal string) (addr string, ask, ok bool)
	// Moved tells the target that a server answered MOVED: where keys go
	// has changed (a cluster's slot moved).
	Moved(ctx context.Context)
	// SlotRouted reports whether keys are routed by hash slot (a Redis
	// Cluster, whose servers have database 0 only, Valkey 9's excepted).
	SlotRouted() bool
	// Close releases what the target holds.
	Close()
}

// Dial opens a pipelined connection to database db of node (one of
// Nodes), or of the server at addr where a redirection named one.
func Dial(ctx context.Context, node redisconn.Options, addr string, db int) (*resp.Conn, error) {
	// A Sentinel-managed master is where its sentinels say it is now.
	node, err := redisconn.Resolve(ctx, node)
	if err != nil {
		return nil, err
	}
	if addr != "" {
		node = node.At(addr)
	}
	o, err := node.RESP(db)
	if err != nil {
		return nil, err
	}
	c, err := resp.Dial(ctx, o)
	if err != nil {
		return nil, &redisconn.Error{Addr: node.Address(), Err: err}
	}
	return c, nil
}

// standalone is one server: every key goes to it.
type standalone struct{ conn redisconn.Options }

func (s standalone) Nodes() []redisconn.Options                     { return []redisconn.Options{s.conn} }
func (s standalone) Node(string) int                                { return 0 }
func (s standalone) Redirection(string) (addr string, ask, ok bool) { return "", false, false }
func (s standalone) Moved(context.Context)                          {}
func (s standalone) SlotRouted() bool                               { return false }
func (s standalone) Close()                                         {}

// Open chooses the target that conn points at: the server, or when it
// runs in cluster mode, the cluster's masters.
func Open(ctx context.Context, conn redisconn.Options) (Target, error) {
	ro := conn
	ro.Retries = 3
	c, _, err := redisconn.Open(ctx, ro, 0, 1)
	if err != nil {
		return nil, err
	}
	on, err := slotmap.Enabled(ctx, c)
	if err != nil || !on {
		c.Close()
		return standalone{conn: conn}, err
	}
	ct := &clusterTarget{seed: c, index: map[string]int{}}
	m, err := slotmap.ReadMap(ctx, c)
	if err != nil {
		c.Close()
		return nil, err
	}
	if n := m.Uncovered(); n > 0 {
		c.Close()
		return nil, fmt.Errorf("%d of the target cluster's 16384 slots are served by no node: the cluster is not whole", n)
	}
	for i, sh := range m.Shards {
		ct.index[sh.Master.Addr] = i
		ct.nodes = append(ct.nodes, conn.At(sh.Master.Addr))
	}
	ct.m.Store(m)
	return ct, nil
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
func (c *clusterTarget) SlotRouted() bool           { return true }
func (c *clusterTarget) Close()                     { c.seed.Close() }

// Redirection reads "MOVED <slot> <host:port>" and "ASK <slot> <host:port>".
func (c *clusterTarget) Redirection(refusal string) (addr string, ask, ok bool) {
	kind, rest, _ := strings.Cut(refusal, " ")
	if kind != "MOVED" && kind != "ASK" {
		return "", false, false
	}
	_, addr, _ = strings.Cut(rest, " ")
	return addr, kind == "ASK", true
}

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

// FlushAll empties every server of t (FLUSHALL on each master).
func FlushAll(ctx context.Context, t Target) error {
	for _, n := range t.Nodes() {
		c, _, err := redisconn.Open(ctx, n, 0, 1)
		if err != nil {
			return err
		}
		err = c.FlushAll(ctx).Err()
		c.Close()
		if err != nil {
			return fmt.Errorf("flushall on %s: %w", n.Address(), err)
		}
	}
	return nil
}

// LoadLibrary loads a function library's code on the server c is a
// client of (FUNCTION LOAD, REPLACE when replace says).
func LoadLibrary(ctx context.Context, c *redis.Client, code string, replace bool) error {
	args := []interface{}{"FUNCTION", "LOAD"}
	if replace {
		args = append(args, "REPLACE")
	}
	return c.Do(ctx, append(args, code)...).Err()
}
