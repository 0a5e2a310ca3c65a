// Package stats summarises a keyspace, from a dump file or from a live
// server (through a dump of it, read as it is made): per database the
// number of keys, keys per type, keys with an expiry, bytes (of the dump's
// records), the biggest keys, and key counts grouped by pattern.
//
// Patterns are found without being told: keys are split at ':', and a
// segment position that takes more than two distinct values among keys of
// the same shape (segment count and first segment) becomes '*', so client_keys:sk-... keys count as
// client_keys:* and high_rate_limit:<key>:<model>:window as
// high_rate_limit:*:*:window. Patterns given with --pattern (SCAN MATCH
// syntax) count the keys matching each instead. Memory is bounded: at
// most two distinct values are remembered per segment position, keys are
// looked at up to their 16th segment, and keys of one segment count whose
// first segments take more than 64 values (ids without a prefix) count
// as one pattern whose first segment is '*'.
package stats

import (
	"container/heap"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/crs-tool/crs/format"
	"github.com/crs-tool/crs/records"
)

// Options configure stats. NewOptions holds the defaults.
type Options struct {
	// Patterns, when given, are counted instead of the patterns found.
	Patterns []string
	// Top is how many of the biggest keys are listed.
	Top int
	// JSON prints one JSON object instead of tables.
	JSON bool
}

// NewOptions returns the defaults.
func NewOptions() Options {
	return Options{Top: 10}
}

// DB is what stats found in one database.
type DB struct {
	DB       int              `json:"db"`
	Keys     int64            `json:"keys"`
	ByType   map[string]int64 `json:"keys_by_type"`
	Expiring int64            `json:"keys_with_expiry"`
	Bytes    int64            `json:"bytes"`
	Patterns []Count          `json:"patterns"`
	Biggest  []Key            `json:"biggest_keys"`

	shapes  map[string]*shape
	firsts  map[int]int  // distinct first segments seen, by segment count
	merged  map[int]bool // segment counts whose shapes were merged
	given   []int64
	biggest keyHeap
}

// Count is a pattern and the number of keys it matches.
type Count struct {
	Pattern string `json:"pattern"`
	Keys    int64  `json:"keys"`
}

// Key is one key with its size: the bytes of its records in the dump.
type Key struct {
	Key   string `json:"key"`
	Type  string `json:"type"`
	Bytes int64  `json:"bytes"`
}

// distinctLimit is how many distinct values a segment position may take
// before it counts as varying. Two keeps "window" and "count" apart in
// high_rate_limit:<key>:<model>:window|count while the model (three or
// more values) becomes '*', as the example has it.
const distinctLimit = 2

// shape gathers keys with the same number of segments and the same first
// segment.
type shape struct {
	n       int
	values  []map[string]bool // per position, until it varies (then nil)
	varying []bool
	counts  map[string]int64 // by projection: the non-varying segments
}

func (s *shape) add(segs []string) {
	for i, v := range segs {
		if s.varying[i] {
			continue
		}
		s.values[i][v] = true
		if len(s.values[i]) > distinctLimit {
			s.varying[i], s.values[i] = true, nil
			s.collapse(i)
		}
	}
	s.counts[s.project(segs)]++
}

// project is the key with its varying segments replaced by '*'.
func (s *shape) project(segs []string) string {
	out := make([]string, len(segs))
	for i, v := range segs {
		if s.varying[i] {
			out[i] = "*"
		} else {
			out[i] = v
		}
	}
	return strings.Join(out, ":")
}

// collapse merges the counts after position i began to vary.
func (s *shape) collapse(i int) {
	merged := make(map[string]int64, len(s.counts))
	for p, n := range s.counts {
		segs := strings.Split(p, ":")
		if i < len(segs) {
			segs[i] = "*"
		}
		merged[strings.Join(segs, ":")] += n
	}
	s.counts = merged
}

// keyHeap keeps the biggest keys, smallest on top.
type keyHeap []Key

