package load

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/redis/go-redis/v9"
	"golang.org/x/sync/semaphore"

	"github.com/crs-tool/crs/format"
	"github.com/crs-tool/crs/internal/keyset"
	"github.com/crs-tool/crs/internal/redisconn"
	"github.com/crs-tool/crs/records"
	"github.com/crs-tool/crs/target"
)

// feeder reads the dump and hands each record to the writer of its key:
// all records of one key go to one writer, in order, so that a key in
// parts is built in order and its expiry set after its last part.
type feeder struct {
	hdr      format.Header
	opts     Options
	targetDB int // --db, or -1 for each record's own
	tgt      target.Target
	bases    []*redis.Client // database 0 of each node
	clock    func() int64    // the target's time, unix ms
	shift    int64           // added to expiries (--ttl shift)
	checked  map[int]bool    // databases found empty; nil when all were checked
	seen     *keyset.Seen
	inFlight *semaphore.Weighted
	workers  []chan item // perNode writers for each node, node by node
	perNode  int
	resume   []int64 // per writer, the line up to which a resumed load skips its records; nil: no resume

	skipping bool  // the parts of the current key are being skipped
	keyExp   int64 // the expiry of the current key, set after its last part
}

// feed reads every record of fr and sends it on, until the end of the
// dump or an error.
func (f *feeder) feed(ctx context.Context, fr records.Reader, st *Stats) error {
	for {
		rec, err := fr.Read()
		if err == io.EOF {
			return f.finishSeen()
		}
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, context.Canceled) {
				return err
			}
			return InputError{err}
		}
		st.Records++
		line := records.LineOf(fr, st.Records)
		if rec.Type == format.TypeFunction {
			if err := f.function(ctx, rec, line, st); err != nil {
				return err
			}
			continue
		}
		it := item{Rec: rec, DB: rec.DB, Line: line, Last: !rec.More}
		if f.targetDB >= 0 {
			it.DB = f.targetDB
		}
		if rec.Part > 1 {
			if f.skipping {
				continue
			}
		} else {
			if err := f.startKey(ctx, &it); err != nil {
				return err
			}
			if f.skipping {
				st.Expired++
				f.opts.Counter.Add(1)
				if f.opts.Expired != nil {
					f.opts.Expired(it.DB, rec.Key)
				}
				continue
			}
		}
		if it.Last {
			it.Exp = f.keyExp
		}
		if w := f.route(it.DB, rec.Key); f.resume != nil {
			if line <= int(f.resume[w]) {
				st.Resumed++ // written before the load stopped
				if it.Last {
					f.opts.Counter.Add(1)
				}
				continue
			}
			// The checkpoint lags what was written by up to its interval
			// (all of it after a crash): every key a resumed load sends
			// goes from scratch, after a DEL, so none is doubled.
			it.Redo = rec.Part <= 1
		}
		it.Size = min(int64(records.Size(fr, rec)), max(f.opts.MaxInFlight, 1))
		if err := f.inFlight.Acquire(ctx, it.Size); err != nil {
			return err
		}
		if !sendItem(ctx, f.workers[f.route(it.DB, rec.Key)], it) {
			return ctx.Err()
		}
	}
}

// startKey checks the first record of a key: its database is empty, the
// key is not in the dump twice, and it has not expired (then its parts
// are skipped).
func (f *feeder) startKey(ctx context.Context, it *item) error {
	rec := it.Rec
	if f.checked != nil && !f.checked[it.DB] {
		if err := checkEmpty(ctx, f.bases, []int{it.DB}, false); err != nil {
			return err
		}
		f.checked[it.DB] = true
	}
	switch v, err := f.seen.Add(it.DB, rec.Key, int64(it.Line)); {
	case err != nil:
		return err
	case v == keyset.Twice:
		return &format.ParseError{Line: it.Line, Err: fmt.Errorf("%w: %q for db %d", ErrDuplicateKey, rec.Key, it.DB)}
	}
	f.keyExp = applyTTL(f.opts.TTL, rec.ExpireAtMs, f.shift)
	for i := range rec.FieldExpire {
		rec.FieldExpire[i].AtMs = applyTTL(f.opts.TTL, rec.FieldExpire[i].AtMs, f.shift)
	}
	f.skipping = f.keyExp > 0 && f.keyExp <= f.clock()
	return nil
}

// finishSeen checks the keys past the memory limit of the set of keys
// seen, at the end of the dump: a key found twice there was written twice,
// and fails the load.
func (f *feeder) finishSeen() error {
	return f.seen.Finish(func(db int, key string, line int64, dup bool) error {
		if dup {
			return &format.ParseError{Line: int(line), Err: fmt.Errorf("%w: %q for db %d (found at the end of the dump, so it was loaded twice)", ErrDuplicateKey, key, db)}
		}
		return nil
	})
}

// route returns the writer for a key: one of the writers of the node that
// takes it, by a hash of database and key.
func (f *feeder) route(db int, key string) int {
	return f.tgt.Node(key)*f.perNode + int(routeHash(db, key)%uint64(f.perNode))
}

// function loads a function library on every node (a cluster's masters
// each hold their own), before any key: FUNCTION LOAD, with REPLACE under
// --replace; a library the target has already stops the load unless
// --replace or --skip-existing says what to do.
func (f *feeder) function(ctx context.Context, rec *format.Record, line int, st *Stats) error {
	if f.opts.SkipFunctions {
		st.SkippedFunctions++
		return nil
	}
	for _, c := range f.bases {
		err := target.LoadLibrary(ctx, c, rec.Str, f.opts.Replace)
		switch {
		case err == nil:
		case redisconn.IsUnknownCommand(err):
			return &KeyError{Line: line, Key: rec.Key, Err: fmt.Errorf("%w: a function library, and the target has no FUNCTION LOAD (Redis 7.0+); --skip-functions loads the keys without the libraries", ErrTargetLacks)}
		case redisconn.IsAlreadyExists(err) && f.opts.SkipExisting:
			st.Existing++
			return nil
		case redisconn.IsAlreadyExists(err):
			return &KeyError{Line: line, Key: rec.Key, Err: fmt.Errorf("%w: function library %q exists on the target: --replace replaces it, --skip-existing keeps the target's", ErrTargetNotEmpty, rec.Key)}
		default:
			return &KeyError{Line: line, Key: rec.Key, Cmd: "FUNCTION LOAD", Err: err}
		}
	}
	st.Functions++
	return nil
}
