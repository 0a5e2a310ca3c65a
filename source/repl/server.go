package repl

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/crs-tool/crs/internal/keyslot"
	"github.com/crs-tool/crs/internal/redisconn"
	"github.com/crs-tool/crs/internal/slotmap"
	"github.com/crs-tool/crs/records"
)

// Server is the source of a sync, asked about where it is and paused for
// a cutover, on connections of its own: one server, or every master of a
// cluster.
type Server struct {
	c       *redis.Client // the server, or the cluster node named
	srv     redisconn.Server
	opts    redisconn.Options
	dbs     map[int]redis.UniversalClient
	masters []*redis.Client // a cluster's; nil for one server
	slots   *slotmap.Map
	// at is where the sentinels named the master when it was opened (a
	// Sentinel-managed source), asked again at most every checkEvery.
	at      string
	mu      sync.Mutex // over checked
	checked time.Time
}

// checkEvery is how often Steady asks a Sentinel-managed source's
// sentinels where its master is.
const checkEvery = 2 * time.Second

// OpenServer connects to the server opts names, and to every master when
// it is a cluster node.
func OpenServer(ctx context.Context, opts redisconn.Options) (_ *Server, err error) {
	c, srv, err := redisconn.Open(ctx, opts, 0, 2)
	if err != nil {
		return nil, err
	}
	s := &Server{c: c, srv: srv, opts: opts, checked: time.Now()}
	if opts.SentinelMaster != "" {
		at, err := redisconn.Resolve(ctx, opts)
		if err != nil {
			c.Close()
			return nil, err
		}
		s.at = at.Address()
	}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	if cluster, err := slotmap.Enabled(ctx, c); err != nil || !cluster {
		return s, nil
	}
	if s.slots, err = slotmap.ReadMap(ctx, c); err != nil {
		return nil, err
	}
	for _, sh := range s.slots.Shards {
		m, _, err := redisconn.Open(ctx, opts.At(sh.Master.Addr), 0, 2)
		if err != nil {
			return nil, err
		}
		s.masters = append(s.masters, m)
	}
	return s, nil
}

// Close closes the connections.
func (s *Server) Close() error {
	for _, c := range s.dbs {
		c.Close()
	}
	for _, m := range s.masters {
		m.Close()
	}
	return s.c.Close()
}

// Cluster reports whether the source is a Redis Cluster, and returns the
// address of each master (the names Offsets and PauseWrites use).
func (s *Server) Cluster() ([]string, bool) {
	if s.slots == nil {
		return nil, false
	}
	var out []string
	for _, sh := range s.slots.Shards {
		out = append(out, sh.Master.Addr)
	}
	return out, true
}

// Describe says what the server is ("redis 7.0.15", "redis 7.0.15
// cluster of 3 masters").
func (s *Server) Describe() string {
	d := s.srv.Engine + " " + s.srv.Version
	if s.slots != nil {
		d += fmt.Sprintf(" cluster of %d masters", len(s.slots.Shards))
	}
	return d
}

// Steady checks that a cluster's slots are where they were when it was
// opened: a resharding or a failover during a sync stops it.
func (s *Server) Steady(ctx context.Context) error {
	s.mu.Lock()
	ask := s.at != "" && time.Since(s.checked) >= checkEvery
	if ask {
		s.checked = time.Now()
	}
	s.mu.Unlock()
	if ask {
		// A sentinel that cannot be asked now says nothing of a failover.
		if now, err := redisconn.Resolve(ctx, s.opts); err == nil && now.Address() != s.at {
			return fmt.Errorf("%w: the sentinels now name %s as master %q, not %s, which this sync reads (a failover; the old master may still take writes no one should send it): run the same crs sync again: it continues on the new master where that holds what crs applied (what the old master took after the failover, the new one does not: then only --replace starts over)", ErrFailover, now.Address(), s.opts.SentinelMaster, s.at)
		}
	}
	if s.slots == nil {
		return nil
	}
	m, err := slotmap.ReadMap(ctx, s.c)
	if err != nil {
		return fmt.Errorf("source: %w", err)
	}
	if moved, n := slotmap.Moved(s.slots, m, 3); n > 0 {
		return fmt.Errorf("the source cluster moved %d slots during the sync (%s): a resharding or a failover, which a sync cannot follow", n, strings.Join(moved, ", "))
	}
	return nil
}

