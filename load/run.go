package load

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/crs-tool/crs/format"
	"github.com/crs-tool/crs/internal/progress"
	"github.com/crs-tool/crs/internal/redisconn"
	"github.com/crs-tool/crs/internal/report"
	"github.com/crs-tool/crs/records"
)

// ErrNoInput is returned when crsload would read a dump from a terminal.
var ErrNoInput = errors.New("no input: give a dump file, or pipe one in (crsload < FILE)")

// Run loads the dump in (a dump file, zstd or plain, or an RDB file, from
// a file or standard input) and prints a summary to stderr.
//
// Before it writes anything, Run checks the target against the dump's
// header (databases that already hold keys, maxmemory) and, when the
// target may lack a command the data needs (hash field expiries before
// Redis 7.4, stream features before 7.0, idempotent producers before
// 8.6), reads the whole dump first, spooling standard input to a private
// temporary file. It reports every problem found at once in a
// PreflightError.
func Run(ctx context.Context, opts Options, in records.Input, stderr io.Writer) error {
	if err := checkOptions(opts); err != nil {
		return err
	}
	if opts.Check {
		return check(ctx, opts, in, stderr)
	}
	if opts.DryRun || opts.CheckFirst {
		if err := in.Replayable(); err != nil {
			return err
		}
	}
	hdr, ti, err := preflightInput(ctx, opts, in, stderr)
	opts.Databases = ti.databases
	if err != nil {
		return err
	}
	if !opts.Quiet && !opts.JSON {
		fmt.Fprintln(stderr, preflightReport(hdr, ti))
	}
	if opts.DryRun || opts.CheckFirst {
		if done, err := readFirst(ctx, opts, in, stderr); done || err != nil {
			return err
		}
	}
	// An RDB file that the target reads goes as it is, value by value.
	if p, ok := in.(payloadInput); ok && opts.LoadBy != LoadByCommands && ti.restore.RDB > 0 {
		p.PayloadsFor(ti.Engine, ti.restore.RDB)
	}
	if !opts.Quiet && opts.Counter == nil {
		opts.Counter = &progress.Counter{}
	}
	st, src, resumable, stopProgress, err := loadInput(ctx, opts, in, hdr, stderr)
	if st.ByType == nil {
		return err // nothing was read
	}
	// An AOF's commands, after its base's keys.
	if ci, ok := in.(records.ChangesInput); ok && err == nil {
		err = applyChanges(ctx, ci, opts, &st)
	}
	stopProgress()
	st.Bytes, st.Source = src.InputBytes, src
	st.Expired += src.Expired // keys an RDB file held already expired
	if opts.Summary != nil {
		writeJSON(opts.Summary, st, err)
	}
	switch {
	case opts.JSON:
		writeJSON(stderr, st, err)
	case !opts.Quiet:
		fmt.Fprintln(stderr, summary(st, err))
	}
	var cut InputError
	switch {
	case errors.As(err, &cut) && st.Keys > 0 && !opts.Quiet:
		fmt.Fprintln(stderr, cutReport(opts, st))
	case err != nil && resumable:
		fmt.Fprintln(stderr, "crsload: crsload --resume with the same arguments continues this load from where it stopped")
	}
	return err
}

// loadInput loads in, showing progress from when it begins: a dump set
// part by part side by side (loadParts), anything else as one stream. It
// returns what the load did (ByType nil where it read nothing), what the
// input counted, whether a checkpoint is left to resume from, and the
// progress display's stop.
func loadInput(ctx context.Context, opts Options, in records.Input, hdr format.Header, stderr io.Writer) (st Stats, src records.Stats, resumable bool, stop func(), err error) {
	var parts []records.Input
	// A reshaped set goes as one stream: a rename may give keys of two
	// parts one name, which one reader's check of repeats catches.
	// A resumed load goes the way the one it continues went, whatever
	// --parts-at-once says now.
	if pi, ok := in.(records.PartsInput); ok && !opts.CheckCollisions && len(pi.Parts()) > 1 {
		if n := len(pi.Parts()); opts.Resume && anyPartCheckpoint(opts.Checkpoint, n) || !opts.Resume && partsAtOnce(opts, n) > 1 {
			parts = pi.Parts()
		}
	}
	var r records.ReadCloser
	if parts == nil {
		if r, err = in.Open(ctx, nil); err != nil {
			return st, src, false, nil, err
		}
	}
	stop = func() {}
	if !opts.Quiet {
		stop = progress.Show(stderr, opts.Progress, "crsload", opts.Counter)
	}
	if parts != nil {
		st = Stats{ByType: make(map[string]int64)}
		start := time.Now()
		st.Parts, st.PartsAtOnce = len(parts), partsAtOnce(opts, len(parts))
		err = loadParts(ctx, opts, hdr, parts, &st, &src)
		st.Elapsed = time.Since(start)
		return st, src, opts.Checkpoint != "" && anyPartCheckpoint(opts.Checkpoint, len(parts)), stop, err
	}
	st, err = Load(ctx, r, opts)
	src, serr := r.Close()
	if err == nil {
		err = serr
	}
	_, cerr := os.Stat(opts.Checkpoint)
	return st, src, opts.Checkpoint != "" && cerr == nil, stop, err
}

