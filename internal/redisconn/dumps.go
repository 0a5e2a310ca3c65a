package redisconn

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/crs-tool/crs/records"
)

// Dumps reads keys with DUMP on c (a client of one database, or a
// cluster client), and their expiry: PEXPIRETIME where exact (7.0+), else
// PTTL added to the time now. Pipelined; one Dumped per key.
func Dumps(ctx context.Context, c redis.Cmdable, exact bool, keys []string) ([]records.Dumped, error) {
	dumps := make([]*redis.StringCmd, len(keys))
	ttls := make([]*redis.IntCmd, len(keys))
	_, err := c.Pipelined(ctx, func(p redis.Pipeliner) error {
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
		// A key gone is nil; any other refusal (NOPERM among them) must
		// not pass for one, which a sync would delete from its target.
		if err := ttls[i].Err(); err != nil && err != redis.Nil {
			return nil, fmt.Errorf("the expiry of %q: %w", keys[i], err)
		}
		if err := dumps[i].Err(); err == redis.Nil {
			continue
		} else if err != nil {
			return nil, fmt.Errorf("dump %q: %w", keys[i], err)
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

// ScanCount counts the keys of database db of the server o names with
// SCAN, which leaves out keys whose expiry has passed and that the server
// has not deleted yet; keys skip (when not nil) says yes to are left out.
func ScanCount(ctx context.Context, o Options, db int, skip func(key string) bool) (int64, error) {
	c, _, err := Open(ctx, o, db, 1)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	var n int64
	iter := c.Scan(ctx, 0, "", 1000).Iterator()
	for iter.Next(ctx) {
		if skip == nil || !skip(iter.Val()) {
			n++
		}
	}
	return n, iter.Err()
}
