// Package dump reads a live Redis (or Valkey) server and writes its keys as
// crs format records: SCAN per database, pipelined reads of type, value and
// expiry, one record per key, in SCAN order.
//
// Run is what crsdump runs: it opens the output (stdout, or a file written
// as FILE.tmp and renamed on success), compresses it with zstd, dumps, and
// prints a summary. Dump is the core, writing to a format.Writer.
package dump

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"golang.org/x/sync/errgroup"

	"github.com/crs-tool/crs/format"
	"github.com/crs-tool/crs/internal/keyset"
	"github.com/crs-tool/crs/internal/redisconn"
)

// Options configure a dump. NewOptions holds the defaults.
type Options struct {
	Conn redisconn.Options
	// Match is a SCAN MATCH pattern; empty means every key.
	Match string
	// ScanCount is the COUNT hint given to SCAN, and so about how many
	// keys go into one pipelined batch.
	ScanCount int
	// Concurrency is how many batches are read at once, each on its own
	// connection.
	Concurrency int

	// Output is a file to write; empty or "-" means standard output.
	Output string
	// Compress is "zstd" or "none".
	Compress string
	// ZstdLevel is the zstd encoder level, 1 (fastest) to 4 (best).
	ZstdLevel int
	// Quiet suppresses the summary.
	Quiet bool
}

// NewOptions returns the default options.
func NewOptions() Options {
	return Options{
		Conn:        redisconn.NewOptions(),
		ScanCount:   1000,
		Concurrency: 4,
		Compress:    "zstd",
		ZstdLevel:   1,
	}
}

// Stats counts what a dump did.
type Stats struct {
	Keys       int64            // key records written
	ByType     map[string]int64 // keys written per type
	Vanished   int64            // keys SCAN returned that were gone when read
	Duplicates int64            // keys SCAN returned more than once
	Bytes      int64            // uncompressed bytes of the dump
	Databases  int              // databases dumped
	Elapsed    time.Duration
}

// ErrUnsupportedType is returned for a key whose type crs cannot carry yet.
var ErrUnsupportedType = errors.New("type not supported")

// Dump reads the server that opts.Conn points at and writes a header, one
// record per key, and (on success) the trailer to fw. It returns what it
// did even when it fails part way.
func Dump(ctx context.Context, fw *format.Writer, opts Options) (st Stats, err error) {
	st = Stats{ByType: make(map[string]int64)}
	start := time.Now()
	defer func() { st.Elapsed = time.Since(start) }()

	// -n, --db or the URL's database dumps that one; else every one.
	only, err := opts.Conn.SelectedDB()
	if err != nil {
		return st, err
	}
	base, srv, err := redisconn.Open(ctx, opts.Conn, 0, 2)
	if err != nil {
		return st, err
	}
	defer base.Close()
	keyspace, err := redisconn.Keyspace(ctx, base)
	if err != nil {
		return st, err
	}
	var dbs []format.Database
	if only >= 0 {
		dbs = append(dbs, format.Database{DB: only, Keys: keyspace[only]})
	} else {
		for db, n := range keyspace {
			dbs = append(dbs, format.Database{DB: db, Keys: n})
		}
		sort.Slice(dbs, func(i, j int) bool { return dbs[i].DB < dbs[j].DB })
	}
	hasExpireTime, err := probe(ctx, base, "PEXPIRETIME", "crs:probe")
	if err != nil {
		return st, err
	}
	err = fw.WriteHeader(format.Header{
		CreatedMs:     start.UnixMilli(),
		Source:        opts.Conn.Address(),
		ServerVersion: srv.Version,
		Engine:        srv.Engine,
		Databases:     dbs,
	})
	if err != nil {
		return st, fmt.Errorf("write: %w", err)
	}
	for _, d := range dbs {
		if err := dumpDB(ctx, fw, opts, d.DB, hasExpireTime, &st); err != nil {
			return st, err
		}
		st.Databases++
	}
	if err := fw.Close(); err != nil {
		return st, fmt.Errorf("write: %w", err)
	}
	return st, nil
}

// probe reports whether the server has the command, by calling it.
func probe(ctx context.Context, c *redis.Client, args ...interface{}) (bool, error) {
	err := c.Do(ctx, args...).Err()
	switch {
	case err == nil || err == redis.Nil:
		return true, nil
	case redisconn.IsUnknownCommand(err):
		return false, nil
	}
	return false, fmt.Errorf("%s: %w", args[0], err)
}