// payloadInput is an input that can hand values over undecoded, as DUMP
// payloads, to a server of engine writing RDB version rdbVersion (an RDB
// file the server reads).
type payloadInput interface {
	PayloadsFor(engine string, rdbVersion int)
}

// InputError is a failure to read the input after the load began
// writing: the file is cut short or corrupt past that point.
type InputError struct{ Err error }

func (e InputError) Error() string { return e.Err.Error() }
func (e InputError) Unwrap() error { return e.Err }

// cutReport says what a load cut short by its input left on the target,
// and how to keep it or remove it.
func cutReport(opts Options, st Stats) string {
	var b strings.Builder
	fmt.Fprintf(&b, "crsload: the target now holds the %d keys written before the input broke, and none after; --resume cannot mend the file. ", st.Keys)
	b.WriteString("To keep them, load the rest from a whole dump with --skip-existing; ")
	if opts.Replace || opts.SkipExisting || opts.Resume {
		b.WriteString("to undo them, load a whole dump with --replace. ")
	} else {
		b.WriteString("to remove them, empty the databases this load wrote to (they were empty before it: redis-cli -n DB FLUSHDB) or load a whole dump with --replace. ")
	}
	b.WriteString("--check-first reads a file whole before writing anything")
	return b.String()
}

// readFirst reads the whole input before anything is written (--dry-run,
// --check-first). For a dry run it says what the load would do, and done
// is true.
func readFirst(ctx context.Context, opts Options, in records.Input, stderr io.Writer) (done bool, err error) {
	c, err := checkDump(ctx, in)
	if err != nil {
		return true, fmt.Errorf("%w; nothing was written", err)
	}
	if opts.Quiet {
		return opts.DryRun, nil
	}
	var b strings.Builder
	if opts.DryRun {
		fmt.Fprintf(&b, "crsload --dry-run: the input is whole and the target passed the pre-flight: the load would write %d keys", c.Keys)
	} else {
		fmt.Fprintf(&b, "crsload: the input is whole (read first, --check-first): %d keys", c.Keys)
	}
	b.WriteString(report.TypeCounts(c.ByType))
	fmt.Fprintf(&b, " in %d records", c.Records)
	if opts.DryRun {
		fmt.Fprintf(&b, " to %s; nothing was written", opts.Conn.Address())
	}
	fmt.Fprintln(stderr, b.String())
	return opts.DryRun, nil
}

// preflightInput checks the target against the dump before anything is
// written, and reports every problem at once. When the target may lack a
// command the data needs, it reads the whole dump first (standard input
// spooled to a private temporary file, which later reads read again).
func preflightInput(ctx context.Context, opts Options, in records.Input, stderr io.Writer) (format.Header, targetInfo, error) {
	hdr, err := in.Header(ctx)
	if err != nil {
		return hdr, targetInfo{}, err
	}
	ti, err := probe(ctx, opts)
	if err != nil {
		return hdr, ti, err
	}
	problems := preflight(hdr, ti, opts)
	if needsScan(hdr, ti.serverInfo, opts) || opts.DryRun {
		if err := in.Replayable(); err != nil {
			return hdr, ti, err
		}
		more, err := scanNeeds(ctx, in, ti.serverInfo, ti.cluster, opts)
		if err != nil {
			return hdr, ti, err
		}
		problems = append(problems, more...)
	}
	if ci, ok := in.(records.ChangesInput); ok {
		c, _, err := redisconn.Open(ctx, opts.Conn, 0, 1)
		if err != nil {
			return hdr, ti, err
		}
		more, err := checkCommands(ctx, ci, ti, c)
		c.Close()
		if err != nil {
			return hdr, ti, err
		}
		problems = append(problems, more...)
	}
	if len(problems) > 0 {
		err := &PreflightError{Problems: problems}
		if opts.JSON {
			writeJSON(stderr, Stats{ByType: map[string]int64{}}, err)
		}
		return hdr, ti, err
	}
	return hdr, ti, nil
}

