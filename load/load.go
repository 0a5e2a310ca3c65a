// Package load replays a crs dump into a Redis (or Valkey) server: each
// record becomes the commands that rebuild its key (SET, RPUSH, SADD, HSET,
// ZADD) and its expiry (PXAT or PEXPIREAT), sent in pipelines by a bounded
// set of workers. All records of one key go to the same worker, in order.
//
// Run is what crsload runs: it opens the input (zstd or plain, detected by
// the zstd magic bytes), loads, and prints a summary. Load is the core,
// reading from a format.Reader.
package load

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"golang.org/x/sync/errgroup"

	"github.com/crs-tool/crs/format"
	"github.com/crs-tool/crs/internal/keyset"
	"github.com/crs-tool/crs/internal/redisconn"
)

// TTL policies.
const (
	TTLKeep  = "keep"  // expire at the same instant as the source key
	TTLShift = "shift" // move expiries by the time between dump and load
	TTLNone  = "none"  // load every key without an expiry
)

// Options configure a load. NewOptions holds the defaults.
type Options struct {
	Conn redisconn.Options
	// Input is the dump file to read; empty or "-" means standard input.
	Input string
	// TTL is TTLKeep, TTLShift or TTLNone.
	TTL string
	// Replace deletes a key that exists in the target before writing it.
	Replace bool
	// SkipExisting leaves a key that exists in the target alone.
	SkipExisting bool
	// Concurrency is how many workers write at once, each with its own
	// connection per database.
	Concurrency int
	// Pipeline is the most records one worker sends in one round trip.
	Pipeline int
	// Quiet suppresses the summary.
	Quiet bool
}

// NewOptions returns the default options.
func NewOptions() Options {
	o := Options{
		Conn:        redisconn.NewOptions(),
		TTL:         TTLKeep,
		Concurrency: 4,
		Pipeline:    256,
	}
	o.Conn.Retries = -1 // a retried RPUSH would append twice
	return o
}

// Stats counts what a load did.
type Stats struct {
	Records  int64            // records read
	Keys     int64            // keys written
	ByType   map[string]int64 // keys written per type
	Expired  int64            // keys skipped because their expiry had passed
	Existing int64            // keys skipped because they existed (--skip-existing)
	Replaced int64            // keys that existed and were replaced (--replace)
	Bytes    int64            // bytes of input read (compressed, as given)
	Elapsed  time.Duration
}

// ErrOptions is wrapped by errors about option values.
var ErrOptions = errors.New("bad option")

// ErrTargetNotEmpty is returned when a target database already holds keys
// and neither --replace nor --skip-existing was given.
var ErrTargetNotEmpty = errors.New("the target database is not empty")

// ErrDuplicateKey is returned when the input holds the same key twice for
// one target database (as when --db merges two source databases).
var ErrDuplicateKey = errors.New("key appears twice in the input")

// elemsPerCommand bounds the elements of one RPUSH, SADD, HSET or ZADD, so
// that a large value is sent as several moderate commands.
const elemsPerCommand = 1024

// item is one record on its way to a worker.
type item struct {
	rec  *format.Record
	db   int   // target database
	exp  int64 // expiry to set, unix ms, or 0
	line int
}

