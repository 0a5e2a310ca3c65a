package load

import (
	"context"
	"fmt"

	"github.com/redis/go-redis/v9"

	"github.com/crs-tool/crs/internal/redisconn"
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
}

// standalone is one server: every key goes to it.
type standalone struct{ conn redisconn.Options }

func (s standalone) Nodes() []redisconn.Options { return []redisconn.Options{s.conn} }
func (s standalone) Node(string) int            { return 0 }

// openTarget chooses the target that opts.Conn points at.
func openTarget(_ context.Context, opts Options) (Target, error) {
	return standalone{conn: opts.Conn}, nil
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
