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
	"time"

	"github.com/redis/go-redis/v9"
	"golang.org/x/sync/errgroup"

	"github.com/crs-tool/crs/dump"
	"github.com/crs-tool/crs/format"
	"github.com/crs-tool/crs/internal/dumpfile"
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
	// Quiet prints only the summary line.
	Quiet bool
}

// NewOptions returns the defaults.
func NewOptions() Options {
	return Options{
		Target:    redisconn.NewOptions(),
		Source:    redisconn.NewOptions(),
		Tolerance: time.Second,
		Show:      20,
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
	var res Result
	var err error
	if opts.Input != "" {
		res, err = verifyFile(ctx, opts)
	} else {
		res, err = verifySource(ctx, opts)
	}
	if !opts.Quiet {
		for _, d := range res.Shown {
			fmt.Fprintln(w, d)
		}
		if more := res.Differences - int64(len(res.Shown)); more > 0 {
			fmt.Fprintf(w, "... and %d more differences\n", more)
		}
	}
	fmt.Fprintf(w, "crs verify: %d keys checked, %d differences (%d keys missing), %d keys expired since the dump (not differences)\n",
		res.Keys, res.Differences, res.Missing, res.Expired)
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

// verifySource dumps the source into a pipe and verifies what comes out.
func verifySource(ctx context.Context, opts Options) (Result, error) {
	pr, pw := io.Pipe()
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		do := dump.NewOptions()
		do.Conn = opts.Source
		_, err := dump.Dump(gctx, format.NewWriter(pw), do)
		pw.CloseWithError(err)
		return err
	})
	var res Result
	g.Go(func() error {
		var err error
		res, err = Verify(gctx, format.NewReader(pr), opts)
		pr.CloseWithError(err)
		return err
	})
	err := g.Wait()
	return res, err
}

// Verify checks every record read from fr against the target.
func Verify(ctx context.Context, fr *format.Reader, opts Options) (Result, error) {
	var res Result
	if _, err := fr.Header(); err != nil {
		return res, err
	}
	clients := map[int]*redis.Client{}
	defer func() {
		for _, c := range clients {
			c.Close()
		}
	}()
	v := &verifier{opts: opts, res: &res}
	for {
		rec, err := fr.Read()
		if err == io.EOF {
			return res, nil
		}
		if err != nil {
			return res, err
		}
		c := clients[rec.DB]
		if c == nil {
			db := rec.DB
			if t, _ := opts.Target.SelectedDB(); t >= 0 {
				db = t
			}
			c, _, err = redisconn.Open(ctx, opts.Target, db, 2)
			if err != nil {
				return res, err
			}
			clients[rec.DB] = c
		}
		if err := v.record(ctx, c, rec); err != nil {
			return res, err
		}
	}
}

// verifier carries the state of the key being checked across its parts.
type verifier struct {
	opts Options
	res  *Result
	// of the current key
	skip    bool  // already found missing, expired or different
	offset  int64 // list elements or string bytes checked so far
	count   int64 // elements (bytes for a string) the dump holds so far
	entries int64 // stream entries (not counting deleted ones)
	exp     int64
}

func (v *verifier) differ(db int, key, format string, args ...any) {
	v.res.Differences++
	v.skip = true
	if len(v.res.Shown) < v.opts.Show {
		v.res.Shown = append(v.res.Shown, fmt.Sprintf("db %d key %q: %s", db, key, fmt.Sprintf(format, args...)))
	}
}

