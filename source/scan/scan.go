// Package scan is the source that reads a live Redis (or Valkey) server:
// SCAN per database, pipelined reads of type, value and expiry, one record
// per key (several for a large key, read in windows), in SCAN order. It
// needs nothing but ordinary commands, so it works where SYNC and DUMP
// files are out of reach, as on managed services.
package scan

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"golang.org/x/sync/errgroup"

	"github.com/crs-tool/crs/format"
	"github.com/crs-tool/crs/internal/keyset"
	"github.com/crs-tool/crs/internal/keyslot"
	"github.com/crs-tool/crs/internal/progress"
	"github.com/crs-tool/crs/internal/redisconn"
	"github.com/crs-tool/crs/internal/resp"
	"github.com/crs-tool/crs/records"
)

// Options configure a dump. NewOptions holds the defaults.
type Options struct {
	Conn redisconn.Options
	// Match is a SCAN MATCH pattern; empty means every key.
	Match string
	// Type is a SCAN TYPE type name (Redis 6.0+); empty means every type.
	Type string
	// ScanCount is the COUNT hint given to SCAN, and so about how many
	// keys go into one pipelined batch.
	ScanCount int
	// Concurrency is how many batches are read at once, each on its own
	// connection.
	Concurrency int
	// PartElems and PartBytes bound one record: a key with more elements
	// or bytes is read in windows and written as several records (parts),
	// so memory does not grow with the size of a key.
	PartElems int
	PartBytes int64
	// AllowChanging writes a key read in parts that changed during each of
	// its reads as it was last read (not a value it ever held), counting
	// it, instead of failing the dump.
	AllowChanging bool
	// Probe are keys the dump will read (records.Selection.ProbeKeys),
	// asked about before any is: the pre-flight of an ACL user's key
	// rules. None: not asked.
	Probe []string
	// SkipFunctions reads the keys without the server's function
	// libraries (for an ACL user without FUNCTION LIST), saying so.
	SkipFunctions bool
	// Keep, if not nil, says which keys SCAN returns are this source's to
	// dump; the others are counted in Stats.NotOwned. A cluster source
	// keeps the keys of the slots a node served when the dump began.
	Keep func(key string) bool
	// Part, where not whole, reads only the keys of its slots (--part);
	// the others are counted as left out by the selection, their values
	// never read.
	Part keyslot.Part
	// SeenLimit is how many keys of a database the dump remembers in
	// memory (to write a key SCAN returns twice once); past it, further
	// keys go to a temporary file and are read after SCAN ends.
	// keyset.DefaultLimit if zero.
	SeenLimit int
	// KeysKnown, if not nil, is called once the dump knows the most keys
	// it must remember in memory at a time (one database's, up to
	// SeenLimit), so that the caller can size process-wide settings such
	// as the memory limit.
	KeysKnown func(keys int64)
}

// SeenLimit returns the number of keys a dump with options o remembers in
// memory per database.
func SeenLimit(o Options) int { return keyset.Limit(o.SeenLimit) }

// NewOptions returns the default options.
func NewOptions() Options {
	return Options{
		Conn:        redisconn.NewOptions(),
		ScanCount:   1000,
		Concurrency: 4,
		PartElems:   5000,
		PartBytes:   1 << 20,
	}
}

// Source is a live server read with SCAN.
type Source struct{ opts Options }

// New returns a source that reads the server opts.Conn points at.
func New(opts Options) *Source { return &Source{opts: opts} }

// Dump reads the server and writes a header, one record per key, and (on
// success) the trailer to fw, counting keys on p of the total DBSIZE gave
// (unknown with Match). It returns what it did even when it fails part
// way.
func (s *Source) Dump(ctx context.Context, fw records.Writer, p *progress.Counter) (st records.Stats, err error) {
	st = records.Stats{From: "server", ByType: make(map[string]int64)}
	start := time.Now()
	defer func() { st.Elapsed = time.Since(start) }()
	pr, err := s.Prepare(ctx, start)
	if err != nil {
		return st, err
	}
	if s.opts.Match == "" && s.opts.Type == "" {
		p.SetTotal(pr.Total)
	}
	if err := fw.WriteHeader(pr.Header); err != nil {
		return st, fmt.Errorf("write: %w", err)
	}
	if err := s.Records(ctx, pr, fw, p, &st); err != nil {
		return st, err
	}
	if err := fw.Close(); err != nil {
		return st, fmt.Errorf("write: %w", err)
	}
	return st, nil
}

// Prepared is what a dump learns of the server before it reads any key.
type Prepared struct {
	// Header is the header of the server's dump.
	Header format.Header
	// Total is the number of keys in the databases dumped.
	Total int64
	// Functions are the server's function libraries (FUNCTION LIST
	// WITHCODE, Redis 7.0+), written before the keys.
	Functions []*format.Record
	caps      redisconn.Caps
}

