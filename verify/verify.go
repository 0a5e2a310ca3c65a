// Package verify checks that a server holds what a dump holds: every key
// with the same type, value and expiry. It reads the dump one record at a
// time and checks each record's elements against the server with
// pipelined commands (GETRANGE, LRANGE at the running offset,
// SMISMEMBER, HMGET, ZMSCORE, XRANGE), then the key's type, length and
// expiry after its last record, so memory stays bounded whatever the size
// of the keyspace or of a key. Two servers are compared by verifying a
// live dump of the first against the second.
package verify

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/crs-tool/crs/format"
	"github.com/crs-tool/crs/internal/progress"
	"github.com/crs-tool/crs/internal/redisconn"
	"github.com/crs-tool/crs/internal/report"
	"github.com/crs-tool/crs/internal/rtype"
	"github.com/crs-tool/crs/records"
)

// Options configure a verification. NewOptions holds the defaults.
type Options struct {
	// Summary, if not nil, gets the summary as one JSON object at the
	// end (--summary-json), whatever is printed.
	Summary io.Writer
	// Target is the server checked.
	Target redisconn.Options
	// Tolerance is how far apart two expiries may be and still match.
	Tolerance time.Duration
	// Show is how many differences are listed; the rest are counted.
	Show int
	// Quiet prints only the summary line, and no progress.
	Quiet bool
	// Progress is the progress display's mode on w: progress.Auto (a bar
	// on a terminal), Bar, Plain or None.
	Progress string
	// Counter, if not nil, counts the keys checked, of the total the
	// dump's header gives.
	Counter *progress.Counter
	// JSON prints the result as one JSON object instead of lines.
	JSON bool
}

// NewOptions returns the defaults.
func NewOptions() Options {
	return Options{
		Target:    redisconn.NewOptions(),
		Tolerance: time.Second,
		Show:      20,
		Progress:  progress.Auto,
	}
}

// ErrDifferent is returned when the server does not hold what the dump
// holds.
var ErrDifferent = errors.New("the target differs")

// Result counts what a verification found.
type Result struct {
	Keys        int64    `json:"keys"`                    // keys checked
	Libraries   int64    `json:"function_libraries"`      // function libraries checked
	Differences int64    `json:"differences"`             // keys that differ, missing ones included
	Missing     int64    `json:"keys_missing"`            // keys absent from the target
	Expired     int64    `json:"keys_expired_since_read"` // keys whose expiry passed since they were read (a dump, or a live source): not differences
	Shown       []string `json:"shown"`                   // the first differences, described
}

// Run verifies that the target holds what in (a dump file, an RDB file,
// another server) holds, and prints the differences and a summary to w.
func Run(ctx context.Context, opts Options, in records.Input, w io.Writer) error {
	if err := progress.CheckMode(opts.Progress); err != nil {
		return err
	}
	if !opts.Quiet && opts.Counter == nil {
		opts.Counter = &progress.Counter{}
	}
	stopProgress := func() {}
	if !opts.Quiet {
		stopProgress = progress.Show(w, opts.Progress, "crs verify", opts.Counter)
	}
	var res Result
	if _, ok := in.(records.ChangesInput); ok {
		stopProgress()
		return fmt.Errorf("%s is an AOF: its commands change its base's keys, so the keys alone are not what its server holds; compare the servers instead (crs verify --source URL --target URL)", in.Name())
	}
	r, err := in.Open(ctx, nil)
	if err == nil {
		res, err = Verify(ctx, r, opts)
		if _, serr := r.Close(); err == nil {
			err = serr
		}
	}
	stopProgress()
	if err == nil && res.Differences > 0 {
		err = fmt.Errorf("%w: %d differences", ErrDifferent, res.Differences)
	}
	if opts.Summary != nil {
		report.JSON(opts.Summary, "crs verify", res, err)
	}
	if opts.JSON {
		report.JSON(w, "crs verify", res, err)
		return err
	}
	if !opts.Quiet {
		for _, d := range res.Shown {
			fmt.Fprintln(w, d)
		}
		if more := res.Differences - int64(len(res.Shown)); more > 0 {
			fmt.Fprintf(w, "... and %d more differences\n", more)
		}
	}
	if err != nil && res.Keys == 0 && res.Libraries == 0 {
		return err // a failure before the first key is its cause alone, one line
	}
	status := "crs verify: "
	if err != nil && !errors.Is(err, ErrDifferent) {
		status = "crs verify: FAILED after " // the summary counts only what was checked
	}
	libs := ""
	if res.Libraries > 0 {
		libs = fmt.Sprintf(" and %d function libraries", res.Libraries)
	}
	fmt.Fprintf(w, "%s%d keys%s checked, %d differences (%d keys missing), %d keys expired since they were read (not differences)\n",
		status, res.Keys, libs, res.Differences, res.Missing, res.Expired)
	return err
}