// Load reads records from fr and writes them to the server. It returns
// what it did even when it fails part way.
func Load(ctx context.Context, fr *format.Reader, opts Options) (st Stats, err error) {
	st = Stats{ByType: make(map[string]int64)}
	start := time.Now()
	defer func() { st.Elapsed = time.Since(start) }()
	if opts.Replace && opts.SkipExisting {
		return st, fmt.Errorf("%w: --replace and --skip-existing cannot be used together", ErrOptions)
	}
	switch opts.TTL {
	case TTLKeep, TTLShift, TTLNone:
	default:
		return st, fmt.Errorf("%w: --ttl must be keep, shift or none, not %q", ErrOptions, opts.TTL)
	}
	hdr, err := fr.Header()
	if err != nil {
		return st, err
	}
	target, err := opts.Conn.SelectedDB()
	if err != nil {
		return st, err
	}
	conc := max(opts.Concurrency, 1)
	pool := &clients{opts: opts.Conn, size: conc + 1, m: make(map[int]*redis.Client)}
	defer pool.close()
	base, err := pool.get(ctx, 0)
	if err != nil {
		return st, err
	}
	srv := pool.srv
	clock, err := serverClock(ctx, base)
	if err != nil {
		return st, err
	}
	var shift int64
	if opts.TTL == TTLShift && hdr.CreatedMs > 0 {
		shift = clock() - hdr.CreatedMs
	}

	// Refuse to mix into databases that already hold keys.
	checked := make(map[int]bool)
	strict := !opts.Replace && !opts.SkipExisting
	if strict {
		var dbs []int
		switch {
		case target >= 0:
			dbs = []int{target}
		case hdr.Databases != nil:
			for _, d := range hdr.Databases {
				dbs = append(dbs, d.DB)
			}
		default:
			dbs = nil // every database: checked below from the keyspace
		}
		if err := checkEmpty(ctx, base, dbs, hdr.Databases == nil && target < 0); err != nil {
			return st, err
		}
		for _, db := range dbs {
			checked[db] = true
		}
		if hdr.Databases == nil && target < 0 {
			checked = nil // all checked
		}
	}

	g, gctx := errgroup.WithContext(ctx)
	workers := make([]chan item, conc)
	results := make([]Stats, conc)
	for i := range workers {
		workers[i] = make(chan item, 2*max(opts.Pipeline, 1))
		w := &worker{pool: pool, srv: srv, opts: opts, st: &results[i]}
		w.st.ByType = make(map[string]int64)
		ch := workers[i]
		g.Go(func() error { return w.run(gctx, ch) })
	}
	seed := maphash.MakeSeed()
	seen := make(map[int]*keyset.Set)
	g.Go(func() error {
		defer func() {
			for _, ch := range workers {
				close(ch)
			}
		}()
		for {
			rec, err := fr.Read()
			if err == io.EOF {
				return nil
			}
			if err != nil {
				return err
			}
			st.Records++
			it := item{rec: rec, db: rec.DB, exp: rec.ExpireAtMs, line: fr.Line()}
			if target >= 0 {
				it.db = target
			}
			if strict && checked != nil && !checked[it.db] {
				if err := checkEmpty(gctx, base, []int{it.db}, false); err != nil {
					return err
				}
				checked[it.db] = true
			}
			if seen[it.db] == nil {
				seen[it.db] = keyset.New()
			}
			if !seen[it.db].Add(rec.Key) {
				return &format.ParseError{Line: it.line, Err: fmt.Errorf("%w: %q for db %d", ErrDuplicateKey, rec.Key, it.db)}
			}
			switch opts.TTL {
			case TTLShift:
				if it.exp > 0 {
					it.exp += shift
				}
			case TTLNone:
				it.exp = 0
			}
			if it.exp > 0 && it.exp <= clock() {
				st.Expired++
				continue
			}
			var h maphash.Hash
			h.SetSeed(seed)
			h.WriteString(strconv.Itoa(it.db))
			h.WriteString(rec.Key)
			if !sendItem(gctx, workers[h.Sum64()%uint64(conc)], it) {
				return gctx.Err()
			}
		}
	})
	err = g.Wait()
	for _, r := range results {
		st.Keys += r.Keys
		st.Existing += r.Existing
		st.Replaced += r.Replaced
		for t, n := range r.ByType {
			st.ByType[t] += n
		}
	}
	return st, err
}

func sendItem(ctx context.Context, ch chan<- item, it item) bool {
	select {
	case ch <- it:
		return true
	case <-ctx.Done():
		return false
	}
}

