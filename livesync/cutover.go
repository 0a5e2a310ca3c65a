package livesync

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/crs-tool/crs/format"
	"github.com/crs-tool/crs/internal/resp"
	"github.com/crs-tool/crs/rdb"
	"github.com/crs-tool/crs/records"
	"github.com/crs-tool/crs/verify"
)

// check compares the target with the source while the source's writes
// are paused: key counts per database, and every key the stream wrote.
func (a *applier) check(ctx context.Context) (err error) {
	var diffs []string
	if !a.countsChecked() {
		a.say("crs sync: a selection of keys is in effect: the check compares the keys changed during the sync, not the key counts (--verify compares every key selected)")
	} else if diffs, err = a.checkCounts(ctx); err != nil {
		return err
	}
	n, kdiffs, err := a.checkChanged(ctx)
	a.st.Verified = n
	if err != nil {
		return err
	}
	diffs = append(diffs, kdiffs...)
	a.st.Differences = int64(len(diffs))
	if len(diffs) > 0 {
		return fmt.Errorf("%w: %s", ErrDifferent, strings.Join(diffs, "; "))
	}
	if a.many {
		a.say("crs sync: more than %d keys changed during the sync: the check compared key counts only (--verify compares every key)", maxChanged)
	}
	return nil
}

// countsChecked reports whether the check compares key counts: not
// under a selection of keys.
func (a *applier) countsChecked() bool { return !a.selectsKeys() && !a.judges() }

// countsSaid is what the cutover says of the counts.
func (a *applier) countsSaid() string {
	if a.countsChecked() {
		return "; key counts equal"
	}
	return ""
}

// checkCounts compares the key counts of each database.
func (a *applier) checkCounts(ctx context.Context) ([]string, error) {
	want, err := a.src.KeyCounts(ctx)
	if err != nil {
		return nil, err
	}
	mapped := map[int]int64{}
	for db, n := range want {
		if to, ok := a.mapDB(db); ok {
			mapped[to] += n
		}
	}
	got, err := a.t.keyCounts(ctx)
	if err != nil {
		return nil, err
	}
	if a.checkpointed() {
		got[0] -= int64(max(a.checkpoints, 1)) // the positions
	}
	var diffs []string
	for db := range union(mapped, got) {
		if mapped[db] == got[db] {
			continue
		}
		// The counts hold keys whose expiry has passed and that a server
		// has not deleted yet (a paused source deletes none): counted
		// with SCAN, which skips them, the two may still agree.
		srcN, tgtN, err := a.liveCounts(ctx, db)
		if err != nil {
			return nil, err
		}
		if srcN != tgtN {
			diffs = append(diffs, fmt.Sprintf("database %d holds %d keys on the target and %d on the source (%d and %d by INFO keyspace)", db, tgtN, srcN, got[db], mapped[db]))
		}
	}
	sort.Strings(diffs)
	return diffs, nil
}

func union(a, b map[int]int64) map[int]bool {
	u := map[int]bool{}
	for k, v := range a {
		u[k] = u[k] || v != 0
	}
	for k, v := range b {
		u[k] = u[k] || v != 0
	}
	return u
}

// liveCounts counts with SCAN the keys of target database db and of the
// source databases mapped to it, the target's position key left out.
func (a *applier) liveCounts(ctx context.Context, db int) (src, tgt int64, err error) {
	for from := range a.sourceDBs(ctx, db) {
		n, err := a.src.Count(ctx, from)
		if err != nil {
			return 0, 0, err
		}
		src += n
	}
	var skip func(string) bool
	if db == 0 && a.checkpointed() {
		skip = func(k string) bool { return strings.HasPrefix(k, CheckpointKey) }
	}
	tgt, err = a.t.scanCount(ctx, db, skip)
	return src, tgt, err
}

// sourceDBs returns the source databases synced into target database db.
func (a *applier) sourceDBs(ctx context.Context, db int) map[int]bool {
	out := map[int]bool{}
	counts, _ := a.src.KeyCounts(ctx)
	for from := range counts {
		if to, ok := a.mapDB(from); ok && to == db {
			out[from] = true
		}
	}
	return out
}

// eachSourceBatch reads keys from the source in batches of a database,
// at most 512 keys each, with DUMP, and calls fn with the batch, the
// target database, the names the keys take there and the dumps.
func (a *applier) eachSourceBatch(ctx context.Context, keys map[dbKey]struct{}, fn func(to int, part, names []string, dumps []records.Dumped) error) error {
	byDB := map[int][]string{}
	for k := range keys {
		byDB[k.db] = append(byDB[k.db], k.key)
	}
	for db, all := range byDB {
		to, _ := a.mapDB(db)
		for len(all) > 0 {
			part := all[:min(len(all), 512)]
			all = all[len(part):]
			dumps, err := a.src.Dumps(ctx, db, part)
			if err != nil {
				return err
			}
			names := part
			if a.renames() {
				names = make([]string, len(part))
				for i, k := range part {
					names[i] = a.opts.Reshape.Key(k)
				}
			}
			if err := fn(to, part, names, dumps); err != nil {
				return err
			}
		}
	}
	return nil
}

// decode appends to recs the records of d, a key of the source, as key
// of target database db.
func (a *applier) decode(d records.Dumped, db int, key string, recs []*format.Record) ([]*format.Record, error) {
	err := rdb.DecodePayload(d.Payload, db, key, a.parts(), func(r *format.Record) error {
		r.ExpireAtMs = d.ExpireAtMs
		recs = append(recs, r)
		return nil
	})
	if err != nil {
		return recs, fmt.Errorf("the source's DUMP of %q: %w", key, err)
	}
	return recs, nil
}

