package load

import (
	"context"
	"fmt"

	"github.com/redis/go-redis/v9"

	"github.com/crs-tool/crs/internal/redisconn"
	"github.com/crs-tool/crs/target"
)

// nodeClients connects a read-only client to database 0 of each of tgt's
// nodes, for probes, clocks and key counts, and learns what each server
// can do.
func nodeClients(ctx context.Context, tgt target.Target) ([]*redis.Client, []serverInfo, error) {
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