func (v *verifier) record(ctx context.Context, c *redis.Client, rec *format.Record) error {
	if rec.Part <= 1 {
		*v = verifier{opts: v.opts, res: v.res, exp: rec.ExpireAtMs}
		v.res.Keys++
		typ, err := c.Type(ctx, rec.Key).Result()
		if err != nil {
			return fmt.Errorf("db %d key %q: TYPE: %w", rec.DB, rec.Key, err)
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
	if err := v.values(ctx, c, rec); err != nil {
		return fmt.Errorf("db %d key %q: %w", rec.DB, rec.Key, err)
	}
	if v.skip || rec.More {
		return nil
	}
	return v.finish(ctx, c, rec)
}

// values checks the elements of one record.
func (v *verifier) values(ctx context.Context, c *redis.Client, rec *format.Record) error {
	switch {
	case rec.Dump != "":
		return nil // a module value: its type and expiry are checked
	case rec.Type == format.TypeString:
		got, err := c.GetRange(ctx, rec.Key, v.offset, v.offset+int64(len(rec.Str))-1).Result()
		if err != nil {
			return err
		}
		if len(rec.Str) > 0 && got != rec.Str {
			v.differ(rec.DB, rec.Key, "value differs at byte %d", v.offset+int64(firstDiff(got, rec.Str)))
		}
		v.offset += int64(len(rec.Str))
		v.count += int64(len(rec.Str))
	case rec.Type == format.TypeList:
		got, err := c.LRange(ctx, rec.Key, v.offset, v.offset+int64(len(rec.Elems))-1).Result()
		if err != nil {
			return err
		}
		for i := range rec.Elems {
			if i >= len(got) || got[i] != rec.Elems[i] {
				v.differ(rec.DB, rec.Key, "element %d differs", v.offset+int64(i))
				break
			}
		}
		v.offset += int64(len(rec.Elems))
		v.count += int64(len(rec.Elems))
	case rec.Type == format.TypeSet:
		args := []interface{}{"SMISMEMBER", rec.Key}
		for _, m := range rec.Elems {
			args = append(args, m)
		}
		got, err := c.Do(ctx, args...).Int64Slice()
		if err != nil {
			return err
		}
		for i, in := range got {
			if in != 1 {
				v.differ(rec.DB, rec.Key, "member %q missing", rec.Elems[i])
				break
			}
		}
		v.count += int64(len(rec.Elems))
	case rec.Type == format.TypeHash:
		args := []interface{}{"HMGET", rec.Key}
		for _, f := range rec.Hash {
			args = append(args, f.Name)
		}
		got, err := c.Do(ctx, args...).Slice()
		if err != nil {
			return err
		}
		for i, g := range got {
			if s, ok := g.(string); !ok || s != rec.Hash[i].Value {
				v.differ(rec.DB, rec.Key, "field %q differs", rec.Hash[i].Name)
				break
			}
		}
		v.count += int64(len(rec.Hash))
	case rec.Type == format.TypeZSet:
		args := []interface{}{"ZMSCORE", rec.Key}
		for _, m := range rec.ZSet {
			args = append(args, m.Member)
		}
		got, err := c.Do(ctx, args...).Slice()
		if err != nil {
			return err
		}
		for i, g := range got {
			s, _ := g.(string)
			f, err := strconv.ParseFloat(s, 64)
			if err != nil || (f != rec.ZSet[i].Score && !(math.IsInf(f, 0) && f == rec.ZSet[i].Score)) {
				v.differ(rec.DB, rec.Key, "member %q: score %v, target %s", rec.ZSet[i].Member, rec.ZSet[i].Score, orMissing(s))
				break
			}
		}
		v.count += int64(len(rec.ZSet))
	case rec.Type == format.TypeStream:
		return v.stream(ctx, c, rec)
	}
	return nil
}

func (v *verifier) stream(ctx context.Context, c *redis.Client, rec *format.Record) error {
	var want []format.StreamEntry
	for _, e := range rec.Stream.Entries {
		if !e.Deleted {
			want = append(want, e)
		}
	}
	if len(want) > 0 {
		res, err := c.Do(ctx, "XRANGE", rec.Key, want[0].ID, want[len(want)-1].ID).Slice()
		if err != nil {
			return err
		}
		if len(res) != len(want) {
			v.differ(rec.DB, rec.Key, "%d entries from %s to %s, target %d", len(want), want[0].ID, want[len(want)-1].ID, len(res))
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
	if rec.Stream.LastID != "" {
		info, err := c.Do(ctx, "XINFO", "STREAM", rec.Key).Slice()
		if err != nil {
			return err
		}
		m := map[string]interface{}{}
		for i := 0; i+1 < len(info); i += 2 {
			if k, ok := info[i].(string); ok {
				m[k] = info[i+1]
			}
		}
		if m["last-generated-id"] != rec.Stream.LastID {
			v.differ(rec.DB, rec.Key, "last ID %s, target %v", rec.Stream.LastID, m["last-generated-id"])
		}
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

// finish checks a key's length and expiry after its last record.
func (v *verifier) finish(ctx context.Context, c *redis.Client, rec *format.Record) error {
	lenCmd := map[string]string{format.TypeString: "STRLEN", format.TypeList: "LLEN", format.TypeSet: "SCARD",
		format.TypeHash: "HLEN", format.TypeZSet: "ZCARD", format.TypeStream: "XLEN"}[rec.Type]
	want := v.count
	if rec.Type == format.TypeStream {
		want = v.entries
	}
	if lenCmd != "" && rec.Dump == "" {
		n, err := c.Do(ctx, lenCmd, rec.Key).Int64()
		if err != nil {
			return fmt.Errorf("db %d key %q: %s: %w", rec.DB, rec.Key, lenCmd, err)
		}
		if n != want {
			v.differ(rec.DB, rec.Key, "%d %s in the dump, target %d", want, unit(rec.Type), n)
			return nil
		}
	}
	ms, err := c.Do(ctx, "PEXPIRETIME", rec.Key).Int64()
	if err != nil {
		return fmt.Errorf("db %d key %q: PEXPIRETIME: %w", rec.DB, rec.Key, err)
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