// batch is one SCAN reply's worth of keys, read by one worker.
type batch struct {
	keys []string
	out  chan result // receives exactly one result
}

type result struct {
	recs     []*format.Record
	vanished int64
	err      error
}

// dumpDB scans one database. A scanner goroutine produces batches of new
// keys, workers read them concurrently, and this goroutine writes their
// records in SCAN order through an ordered channel of result channels.
func dumpDB(ctx context.Context, fw *format.Writer, opts Options, db int, hasExpireTime bool, st *Stats) error {
	conc := max(opts.Concurrency, 1)
	c, _, err := redisconn.Open(ctx, opts.Conn, db, conc+1)
	if err != nil {
		return err
	}
	defer c.Close()

	g, gctx := errgroup.WithContext(ctx)
	work := make(chan batch)
	order := make(chan chan result, conc)
	var dups int64
	g.Go(func() error {
		defer close(work)
		defer close(order)
		seen := keyset.New()
		var cursor uint64
		for {
			keys, next, err := c.Scan(gctx, cursor, opts.Match, int64(max(opts.ScanCount, 1))).Result()
			if err != nil {
				return fmt.Errorf("db %d: scan: %w", db, err)
			}
			fresh := keys[:0]
			for _, k := range keys {
				if seen.Add(k) {
					fresh = append(fresh, k)
				} else {
					dups++
				}
			}
			if len(fresh) > 0 {
				b := batch{keys: fresh, out: make(chan result, 1)}
				if !send(gctx, order, b.out) || !send(gctx, work, b) {
					return gctx.Err()
				}
			}
			cursor = next
			if cursor == 0 {
				return nil
			}
		}
	})
	for i := 0; i < conc; i++ {
		g.Go(func() error {
			for b := range work {
				recs, vanished, err := readKeys(gctx, c, db, b.keys, hasExpireTime)
				b.out <- result{recs: recs, vanished: vanished, err: err}
				if err != nil {
					return err
				}
			}
			return nil
		})
	}
	g.Go(func() error {
		for out := range order {
			var r result
			select {
			case r = <-out:
			case <-gctx.Done():
				return gctx.Err()
			}
			if r.err != nil {
				return r.err
			}
			st.Vanished += r.vanished
			for _, rec := range r.recs {
				if err := fw.Write(rec); err != nil {
					return fmt.Errorf("write: %w", err)
				}
				st.Keys++
				st.ByType[rec.Type]++
			}
		}
		return nil
	})
	err = g.Wait()
	st.Duplicates += dups
	return err
}

func send[T any](ctx context.Context, ch chan<- T, v T) bool {
	select {
	case ch <- v:
		return true
	case <-ctx.Done():
		return false
	}
}

// readKeys reads the type, value and expiry of keys in two pipelined round
// trips. Keys that are gone by the time they are read are counted, not
// returned. A key whose type changed between the two round trips is read
// again on its own.
func readKeys(ctx context.Context, c *redis.Client, db int, keys []string, hasExpireTime bool) ([]*format.Record, int64, error) {
	var vanished int64
	recs := make([]*format.Record, 0, len(keys))
	pending := keys
	for attempt := 0; len(pending) > 0; attempt++ {
		if attempt == 3 {
			return nil, vanished, fmt.Errorf("db %d: key %q keeps changing type while it is read", db, pending[0])
		}
		got, gone, retry, err := readOnce(ctx, c, db, pending, hasExpireTime)
		if err != nil {
			return nil, vanished, err
		}
		recs = append(recs, got...)
		vanished += gone
		pending = retry
	}
	return recs, vanished, nil
}