// A batch of records is checked in one pipelined round trip; these bound
// it, so memory stays bounded whatever the size of the keyspace.
const (
	batchRecords = 256
	batchBytes   = 4 << 20
	// perCommand is what one queued command costs, counted against
	// batchBytes for records read back a command per element (vector
	// sets: VEMB and VGETATTR each), whose JSON is small for what it costs.
	perCommand = 256
)

// Verify checks every record read from fr against the target, a batch of
// records at a time.
func Verify(ctx context.Context, fr records.Reader, opts Options) (Result, error) {
	var res Result
	hdr, err := fr.Header()
	if err != nil {
		return res, err
	}
	var total int64
	for _, d := range hdr.Databases {
		total += d.Keys
	}
	opts.Counter.SetTotal(total)
	clients := map[int]redis.UniversalClient{}
	defer func() {
		for _, c := range clients {
			c.Close()
		}
	}()
	v := &verifier{opts: opts, res: &res}
	var (
		batch []*format.Record
		size  int
	)
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		db := batch[0].DB
		c := clients[db]
		if c == nil {
			target := db
			if t, _ := opts.Target.SelectedDB(); t >= 0 {
				target = t
			}
			var err error
			if c, _, err = redisconn.OpenAny(ctx, opts.Target, target, 2); err != nil {
				return err
			}
			clients[db] = c
			if !v.probed {
				if v.caps, err = redisconn.ProbeCaps(ctx, c); err != nil {
					return err
				}
				v.probed = true
			}
		}
		err := v.batch(ctx, c, batch)
		batch, size = batch[:0], 0
		return err
	}
	for {
		rec, err := fr.Read()
		if err == io.EOF {
			return res, flush()
		}
		if err != nil {
			if ferr := flush(); ferr != nil {
				return res, ferr
			}
			return res, err
		}
		if rec.Type == format.TypeFunction {
			if err := v.function(ctx, opts, rec); err != nil {
				return res, err
			}
			continue
		}
		if len(batch) > 0 && batch[0].DB != rec.DB {
			if err := flush(); err != nil {
				return res, err
			}
		}
		batch = append(batch, rec)
		size += records.Size(fr, rec)
		if rec.VectorSet != nil {
			size += 2 * perCommand * len(rec.VectorSet.Elements)
		}
		if len(batch) >= batchRecords || size >= batchBytes {
			if err := flush(); err != nil {
				return res, err
			}
		}
	}
}

// verifier carries the state of the key being checked across its parts.
type verifier struct {
	opts   Options
	res    *Result
	caps   redisconn.Caps
	probed bool
	// of the current key
	skip    bool  // already found missing, expired or different
	offset  int64 // list elements or string bytes checked so far
	count   int64 // elements (bytes for a string) the dump holds so far
	entries int64 // stream entries (not counting deleted ones)
	exp     int64
	groups  map[string]*groupSum
	order   []string // group names in the dump's order
}

// groupSum is what the dump says of one consumer group, over all parts.
type groupSum struct {
	lastDelivered string
	entriesRead   int64
	consumers     int64
	pending       int64
}

// pending is the commands queued for one record.
type pending struct {
	typ      *redis.StatusCmd
	values   []redis.Cmder
	xinfo    *redis.Cmd
	length   *redis.IntCmd
	expire   *redis.IntCmd
	fieldExp *redis.Cmd
	groups   *redis.XInfoGroupsCmd
	now      *redis.TimeCmd
}

func (v *verifier) differ(db int, key, format string, args ...any) {
	v.res.Differences++
	v.skip = true
	if len(v.res.Shown) < v.opts.Show {
		v.res.Shown = append(v.res.Shown, fmt.Sprintf("db %d key %q: %s", db, key, fmt.Sprintf(format, args...)))
	}
}

// batch sends the commands that check batch, all records of one database,
// in one pipeline, then judges the replies record by record.
func (v *verifier) batch(ctx context.Context, c redis.UniversalClient, batch []*format.Record) error {
	p := c.Pipeline()
	cmds := make([]pending, len(batch))
	off := v.offset
	var now *redis.TimeCmd
	if !v.caps.ExpireTime {
		now = p.Time(ctx)
	}
	for i, rec := range batch {
		q := &cmds[i]
		if rec.Part <= 1 {
			off = 0
			q.typ = p.Type(ctx, rec.Key)
		}
		off = v.queueValues(ctx, p, q, rec, off)
		if rec.More {
			continue
		}
		if lenCmd := rtype.Len(rec.Type); lenCmd != "" && rec.Dump == "" {
			q.length = redis.NewIntCmd(ctx, lenCmd, rec.Key)
			p.Process(ctx, q.length)
		}
		if v.caps.ExpireTime {
			q.expire = redis.NewIntCmd(ctx, "PEXPIRETIME", rec.Key)
		} else {
			q.expire = redis.NewIntCmd(ctx, "PTTL", rec.Key)
			q.now = now
		}
		p.Process(ctx, q.expire)
		if rec.Type == format.TypeStream {
			q.groups = p.XInfoGroups(ctx, rec.Key)
		}
	}
	if _, err := p.Exec(ctx); err != nil {
		var rerr redis.Error
		if !errors.As(err, &rerr) {
			return &redisconn.Error{Addr: v.opts.Target.Address(), Err: err}
		}
	}
	for i, rec := range batch {
		if err := v.judge(rec, &cmds[i]); err != nil {
			return fmt.Errorf("db %d key %q: %w", rec.DB, rec.Key, err)
		}
	}
	return nil
}