func (h keyHeap) Len() int           { return len(h) }
func (h keyHeap) Less(i, j int) bool { return h[i].Bytes < h[j].Bytes }
func (h keyHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *keyHeap) Push(x any)        { *h = append(*h, x.(Key)) }
func (h *keyHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// Collect reads every record of r.
func Collect(ctx context.Context, r records.Reader, opts Options) ([]*DB, error) {
	if _, err := r.Header(); err != nil {
		return nil, err
	}
	dbs := map[int]*DB{}
	var cur *Key // the key whose parts are being added up
	var curDB *DB
	err := records.Each(ctx, r, func(rec *format.Record) error {
		if rec.Type == format.TypeFunction {
			return nil // not a key
		}
		d := dbs[rec.DB]
		if d == nil {
			d = &DB{DB: rec.DB, ByType: map[string]int64{}, shapes: map[string]*shape{}, firsts: map[int]int{}, merged: map[int]bool{}, given: make([]int64, len(opts.Patterns))}
			dbs[rec.DB] = d
		}
		// The bytes of the record's line, as a dump file holds it, so
		// that a server and its dump give the same numbers.
		var size int64
		if lr, ok := r.(interface{ LineSize() int }); ok {
			size = int64(lr.LineSize())
		}
		if size == 0 {
			size = int64(format.EncodedSize(rec))
		}
		d.Bytes += size
		if rec.Part > 1 {
			cur.Bytes += size
		} else {
			d.Keys++
			d.ByType[rec.Type]++
			if rec.ExpireAtMs > 0 {
				d.Expiring++
			}
			d.addKey(rec.Key, opts.Patterns)
			cur, curDB = &Key{Key: rec.Key, Type: rec.Type, Bytes: size}, d
		}
		if !rec.More {
			curDB.keep(*cur, opts.Top)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	out := make([]*DB, 0, len(dbs))
	for _, d := range dbs {
		d.finish(opts.Patterns)
		out = append(out, d)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].DB < out[j].DB })
	return out, nil
}

func (d *DB) addKey(key string, patterns []string) {
	if len(patterns) > 0 {
		for i, p := range patterns {
			if records.Glob(p, key) {
				d.given[i]++
			}
		}
		return
	}
	segs := strings.Split(key, ":")
	if len(segs) > maxSegments {
		segs = append(segs[:maxSegments], "*") // the rest, whatever it is
	}
	n := len(segs)
	id := fmt.Sprintf("%d:%s", n, segs[0])
	if d.merged[n] {
		id = fmt.Sprintf("%d:*", n)
	}
	s := d.shapes[id]
	if s == nil {
		if d.firsts[n]++; d.firsts[n] > maxFirsts {
			d.merge(n)
			d.addKey(key, patterns)
			return
		}
		s = newShape(n)
		d.shapes[id] = s
	}
	s.add(segs)
}

// Bounds on what pattern finding remembers, so that memory stays bounded
// whatever the keys: keys of more segments are counted by their first
// maxSegments, and when keys of one segment count start with more than
// maxFirsts distinct first segments (keys that are ids, say), the first
// segment of those keys counts as varying.
const (
	maxSegments = 16
	maxFirsts   = 64
)

func newShape(n int) *shape {
	s := &shape{n: n, values: make([]map[string]bool, n), varying: make([]bool, n), counts: map[string]int64{}}
	for i := range s.values {
		s.values[i] = map[string]bool{}
	}
	return s
}

// merge folds every shape of n segments into one whose first segment
// varies.
func (d *DB) merge(n int) {
	m := newShape(n)
	m.varying[0], m.values[0] = true, nil
	for id, s := range d.shapes {
		if s.n != n {
			continue
		}
		delete(d.shapes, id)
		for i := 1; i < n; i++ {
			if s.varying[i] && !m.varying[i] {
				m.varying[i], m.values[i] = true, nil
			}
		}
		for i := 1; i < n; i++ {
			if m.varying[i] {
				continue
			}
			for v := range s.values[i] {
				m.values[i][v] = true
			}
			if len(m.values[i]) > distinctLimit {
				m.varying[i], m.values[i] = true, nil
			}
		}
		for p, c := range s.counts {
			m.counts[p] += c
		}
	}
	// Re-project the counts with every position that now varies.
	for i := 0; i < n; i++ {
		if m.varying[i] {
			m.collapse(i)
		}
	}
	d.shapes[fmt.Sprintf("%d:*", n)] = m
	d.merged[n] = true
}

func (d *DB) keep(k Key, top int) {
	if top <= 0 {
		return
	}
	if len(d.biggest) < top {
		heap.Push(&d.biggest, k)
	} else if k.Bytes > d.biggest[0].Bytes {
		d.biggest[0] = k
		heap.Fix(&d.biggest, 0)
	}
}

func (d *DB) finish(patterns []string) {
	if len(patterns) > 0 {
		for i, p := range patterns {
			d.Patterns = append(d.Patterns, Count{Pattern: p, Keys: d.given[i]})
		}
	} else {
		for _, s := range d.shapes {
			for p, n := range s.counts {
				d.Patterns = append(d.Patterns, Count{Pattern: p, Keys: n})
			}
		}
		sort.Slice(d.Patterns, func(i, j int) bool {
			if d.Patterns[i].Keys != d.Patterns[j].Keys {
				return d.Patterns[i].Keys > d.Patterns[j].Keys
			}
			return d.Patterns[i].Pattern < d.Patterns[j].Pattern
		})
	}
	d.Biggest = append([]Key(nil), d.biggest...)
	sort.Slice(d.Biggest, func(i, j int) bool { return d.Biggest[i].Bytes > d.Biggest[j].Bytes })
}

// Run collects from in (a dump file, an RDB file, a server) and prints
// the result to w.
func Run(ctx context.Context, opts Options, in records.Input, w io.Writer) error {
	hdr, err := in.Header(ctx)
	if err != nil {
		return err
	}
	r, err := in.Open(ctx, nil)
	if err != nil {
		return err
	}
	dbs, err := Collect(ctx, r, opts)
	src, serr := r.Close()
	if err == nil {
		err = serr
	}
	if err != nil {
		return err
	}
	commands, err := countCommands(ctx, in)
	if err != nil {
		return err
	}
	if opts.JSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(map[string]any{"source": source{hdr.Source, hdr.Engine, hdr.ServerVersion, hdr.MemoryBytes, hdr.CreatedMs}, "databases": dbs, "function_libraries": src.Libraries, "skipped_expired": src.Expired, "commands": commands})
	}
	fmt.Fprintln(w, describeSource(hdr))
	for _, d := range dbs {
		printDB(w, d)
	}
	// What is not a key, and what an RDB file held already expired, so
	// that a file with no keys still says what it holds.
	if len(dbs) == 0 || src.Libraries > 0 || src.Expired > 0 || src.Notes() != "" {
		var keys int64
		for _, d := range dbs {
			keys += d.Keys
		}
		fmt.Fprintf(w, "%d keys in %d databases; %d function libraries; %d keys already expired, left out%s\n", keys, len(dbs), src.Libraries, src.Expired, src.Notes())
	}
	if commands != nil {
		var total int64
		names := make([]string, 0, len(commands))
		for n, c := range commands {
			names = append(names, n)
			total += c
		}
		sort.Strings(names)
		fmt.Fprintf(w, "then %d commands (RESP commands: an AOF's, after its base's keys, or a file of commands such as redis-dump-go writes):\n", total)
		for _, n := range names {
			fmt.Fprintf(w, "  %-20s %10d\n", n, commands[n])
		}
	}
	return nil
}

// source is what the input says of the server its keys come from.
type source struct {
	Address       string `json:"address,omitempty"`
	Engine        string `json:"engine,omitempty"`
	ServerVersion string `json:"server_version,omitempty"`
	MemoryBytes   int64  `json:"memory_bytes,omitempty"` // what its keys took there, as it said (INFO memory)
	CreatedMs     int64  `json:"created_ms,omitempty"`   // when the keys were read
}

// describeSource says where the keys come from, and the memory they took
// there (the migration guide's INFO memory step).
func describeSource(hdr format.Header) string {
	var b strings.Builder
	b.WriteString("source:")
	if hdr.Engine != "" {
		fmt.Fprintf(&b, " %s %s", hdr.Engine, hdr.ServerVersion)
	}
	if hdr.Source != "" {
		fmt.Fprintf(&b, " at %s", hdr.Source)
	}
	if hdr.MemoryBytes > 0 {
		fmt.Fprintf(&b, ", its keys took about %.1f MiB there (INFO memory)", float64(hdr.MemoryBytes)/(1<<20))
	}
	if hdr.CreatedMs > 0 {
		fmt.Fprintf(&b, ", read %s", time.UnixMilli(hdr.CreatedMs).UTC().Format(time.RFC3339))
	}
	return b.String()
}

// countCommands counts, by name, the commands that follow in's records
// (an AOF's), or returns nil for an input without any.
func countCommands(ctx context.Context, in records.Input) (map[string]int64, error) {
	ci, ok := in.(records.ChangesInput)
	if !ok {
		return nil, nil
	}
	out := map[string]int64{}
	_, err := records.EachChange(ctx, ci, func(cmd *records.Command) error {
		out[strings.ToUpper(cmd.Args[0])]++
		return nil
	})
	return out, err
}

func printDB(w io.Writer, d *DB) {
	types := make([]string, 0, len(d.ByType))
	for t := range d.ByType {
		types = append(types, fmt.Sprintf("%s %d", t, d.ByType[t]))
	}
	sort.Strings(types)
	fmt.Fprintf(w, "db %d: %d keys (%s), %d with an expiry, %d bytes of records\n", d.DB, d.Keys, strings.Join(types, ", "), d.Expiring, d.Bytes)
	width := len("pattern")
	for _, p := range d.Patterns {
		width = max(width, len(printable(p.Pattern)))
	}
	fmt.Fprintf(w, "  %-*s  %10s\n", width, "pattern", "keys")
	for _, p := range d.Patterns {
		fmt.Fprintf(w, "  %-*s  %10d\n", width, printable(p.Pattern), p.Keys)
	}
	if len(d.Biggest) > 0 {
		fmt.Fprintln(w, "  biggest keys:")
		for _, k := range d.Biggest {
			fmt.Fprintf(w, "    %10d bytes  %-6s %q\n", k.Bytes, k.Type, k.Key)
		}
	}
}

// printable is s as it is when it prints as itself, else quoted.
func printable(s string) string {
	if q := strconv.Quote(s); q[1:len(q)-1] != s {
		return q
	}
	return s
}
