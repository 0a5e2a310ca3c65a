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
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/crs-tool/crs/dump"
	"github.com/crs-tool/crs/format"
	"github.com/crs-tool/crs/internal/dumpfile"
	"github.com/crs-tool/crs/internal/progress"
	"github.com/crs-tool/crs/internal/redisconn"
)

// Options configure a verification. NewOptions holds the defaults.
type Options struct {
	// Target is the server checked.
	Target redisconn.Options
	// Input is a dump file; empty means verify Source instead.
	Input string
	// Source is the server whose live dump is verified when Input is empty.
	Source redisconn.Options
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
}

// NewOptions returns the defaults.
func NewOptions() Options {
	return Options{
		Target:    redisconn.NewOptions(),
		Source:    redisconn.NewOptions(),
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
	Keys        int64 // keys checked
	Differences int64
	Missing     int64 // keys absent from the target
	Expired     int64 // keys whose expiry passed since the dump: not differences
	Shown       []string
}

// Run verifies and prints the differences and a summary to w.
func Run(ctx context.Context, opts Options, w io.Writer) error {
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
	var err error
	if opts.Input != "" {
		res, err = verifyFile(ctx, opts)
	} else {
		res, err = verifySource(ctx, opts)
	}
	stopProgress()
	if !opts.Quiet {
		for _, d := range res.Shown {
			fmt.Fprintln(w, d)
		}
		if more := res.Differences - int64(len(res.Shown)); more > 0 {
			fmt.Fprintf(w, "... and %d more differences\n", more)
		}
	}
	status := "crs verify: "
	if err != nil {
		status = "crs verify: FAILED after " // the summary counts only what was checked
	}
	fmt.Fprintf(w, "%s%d keys checked, %d differences (%d keys missing), %d keys expired since the dump (not differences)\n",
		status, res.Keys, res.Differences, res.Missing, res.Expired)
	if err == nil && res.Differences > 0 {
		err = fmt.Errorf("%w: %d differences", ErrDifferent, res.Differences)
	}
	return err
}

func verifyFile(ctx context.Context, opts Options) (Result, error) {
	r, done, err := dumpfile.Open(opts.Input)
	if err != nil {
		return Result{}, err
	}
	defer done()
	return Verify(ctx, format.NewReader(r), opts)
}

// verifySource verifies a live dump of the source.
func verifySource(ctx context.Context, opts Options) (Result, error) {
	do := dump.NewOptions()
	do.Conn = opts.Source
	var res Result
	err := dump.Read(ctx, do, func(ctx context.Context, fr *format.Reader) error {
		var err error
		res, err = Verify(ctx, fr, opts)
		return err
	})
	return res, err
}

// A batch of records is checked in one pipelined round trip; these bound
// it, so memory stays bounded whatever the size of the keyspace.
const (
	batchRecords = 256
	batchBytes   = 4 << 20
)

// Verify checks every record read from fr against the target, a batch of
// records at a time.
func Verify(ctx context.Context, fr *format.Reader, opts Options) (Result, error) {
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
	clients := map[int]*redis.Client{}
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
			if c, _, err = redisconn.Open(ctx, opts.Target, target, 2); err != nil {
				return err
			}
			clients[db] = c
			if !v.probed {
				if v.caps, err = probeCaps(ctx, c); err != nil {
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
		if len(batch) > 0 && batch[0].DB != rec.DB {
			if err := flush(); err != nil {
				return res, err
			}
		}
		batch = append(batch, rec)
		if size += fr.LineSize(); len(batch) >= batchRecords || size >= batchBytes {
			if err := flush(); err != nil {
				return res, err
			}
		}
	}
}

// caps are the commands the target has that verify uses where it can.
type caps struct {
	expireTime  bool // PEXPIRETIME (7.0+); else PTTL and TIME
	multiMember bool // SMISMEMBER, ZMSCORE (6.2+); else one SISMEMBER or ZSCORE a member
	fieldExpiry bool // HPEXPIRETIME (7.4+)
}

func probeCaps(ctx context.Context, c *redis.Client) (caps, error) {
	info, err := c.Do(ctx, "COMMAND", "INFO", "pexpiretime", "smismember", "zmscore", "hpexpiretime").Slice()
	if err != nil {
		return caps{}, fmt.Errorf("command info: %w", err)
	}
	has := func(i int) bool { return i < len(info) && info[i] != nil }
	return caps{expireTime: has(0), multiMember: has(1) && has(2), fieldExpiry: has(3)}, nil
}

// verifier carries the state of the key being checked across its parts.
type verifier struct {
	opts   Options
	res    *Result
	caps   caps
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
func (v *verifier) batch(ctx context.Context, c *redis.Client, batch []*format.Record) error {
	p := c.Pipeline()
	cmds := make([]pending, len(batch))
	off := v.offset
	var now *redis.TimeCmd
	if !v.caps.expireTime {
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
		if lenCmd := lengthCommand(rec.Type); lenCmd != "" && rec.Dump == "" {
			q.length = redis.NewIntCmd(ctx, lenCmd, rec.Key)
			p.Process(ctx, q.length)
		}
		if v.caps.expireTime {
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

func lengthCommand(typ string) string {
	return map[string]string{format.TypeString: "STRLEN", format.TypeList: "LLEN", format.TypeSet: "SCARD",
		format.TypeHash: "HLEN", format.TypeZSet: "ZCARD", format.TypeStream: "XLEN"}[typ]
}

// queueValues queues the commands that read back rec's elements, the
// first at offset off of its key, and returns the offset after them.
func (v *verifier) queueValues(ctx context.Context, p redis.Pipeliner, q *pending, rec *format.Record, off int64) int64 {
	do := func(args ...interface{}) { q.values = append(q.values, p.Do(ctx, args...)) }
	switch {
	case rec.Dump != "":
	case rec.Type == format.TypeString:
		if len(rec.Str) > 0 {
			do("GETRANGE", rec.Key, off, off+int64(len(rec.Str))-1)
		}
		return off + int64(len(rec.Str))
	case rec.Type == format.TypeList:
		if len(rec.Elems) > 0 {
			do("LRANGE", rec.Key, off, off+int64(len(rec.Elems))-1)
		}
		return off + int64(len(rec.Elems))
	case rec.Type == format.TypeSet:
		if v.caps.multiMember && len(rec.Elems) > 0 {
			args := []interface{}{"SMISMEMBER", rec.Key}
			for _, m := range rec.Elems {
				args = append(args, m)
			}
			do(args...)
		} else {
			for _, m := range rec.Elems {
				do("SISMEMBER", rec.Key, m)
			}
		}
	case rec.Type == format.TypeHash:
		if len(rec.Hash) > 0 {
			args := []interface{}{"HMGET", rec.Key}
			for _, f := range rec.Hash {
				args = append(args, f.Name)
			}
			do(args...)
		}
		if n := len(rec.FieldExpire); n > 0 && v.caps.fieldExpiry {
			args := []interface{}{"HPEXPIRETIME", rec.Key, "FIELDS", n}
			for _, f := range rec.FieldExpire {
				args = append(args, f.Field)
			}
			q.fieldExp = p.Do(ctx, args...)
		}
	case rec.Type == format.TypeZSet:
		if v.caps.multiMember && len(rec.ZSet) > 0 {
			args := []interface{}{"ZMSCORE", rec.Key}
			for _, m := range rec.ZSet {
				args = append(args, m.Member)
			}
			do(args...)
		} else {
			for _, m := range rec.ZSet {
				do("ZSCORE", rec.Key, m.Member)
			}
		}
	case rec.Type == format.TypeStream:
		if first, last, ok := entryRange(rec.Stream); ok {
			do("XRANGE", rec.Key, first, last)
		}
		if rec.Stream.LastID != "" {
			q.xinfo = p.Do(ctx, "XINFO", "STREAM", rec.Key)
		}
	}
	return off
}

// entryRange is the IDs of the first and last entries of s that are in
// the stream (not deleted ones kept for their pending entries).
func entryRange(s *format.Stream) (first, last string, ok bool) {
	for _, e := range s.Entries {
		if e.Deleted {
			continue
		}
		if !ok {
			first, ok = e.ID, true
		}
		last = e.ID
	}
	return first, last, ok
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

// values checks the elements of one record.
func (v *verifier) values(rec *format.Record, q *pending) error {
	for _, c := range q.values {
		if err := c.Err(); err != nil {
			return fmt.Errorf("%s: %w", strings.ToUpper(c.Name()), err)
		}
	}
	val := func(i int) interface{} { return q.values[i].(*redis.Cmd).Val() }
	switch {
	case rec.Dump != "":
		return nil // a module value: its type and expiry are checked
	case rec.Type == format.TypeString:
		if len(rec.Str) > 0 {
			got, _ := val(0).(string)
			if got != rec.Str {
				v.differ(rec.DB, rec.Key, "value differs at byte %d", v.offset+int64(firstDiff(got, rec.Str)))
			}
		}
		v.offset += int64(len(rec.Str))
		v.count += int64(len(rec.Str))
	case rec.Type == format.TypeList:
		if len(rec.Elems) > 0 {
			got, _ := val(0).([]interface{})
			for i := range rec.Elems {
				if i >= len(got) || got[i] != rec.Elems[i] {
					v.differ(rec.DB, rec.Key, "element %d differs", v.offset+int64(i))
					break
				}
			}
		}
		v.offset += int64(len(rec.Elems))
		v.count += int64(len(rec.Elems))
	case rec.Type == format.TypeSet:
		in := func(i int) bool {
			if v.caps.multiMember {
				got, _ := val(0).([]interface{})
				return i < len(got) && got[i] == int64(1)
			}
			return val(i) == int64(1)
		}
		for i, m := range rec.Elems {
			if !in(i) {
				v.differ(rec.DB, rec.Key, "member %q missing", m)
				break
			}
		}
		v.count += int64(len(rec.Elems))
	case rec.Type == format.TypeHash:
		if len(rec.Hash) > 0 {
			got, _ := val(0).([]interface{})
			for i, f := range rec.Hash {
				if i >= len(got) || got[i] != f.Value {
					v.differ(rec.DB, rec.Key, "field %q differs", f.Name)
					return nil
				}
			}
		}
		v.count += int64(len(rec.Hash))
		return v.fieldExpiries(rec, q)
	case rec.Type == format.TypeZSet:
		score := func(i int) string {
			if v.caps.multiMember {
				got, _ := val(0).([]interface{})
				if i < len(got) {
					s, _ := got[i].(string)
					return s
				}
				return ""
			}
			s, _ := val(i).(string)
			return s
		}
		for i, m := range rec.ZSet {
			s := score(i)
			f, err := strconv.ParseFloat(s, 64)
			if err != nil || (f != m.Score && !(math.IsInf(f, 0) && f == m.Score)) {
				v.differ(rec.DB, rec.Key, "member %q: score %v, target %s", m.Member, m.Score, orMissing(s))
				break
			}
		}
		v.count += int64(len(rec.ZSet))
	case rec.Type == format.TypeStream:
		return v.stream(rec, q)
	}
	return nil
}

// fieldExpiries compares a hash record's field expiries.
func (v *verifier) fieldExpiries(rec *format.Record, q *pending) error {
	if len(rec.FieldExpire) == 0 {
		return nil
	}
	if q.fieldExp == nil {
		v.differ(rec.DB, rec.Key, "%d hash field expiries in the dump; the target has no HPEXPIRETIME (Redis 7.4+) to hold them", len(rec.FieldExpire))
		return nil
	}
	got, err := q.fieldExp.Int64Slice()
	if err != nil {
		return fmt.Errorf("HPEXPIRETIME: %w", err)
	}
	for i, f := range rec.FieldExpire {
		switch {
		case i >= len(got) || got[i] < 0:
			v.differ(rec.DB, rec.Key, "field %q expires at %s in the dump, target never", f.Field, at(f.AtMs))
			return nil
		case absDiff(got[i], f.AtMs) > v.opts.Tolerance.Milliseconds():
			v.differ(rec.DB, rec.Key, "field %q expires at %s in the dump, target at %s", f.Field, at(f.AtMs), at(got[i]))
			return nil
		}
	}
	return nil
}

func (v *verifier) stream(rec *format.Record, q *pending) error {
	first, last, ok := entryRange(rec.Stream)
	var want []format.StreamEntry
	for _, e := range rec.Stream.Entries {
		if !e.Deleted {
			want = append(want, e)
		}
	}
	if ok {
		res, _ := q.values[0].(*redis.Cmd).Val().([]interface{})
		if len(res) != len(want) {
			v.differ(rec.DB, rec.Key, "%d entries from %s to %s, target %d", len(want), first, last, len(res))
			return nil
		}
		for i, x := range res {
			e, _ := x.([]interface{})
			if len(e) != 2 || e[0] != want[i].ID || !sameFields(e[1], want[i].Fields) {
				v.differ(rec.DB, rec.Key, "entry %s differs", want[i].ID)
				return nil
			}
		}
	}
	v.entries += int64(len(want))
	s := rec.Stream
	if q.xinfo != nil {
		info, err := q.xinfo.Slice()
		if err != nil {
			return fmt.Errorf("XINFO STREAM: %w", err)
		}
		m := map[string]interface{}{}
		for i := 0; i+1 < len(info); i += 2 {
			if k, ok := info[i].(string); ok {
				m[k] = info[i+1]
			}
		}
		switch {
		case m["last-generated-id"] != s.LastID:
			v.differ(rec.DB, rec.Key, "last ID %s, target %v", s.LastID, m["last-generated-id"])
		case s.EntriesAdded >= 0 && m["entries-added"] != nil && m["entries-added"] != s.EntriesAdded:
			v.differ(rec.DB, rec.Key, "entries-added %d, target %v", s.EntriesAdded, m["entries-added"])
		case s.MaxDeletedID != "" && m["max-deleted-entry-id"] != nil && m["max-deleted-entry-id"] != s.MaxDeletedID:
			v.differ(rec.DB, rec.Key, "max-deleted-entry-id %s, target %v", s.MaxDeletedID, m["max-deleted-entry-id"])
		}
	}
	// Groups may continue across parts: add them up for finish.
	if v.groups == nil {
		v.groups = map[string]*groupSum{}
	}
	for _, g := range s.Groups {
		sum := v.groups[g.Name]
		if sum == nil {
			sum = &groupSum{entriesRead: -1}
			v.groups[g.Name] = sum
			v.order = append(v.order, g.Name)
		}
		if g.LastDeliveredID != "" {
			sum.lastDelivered, sum.entriesRead = g.LastDeliveredID, g.EntriesRead
		}
		sum.consumers += int64(len(g.Consumers))
		sum.pending += int64(len(g.Pending))
	}
	return nil
}

// streamGroups compares the consumer groups the dump holds for a stream
// with the target's.
func (v *verifier) streamGroups(rec *format.Record, q *pending) error {
	got, err := q.groups.Result()
	if err != nil {
		return fmt.Errorf("XINFO GROUPS: %w", err)
	}
	if len(got) != len(v.order) {
		v.differ(rec.DB, rec.Key, "%d consumer groups, target %d", len(v.order), len(got))
		return nil
	}
	on := map[string]redis.XInfoGroup{}
	for _, g := range got {
		on[g.Name] = g
	}
	for _, name := range v.order {
		want, g := v.groups[name], on[name]
		switch {
		case g.Name != name:
			v.differ(rec.DB, rec.Key, "group %q missing from the target", name)
		case g.LastDeliveredID != want.lastDelivered:
			v.differ(rec.DB, rec.Key, "group %q: last delivered ID %s, target %s", name, want.lastDelivered, g.LastDeliveredID)
		case want.entriesRead >= 0 && g.EntriesRead != want.entriesRead:
			v.differ(rec.DB, rec.Key, "group %q: entries-read %d, target %d", name, want.entriesRead, g.EntriesRead)
		case g.Consumers != want.consumers:
			v.differ(rec.DB, rec.Key, "group %q: %d consumers, target %d", name, want.consumers, g.Consumers)
		case g.Pending != want.pending:
			v.differ(rec.DB, rec.Key, "group %q: %d pending entries, target %d", name, want.pending, g.Pending)
		default:
			continue
		}
		return nil
	}
	return nil
}

func sameFields(x interface{}, want []string) bool {
	got, _ := x.([]interface{})
	if len(got) != len(want) {
		return false
	}
	for i := range want {
		if got[i] != want[i] {
			return false
		}
	}
	return true
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
			v.differ(rec.DB, rec.Key, "%d %s in the dump, target %d", want, unit(rec.Type), n)
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

func unit(t string) string {
	switch t {
	case format.TypeString:
		return "bytes"
	case format.TypeStream:
		return "entries"
	}
	return "elements"
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