// checkEmpty fails when any of dbs (or, with all, any database at all)
// holds keys, naming each one.
func checkEmpty(ctx context.Context, c *redis.Client, dbs []int, all bool) error {
	ks, err := redisconn.Keyspace(ctx, c)
	if err != nil {
		return err
	}
	var busy []string
	if all {
		for db, n := range ks {
			if n > 0 {
				busy = append(busy, fmt.Sprintf("db %d has %d keys", db, n))
			}
		}
		sort.Strings(busy)
	} else {
		for _, db := range dbs {
			if n := ks[db]; n > 0 {
				busy = append(busy, fmt.Sprintf("db %d has %d keys", db, n))
			}
		}
	}
	if len(busy) > 0 {
		return fmt.Errorf("%w (%s): use --replace to overwrite the keys the dump holds, or --skip-existing to keep the target's", ErrTargetNotEmpty, strings.Join(busy, ", "))
	}
	return nil
}

// serverClock returns a function that tells the server's time in unix ms,
// from one TIME call and the local monotonic clock since.
func serverClock(ctx context.Context, c *redis.Client) (func() int64, error) {
	t, err := c.Time(ctx).Result()
	if err != nil {
		return nil, fmt.Errorf("time: %w", err)
	}
	local := time.Now()
	base := t.UnixMilli()
	return func() int64 { return base + time.Since(local).Milliseconds() }, nil
}

// clients holds one go-redis client per target database, made on demand.
type clients struct {
	opts redisconn.Options
	size int
	mu   sync.Mutex
	m    map[int]*redis.Client
	srv  redisconn.Server
}

func (p *clients) get(ctx context.Context, db int) (*redis.Client, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if c := p.m[db]; c != nil {
		return c, nil
	}
	c, srv, err := redisconn.Open(ctx, p.opts, db, p.size)
	if err != nil {
		return nil, err
	}
	p.srv = srv
	p.m[db] = c
	return c, nil
}

func (p *clients) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.m {
		c.Close()
	}
}

// worker writes the records it is sent, a pipeline at a time.
type worker struct {
	pool *clients
	srv  redisconn.Server
	opts Options
	st   *Stats
}

func (w *worker) run(ctx context.Context, ch <-chan item) error {
	limit := max(w.opts.Pipeline, 1)
	batch := make([]item, 0, limit)
	for it := range ch {
		batch = append(batch[:0], it)
		// Take whatever else is already waiting, up to the limit.
	fill:
		for len(batch) < limit {
			select {
			case it, ok := <-ch:
				if !ok {
					break fill
				}
				batch = append(batch, it)
			default:
				break fill
			}
		}
		if err := w.flush(ctx, batch); err != nil {
			return err
		}
	}
	return nil
}

// flush writes a batch, one pipeline per target database.
func (w *worker) flush(ctx context.Context, batch []item) error {
	for len(batch) > 0 {
		db := batch[0].db
		n := 1
		for n < len(batch) && batch[n].db == db {
			n++
		}
		if err := w.write(ctx, db, batch[:n]); err != nil {
			return err
		}
		batch = batch[n:]
	}
	return nil
}

// write sends the commands for items, all for database db, in one pipeline
// (two with --skip-existing: EXISTS first).
func (w *worker) write(ctx context.Context, db int, items []item) error {
	c, err := w.pool.get(ctx, db)
	if err != nil {
		return err
	}
	if w.opts.SkipExisting {
		exists := make([]*redis.IntCmd, len(items))
		_, err := c.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i, it := range items {
				exists[i] = p.Exists(ctx, it.rec.Key)
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("db %d: exists: %w", db, err)
		}
		kept := items[:0:0]
		for i, it := range items {
			if exists[i].Val() > 0 {
				w.st.Existing++
				continue
			}
			kept = append(kept, it)
		}
		items = kept
		if len(items) == 0 {
			return nil
		}
	}
	type keyCmds struct {
		del  *redis.IntCmd
		cmds []redis.Cmder
	}
	per := make([]keyCmds, len(items))
	_, err = c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, it := range items {
			if w.opts.Replace {
				per[i].del = p.Del(ctx, it.rec.Key)
			}
			for _, args := range w.commands(it) {
				cmd := redis.NewCmd(ctx, args...)
				p.Process(ctx, cmd)
				per[i].cmds = append(per[i].cmds, cmd)
			}
		}
		return nil
	})
	// Check each command: the first failure names its key and line.
	for i, it := range items {
		for _, cmd := range per[i].cmds {
			if cerr := cmd.Err(); cerr != nil {
				return &KeyError{Line: it.line, DB: db, Key: it.rec.Key, Cmd: cmd.Name(), Err: cerr}
			}
		}
		if per[i].del != nil && per[i].del.Val() > 0 {
			w.st.Replaced++
		}
		w.st.Keys++
		w.st.ByType[it.rec.Type]++
	}
	if err != nil {
		return fmt.Errorf("db %d: %w", db, err)
	}
	return nil
}