// checkChanged compares each key the stream wrote with the source's:
// DUMP and its expiry on both, pipelined; a key whose payloads differ
// (another encoding of the same value, another RDB version, or another
// value) is decoded and checked as crs verify checks it. A key gone from
// the source must be gone from the target too.
func (a *applier) checkChanged(ctx context.Context) (int64, []string, error) {
	var n int64
	var diffs []string
	var differ []*format.Record
	err := a.eachSourceBatch(ctx, a.changed, func(to int, _, names []string, want []records.Dumped) error {
		got, err := a.t.dumps(ctx, to, names)
		if err != nil {
			return err
		}
		for i, name := range names {
			n++
			w, g := want[i], got[i]
			// Under --type or --max-key-bytes a key the target lacks, or
			// holds otherwise, may be one the selection leaves out: the
			// source's is decoded to judge it (once, for the comparison
			// too). One held the same was judged when it was read.
			var recs []*format.Record
			if a.judges() && w.Payload != nil && (g.Payload == nil || !bytes.Equal(w.Payload, g.Payload)) {
				if recs, err = a.decode(w, to, name, nil); err != nil {
					return err
				}
				if why := a.leftOutFor(recs); why != "" {
					if g.Payload != nil {
						diffs = append(diffs, fmt.Sprintf("key %q of database %d is left out by the selection (%s) and still on the target", name, to, why))
					}
					continue
				}
			}
			switch {
			case w.Payload == nil && g.Payload == nil:
			case w.Payload == nil:
				diffs = append(diffs, fmt.Sprintf("key %q of database %d is gone from the source and still on the target", name, to))
			case g.Payload == nil:
				diffs = append(diffs, fmt.Sprintf("key %q of database %d is missing on the target", name, to))
			case bytes.Equal(w.Payload, g.Payload) && absDiff(w.ExpireAtMs, g.ExpireAtMs) <= 1000 && (w.ExpireAtMs == 0) == (g.ExpireAtMs == 0):
			case recs != nil:
				differ = append(differ, recs...)
			default:
				if differ, err = a.decode(w, to, name, differ); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return n, diffs, err
	}
	if len(differ) == 0 {
		return n, diffs, nil
	}
	if err := a.setEntriesRead(ctx, differ); err != nil {
		return n, diffs, err
	}
	vo := verify.NewOptions()
	vo.Target, vo.Quiet, vo.Progress = a.opts.Load.Conn, true, "none"
	res, err := verify.Verify(ctx, &sliceReader{recs: differ}, vo)
	if err != nil && !errors.Is(err, verify.ErrDifferent) {
		return n, diffs, err
	}
	diffs = append(diffs, res.Shown...)
	if extra := int(res.Differences) - len(res.Shown); extra > 0 {
		diffs = append(diffs, fmt.Sprintf("%d more keys differ", extra))
	}
	return n, diffs, nil
}

func absDiff(a, b int64) int64 {
	if a > b {
		return a - b
	}
	return b - a
}

// setEntriesRead gives the groups of the streams among recs the source's
// entries-read on the target. Replication does not carry it exactly (a
// group read with XREADGROUP replicates as XCLAIM … LASTID, which leaves
// a replica's count behind), so the cutover copies it while the source's
// writes are paused; on a target without stream counters (before 7.0)
// there is none to set.
func (a *applier) setEntriesRead(ctx context.Context, recs []*format.Record) error {
	for _, r := range recs {
		if r.Type != format.TypeStream || r.Stream == nil || !a.counters {
			continue
		}
		c, err := a.t.client(ctx, r.DB)
		if err != nil {
			return err
		}
		for _, g := range r.Stream.Groups {
			if g.EntriesRead < 0 {
				continue
			}
			if err := c.Do(ctx, "XGROUP", "SETID", r.Key, g.Name, g.LastDeliveredID, "ENTRIESREAD", g.EntriesRead).Err(); err != nil {
				return fmt.Errorf("set a stream group's entries-read on the target: %w", err)
			}
		}
	}
	return nil
}

// checkpointed reports whether the target holds the sync's position: a
// standalone target of a sync by replication.
func (a *applier) checkpointed() bool { return !a.notify && !a.t.cluster }

// dropCheckpoint removes the checkpoint: the target then holds the
// source's keys and nothing else.
func (a *applier) dropCheckpoint(ctx context.Context) error {
	if !a.checkpointed() {
		return nil
	}
	c := a.t.conns[0]
	a.t.selectDB(0, 0)
	c.Begin("DEL", 1).Str(a.key)
	return c.Exec(ctx, func(_ int, r resp.Reply) error {
		if r.Kind == resp.KindError {
			return fmt.Errorf("remove %s from the target: %w", CheckpointKey, r.Err())
		}
		return nil
	})
}

// sliceReader reads records from a slice.
type sliceReader struct {
	recs []*format.Record
}

func (r *sliceReader) Header() (format.Header, error) {
	return format.Header{Version: format.Version}, nil
}
func (r *sliceReader) Read() (*format.Record, error) {
	if len(r.recs) == 0 {
		return nil, io.EOF
	}
	rec := r.recs[0]
	r.recs = r.recs[1:]
	return rec, nil
}