func readOnce(ctx context.Context, c *redis.Client, db int, keys []string, hasExpireTime bool) (recs []*format.Record, vanished int64, retry []string, err error) {
	types := make([]*redis.StatusCmd, len(keys))
	var timeCmd *redis.TimeCmd
	_, err = c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, k := range keys {
			types[i] = p.Type(ctx, k)
		}
		if !hasExpireTime {
			timeCmd = p.Time(ctx)
		}
		return nil
	})
	if err != nil {
		return nil, 0, nil, fmt.Errorf("db %d: read types: %w", db, err)
	}
	var nowMs int64
	if timeCmd != nil {
		nowMs = timeCmd.Val().UnixMilli()
	}
	vals := make([]*redis.Cmd, len(keys))
	exps := make([]*redis.IntCmd, len(keys))
	_, err = c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, k := range keys {
			var args []interface{}
			switch t := types[i].Val(); t {
			case "none":
				continue
			case format.TypeString:
				args = []interface{}{"GET", k}
			case format.TypeList:
				args = []interface{}{"LRANGE", k, 0, -1}
			case format.TypeSet:
				args = []interface{}{"SMEMBERS", k}
			case format.TypeHash:
				args = []interface{}{"HGETALL", k}
			case format.TypeZSet:
				args = []interface{}{"ZRANGE", k, 0, -1, "WITHSCORES"}
			default:
				return fmt.Errorf("db %d: key %q has type %q: %w by this version of crs", db, k, t, ErrUnsupportedType)
			}
			vals[i] = p.Do(ctx, args...)
			expCmd := "PTTL"
			if hasExpireTime {
				expCmd = "PEXPIRETIME"
			}
			exps[i] = redis.NewIntCmd(ctx, expCmd, k)
			p.Process(ctx, exps[i])
		}
		return nil
	})
	if err != nil && !isReplyError(err) {
		return nil, 0, nil, err
	}
	for i, k := range keys {
		if vals[i] == nil {
			vanished++
			continue
		}
		t := types[i].Val()
		rec := &format.Record{DB: db, Key: k, Type: t}
		ok, err := fillValue(rec, vals[i])
		if err != nil {
			if strings.HasPrefix(err.Error(), "WRONGTYPE") {
				retry = append(retry, k)
				continue
			}
			return nil, 0, nil, fmt.Errorf("db %d: read key %q: %w", db, k, err)
		}
		if !ok {
			vanished++
			continue
		}
		ms, err := exps[i].Result()
		if err != nil {
			return nil, 0, nil, fmt.Errorf("db %d: read expiry of %q: %w", db, k, err)
		}
		switch {
		case ms == -2:
			vanished++
			continue
		case ms == -1:
		case hasExpireTime:
			rec.ExpireAtMs = ms
		default:
			rec.ExpireAtMs = nowMs + ms
		}
		recs = append(recs, rec)
	}
	return recs, vanished, retry, nil
}

// isReplyError reports whether err is a reply from the server (such as
// WRONGTYPE for one command of a pipeline), not a connection failure.
func isReplyError(err error) bool {
	var re redis.Error
	return errors.As(err, &re)
}

// fillValue sets rec's value from a read reply. It reports false when the
// key was gone: Redis never keeps an empty list, set, hash or zset.
func fillValue(rec *format.Record, cmd *redis.Cmd) (bool, error) {
	if rec.Type == format.TypeString {
		s, err := cmd.Text()
		if err == redis.Nil {
			return false, nil
		}
		rec.Str = s
		return err == nil, err
	}
	items, err := cmd.StringSlice()
	if err != nil {
		return false, err
	}
	if len(items) == 0 {
		return false, nil
	}
	switch rec.Type {
	case format.TypeList, format.TypeSet:
		rec.Elems = items
	case format.TypeHash:
		if len(items)%2 != 0 {
			return false, fmt.Errorf("HGETALL returned %d items", len(items))
		}
		rec.Hash = make([]format.Field, len(items)/2)
		for i := range rec.Hash {
			rec.Hash[i] = format.Field{Name: items[2*i], Value: items[2*i+1]}
		}
	case format.TypeZSet:
		if len(items)%2 != 0 {
			return false, fmt.Errorf("ZRANGE returned %d items", len(items))
		}
		rec.ZSet = make([]format.Member, len(items)/2)
		for i := range rec.ZSet {
			f, err := strconv.ParseFloat(items[2*i+1], 64)
			if err != nil {
				return false, fmt.Errorf("score %q of member %q: %w", items[2*i+1], items[2*i], err)
			}
			rec.ZSet[i] = format.Member{Member: items[2*i], Score: f}
		}
	}
	return true, nil
}

// countingWriter counts the bytes written through it.
type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