// each runs fn on the server, or on every master of a cluster.
func (s *Server) each(fn func(c *redis.Client) error) error {
	if s.masters == nil {
		return fn(s.c)
	}
	for _, m := range s.masters {
		if err := fn(m); err != nil {
			return err
		}
	}
	return nil
}

// Offsets returns the replication offset (master_repl_offset) of the
// server (under "") or of each master of a cluster (under its address).
func (s *Server) Offsets(ctx context.Context) (map[string]int64, error) {
	out := map[string]int64{}
	err := s.eachNamed(func(name string, c *redis.Client) error {
		info, err := c.Info(ctx, "replication").Result()
		if err != nil {
			return fmt.Errorf("source: info replication: %w", err)
		}
		f := redisconn.InfoFields(info)
		if role := f["role"]; role != "master" {
			return fmt.Errorf("%w: %s is now a replica (of %s:%s): a failover, or REPLICAOF; its writes now come from its master, which a sync of it does not follow: sync from the new master (crs sync --replace)", ErrNotMaster, c.Options().Addr, f["master_host"], f["master_port"])
		}
		out[name], err = strconv.ParseInt(f["master_repl_offset"], 10, 64)
		return err
	})
	return out, err
}

// ErrNotMaster is wrapped when the source stopped being a master during a
// sync.
var ErrNotMaster = errors.New("the source is no longer a master")

// ErrFailover is wrapped when the sentinels of a Sentinel-managed source
// name another master than the one a sync reads.
var ErrFailover = errors.New("the source failed over")

// Demoted returns an error wrapping ErrNotMaster when the server (a
// master of a cluster) answers and is no longer a master; nil otherwise,
// an unreachable server included.
func (s *Server) Demoted(ctx context.Context) error {
	if _, err := s.Offsets(ctx); errors.Is(err, ErrNotMaster) {
		return err
	}
	return nil
}

// eachNamed runs fn on the server ("") or on every master of a cluster
// (named by its address).
func (s *Server) eachNamed(fn func(name string, c *redis.Client) error) error {
	if s.masters == nil {
		return fn("", s.c)
	}
	for i, m := range s.masters {
		if err := fn(s.slots.Shards[i].Master.Addr, m); err != nil {
			return err
		}
	}
	return nil
}

// Owner names the master that serves key ("" for one server).
func (s *Server) Owner(key string) string {
	if s.slots == nil {
		return ""
	}
	return s.slots.Shards[s.slots.Owner(key)].Master.Addr
}

// node returns the client of the server ("") or of the master at addr.
func (s *Server) node(name string) *redis.Client {
	for i, sh := range s.slotsShards() {
		if sh.Master.Addr == name {
			return s.masters[i]
		}
	}
	return s.c
}

func (s *Server) slotsShards() []slotmap.Shard {
	if s.slots == nil {
		return nil
	}
	return s.slots.Shards
}

// Holds checks, before a PSYNC, that the server can continue from pos:
// the same replication history (its ID, or its previous one up to where
// that ended) and a backlog that still holds the byte after pos.Offset.
func (s *Server) Holds(ctx context.Context, name string, pos Position) error {
	info, err := s.node(name).Info(ctx, "replication").Result()
	if err != nil {
		return fmt.Errorf("source: info replication: %w", err)
	}
	f := redisconn.InfoFields(info)
	num := func(k string) int64 { n, _ := strconv.ParseInt(f[k], 10, 64); return n }
	switch {
	case f["master_replid"] == pos.ReplID:
	case f["master_replid2"] == pos.ReplID && pos.Offset+1 <= num("second_repl_offset"):
	case f["master_replid2"] == pos.ReplID:
		return fmt.Errorf("%w: the source took over history %s at a failover, at offset %d of it, and crs had applied up to offset %d from the old master: %d bytes it took after the failover, which the new master does not hold", ErrNoBacklog, pos.ReplID, num("second_repl_offset")-1, pos.Offset, pos.Offset+1-num("second_repl_offset"))
	default:
		return fmt.Errorf("%w: crs applied the source's history %s up to offset %d, and the source is now on %s (it restarted without its data, or failed over)", ErrNoBacklog, pos.ReplID, pos.Offset, f["master_replid"])
	}
	first, hist := num("repl_backlog_first_byte_offset"), num("repl_backlog_histlen")
	if f["repl_backlog_active"] != "1" || pos.Offset+1 < first || pos.Offset > first+hist {
		return fmt.Errorf("%w: crs applied up to offset %d, and the backlog holds offsets %d to %d (raise repl-backlog-size to keep more)", ErrNoBacklog, pos.Offset, first, first+hist-1)
	}
	return nil
}