// Prepare connects, finds the databases to dump and what the server can
// do, and makes the dump's header, stamped with start.
func (s *Source) Prepare(ctx context.Context, start time.Time) (*Prepared, error) {
	opts := s.opts
	// -n, --db or the URL's database dumps that one; else every one.
	only, err := opts.Conn.SelectedDB()
	if err != nil {
		return nil, err
	}
	base, srv, err := redisconn.Open(ctx, opts.Conn, 0, 2)
	if err != nil {
		return nil, err
	}
	defer base.Close()
	keyspace, err := redisconn.Keyspace(ctx, base)
	if err != nil {
		return nil, err
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
	var most, total int64 // one database's set of seen keys is kept at a time
	for _, d := range dbs {
		most = max(most, d.Keys)
		total += d.Keys
	}
	if opts.KeysKnown != nil {
		opts.KeysKnown(min(most, int64(SeenLimit(opts))))
	}
	cp, err := redisconn.ProbeCaps(ctx, base)
	if err != nil {
		return nil, err
	}
	why := "the read stops at the first key it may not read"
	if len(opts.Probe) == 1 && opts.Probe[0] == records.ProbeKey {
		why = "SCAN returns every key and each is read, so " + why + " (--match chooses the keys it may read)"
	}
	if err := redisconn.CheckKeyAccess(ctx, base, opts.Conn.Address(), opts.Probe, why); err != nil {
		return nil, err
	}
	var libs []*format.Record
	if opts.Match == "" && !opts.SkipFunctions {
		if libs, err = functions(ctx, base); err != nil {
			return nil, err
		}
	}
	var memory int64
	if opts.Match == "" && opts.Type == "" {
		if memory, err = dataMemory(ctx, base, keyspace, total); err != nil {
			return nil, err
		}
	}
	return &Prepared{Total: total, caps: cp, Functions: libs, Header: format.Header{
		CreatedMs:     start.UnixMilli(),
		Source:        opts.Conn.Address(),
		ServerVersion: srv.Version,
		Engine:        srv.Engine,
		Databases:     dbs,
		NoFieldExpiry: !cp.FieldExpiry,
		Modules:       cp.Modules,
		MemoryBytes:   memory,
	}}, nil
}

// Records reads every key of the databases pr lists and writes their
// records with w, a key's parts one after another, adding to st.
func (s *Source) Records(ctx context.Context, pr *Prepared, w records.RecordWriter, p *progress.Counter, st *records.Stats) error {
	for _, f := range pr.Functions {
		if err := w.Write(f); err != nil {
			return fmt.Errorf("write: %w", err)
		}
		st.Count(f)
	}
	for _, d := range pr.Header.Databases {
		st.Databases++ // counted once begun, so a failure's summary names it
		if err := dumpDB(ctx, w, s.opts, d, pr.caps, st, p); err != nil {
			return err
		}
	}
	return nil
}

// dataMemory estimates the memory that the keys being dumped (dumped of
// all) take on the server: its used_memory_dataset, in proportion.
func dataMemory(ctx context.Context, c *redis.Client, keyspace map[int]int64, dumped int64) (int64, error) {
	info, err := c.Info(ctx, "memory").Result()
	if err != nil {
		return 0, fmt.Errorf("info memory: %w", err)
	}
	dataset, _ := strconv.ParseInt(redisconn.InfoFields(info)["used_memory_dataset"], 10, 64)
	var all int64
	for _, n := range keyspace {
		all += n
	}
	if all == 0 || dataset <= 0 {
		return 0, nil
	}
	return int64(float64(dataset) * float64(dumped) / float64(all)), nil
}

// batch is one SCAN reply's worth of keys, read by one worker, which
// sends their records on out and closes it.
type batch struct {
	keys []string
	out  chan *format.Record
}

// dumpDB scans one database. A scanner goroutine produces batches of new
// keys, workers read them concurrently, and one goroutine writes their
// records in SCAN order, draining each batch's channel in turn. A worker
// blocks once its channel's few slots are full, so memory stays bounded
// by the workers' windows, not by the data.
func dumpDB(ctx context.Context, fw records.RecordWriter, opts Options, d format.Database, cp redisconn.Caps, st *records.Stats, p *progress.Counter) error {
	db := d.DB
	conc := max(opts.Concurrency, 1)
	// Each worker may hold a connection in WATCH while it reads a key in
	// parts on another.
	c, _, err := redisconn.Open(ctx, opts.Conn, db, 2*conc+1)
	if err != nil {
		return err
	}
	defer c.Close()

	g, gctx := errgroup.WithContext(ctx)
	work := make(chan batch)
	order := make(chan chan *format.Record, conc)
	var sc scanCounts
	var counts counters
	var vanished atomic.Int64
	g.Go(func() error {
		defer close(work)
		defer close(order)
		return scanKeys(gctx, c, opts, d, work, order, &sc)
	})
	for i := 0; i < conc; i++ {
		g.Go(func() error {
			conn, err := redisconn.Resolve(gctx, opts.Conn)
			if err != nil {
				return err
			}
			ro, err := conn.RESP(db)
			if err != nil {
				return err
			}
			rc, err := resp.Dial(gctx, ro)
			if err != nil {
				return &redisconn.Error{Addr: opts.Conn.Address(), Err: err}
			}
			defer rc.Close()
			for b := range work {
				rd := &reader{c: c, rc: rc, db: db, caps: cp, opts: opts,
					emit:     func(rec *format.Record) error { return sendCtx(gctx, b.out, rec) },
					vanished: func() { vanished.Add(1) },
					counts:   &counts,
				}
				err := rd.readBatch(gctx, b.keys)
				close(b.out)
				if err != nil {
					return err
				}
			}
			return nil
		})
	}
	g.Go(func() error {
		for out := range order {
			for rec := range out {
				if err := fw.Write(rec); err != nil {
					return fmt.Errorf("write: %w", err)
				}
				st.Count(rec)
				if !rec.More {
					p.Add(1)
				}
			}
			if err := gctx.Err(); err != nil {
				return err
			}
		}
		return nil
	})
	err = g.Wait()
	st.Duplicates += sc.dups
	st.Deferred += sc.deferred
	st.DiskBytes += sc.diskBytes
	st.Reread += counts.reread
	st.Changing += counts.changing
	st.NotOwned += sc.notOwned
	if sc.outOfPart > 0 {
		st.Unselected += sc.outOfPart
		if st.UnselectedBy == nil {
			st.UnselectedBy = map[string]int64{}
		}
		st.UnselectedBy["part"] += sc.outOfPart
	}
	st.Vanished += vanished.Load()
	return err
}

func sendCtx(ctx context.Context, ch chan<- *format.Record, rec *format.Record) error {
	select {
	case ch <- rec:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func send[T any](ctx context.Context, ch chan<- T, v T) bool {
	select {
	case ch <- v:
		return true
	case <-ctx.Done():
		return false
	}
}

// scanKeys runs SCAN over database d and hands each reply's keys not seen
// before to the workers as a batch, in order: the batch's channel goes on
// order first, so the writer drains batches in SCAN order.
func scanKeys(ctx context.Context, c *redis.Client, opts Options, d format.Database, work chan<- batch, order chan<- chan *format.Record, st *scanCounts) error {
	seen := keyset.NewSeen(opts.SeenLimit, d.Keys)
	defer seen.Close()
	sendKeys := func(keys []string) error {
		if len(keys) == 0 {
			return nil
		}
		b := batch{keys: keys, out: make(chan *format.Record, 2)}
		if !send(ctx, order, b.out) {
			return ctx.Err()
		}
		if !send(ctx, work, b) {
			close(b.out) // the writer waits on it; no worker will
			return ctx.Err()
		}
		return nil
	}
	var cursor uint64
	for {
		scan := c.Scan(ctx, cursor, opts.Match, int64(max(opts.ScanCount, 1)))
		if opts.Type != "" {
			scan = c.ScanType(ctx, cursor, opts.Match, int64(max(opts.ScanCount, 1)), opts.Type)
		}
		keys, next, err := scan.Result()
		if err != nil {
			return fmt.Errorf("db %d: scan: %w", d.DB, err)
		}
		fresh := keys[:0]
		for _, k := range keys {
			if opts.Keep != nil && !opts.Keep(k) {
				st.notOwned++
				continue
			}
			if !opts.Part.Holds(k) {
				st.outOfPart++
				continue
			}
			switch v, err := seen.Add(d.DB, k, 0); {
			case err != nil:
				return fmt.Errorf("db %d: %w", d.DB, err)
			case v == keyset.New:
				fresh = append(fresh, k)
			case v == keyset.Twice:
				st.dups++
			}
		}
		if err := sendKeys(fresh); err != nil {
			return err
		}
		cursor = next
		if cursor == 0 {
			break
		}
	}
	// Keys past the memory limit were written to disk; they are read now,
	// the first time each came, once SCAN is done.
	var fresh []string
	err := seen.Finish(func(_ int, key string, _ int64, dup bool) error {
		if dup {
			st.dups++
			return nil
		}
		st.deferred++
		if fresh = append(fresh, key); len(fresh) >= max(opts.ScanCount, 1) {
			err := sendKeys(fresh)
			fresh = nil
			return err
		}
		return nil
	})
	_, st.diskBytes = seen.Deferred()
	if err != nil {
		return fmt.Errorf("db %d: %w", d.DB, err)
	}
	return sendKeys(fresh)
}

// scanCounts are what scanKeys counts.
type scanCounts struct {
	dups, notOwned, outOfPart, deferred, diskBytes int64
}

// functions returns the server's function libraries as records; none
// before Redis 7.0, or where FUNCTION is not allowed.
func functions(ctx context.Context, c *redis.Client) ([]*format.Record, error) {
	libs, err := c.FunctionList(ctx, redis.FunctionListQuery{WithCode: true}).Result()
	switch {
	case err != nil && redisconn.IsUnknownCommand(err):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("function list: %w (a dump without the server's function libraries would lose them: --skip-functions dumps the keys alone)", err)
	}
	out := make([]*format.Record, 0, len(libs))
	for _, l := range libs {
		out = append(out, &format.Record{Key: l.Name, Type: format.TypeFunction, Str: l.Code})
	}
	return out, nil
}