// preflightReport says what the checks before the load found.
func preflightReport(hdr format.Header, ti targetInfo) string {
	var keys int64
	for _, d := range hdr.Databases {
		keys += d.Keys
	}
	var b strings.Builder
	if hdr.Databases == nil {
		b.WriteString("crsload: pre-flight ok: the input does not say how many keys it holds")
	} else {
		fmt.Fprintf(&b, "crsload: pre-flight ok: the dump holds about %d keys in %d databases", keys, len(hdr.Databases))
	}
	if hdr.ServerVersion != "" {
		fmt.Fprintf(&b, " from %s %s", hdr.Engine, hdr.ServerVersion)
	}
	if hdr.MemoryBytes > 0 {
		fmt.Fprintf(&b, ", about %s of data there", mib(hdr.MemoryBytes))
	}
	fmt.Fprintf(&b, "; the target is %s %s, %s in use", ti.Engine, ti.Version, mib(ti.used))
	if ti.maxmemory > 0 {
		fmt.Fprintf(&b, " of maxmemory %s (%s)", mib(ti.maxmemory), ti.policy)
	} else {
		b.WriteString(", no maxmemory")
	}
	b.WriteString(ti.keyRules)
	return b.String()
}

// check reads and validates a whole dump, touching no server, and prints
// what it holds.
func check(ctx context.Context, opts Options, in records.Input, stderr io.Writer) error {
	c, err := checkDump(ctx, in)
	switch {
	case opts.JSON:
		report.JSON(stderr, "crsload --check", c, err)
	case err == nil && !opts.Quiet:
		var b strings.Builder
		fmt.Fprintf(&b, "crsload --check: the dump is intact: %d keys", c.Keys)
		b.WriteString(report.TypeCounts(c.ByType))
		fmt.Fprintf(&b, " in %d records (%d of them parts of large keys), %d with an expiry; crc32c %s matches.", c.Records, c.Parts, c.Expiring, c.CRC32C)
		fmt.Fprintf(&b, " Made %s from %s (%s %s), format version %d.", time.UnixMilli(c.CreatedMs).UTC().Format(time.RFC3339), c.Source, c.Engine, c.ServerVersion, c.Version)
		fmt.Fprintln(stderr, b.String())
	}
	return err
}

// checked is what crsload --check found in a dump.
type checked struct {
	Keys          int64            `json:"keys"`
	Records       int64            `json:"records"`
	Parts         int64            `json:"parts"`
	Expiring      int64            `json:"keys_with_expiry"`
	ByType        map[string]int64 `json:"keys_by_type"`
	CRC32C        string           `json:"crc32c"`
	Version       int              `json:"format_version"`
	CreatedMs     int64            `json:"created_ms"`
	Source        string           `json:"source"`
	Engine        string           `json:"engine"`
	ServerVersion string           `json:"server_version"`
}

func checkDump(ctx context.Context, in records.Input) (c checked, err error) {
	c = checked{ByType: map[string]int64{}}
	r, err := in.Open(ctx, nil)
	if err != nil {
		return c, err
	}
	defer func() {
		if _, serr := r.Close(); err == nil {
			err = serr
		}
	}()
	hdr, err := r.Header()
	if err != nil {
		return c, err
	}
	c.Version, c.CreatedMs, c.Source, c.Engine, c.ServerVersion = hdr.Version, hdr.CreatedMs, hdr.Source, hdr.Engine, hdr.ServerVersion
	err = records.Each(ctx, r, func(rec *format.Record) error {
		c.Records++
		if rec.Part > 0 {
			c.Parts++
		}
		if rec.Part <= 1 && rec.Type != format.TypeFunction {
			c.Keys++
			c.ByType[rec.Type]++
			if rec.ExpireAtMs > 0 {
				c.Expiring++
			}
		}
		return nil
	})
	if err != nil {
		return c, err
	}
	c.CRC32C = "none (not a dump file)"
	if t, ok := r.(interface{ Trailer() (format.Trailer, bool) }); ok {
		if tr, ok := t.Trailer(); ok {
			c.CRC32C = fmt.Sprintf("%08x", tr.CRC32C)
		}
	}
	return c, nil
}