// Pausable says why the server cannot pause its writes for a cutover
// (nil when it can).
func (s *Server) Pausable() error {
	if !s.srv.AtLeast(6, 2) {
		return fmt.Errorf("%s lacks CLIENT PAUSE … WRITE (6.2 and later have it): stop the writers, then end the sync with ^C once it is in step", s.Describe())
	}
	return nil
}

// PauseWrites pauses the server's writes for d (CLIENT PAUSE … WRITE;
// the pause runs out by itself) and returns its replication offset at
// the moment the pause began, which the link must reach: both in one
// transaction, so that no write falls between them; for a cluster, each
// master's, by address, paused one after the other.
func (s *Server) PauseWrites(ctx context.Context, d time.Duration) (map[string]int64, error) {
	if !s.srv.AtLeast(6, 2) {
		return nil, fmt.Errorf("source: a cutover pauses writes with CLIENT PAUSE … WRITE, which %s lacks (6.2 and later have it): stop the writers, then end the sync with ^C once it is in step", s.Describe())
	}
	offsets := map[string]int64{}
	err := s.eachNamed(func(name string, c *redis.Client) error {
		var info *redis.StringCmd
		var pause *redis.Cmd
		_, err := c.TxPipelined(ctx, func(p redis.Pipeliner) error {
			pause = p.Do(ctx, "CLIENT", "PAUSE", d.Milliseconds(), "WRITE")
			info = p.Info(ctx, "replication")
			return nil
		})
		if err != nil {
			// The refusal of a queued command says more than EXECABORT.
			for _, cmd := range []redis.Cmder{pause, info} {
				if cerr := cmd.Err(); cerr != nil && !redisconn.IsExecAbort(cerr) {
					err = cerr
					break
				}
			}
			return fmt.Errorf("source: client pause: %w", err)
		}
		offsets[name], err = strconv.ParseInt(redisconn.InfoFields(info.Val())["master_repl_offset"], 10, 64)
		return err
	})
	return offsets, err
}

// Unpause ends a pause early (after a failed cutover: the service goes
// on writing to the source).
func (s *Server) Unpause(ctx context.Context) error {
	return s.each(func(c *redis.Client) error { return c.Do(ctx, "CLIENT", "UNPAUSE").Err() })
}

// KeyCounts returns INFO keyspace's counts of each database that has
// keys (of every master, summed, on a cluster).
func (s *Server) KeyCounts(ctx context.Context) (map[int]redisconn.DBCount, error) {
	out := map[int]redisconn.DBCount{}
	err := s.each(func(c *redis.Client) error {
		ks, err := redisconn.KeyspaceCounts(ctx, c)
		for db, n := range ks {
			out[db] = redisconn.DBCount{Keys: out[db].Keys + n.Keys, Expires: out[db].Expires + n.Expires}
		}
		return err
	})
	return out, err
}

// CountLater counts the keys of database db whose expiry is later than
// after (unix ms), on the server or every master of a cluster.
func (s *Server) CountLater(ctx context.Context, db int, after int64) (int64, error) {
	nodes := []redisconn.Options{s.opts}
	if masters, ok := s.Cluster(); ok {
		nodes = nil
		for _, m := range masters {
			nodes = append(nodes, s.opts.At(m))
		}
	}
	var n int64
	for _, o := range nodes {
		m, err := redisconn.CountLater(ctx, o, db, after)
		if err != nil {
			return n, fmt.Errorf("source: %w", err)
		}
		n += m
	}
	return n, nil
}

