package redisconn

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/crs-tool/crs/internal/dumppayload"
)

// Dumps reads keys with DUMP on c (a client of one database, or a
// cluster client), and their expiry: PEXPIRETIME where exact (7.0+), else
// PTTL added to the time now. Pipelined; one Dumped per key.
func Dumps(ctx context.Context, c redis.Cmdable, exact bool, keys []string) ([]dumppayload.Dumped, error) {
	var d dumpCmds
	_, err := c.Pipelined(ctx, func(p redis.Pipeliner) error {
		d.queue(ctx, p, exact, keys)
		return nil
	})
	if err != nil && err != redis.Nil {
		return nil, fmt.Errorf("dump: %w", err)
	}
	return d.result(exact, keys)
}

// DumpsTx reads keys as Dumps does, in one transaction on c (a client of
// one server's database) with the server's replication offset
// (master_repl_offset): the keys as they stood at that offset of its
// replication stream.
func DumpsTx(ctx context.Context, c *redis.Client, exact bool, keys []string) ([]dumppayload.Dumped, int64, error) {
	var d dumpCmds
	var info *redis.StringCmd
	_, err := c.TxPipelined(ctx, func(p redis.Pipeliner) error {
		d.queue(ctx, p, exact, keys)
		info = p.Info(ctx, "replication")
		return nil
	})
	if err != nil && err != redis.Nil {
		return nil, 0, fmt.Errorf("dump: %w", err)
	}
	offset, err := strconv.ParseInt(InfoFields(info.Val())["master_repl_offset"], 10, 64)
	if err != nil {
		return nil, 0, fmt.Errorf("dump: the replication offset: %w", err)
	}
	out, err := d.result(exact, keys)
	return out, offset, err
}

// dumpCmds are the DUMP and expiry commands of keys, queued on a pipeline.
type dumpCmds struct {
	dumps []*redis.StringCmd
	ttls  []*redis.IntCmd
}

func (d *dumpCmds) queue(ctx context.Context, p redis.Pipeliner, exact bool, keys []string) {
	d.dumps, d.ttls = make([]*redis.StringCmd, len(keys)), make([]*redis.IntCmd, len(keys))
	for i, k := range keys {
		d.dumps[i] = p.Dump(ctx, k)
		cmd := "PTTL"
		if exact {
			cmd = "PEXPIRETIME"
		}
		d.ttls[i] = redis.NewIntCmd(ctx, cmd, k)
		p.Process(ctx, d.ttls[i])
	}
}

func (d *dumpCmds) result(exact bool, keys []string) ([]dumppayload.Dumped, error) {
	now := time.Now().UnixMilli()
	out := make([]dumppayload.Dumped, len(keys))
	for i := range keys {
		// A key gone is nil; any other refusal (NOPERM among them) must
		// not pass for one, which a sync would delete from its target.
		if err := d.ttls[i].Err(); err != nil && err != redis.Nil {
			return nil, fmt.Errorf("the expiry of %q: %w", keys[i], err)
		}
		if err := d.dumps[i].Err(); err == redis.Nil {
			continue
		} else if err != nil {
			return nil, fmt.Errorf("dump %q: %w", keys[i], err)
		}
		out[i].Payload = []byte(d.dumps[i].Val())
		switch t := d.ttls[i].Val(); {
		case t < 0:
		case exact:
			out[i].ExpireAtMs = t
		default:
			out[i].ExpireAtMs = now + t
		}
	}
	return out, nil
}

// countLaterScript counts the keys of a database whose expiry is later
// than ARGV[1] (unix ms), inside the server: no clock moves while a
// script runs. It only reads, so a server whose writes are paused runs
// it; keys of every slot of a cluster node are its own.
const countLaterScript = `#!lua flags=no-writes,allow-cross-slot-keys
local after = tonumber(ARGV[1])
local cursor = '0'
local n = 0
repeat
  local r = redis.call('SCAN', cursor, 'COUNT', 1000)
  cursor = r[1]
  for _, k in ipairs(r[2]) do
    if redis.call('PEXPIRETIME', k) > after then n = n + 1 end
  end
until cursor == '0'
return n`

// CountLater counts the keys of database db of the server o names whose
// expiry is later than after (unix ms): compared as of one instant, the
// keys of two servers whose expiries fall before it are left out on
// both, whether or not a server has deleted them yet. On 7.0 and later
// a script counts (PEXPIRETIME); before, SCAN and PTTL, pipelined.
func CountLater(ctx context.Context, o Options, db int, after int64) (int64, error) {
	c, srv, err := Open(ctx, o, db, 1)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	if srv.AtLeast(7, 0) {
		n, err := c.Eval(ctx, countLaterScript, nil, after).Int64()
		if err != nil {
			return 0, fmt.Errorf("count the keys of db %d: %w", db, err)
		}
		return n, nil
	}
	var n int64
	var cursor uint64
	for {
		keys, next, err := c.Scan(ctx, cursor, "", 1000).Result()
		if err != nil {
			return n, fmt.Errorf("count the keys of db %d: %w", db, err)
		}
		cmds := make([]*redis.DurationCmd, len(keys))
		now := time.Now().UnixMilli()
		if _, err := c.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i, k := range keys {
				cmds[i] = p.PTTL(ctx, k)
			}
			return nil
		}); err != nil && err != redis.Nil {
			return n, fmt.Errorf("count the keys of db %d: %w", db, err)
		}
		for _, cmd := range cmds {
			if d := cmd.Val(); d > 0 && now+d.Milliseconds() > after {
				n++
			}
		}
		if cursor = next; cursor == 0 {
			return n, nil
		}
	}
}
