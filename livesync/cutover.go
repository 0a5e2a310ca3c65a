package livesync

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/crs-tool/crs/format"
	"github.com/crs-tool/crs/internal/redisconn"
	"github.com/crs-tool/crs/internal/resp"
	"github.com/crs-tool/crs/rdb"
	"github.com/crs-tool/crs/records"
	"github.com/crs-tool/crs/target"
	"github.com/crs-tool/crs/verify"
)

// check compares the target with the source while the source's writes
// are paused: key counts per database, and every key the stream wrote.
func (a *applier) check(ctx context.Context, changed map[dbKey]int64) (err error) {
	var diffs []string
	if !a.countsChecked() {
		a.say("crs sync: a selection of keys is in effect: the check compares the keys changed during the sync, not the key counts (--verify compares every key selected)")
	} else if diffs, err = a.checkCounts(ctx); err != nil {
		return err
	}
	n, kdiffs, err := a.checkChanged(ctx, changed)
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

// countAhead is how far ahead of the check the instant lies as of which
// keys with an expiry are counted: further than the counts take, and
// than the two servers' clocks differ.
const countAhead = time.Minute

// countLimit is the most keys of a database whose keys with an expiry are
// counted during the cutover's pause (the count reads every key).
const countLimit = 2_000_000

// checkCounts compares the key counts of each database as of one
// instant. Keys without an expiry are compared exactly: INFO keyspace
// counts them (keys less expires), no clock changes them, and a key
// missing there is missing. Keys with one are not, on a keyspace whose
// keys expire all the time: the paused source keeps keys past their
// expiry until the pause ends, the target deletes them, each by its own
// clock, and at its own moment of counting. So where INFO's counts of
// them differ, both servers count, at once, the keys whose expiry is
// later than an instant a minute ahead: what either holds then.
func (a *applier) checkCounts(ctx context.Context) ([]string, error) {
	want, err := a.src.KeyCounts(ctx)
	if err != nil {
		return nil, err
	}
	mapped := map[int]redisconn.DBCount{}
	for db, n := range want {
		if to, ok := a.mapDB(db); ok {
			mapped[to] = redisconn.DBCount{Keys: mapped[to].Keys + n.Keys, Expires: mapped[to].Expires + n.Expires}
		}
	}
	got, err := a.t.keyCounts(ctx)
	if err != nil {
		return nil, err
	}
	if a.checkpointed() {
		n := got[0]
		n.Keys -= int64(max(a.checkpoints, 1)) // the positions
		got[0] = n
	}
	var diffs []string
	for db := range union(mapped, got) {
		w, g := mapped[db], got[db]
		if pw, pg := w.Keys-w.Expires, g.Keys-g.Expires; pw != pg {
			diffs = append(diffs, fmt.Sprintf("database %d holds %d keys without an expiry on the target and %d on the source", db, pg, pw))
		}
		if w.Expires == g.Expires {
			continue
		}
		if max(w.Keys, g.Keys) > countLimit {
			a.say("crs sync: database %d holds more than %d keys: its keys with an expiry are compared one by one where they changed during the sync, not counted during the pause (--verify compares every key)", db, countLimit)
			continue
		}
		after := time.Now().Add(countAhead).UnixMilli()
		srcN, tgtN, err := a.countLater(ctx, db, after)
		if err != nil {
			return nil, err
		}
		if srcN != tgtN {
			diffs = append(diffs, fmt.Sprintf("database %d holds %d keys expiring after %s on the target and %d on the source", db, tgtN, time.UnixMilli(after).Format("15:04:05.000"), srcN))
		}
	}
	sort.Strings(diffs)
	return diffs, nil
}

func union(a, b map[int]redisconn.DBCount) map[int]bool {
	u := map[int]bool{}
	for k, v := range a {
		u[k] = u[k] || v.Keys != 0
	}
	for k, v := range b {
		u[k] = u[k] || v.Keys != 0
	}
	return u
}

// countLater counts, on both sides at once, the keys of target database
// db and of the source databases mapped to it whose expiry is later than
// after.
func (a *applier) countLater(ctx context.Context, db int, after int64) (src, tgt int64, err error) {
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		for from := range a.sourceDBs(gctx, db) {
			n, err := a.src.CountLater(gctx, from, after)
			if err != nil {
				return err
			}
			src += n
		}
		return nil
	})
	g.Go(func() (err error) {
		tgt, err = a.t.countLater(gctx, db, after)
		return err
	})
	return src, tgt, g.Wait()
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
// at most 512 keys each, with DUMP, and calls fn with the source and the
// target database, the batch, the names the keys take there and the dumps. With at,
// each batch is read in one transaction with the replication offset of
// this link's master (DumpsAt), which fn is given per key; else nil.
func (a *applier) eachSourceBatch(ctx context.Context, keys []dbKey, at bool, fn func(db, to int, part, names []string, dumps []records.Dumped, offsets []int64) error) error {
	byDB := map[int][]string{}
	for _, k := range keys {
		byDB[k.db] = append(byDB[k.db], k.key)
	}
	for db, all := range byDB {
		to, _ := a.mapDB(db)
		for len(all) > 0 {
			part := all[:min(len(all), 512)]
			all = all[len(part):]
			var dumps []records.Dumped
			var offsets []int64
			var err error
			if at {
				dumps, offsets, err = a.src.DumpsAt(ctx, a.srcKey, db, part)
			} else {
				dumps, err = a.src.Dumps(ctx, db, part)
			}
			if err != nil {
				return err
			}
			if err := fn(db, to, part, a.targetNames(part), dumps, offsets); err != nil {
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
func (a *applier) checkChanged(ctx context.Context, changed map[dbKey]int64) (int64, []string, error) {
	var n int64
	var diffs []string
	var differ []*format.Record
	err := a.eachSourceBatch(ctx, slices.Collect(maps.Keys(changed)), false, func(_, to int, _, names []string, want []records.Dumped, _ []int64) error {
		got, err := a.t.dumps(ctx, to, names)
		if err != nil {
			return err
		}
		readAt := time.Now().UnixMilli()
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
			case w.Payload == nil && !expiring(g, readAt):
				diffs = append(diffs, fmt.Sprintf("key %q of database %d is gone from the source and still on the target", name, to))
			case g.Payload == nil && !expiring(w, readAt):
				diffs = append(diffs, fmt.Sprintf("key %q of database %d is missing on the target", name, to))
			case w.Payload == nil || g.Payload == nil:
				a.st.Expiring++
			case sameDump(w, g, readAt):
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

// expirySlack is how far apart two servers' clocks may be: a key one side
// holds and the other does not is not a difference when the holder's
// expiry falls within it of the moment both were read.
const expirySlack = 1000

// expiring reports whether d, a key one side holds and the other does not
// (read by readAt, unix ms), expires by then: the side that lacks it
// deleted it on its own clock, as the other will.
func expiring(d records.Dumped, readAt int64) bool {
	return d.ExpireAtMs > 0 && d.ExpireAtMs <= readAt+expirySlack
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
		var cmds []target.Cmd
		for _, g := range r.Stream.Groups {
			if g.EntriesRead >= 0 {
				args := []string{"XGROUP", "SETID", r.Key, g.Name, g.LastDeliveredID, "ENTRIESREAD", strconv.FormatInt(g.EntriesRead, 10)}
				cmds = append(cmds, target.Cmd{Args: args, DB: r.DB, Node: a.t.node(r.Key)})
			}
		}
		err := a.t.router.Send(ctx, cmds, func(_ int, v resp.Value) error {
			if v.Kind == resp.KindError {
				return errors.New(v.Str)
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("set a stream group's entries-read on the target: %w", err)
		}
	}
	return nil
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
