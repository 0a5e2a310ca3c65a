// Package keyspace fills a server with keys shaped like the migration
// guide's (shared/migration-guide.zh.md): client key hashes, product
// hashes per tier, account pool slots and bindings, blacklists, rate
// limits with expiries, refresh counters and cooldowns, and a global lock.
// The demo and the benchmarks use it.
package keyspace

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/redis/go-redis/v9"
)

// Tiers are the product tiers of the guide.
var Tiers = []string{"trial", "medium", "high", "supreme"}

// Patterns are the guide's key patterns, in the order the demo prints them.
var Patterns = []string{
	"client_keys:*",
	"*_products:*",
	"*_pool:slots:*",
	"*_pool:permanent_binding",
	"account_blacklist:*",
	"*_rate_limit:*:window",
	"*_rate_limit:*:count",
	"refresh_attempts:*",
	"refresh_cooldown:*",
	"global_refresh_success_lock",
}

// Fill writes about n keys to c, pipelined, and returns how many it
// wrote. The content is pseudo-random but the same for the same n.
func Fill(ctx context.Context, c *redis.Client, n int) (int, error) {
	rng := rand.New(rand.NewPCG(uint64(n), 42))
	hex := func(k int) string {
		const digits = "0123456789abcdef"
		b := make([]byte, k)
		for i := range b {
			b[i] = digits[rng.IntN(16)]
		}
		return string(b)
	}
	now := time.Now()
	in := func(d time.Duration) int64 { return now.Add(d).UnixMilli() + int64(rng.IntN(1000)) }
	models := []string{"claude-opus-4", "claude-sonnet-4", "claude-haiku-4"}

	written := 0
	p := c.Pipeline()
	flush := func(force bool) error {
		if p.Len() < 2000 && !force {
			return nil
		}
		_, err := p.Exec(ctx)
		return err
	}
	add := func(args ...interface{}) error {
		p.Do(ctx, args...)
		return flush(false)
	}

	clients := max(n*6/10, 1)
	accounts := max(n/40, 1)
	var keys []string
	for i := 0; i < clients; i++ {
		key := "sk-cli-v1-" + hex(64)
		keys = append(keys, key)
		tier := Tiers[rng.IntN(len(Tiers))]
		created := now.Add(-time.Duration(rng.IntN(90*24)) * time.Hour)
		if err := add("HSET", "client_keys:"+key,
			"tier", tier,
			"created_at", created.Format(time.RFC3339),
			"expires_at", created.Add(30*24*time.Hour).Format(time.RFC3339),
			"requests", rng.IntN(100000),
			"status", "active",
			"note", fmt.Sprintf("客户 %d", i),
		); err != nil {
			return written, err
		}
		written++
		if i%4 == 0 {
			if err := add("HSET", tier+"_products:"+key, "product", tier, "price_cents", 100*(1+rng.IntN(50)), "bound_account", fmt.Sprintf("acct-%d", rng.IntN(accounts))); err != nil {
				return written, err
			}
			written++
		}
	}
	for a := 0; a < accounts; a++ {
		acct := fmt.Sprintf("acct-%d@example.com", a)
		tier := Tiers[a%len(Tiers)]
		steps := [][]interface{}{
			{"SET", tier + "_pool:slots:" + acct, rng.IntN(10)},
			{"SET", "refresh_attempts:" + tier + ":" + acct, rng.IntN(5)},
		}
		if a%5 == 0 {
			steps = append(steps, []interface{}{"SET", "account_blacklist:" + tier + ":" + acct, "rate limited", "PXAT", in(6 * time.Hour)})
		}
		if a%3 == 0 {
			steps = append(steps, []interface{}{"SET", "refresh_cooldown:" + tier + ":" + acct, "1", "PXAT", in(10 * time.Minute)})
		}
		for _, s := range steps {
			if err := add(s...); err != nil {
				return written, err
			}
			written++
		}
	}
	for _, tier := range Tiers {
		args := []interface{}{"HSET", tier + "_pool:permanent_binding"}
		for i := 0; i < min(len(keys), 200); i++ {
			args = append(args, keys[rng.IntN(len(keys))], fmt.Sprintf("acct-%d@example.com", rng.IntN(accounts)))
		}
		if err := add(args...); err != nil {
			return written, err
		}
		written++
	}
	for i := 0; i < max(n*3/20, 1); i++ {
		tier := []string{"high", "supreme"}[i%2]
		key := keys[rng.IntN(len(keys))]
		model := models[rng.IntN(len(models))]
		base := fmt.Sprintf("%s_rate_limit:%s:%s:", tier, key, model)
		if err := add("SET", base+"window", now.UnixMilli(), "PXAT", in(time.Minute)); err != nil {
			return written, err
		}
		if err := add("SET", base+"count", rng.IntN(60), "PXAT", in(time.Minute)); err != nil {
			return written, err
		}
		written += 2
	}
	if err := add("SET", "global_refresh_success_lock", "1", "PXAT", in(30*time.Second)); err != nil {
		return written, err
	}
	written++
	return written, flush(true)
}

// Count counts the keys matching pattern in c's database with SCAN.
func Count(ctx context.Context, c *redis.Client, pattern string) (int64, error) {
	var n int64
	iter := c.Scan(ctx, 0, pattern, 1000).Iterator()
	for iter.Next(ctx) {
		n++
	}
	return n, iter.Err()
}

// Stretch moves every expiry in c's database d later, keeping their
// spread: the guide's one-minute windows would otherwise expire while a
// test or a benchmark still compares the keys.
func Stretch(ctx context.Context, c *redis.Client, d time.Duration) error {
	var cursor uint64
	for {
		keys, next, err := c.Scan(ctx, cursor, "", 1000).Result()
		if err != nil {
			return err
		}
		p := c.Pipeline()
		cmds := make([]*redis.Cmd, len(keys))
		for i, k := range keys {
			cmds[i] = p.Do(ctx, "PEXPIRETIME", k)
		}
		if _, err := p.Exec(ctx); err != nil {
			return err
		}
		for i, k := range keys {
			if at, _ := cmds[i].Int64(); at > 0 {
				p.Do(ctx, "PEXPIREAT", k, at+d.Milliseconds())
			}
		}
		if _, err := p.Exec(ctx); err != nil && err != redis.Nil {
			return err
		}
		if cursor = next; cursor == 0 {
			return nil
		}
	}
}