// Dumps reads keys of database db with DUMP, and their expiry with
// PEXPIRETIME (7.0+; before, PTTL added to the time now), pipelined: one
// Dumped per key.
func (s *Server) Dumps(ctx context.Context, db int, keys []string) ([]records.Dumped, error) {
	c, err := s.client(ctx, db)
	if err != nil {
		return nil, err
	}
	out, err := redisconn.Dumps(ctx, c, s.srv.AtLeast(7, 0), keys)
	if err != nil {
		return nil, fmt.Errorf("source: %w", err)
	}
	return out, nil
}

// client returns a client of database db (of every master, on a
// cluster), opened once.
func (s *Server) client(ctx context.Context, db int) (redis.UniversalClient, error) {
	if c := s.dbs[db]; c != nil {
		return c, nil
	}
	c, _, err := redisconn.OpenAny(ctx, s.opts, db, 4)
	if err != nil {
		return nil, err
	}
	if s.dbs == nil {
		s.dbs = map[int]redis.UniversalClient{}
	}
	s.dbs[db] = c
	return c, nil
}

// DumpsAt reads keys of database db as Dumps does, on the server ("") or
// the cluster master at name, each in one transaction with the server's
// replication offset, which it returns per key: the keys as they stood
// at that offset of its stream. A cluster node takes a transaction on the
// keys of one slot, so a cluster's keys are read slot by slot.
func (s *Server) DumpsAt(ctx context.Context, name string, db int, keys []string) ([]records.Dumped, []int64, error) {
	c := s.node(name)
	if s.masters == nil && db != 0 {
		u, err := s.client(ctx, db)
		if err != nil {
			return nil, nil, err
		}
		var ok bool
		if c, ok = u.(*redis.Client); !ok {
			return nil, nil, fmt.Errorf("source: database %d is not a single server's", db)
		}
	}
	groups := [][]int{}
	if s.masters == nil {
		all := make([]int, len(keys))
		for i := range keys {
			all[i] = i
		}
		groups = append(groups, all)
	} else {
		bySlot := map[int]int{}
		for i, k := range keys {
			slot := keyslot.Slot(k)
			g, ok := bySlot[slot]
			if !ok {
				g = len(groups)
				bySlot[slot] = g
				groups = append(groups, nil)
			}
			groups[g] = append(groups[g], i)
		}
	}
	out, offsets := make([]records.Dumped, len(keys)), make([]int64, len(keys))
	for _, g := range groups {
		part := make([]string, len(g))
		for j, i := range g {
			part[j] = keys[i]
		}
		dumps, offset, err := redisconn.DumpsTx(ctx, c, s.srv.AtLeast(7, 0), part)
		if err != nil {
			return nil, nil, fmt.Errorf("source: %w", err)
		}
		for j, i := range g {
			out[i], offsets[i] = dumps[j], offset
		}
	}
	return out, offsets, nil
}

// refuseAbove is the min-replicas-to-write that no server reaches.
const refuseAbove = "1000000"

// RefuseWrites makes the server (every master of a cluster) refuse every
// write from now on, after a cutover: min-replicas-to-write past any
// number of replicas it can have, so that a write still sent to it,
// those its pause holds included, is answered with a NOREPLICAS error
// instead of being taken and left behind. It returns the command that
// undoes it.
func (s *Server) RefuseWrites(ctx context.Context) (string, error) {
	old := "0"
	err := s.each(func(c *redis.Client) error {
		v, err := c.ConfigGet(ctx, "min-replicas-to-write").Result()
		if err != nil {
			return fmt.Errorf("%w: %w", ErrNoConfig, err)
		}
		if cur, ok := v["min-replicas-to-write"]; ok && cur != refuseAbove {
			old = cur
		}
		if err := c.ConfigSet(ctx, "min-replicas-to-write", refuseAbove).Err(); err != nil {
			return fmt.Errorf("%w: %w", ErrNoConfig, err)
		}
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("source: refuse writes after the cutover: %w", err)
	}
	return "CONFIG SET min-replicas-to-write " + old, nil
}
