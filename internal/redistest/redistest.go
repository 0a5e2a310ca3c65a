// Package redistest starts real redis-server processes for tests and
// compares two servers key by key.
//
// Without redis-server on the PATH a test fails when the environment
// variable CI is set, and is skipped otherwise.
package redistest

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/crs-tool/crs/format"
	"github.com/crs-tool/crs/internal/redisconn"
	"github.com/crs-tool/crs/internal/redisserver"
)

// The tests' clients stay quiet as crs's do: go-redis logs each failed
// dial of a server a test has stopped on purpose, which only buries what
// the tests print.
func init() { redis.SetLogger(redisconn.QuietLogger{}) }

// Start starts a throwaway redis-server for t, with extra config
// arguments, and kills it when t ends.
func Start(t testing.TB, args ...string) *redisserver.Server {
	t.Helper()
	s, err := redisserver.Start(context.Background(), args...)
	if err == redisserver.ErrNotInstalled && os.Getenv("CI") == "" {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// StartBinary starts a throwaway server from the binary bin, with extra
// config arguments, and kills it when t ends.
func StartBinary(t testing.TB, bin string, args ...string) *redisserver.Server {
	t.Helper()
	s, err := redisserver.StartBinary(context.Background(), bin, args...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// WaitFor polls cond until it holds, failing t after a minute: tests wait
// for a condition (keys on the target, bytes written), never for a fixed
// time, so that a busy machine slows them without failing them.
func WaitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	WaitWithin(t, time.Minute, what, cond)
}

// WaitWithin is WaitFor with a deadline of its own, for what takes long
// on a busy machine (a sync catching up with a writer).
func WaitWithin(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// FileHasBytes returns a condition that holds once one of the files
// exists and is not empty.
func FileHasBytes(paths ...string) func() bool {
	return func() bool {
		for _, p := range paths {
			if fi, err := os.Stat(p); err == nil && fi.Size() > 0 {
				return true
			}
		}
		return false
	}
}

// Client returns a client for database db of s, closed when t ends.
func Client(t testing.TB, s *redisserver.Server, db int) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: s.Addr, DB: db, Protocol: 2, DisableIdentity: true, ReadTimeout: 2 * time.Minute})
	t.Cleanup(func() { c.Close() })
	return c
}

// Key is everything crs carries of one key, read back from a server.
type Key struct {
	Type     string
	Value    []string // string: one item; list: in order; set: sorted; hash: sorted field, value pairs; zset: member, score text in rank order
	ExpireAt int64    // PEXPIRETIME: -1 for none
	// IDMP is a stream's idempotent-producer state (Redis 8.6) where it
	// has any beyond the defaults: settings, counts, tracked IDs.
	IDMP []string
}

// Read reads one key from c.
func Read(ctx context.Context, c *redis.Client, key string) (Key, error) {
	var k Key
	t, err := c.Type(ctx, key).Result()
	if err != nil {
		return k, err
	}
	k.Type = t
	switch t {
	case "none":
		return k, nil
	case "string":
		v, err := c.Get(ctx, key).Result()
		if err != nil {
			return k, err
		}
		k.Value = []string{v}
	case "list":
		k.Value, err = c.LRange(ctx, key, 0, -1).Result()
	case "set":
		k.Value, err = c.SMembers(ctx, key).Result()
		sort.Strings(k.Value)
	case "hash":
		var m map[string]string
		m, err = c.HGetAll(ctx, key).Result()
		names := make([]string, 0, len(m))
		for f := range m {
			names = append(names, f)
		}
		sort.Strings(names)
		for _, f := range names {
			k.Value = append(k.Value, f, m[f])
		}
	case "zset":
		// The server's own score text, so that any change shows.
		k.Value, err = c.Do(ctx, "ZRANGE", key, 0, -1, "WITHSCORES").StringSlice()
	case "stream":
		k.Value, k.IDMP, err = readStream(ctx, c, key)
	default:
		return k, fmt.Errorf("key %q: type %s not compared", key, t)
	}
	if err != nil {
		return k, err
	}
	k.ExpireAt, err = expireAt(ctx, c, key)
	return k, err
}

// expireAt is the key's PEXPIRETIME, or, on a server without it, the
// server's TIME plus its PTTL.
func expireAt(ctx context.Context, c *redis.Client, key string) (int64, error) {
	ms, err := c.Do(ctx, "PEXPIRETIME", key).Int64()
	if err == nil || !strings.HasPrefix(err.Error(), "ERR unknown command") {
		return ms, err
	}
	now, err := c.Time(ctx).Result()
	if err != nil {
		return 0, err
	}
	if ms, err = c.Do(ctx, "PTTL", key).Int64(); err != nil || ms < 0 {
		return ms, err
	}
	return now.UnixMilli() + ms, nil
}

// readStream flattens XINFO STREAM FULL into comparable lines: entries
// with their fields in order, the stream's IDs and counters, each group's
// last-delivered ID and entries-read, its pending entries with consumer,
// delivery time and count, and its consumers with their pending counts.
// Consumers' seen and active times are left out: no command sets them, so
// a load cannot carry them.
func readStream(ctx context.Context, c *redis.Client, key string) (_, idmp []string, err error) {
	res, err := c.Do(ctx, "XINFO", "STREAM", key, "FULL", "COUNT", 0).Slice()
	if err != nil {
		return nil, nil, err
	}
	var out []string
	info := pairs(res)
	for _, f := range []string{"length", "last-generated-id", "max-deleted-entry-id", "entries-added"} {
		out = append(out, fmt.Sprintf("%s=%v", f, info[f]))
	}
	// Idempotent producers (8.6): settings, counts, and every tracked ID,
	// which only the DUMP payload shows. iids-added and iids-duplicates
	// are the stream's own history, which no command sets.
	dur, _ := info["idmp-duration"].(int64)
	max, _ := info["idmp-maxsize"].(int64)
	n, _ := info["iids-tracked"].(int64)
	if info["idmp-duration"] != nil && (n > 0 || dur != format.DefaultIDMPDuration || max != format.DefaultIDMPMaxSize) {
		idmp = append(idmp, fmt.Sprintf("duration=%v maxsize=%v pids-tracked=%v iids-tracked=%v", dur, max, info["pids-tracked"], n))
		if n > 0 {
			tracked, err := trackedIDs(ctx, c, key)
			if err != nil {
				return nil, nil, err
			}
			idmp = append(idmp, tracked...)
		}
	}
	for _, e := range list(info["entries"]) {
		out = append(out, fmt.Sprintf("entry %q", e))
	}
	for _, gv := range list(info["groups"]) {
		g := pairs(gv)
		out = append(out, fmt.Sprintf("group %q last-delivered-id=%v entries-read=%v pel-count=%v", g["name"], g["last-delivered-id"], g["entries-read"], g["pel-count"]))
		for _, p := range list(g["pending"]) {
			out = append(out, fmt.Sprintf("  pending %q", p))
		}
		for _, cv := range list(g["consumers"]) {
			cm := pairs(cv)
			out = append(out, fmt.Sprintf("  consumer %q pel-count=%v pending=%q", cm["name"], cm["pel-count"], cm["pending"]))
		}
	}
	return out, idmp, nil
}

// PayloadDecoder decodes a key's DUMP payload to its records: what a
// stream's tracked idempotent IDs are read from (no command lists them).
// A test package that compares such streams sets it (to rdb's decoder:
// redistest imports no source).
var PayloadDecoder func(payload []byte, key string, emit func(*format.Record) error) error

// trackedIDs lists a stream's tracked idempotent IDs, one line a
// producer, from its DUMP payload.
func trackedIDs(ctx context.Context, c *redis.Client, key string) ([]string, error) {
	if PayloadDecoder == nil {
		return nil, fmt.Errorf("stream %q tracks idempotent IDs, and redistest.PayloadDecoder is not set to read them", key)
	}
	payload, err := c.Dump(ctx, key).Result()
	if err != nil {
		return nil, err
	}
	var out []string
	err = PayloadDecoder([]byte(payload), key, func(rec *format.Record) error {
		if rec.Stream != nil && rec.Stream.IDMP != nil {
			for _, p := range rec.Stream.IDMP.Producers {
				out = append(out, fmt.Sprintf("producer %q: %q", p.PID, p.IIDs))
			}
		}
		return nil
	})
	return out, err
}

func pairs(v interface{}) map[string]interface{} {
	a := list(v)
	m := make(map[string]interface{}, len(a)/2)
	for i := 0; i+1 < len(a); i += 2 {
		if k, ok := a[i].(string); ok {
			m[k] = a[i+1]
		}
	}
	return m
}

func list(v interface{}) []interface{} {
	a, _ := v.([]interface{})
	return a
}

// Keys returns every key of database db.
func Keys(ctx context.Context, c *redis.Client) ([]string, error) {
	var out []string
	iter := c.Scan(ctx, 0, "", 1000).Iterator()
	for iter.Next(ctx) {
		out = append(out, iter.Val())
	}
	sort.Strings(out)
	// SCAN may repeat a key; keep one.
	uniq := out[:0]
	for i, k := range out {
		if i == 0 || k != out[i-1] {
			uniq = append(uniq, k)
		}
	}
	return uniq, iter.Err()
}

// Diff compares every key of databases 0 to 15 on a and b and returns one
// line per difference: a key missing on either side, a different type,
// value or expiry (more than tolerance ms apart).
func Diff(ctx context.Context, a, b *redisserver.Server, tolerance int64) ([]string, error) {
	return diff(ctx, a, b, tolerance, false)
}

// DiffLive compares two servers whose keys expire while they are read, as
// of one instant: a key that one holds and the other does not, or that is
// gone by the time it is read, is no difference where its expiry falls
// within two seconds of the comparison (each server deletes keys on its
// own clock). Expiries must be equal to the millisecond.
func DiffLive(ctx context.Context, a, b *redisserver.Server) ([]string, error) {
	return diff(ctx, a, b, 0, true)
}

func diff(ctx context.Context, a, b *redisserver.Server, tolerance int64, live bool) ([]string, error) {
	var diffs []string
	for db := 0; db < 16; db++ {
		ca := redis.NewClient(&redis.Options{Addr: a.Addr, DB: db, Protocol: 2, DisableIdentity: true})
		cb := redis.NewClient(&redis.Options{Addr: b.Addr, DB: db, Protocol: 2, DisableIdentity: true})
		d, err := diffDB(ctx, ca, cb, tolerance, live)
		ca.Close()
		cb.Close()
		if err != nil {
			return nil, fmt.Errorf("db %d: %w", db, err)
		}
		for _, line := range d {
			diffs = append(diffs, fmt.Sprintf("db %d: %s", db, line))
		}
	}
	return diffs, nil
}

// soon reports whether k, read on one side only, expires within two
// seconds of now (or was gone when read).
func soon(k Key) bool {
	return k.Type == "none" || (k.ExpireAt >= 0 && k.ExpireAt <= time.Now().UnixMilli()+2000)
}

func diffDB(ctx context.Context, ca, cb *redis.Client, tolerance int64, live bool) ([]string, error) {
	ka, err := Keys(ctx, ca)
	if err != nil {
		return nil, err
	}
	kb, err := Keys(ctx, cb)
	if err != nil {
		return nil, err
	}
	var diffs, same []string
	inB := make(map[string]bool, len(kb))
	for _, k := range kb {
		inB[k] = true
	}
	for _, k := range ka {
		va, err := Read(ctx, ca, k)
		if err != nil {
			return nil, err
		}
		if !inB[k] {
			if !live || !soon(va) {
				diffs = append(diffs, fmt.Sprintf("key %q missing from target", k))
			}
			continue
		}
		delete(inB, k)
		vb, err := Read(ctx, cb, k)
		if err != nil {
			return nil, err
		}
		if live && (va.Type == "none" || vb.Type == "none") && soon(va) && soon(vb) {
			continue
		}
		d := compare(k, va, vb, tolerance)
		if len(d) == 0 && !live {
			same = append(same, k)
		}
		diffs = append(diffs, d...)
	}
	d, err := digestDiffs(ctx, ca, cb, same)
	if err != nil {
		return nil, err
	}
	diffs = append(diffs, d...)
	extra := make([]string, 0, len(inB))
	for k := range inB {
		extra = append(extra, k)
	}
	sort.Strings(extra)
	for _, k := range extra {
		if live {
			vb, err := Read(ctx, cb, k)
			if err != nil {
				return nil, err
			}
			if soon(vb) {
				continue
			}
		}
		diffs = append(diffs, fmt.Sprintf("key %q only in target", k))
	}
	return diffs, nil
}

// digestDiffs compares DEBUG DIGEST-VALUE of keys whose values read the
// same, where both servers are one version (digests of scores differ
// between versions) with DEBUG on: it sees what reading cannot, such as a
// value the server holds other than it answers.
func digestDiffs(ctx context.Context, ca, cb *redis.Client, keys []string) ([]string, error) {
	if len(keys) == 0 || !digestable(ctx, ca, cb) {
		return nil, nil
	}
	var diffs []string
	for len(keys) > 0 {
		n := min(len(keys), 1000)
		args := []any{"DEBUG", "DIGEST-VALUE"}
		for _, k := range keys[:n] {
			args = append(args, k)
		}
		da, err := ca.Do(ctx, args...).StringSlice()
		if err != nil {
			return nil, fmt.Errorf("DEBUG DIGEST-VALUE: %w", err)
		}
		db, err := cb.Do(ctx, args...).StringSlice()
		if err != nil {
			return nil, fmt.Errorf("DEBUG DIGEST-VALUE: %w", err)
		}
		for i := range da {
			if i < len(db) && da[i] != db[i] {
				diffs = append(diffs, fmt.Sprintf("key %q: DEBUG DIGEST-VALUE %s, target %s", keys[i], da[i], db[i]))
			}
		}
		keys = keys[n:]
	}
	return diffs, nil
}

// digestable reports whether both servers answer DEBUG DIGEST-VALUE and
// are the same server version.
func digestable(ctx context.Context, ca, cb *redis.Client) bool {
	var vs [2]string
	for i, c := range []*redis.Client{ca, cb} {
		if err := c.Do(ctx, "DEBUG", "DIGEST-VALUE", "crs:no-such-key").Err(); err != nil {
			return false
		}
		info, err := c.Info(ctx, "server").Result()
		if err != nil {
			return false
		}
		for _, line := range strings.Split(info, "\n") {
			if strings.HasPrefix(line, "redis_version:") || strings.HasPrefix(line, "valkey_version:") || strings.HasPrefix(line, "server_name:") {
				vs[i] += strings.TrimSpace(line) + " "
			}
		}
	}
	return vs[0] != "" && vs[0] == vs[1]
}

func compare(k string, a, b Key, tolerance int64) []string {
	var d []string
	if a.Type != b.Type {
		return []string{fmt.Sprintf("key %q: type %s, target %s", k, a.Type, b.Type)}
	}
	if len(a.Value) != len(b.Value) {
		d = append(d, fmt.Sprintf("key %q: %d items, target %d", k, len(a.Value), len(b.Value)))
	} else {
		for i := range a.Value {
			if a.Value[i] != b.Value[i] && !(a.Type == "zset" && i%2 == 1 && sameScore(a.Value[i], b.Value[i])) {
				d = append(d, fmt.Sprintf("key %q: item %d is %s, target %s", k, i, strconv.Quote(a.Value[i]), strconv.Quote(b.Value[i])))
				break
			}
		}
	}
	if strings.Join(a.IDMP, "\n") != strings.Join(b.IDMP, "\n") {
		d = append(d, fmt.Sprintf("key %q: idmp %q, target %q", k, a.IDMP, b.IDMP))
	}
	switch {
	case (a.ExpireAt < 0) != (b.ExpireAt < 0):
		d = append(d, fmt.Sprintf("key %q: expiry %d, target %d", k, a.ExpireAt, b.ExpireAt))
	case a.ExpireAt >= 0 && (a.ExpireAt-b.ExpireAt > tolerance || b.ExpireAt-a.ExpireAt > tolerance):
		d = append(d, fmt.Sprintf("key %q: expiry %d, target %d", k, a.ExpireAt, b.ExpireAt))
	}
	return d
}

// sameScore reports whether two servers' texts of a score are the same
// number: versions print scores differently (7.0 prints 17 digits where
// 7.2 prints the shortest form, 6.2 prints -0 where 7.0 prints 0).
func sameScore(a, b string) bool {
	x, err1 := strconv.ParseFloat(a, 64)
	y, err2 := strconv.ParseFloat(b, 64)
	return err1 == nil && err2 == nil && x == y
}

// Cluster is a throwaway Redis Cluster: its nodes, masters first.
type Cluster struct {
	*redisserver.Cluster
}

// StartCluster starts a Redis Cluster of masters masters with replicas
// replicas each (Debian's redis-server, or bin when given), and kills it
// when t ends.
func StartCluster(t testing.TB, masters, replicas int, bin string, args ...string) *Cluster {
	t.Helper()
	c, err := redisserver.StartCluster(context.Background(), masters, replicas, bin, args...)
	if err == redisserver.ErrNotInstalled && os.Getenv("CI") == "" {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return &Cluster{c}
}

// WaitStable waits until the cluster agrees on its slots, failing t after
// a minute.
func (c *Cluster) WaitStable(t testing.TB) {
	t.Helper()
	if err := c.Cluster.WaitStable(context.Background(), time.Minute); err != nil {
		t.Fatal(err)
	}
}

// Client returns a cluster client of c, closed when t ends.
func (c *Cluster) Client(t testing.TB) *redis.ClusterClient {
	t.Helper()
	var addrs []string
	for _, s := range c.Nodes {
		addrs = append(addrs, s.Addr)
	}
	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs, Protocol: 2, DisableIdentity: true, ReadTimeout: 2 * time.Minute})
	t.Cleanup(func() { cc.Close() })
	return cc
}