// judge compares one record with the replies to its commands.
func (v *verifier) judge(rec *format.Record, q *pending) error {
	if rec.Part <= 1 {
		*v = verifier{opts: v.opts, res: v.res, caps: v.caps, probed: v.probed, exp: rec.ExpireAtMs}
		v.res.Keys++
		v.opts.Counter.Add(1)
		typ, err := q.typ.Result()
		if err != nil {
			return fmt.Errorf("TYPE: %w", err)
		}
		if typ == "none" {
			v.skip = true
			if rec.ExpireAtMs > 0 && rec.ExpireAtMs <= time.Now().UnixMilli()+v.opts.Tolerance.Milliseconds() {
				v.res.Expired++
				return nil
			}
			v.res.Missing++
			v.differ(rec.DB, rec.Key, "missing from the target")
			return nil
		}
		if typ != rec.Type {
			v.differ(rec.DB, rec.Key, "type %s, target %s", rec.Type, typ)
			return nil
		}
	}
	if v.skip {
		return nil
	}
	if err := v.values(rec, q); err != nil {
		return err
	}
	if v.skip || rec.More {
		return nil
	}
	return v.finish(rec, q)
}

// finish checks a key's length, stream groups and expiry after its last
// record.
func (v *verifier) finish(rec *format.Record, q *pending) error {
	want := v.count
	if rec.Type == format.TypeStream {
		want = v.entries
	}
	if q.length != nil {
		n, err := q.length.Result()
		if err != nil {
			return fmt.Errorf("%s: %w", strings.ToUpper(q.length.Name()), err)
		}
		if n != want {
			v.differ(rec.DB, rec.Key, "%d %s in the dump, target %d", want, format.Unit(rec.Type), n)
			return nil
		}
	}
	if q.groups != nil {
		if err := v.streamGroups(rec, q); err != nil || v.skip {
			return err
		}
	}
	ms, err := q.expire.Result()
	if err != nil {
		return fmt.Errorf("%s: %w", strings.ToUpper(q.expire.Name()), err)
	}
	if q.now != nil && ms >= 0 { // PTTL: relative to the server's clock
		now, err := q.now.Result()
		if err != nil {
			return fmt.Errorf("TIME: %w", err)
		}
		ms += now.UnixMilli()
	}
	switch {
	case v.exp == 0 && ms >= 0:
		v.differ(rec.DB, rec.Key, "no expiry in the dump, target expires at %s", at(ms))
	case v.exp > 0 && ms < 0:
		v.differ(rec.DB, rec.Key, "expires at %s in the dump, target never", at(v.exp))
	case v.exp > 0 && absDiff(v.exp, ms) > v.opts.Tolerance.Milliseconds():
		v.differ(rec.DB, rec.Key, "expires at %s in the dump, target at %s", at(v.exp), at(ms))
	}
	return nil
}

func at(ms int64) string { return time.UnixMilli(ms).UTC().Format("2006-01-02T15:04:05.000Z") }

func absDiff(a, b int64) int64 {
	if a > b {
		return a - b
	}
	return b - a
}

func firstDiff(a, b string) int {
	for i := 0; i < len(a) && i < len(b); i++ {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

func orMissing(s string) string {
	if s == "" {
		return "missing"
	}
	return s
}

// function checks that the target has a function library, with the same
// code.
func (v *verifier) function(ctx context.Context, opts Options, rec *format.Record) error {
	c, _, err := redisconn.OpenAny(ctx, opts.Target, 0, 1)
	if err != nil {
		return err
	}
	defer c.Close()
	v.res.Libraries++
	libs, err := c.FunctionList(ctx, redis.FunctionListQuery{LibraryNamePattern: rec.Key, WithCode: true}).Result()
	if err != nil && !redisconn.IsUnknownCommand(err) {
		return fmt.Errorf("function list: %w", err)
	}
	for _, l := range libs {
		if l.Name == rec.Key {
			if l.Code != rec.Str {
				v.differ(0, rec.Key, "function library: its code differs")
			}
			return nil
		}
	}
	v.res.Missing++
	v.differ(0, rec.Key, "function library: missing")
	return nil
}
