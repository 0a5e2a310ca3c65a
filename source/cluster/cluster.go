// Package cluster is the source that reads a whole Redis Cluster from any
// of its nodes: it reads the slot map (CLUSTER SLOTS), dumps every shard
// in parallel with the SCAN source (from its master, or a replica), keeps
// from each node only the keys of the slots it served when the dump
// began, and checks after the dump that the slot map has not changed, so
// that a resharding never loses or doubles a key silently.
package cluster

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/crs-tool/crs/format"
	"github.com/crs-tool/crs/internal/keyslot"
	"github.com/crs-tool/crs/internal/progress"
	"github.com/crs-tool/crs/internal/redisconn"
	"github.com/crs-tool/crs/internal/slotmap"
	"github.com/crs-tool/crs/records"
	"github.com/crs-tool/crs/source/scan"
)

// Options configure a cluster dump.
type Options struct {
	// Scan is how each node is read; its Conn names any node.
	Scan scan.Options
	// FromReplicas reads each shard from a replica, to spare the masters.
	FromReplicas bool
	// NodeOnly reads only the node Scan.Conn names (the keys of the slots
	// its shard serves), not the whole cluster; the header and the
	// summary say so.
	NodeOnly bool
	// Part, where not whole, skips the shards that serve none of its
	// slots (the selection takes its keys from the others).
	Part keyslot.Part
}

// Source is a Redis Cluster.
type Source struct{ opts Options }

// New returns a source that reads the cluster opts.Scan.Conn's node is
// part of.
func New(opts Options) *Source { return &Source{opts: opts} }

// ErrResharded is wrapped when the slot map changed during the dump.
var ErrResharded = errors.New("the cluster's slot map changed during the dump")

// shardDump is one shard's part of the dump.
type shardDump struct {
	node string
	src  *scan.Source
	pr   *scan.Prepared
}

// Dump reads every shard and writes one dump.
func (s *Source) Dump(ctx context.Context, fw records.Writer, p *progress.Counter) (st records.Stats, err error) {
	st = records.Stats{From: "cluster", ByType: map[string]int64{}}
	start := time.Now()
	defer func() { st.Elapsed = time.Since(start) }()
	seed, _, err := redisconn.Open(ctx, s.opts.Scan.Conn, 0, 1)
	if err != nil {
		return st, err
	}
	defer seed.Close()
	before, err := slotmap.ReadMap(ctx, seed)
	if err != nil {
		return st, err
	}
	if n := before.Uncovered(); n > 0 {
		return st, fmt.Errorf("%d of the cluster's 16384 slots are served by no node: the cluster is not whole", n)
	}
	shards, hdr, err := s.prepare(ctx, before, start)
	if err != nil {
		return st, err
	}
	p.SetTotal(keysOf(hdr))
	if err := fw.WriteHeader(hdr); err != nil {
		return st, fmt.Errorf("write: %w", err)
	}
	// Function libraries live on each node: the union, once.
	libs, err := functions(shards)
	if err != nil {
		return st, err
	}
	for _, f := range libs {
		if err := fw.Write(f); err != nil {
			return st, fmt.Errorf("write: %w", err)
		}
		st.Count(f)
	}
	w := &keyWriter{w: fw}
	g, gctx := errgroup.WithContext(ctx)
	stats := make([]records.Stats, len(shards))
	for i, sh := range shards {
		stats[i].ByType = map[string]int64{}
		g.Go(func() error {
			sw := w.forShard()
			defer sw.release()
			err := sh.src.Records(gctx, sh.pr, sw, p, &stats[i])
			if err != nil {
				return fmt.Errorf("shard %s: %w", sh.node, err)
			}
			return nil
		})
	}
	err = g.Wait()
	for i := range stats {
		st.Add(&stats[i])
	}
	st.Databases = len(hdr.Databases)
	st.Shards, st.ShardsOf = len(shards), len(before.Shards)
	if err != nil {
		return st, err
	}
	after, err := slotmap.ReadMap(ctx, seed)
	if err != nil {
		return st, err
	}
	if moved, n := slotmap.Moved(before, after, 5); n > 0 {
		return st, fmt.Errorf("%w: %d slots moved (%s): keys in them may be missing from the dump, or in it twice; dump again once the resharding is over", ErrResharded, n, strings.Join(moved, ", "))
	}
	if err := fw.Close(); err != nil {
		return st, fmt.Errorf("write: %w", err)
	}
	return st, nil
}

// serves reports whether shard sh serves a slot of the part read.
func (s *Source) serves(sh slotmap.Shard) bool {
	if s.opts.Part.Whole() {
		return true
	}
	for _, r := range sh.Ranges {
		if s.opts.Part.Overlaps(r[0], r[1]) {
			return true
		}
	}
	return false
}