// KeyError is a command the target refused while writing one key.
type KeyError struct {
	Line int
	DB   int
	Key  string
	Cmd  string
	Err  error
}

func (e *KeyError) Error() string {
	return fmt.Sprintf("line %d: db %d key %q: %s: %v", e.Line, e.DB, e.Key, strings.ToUpper(e.Cmd), e.Err)
}

func (e *KeyError) Unwrap() error { return e.Err }

// commands returns the commands that build the item's key.
func (w *worker) commands(it item) [][]interface{} {
	r := it.rec
	var out [][]interface{}
	expireSet := false
	switch r.Type {
	case format.TypeString:
		if it.exp > 0 && w.srv.AtLeast(6, 2) {
			out = append(out, []interface{}{"SET", r.Key, r.Str, "PXAT", it.exp})
			expireSet = true
		} else {
			out = append(out, []interface{}{"SET", r.Key, r.Str})
		}
	case format.TypeList, format.TypeSet:
		cmd := "RPUSH"
		if r.Type == format.TypeSet {
			cmd = "SADD"
		}
		for i := 0; i < len(r.Elems); i += elemsPerCommand {
			part := r.Elems[i:min(i+elemsPerCommand, len(r.Elems))]
			args := make([]interface{}, 0, 2+len(part))
			args = append(args, cmd, r.Key)
			for _, e := range part {
				args = append(args, e)
			}
			out = append(out, args)
		}
	case format.TypeHash:
		cmd := "HSET"
		if !w.srv.AtLeast(4, 0) {
			cmd = "HMSET"
		}
		for i := 0; i < len(r.Hash); i += elemsPerCommand {
			part := r.Hash[i:min(i+elemsPerCommand, len(r.Hash))]
			args := make([]interface{}, 0, 2+2*len(part))
			args = append(args, cmd, r.Key)
			for _, f := range part {
				args = append(args, f.Name, f.Value)
			}
			out = append(out, args)
		}
	case format.TypeZSet:
		for i := 0; i < len(r.ZSet); i += elemsPerCommand {
			part := r.ZSet[i:min(i+elemsPerCommand, len(r.ZSet))]
			args := make([]interface{}, 0, 2+2*len(part))
			args = append(args, "ZADD", r.Key)
			for _, m := range part {
				args = append(args, formatScore(m.Score), m.Member)
			}
			out = append(out, args)
		}
	}
	if it.exp > 0 && !expireSet {
		out = append(out, []interface{}{"PEXPIREAT", r.Key, it.exp})
	}
	return out
}

// formatScore writes a score the way Redis reads it back exactly: the
// shortest decimal form, and "inf" / "-inf".
func formatScore(f float64) string {
	switch {
	case math.IsInf(f, 1):
		return "inf"
	case math.IsInf(f, -1):
		return "-inf"
	}
	return strconv.FormatFloat(f, 'g', -1, 64)
}

// zstdMagic starts every zstd frame.
var zstdMagic = []byte{0x28, 0xb5, 0x2f, 0xfd}

// isZstd reports whether the buffered input starts with a zstd frame.
func isZstd(br *bufio.Reader) bool {
	b, _ := br.Peek(len(zstdMagic))
	return bytes.Equal(b, zstdMagic)
}
