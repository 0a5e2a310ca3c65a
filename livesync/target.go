package livesync

import (
	"context"
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"

	"github.com/crs-tool/crs/internal/redisconn"
	"github.com/crs-tool/crs/internal/resp"
	"github.com/crs-tool/crs/records"
	"github.com/crs-tool/crs/target"
)

// targetSide is the target as a sync writes and checks it: a pipelined
// connection to each node for the stream (one, or a cluster's masters,
// each command sent to the master of its keys' slot), and clients for the
// checks.
type targetSide struct {
	conn    redisconn.Options
	tgt     target.Target
	cluster bool
	clients map[int]redis.UniversalClient
	exact   bool // PEXPIRETIME (7.0+)
	// router writes to the target's servers (every write of the sync
	// goes through it).
	router *target.Router
	// keys finds the keys of commands, as the target does.
	keys *target.Keys
}

// openTarget connects to the target's nodes.
func openTarget(ctx context.Context, o redisconn.Options) (_ *targetSide, err error) {
	tgt, err := target.Open(ctx, o)
	if err != nil {
		return nil, err
	}
	t := &targetSide{conn: o, tgt: tgt, cluster: tgt.SlotRouted(), clients: map[int]redis.UniversalClient{}}
	defer func() {
		if err != nil {
			t.close()
		}
	}()
	if t.router, err = target.NewRouter(ctx, tgt); err != nil {
		return nil, err
	}
	t.keys = target.NewKeys(t.router)
	return t, nil
}

func (t *targetSide) close() {
	if t.router != nil {
		t.router.Close()
	}
	for _, c := range t.clients {
		c.Close()
	}
	t.tgt.Close()
}

// node returns the index of the connection that takes key.
func (t *targetSide) node(key string) int { return t.tgt.Node(key) }

// client returns a client of database db (a cluster client on a cluster).
func (t *targetSide) client(ctx context.Context, db int) (redis.UniversalClient, error) {
	if c := t.clients[db]; c != nil {
		return c, nil
	}
	c, _, err := redisconn.OpenAny(ctx, t.conn, db, 4)
	if err != nil {
		return nil, err
	}
	t.clients[db] = c
	return c, nil
}

// dumps reads keys of database db with DUMP and their expiry.
func (t *targetSide) dumps(ctx context.Context, db int, keys []string) ([]records.Dumped, error) {
	c, err := t.client(ctx, db)
	if err != nil {
		return nil, err
	}
	out, err := redisconn.Dumps(ctx, c, t.exact, keys)
	if err != nil {
		return nil, fmt.Errorf("the target: %w", err)
	}
	return out, nil
}

// del deletes keys of database db, one DEL each (a cluster's keys are in
// different slots).
func (t *targetSide) del(ctx context.Context, db int, keys []string) error {
	cmds := make([]target.Cmd, len(keys))
	for i, k := range keys {
		cmds[i] = target.Cmd{Args: []string{"DEL", k}, DB: db, Node: t.node(k)}
	}
	err := t.router.Send(ctx, cmds, func(_ int, v resp.Value) error {
		if v.Kind == resp.KindError {
			return errors.New(v.Str)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("the target: del: %w", err)
	}
	return nil
}

// keyCounts returns INFO keyspace's counts of each database, summed over
// the nodes.
func (t *targetSide) keyCounts(ctx context.Context) (map[int]redisconn.DBCount, error) {
	out := map[int]redisconn.DBCount{}
	for _, n := range t.tgt.Nodes() {
		c, _, err := redisconn.Open(ctx, n, 0, 1)
		if err != nil {
			return nil, err
		}
		ks, err := redisconn.KeyspaceCounts(ctx, c)
		c.Close()
		if err != nil {
			return nil, err
		}
		for db, k := range ks {
			out[db] = redisconn.DBCount{Keys: out[db].Keys + k.Keys, Expires: out[db].Expires + k.Expires}
		}
	}
	return out, nil
}

// countLater counts the keys of database db whose expiry is later than
// after (unix ms), over the nodes.
func (t *targetSide) countLater(ctx context.Context, db int, after int64) (int64, error) {
	var n int64
	for _, node := range t.tgt.Nodes() {
		m, err := redisconn.CountLater(ctx, node, db, after)
		if err != nil {
			return n, fmt.Errorf("the target: %w", err)
		}
		n += m
	}
	return n, nil
}