// prepare readies each shard's node and makes the dump's header.
func (s *Source) prepare(ctx context.Context, m *slotmap.Map, start time.Time) ([]shardDump, format.Header, error) {
	// Each shard gets its share of the concurrency, and at least two
	// batches at once, so that a round trip to one never idles it.
	conc := max(s.opts.Scan.Concurrency/len(m.Shards), 2)
	// The shards are read at once: each remembers its share of the keys
	// the dump may hold in memory.
	limit := max(scan.SeenLimit(s.opts.Scan)/len(m.Shards), 1<<14)
	var shards []shardDump
	hdr := format.Header{CreatedMs: start.UnixMilli(), Source: s.opts.Scan.Conn.Address(), Cluster: &format.Cluster{NodeOnly: s.opts.NodeOnly}}
	dbs := map[int]int64{}
	seed, err := s.opts.Scan.Conn.ClientOptions()
	if err != nil {
		return nil, hdr, err
	}
	for k, sh := range m.Shards {
		if !s.serves(sh) {
			continue
		}
		node := sh.Master
		readOnly := s.opts.FromReplicas
		switch {
		case s.opts.NodeOnly:
			node, readOnly = slotmap.Node{}, false
			if sh.Master.Addr == seed.Addr {
				node = sh.Master
			}
			for _, r := range sh.Replicas {
				if r.Addr == seed.Addr {
					node, readOnly = r, true
				}
			}
			if node.Addr == "" {
				continue // another shard
			}
			conc = max(s.opts.Scan.Concurrency, 1)
			limit = scan.SeenLimit(s.opts.Scan)
		case s.opts.FromReplicas:
			if len(sh.Replicas) == 0 {
				return nil, hdr, fmt.Errorf("--from-replicas: the shard of %s (slots %s) has no replica", sh.Master.Addr, sh.SlotsText())
			}
			node = sh.Replicas[0]
		}
		o := s.opts.Scan
		o.Conn = o.Conn.At(node.Addr)
		o.Conn.ReadOnly = readOnly
		o.Concurrency = conc
		o.SeenLimit = limit
		o.KeysKnown = nil // called once below, for all shards
		o.Keep = func(key string) bool { return m.Owner(key) == k }
		src := scan.New(o)
		pr, err := src.Prepare(ctx, start)
		if err != nil {
			return nil, hdr, fmt.Errorf("shard %s: %w", node.Addr, err)
		}
		shards = append(shards, shardDump{node: node.Addr, src: src, pr: pr})
		h := pr.Header
		hdr.ServerVersion, hdr.Engine = oldest(hdr.ServerVersion, h.ServerVersion), h.Engine
		hdr.NoFieldExpiry = hdr.NoFieldExpiry || h.NoFieldExpiry
		hdr.Modules = unionModules(hdr.Modules, h.Modules, len(shards) == 1)
		hdr.MemoryBytes += h.MemoryBytes
		for _, d := range h.Databases {
			dbs[d.DB] += d.Keys
		}
		hdr.Cluster.Shards = append(hdr.Cluster.Shards, format.Shard{Node: node.Addr, Slots: sh.SlotsText()})
	}
	var keys int64
	hdr.Databases = []format.Database{}
	for db, n := range dbs {
		keys = max(keys, n)
		hdr.Databases = append(hdr.Databases, format.Database{DB: db, Keys: n})
	}
	sort.Slice(hdr.Databases, func(i, j int) bool { return hdr.Databases[i].DB < hdr.Databases[j].DB })
	if s.opts.Scan.KeysKnown != nil {
		s.opts.Scan.KeysKnown(min(keys, int64(limit*len(shards))))
	}
	if len(shards) == 0 {
		return nil, hdr, fmt.Errorf("--node-only: %s serves no slot and replicates no master that does", seed.Addr)
	}
	return shards, hdr, nil
}

// unionModules adds a shard's modules to those of the shards before it;
// nil (not known) for any shard makes the union not known.
func unionModules(all, shard []string, first bool) []string {
	if first {
		return shard
	}
	if all == nil || shard == nil {
		return nil
	}
	for _, m := range shard {
		if !slices.Contains(all, m) {
			all = append(all, m)
		}
	}
	return all
}

// oldest returns the lower of two versions ("" counts as unknown).
func oldest(a, b string) string {
	if a == "" {
		return b
	}
	am, an := redisconn.ParseVersion(a)
	bm, bn := redisconn.ParseVersion(b)
	if bm < am || bm == am && bn < an {
		return b
	}
	return a
}

func keysOf(h format.Header) int64 {
	var n int64
	for _, d := range h.Databases {
		n += d.Keys
	}
	return n
}

// keyWriter lets the shards' readers write into one dump: a reader holds
// it from the first record of a key to the last, so that the parts of a
// key stay together.
type keyWriter struct {
	mu sync.Mutex
	w  records.Writer
}

// forShard returns a writer for one shard's reader.
func (k *keyWriter) forShard() *shardWriter { return &shardWriter{k: k} }

type shardWriter struct {
	k    *keyWriter
	held bool
}

// release lets go of the dump when the shard's reader stopped inside a
// key (on an error).
func (s *shardWriter) release() {
	if s.held {
		s.held = false
		s.k.mu.Unlock()
	}
}

func (s *shardWriter) Write(rec *format.Record) error {
	if !s.held {
		s.k.mu.Lock()
		s.held = true
	}
	err := s.k.w.Write(rec)
	if !rec.More || err != nil {
		s.held = false
		s.k.mu.Unlock()
	}
	return err
}

// functions returns the function libraries of every shard's node, each
// once, and takes them from the shards' own dumps. A library that is not
// the same on every node that has it fails the dump.
func functions(shards []shardDump) ([]*format.Record, error) {
	var out []*format.Record
	seen := map[string]string{}
	for _, sh := range shards {
		for _, f := range sh.pr.Functions {
			code, ok := seen[f.Key]
			switch {
			case !ok:
				seen[f.Key] = f.Str
				out = append(out, f)
			case code != f.Str:
				return nil, fmt.Errorf("function library %q is not the same on every node (%s differs): load the same code everywhere first", f.Key, sh.node)
			}
		}
		sh.pr.Functions = nil
	}
	return out, nil
}
