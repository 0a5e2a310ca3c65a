package repl

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/crs-tool/crs/internal/redisconn"
	"github.com/crs-tool/crs/records"
)

// Server is the source of a link, asked about where it is and paused for
// a cutover, on a connection of its own.
type Server struct {
	c    *redis.Client
	srv  redisconn.Server
	opts redisconn.Options
}

// OpenServer connects to the server opts names.
func OpenServer(ctx context.Context, opts redisconn.Options) (*Server, error) {
	c, srv, err := redisconn.Open(ctx, opts, 0, 2)
	if err != nil {
		return nil, err
	}
	return &Server{c: c, srv: srv, opts: opts}, nil
}

// Close closes the connection.
func (s *Server) Close() error { return s.c.Close() }

// Describe says what the server is ("redis 7.0.15").
func (s *Server) Describe() string { return s.srv.Engine + " " + s.srv.Version }

// Offset returns the server's replication offset (master_repl_offset).
func (s *Server) Offset(ctx context.Context) (int64, error) {
	info, err := s.c.Info(ctx, "replication").Result()
	if err != nil {
		return 0, fmt.Errorf("source: info replication: %w", err)
	}
	return strconv.ParseInt(redisconn.InfoFields(info)["master_repl_offset"], 10, 64)
}

// Holds checks, before a PSYNC, that the server can continue from pos:
// the same replication history (its ID, or its previous one up to where
// that ended) and a backlog that still holds the byte after pos.Offset.
func (s *Server) Holds(ctx context.Context, pos Position) error {
	info, err := s.c.Info(ctx, "replication").Result()
	if err != nil {
		return fmt.Errorf("source: info replication: %w", err)
	}
	f := redisconn.InfoFields(info)
	num := func(k string) int64 { n, _ := strconv.ParseInt(f[k], 10, 64); return n }
	switch {
	case f["master_replid"] == pos.ReplID:
	case f["master_replid2"] == pos.ReplID && pos.Offset+1 <= num("second_repl_offset"):
	default:
		return fmt.Errorf("%w: crs applied the source's history %s up to offset %d, and the source is now on %s (it restarted without its data, or failed over)", ErrNoBacklog, pos.ReplID, pos.Offset, f["master_replid"])
	}
	first, hist := num("repl_backlog_first_byte_offset"), num("repl_backlog_histlen")
	if f["repl_backlog_active"] != "1" || pos.Offset+1 < first || pos.Offset > first+hist {
		return fmt.Errorf("%w: crs applied up to offset %d, and the backlog holds offsets %d to %d (raise repl-backlog-size to keep more)", ErrNoBacklog, pos.Offset, first, first+hist-1)
	}
	return nil
}

// PauseWrites pauses the server's writes for d (CLIENT PAUSE … WRITE;
// the pause runs out by itself) and returns its replication offset at
// the moment the pause began, which the link must reach: both in one
// transaction, so that no write falls between them.
func (s *Server) PauseWrites(ctx context.Context, d time.Duration) (int64, error) {
	if !s.srv.AtLeast(6, 2) {
		return 0, fmt.Errorf("source: a cutover pauses writes with CLIENT PAUSE … WRITE, which %s lacks (6.2 and later have it): stop the writers, then end the sync with ^C once it is in step", s.Describe())
	}
	var info *redis.StringCmd
	_, err := s.c.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Do(ctx, "CLIENT", "PAUSE", d.Milliseconds(), "WRITE")
		info = p.Info(ctx, "replication")
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("source: client pause: %w", err)
	}
	return strconv.ParseInt(redisconn.InfoFields(info.Val())["master_repl_offset"], 10, 64)
}

// Unpause ends a pause early (after a failed cutover: the service goes
// on writing to the source).
func (s *Server) Unpause(ctx context.Context) error {
	return s.c.Do(ctx, "CLIENT", "UNPAUSE").Err()
}

// KeyCounts returns the number of keys in each database that has any.
func (s *Server) KeyCounts(ctx context.Context) (map[int]int64, error) {
	return redisconn.Keyspace(ctx, s.c)
}

// Count counts the keys of database db with SCAN, which leaves out keys
// whose expiry has passed and that the server has not deleted yet.
func (s *Server) Count(ctx context.Context, db int) (int64, error) {
	c, _, err := redisconn.Open(ctx, s.opts, db, 1)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	var n int64
	iter := c.Scan(ctx, 0, "", 1000).Iterator()
	for iter.Next(ctx) {
		n++
	}
	return n, iter.Err()
}

// Dumps reads keys of database db with DUMP, and their expiry with
// PEXPIRETIME (7.0+; before, PTTL added to the time now), pipelined: one
// Dumped per key.
func (s *Server) Dumps(ctx context.Context, db int, keys []string) ([]records.Dumped, error) {
	return Dumps(ctx, s.c, s.srv.AtLeast(7, 0), db, keys)
}

// Dumps reads keys of database db on c with DUMP and their expiry
// (PEXPIRETIME where exact, else PTTL).
func Dumps(ctx context.Context, c *redis.Client, exact bool, db int, keys []string) ([]records.Dumped, error) {
	dumps := make([]*redis.StringCmd, len(keys))
	ttls := make([]*redis.IntCmd, len(keys))
	_, err := c.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.Do(ctx, "SELECT", db)
		for i, k := range keys {
			dumps[i] = p.Dump(ctx, k)
			cmd := "PTTL"
			if exact {
				cmd = "PEXPIRETIME"
			}
			ttls[i] = redis.NewIntCmd(ctx, cmd, k)
			p.Process(ctx, ttls[i])
		}
		return nil
	})
	if err != nil && err != redis.Nil {
		return nil, fmt.Errorf("dump: %w", err)
	}
	now := time.Now().UnixMilli()
	out := make([]records.Dumped, len(keys))
	for i := range keys {
		if dumps[i].Err() != nil {
			continue
		}
		out[i].Payload = []byte(dumps[i].Val())
		switch t := ttls[i].Val(); {
		case t < 0:
		case exact:
			out[i].ExpireAtMs = t
		default:
			out[i].ExpireAtMs = now + t
		}
	}
	return out, nil
}