// summary is the line crsload prints at the end.
func summary(st Stats, err error) string {
	var b strings.Builder
	if err != nil {
		b.WriteString("crsload: FAILED after writing ")
	} else {
		b.WriteString("crsload: loaded ")
	}
	fmt.Fprintf(&b, "%d keys", st.Keys)
	b.WriteString(report.TypeCounts(st.ByType))
	if st.Functions > 0 {
		fmt.Fprintf(&b, " and %d function libraries", st.Functions)
	}
	fmt.Fprintf(&b, " from %d records, %d bytes read, in %.2fs", st.Records, st.Bytes, st.Elapsed.Seconds())
	if s := st.Elapsed.Seconds(); s > 0 {
		fmt.Fprintf(&b, " (%.0f keys/s)", float64(st.Keys)/s)
	}
	fmt.Fprintf(&b, "; skipped %d already expired", st.Expired)
	if st.Existing > 0 {
		fmt.Fprintf(&b, ", %d existing (--skip-existing)", st.Existing)
	}
	if st.Unsupported > 0 {
		fmt.Fprintf(&b, ", %d whose DUMP payload the target refused (--skip-unsupported)", st.Unsupported)
	}
	if st.Replaced > 0 {
		fmt.Fprintf(&b, "; replaced %d existing keys", st.Replaced)
	}
	if st.Redirects > 0 {
		fmt.Fprintf(&b, "; followed %d cluster redirections (MOVED, ASK)", st.Redirects)
	}
	if st.VectorsApprox > 0 {
		fmt.Fprintf(&b, "; %d VECTOR SET ELEMENTS loaded as dumped, which VEMB returns within a few float ulps, not exactly", st.VectorsApprox)
	}
	b.WriteString(report.KeysOnDisk(st.Deferred, st.DiskBytes))
	if st.Retries > 0 {
		fmt.Fprintf(&b, "; reconnected and resent %d times", st.Retries)
	}
	b.WriteString(report.HeldBack(st.HeldMs, st.PeakCPU))
	if st.DroppedCount > 0 {
		fmt.Fprintf(&b, "; DROPPED the counters of %d streams (--drop-stream-counters)", st.DroppedCount)
	}
	if st.Resumed > 0 {
		fmt.Fprintf(&b, "; resumed: skipped %d records written before the load stopped", st.Resumed)
	}
	if st.Parts > 0 {
		fmt.Fprintf(&b, "; a dump set's %d parts, %d at a time", st.Parts, st.PartsAtOnce)
	}
	if st.SkippedFunctions > 0 {
		fmt.Fprintf(&b, "; SKIPPED %d function libraries (--skip-functions)", st.SkippedFunctions)
	}
	if st.DroppedIDMP > 0 {
		fmt.Fprintf(&b, "; DROPPED the idempotent-producer state of %d streams (--drop-stream-idmp)", st.DroppedIDMP)
	}
	if st.DroppedField > 0 {
		fmt.Fprintf(&b, "; DROPPED %d hash field expiries (--drop-field-expiry)", st.DroppedField)
	}
	b.WriteString(st.Source.Notes())
	if st.Applied > 0 || st.Commands != nil {
		fmt.Fprintf(&b, "; then applied %d commands%s", st.Applied, report.TypeCounts(st.Commands))
	}
	// Servers write expiries in milliseconds (PEXPIREAT); files of
	// commands that other tools wrote (redis-dump-go) give whole seconds.
	if n := st.Commands["EXPIREAT"] + st.Commands["EXPIRE"] + st.Commands["SETEX"]; n > 0 {
		fmt.Fprintf(&b, "; %d EXPIRIES CAME IN WHOLE SECONDS (EXPIREAT, EXPIRE, SETEX): the file holds no milliseconds of them", n)
	}
	if st.Unwrapped > 0 {
		fmt.Fprintf(&b, "; %d transactions applied command by command (a cluster runs none across its masters): the end state is the same, and nothing reads the target meanwhile but what you run", st.Unwrapped)
	}
	if st.ChangesNote != "" {
		b.WriteString("; " + st.ChangesNote)
	}
	return b.String()
}

func writeJSON(w io.Writer, st Stats, err error) {
	report.JSON(w, "crsload", struct {
		Stats
		Seconds float64 `json:"seconds"`
	}{st, st.Elapsed.Seconds()}, err)
}
