// Package dump is crsdump: it writes the dump of a source (a live server,
// an RDB file, …: any records.Input) to stdout, a file or an object in a
// bucket, compressed with zstd, and prints a summary.
package dump

import (
	"context"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"os"
	"strings"

	"github.com/klauspost/compress/zstd"
	"golang.org/x/term"

	"github.com/crs-tool/crs/format"
	"github.com/crs-tool/crs/internal/backoff"
	"github.com/crs-tool/crs/internal/progress"
	"github.com/crs-tool/crs/internal/ratelimit"
	"github.com/crs-tool/crs/internal/report"
	"github.com/crs-tool/crs/internal/store"
	"github.com/crs-tool/crs/records"
)

// Options configure crsdump's output. NewOptions holds the defaults.
type Options struct {
	// Summary, if not nil, gets the summary as one JSON object at the
	// end (--summary-json), whatever is printed.
	Summary io.Writer
	// Output is a file or an object to write (a path or a URL, as the
	// store package takes them); empty or "-" means standard output.
	Output string
	// PartSize is the size of the parts an object is uploaded in; 0 means
	// the store's default.
	PartSize int
	// Compress is "zstd" or "none".
	Compress string
	// ZstdLevel is the zstd encoder level, 1 (fastest) to 4 (best).
	ZstdLevel int
	// Quiet suppresses the summary and the progress display.
	Quiet bool
	// Progress is the progress display's mode on stderr: progress.Auto
	// (a bar on a terminal), Bar, Plain or None.
	Progress string
	// JSON prints the summary as one JSON object.
	JSON bool
	// Counter, if not nil, counts keys as they are written.
	Counter *progress.Counter
	// Rate, when above 0, is the most keys a second the dump reads
	// (--rate): the source is held back through the records in flight,
	// to spare a server in production.
	Rate float64
	// Busy, when not nil, holds the dump back while the source server is
	// busier than --max-server-cpu.
	Busy *backoff.Watch
}

// NewOptions returns the default options.
func NewOptions() Options {
	return Options{Compress: "zstd", ZstdLevel: 1, Progress: progress.Auto}
}

// Stats counts what a dump did.
type Stats struct {
	records.Stats
	Bytes   int64   `json:"json_bytes"`                    // uncompressed bytes of the dump
	HeldMs  int64   `json:"held_back_ms,omitempty"`        // time held back by --max-server-cpu
	PeakCPU float64 `json:"server_cpu_peak_pct,omitempty"` // the source's highest CPU use measured, under --max-server-cpu
}

// ErrOptions is wrapped by errors about option values.
var ErrOptions = errors.New("bad option")

// ErrTerminal is returned when compressed output would go to a terminal.
var ErrTerminal = errors.New("refusing to write compressed data to a terminal: redirect it (crsdump > FILE), use -o FILE, or --compress=none")

// Run dumps the server to opts.Output (or stdout) and prints a summary to
// stderr. With an output file, the dump is written to FILE.tmp, synced,
// and renamed to FILE only when it is complete; the file is mode 0600.
// An object is uploaded as it is written and made whole only when the
// dump is complete; a failed dump's upload is aborted.
func Run(ctx context.Context, in records.Input, opts Options, stdout, stderr io.Writer) (err error) {
	if err := progress.CheckMode(opts.Progress); err != nil {
		return fmt.Errorf("%w: %v", ErrOptions, err)
	}
	level, err := checkOutput(opts)
	if err != nil {
		return err
	}
	out, file, err := openOutput(ctx, opts, stdout)
	if err != nil {
		return err
	}
	if file != nil {
		defer file.Abort() // after Commit, nothing
	}

	compressed := &countingWriter{w: out, crc: crc32.New(castagnoli)}
	var enc *zstd.Encoder
	raw := &countingWriter{w: compressed}
	if opts.Compress == "zstd" {
		enc, err = zstd.NewWriter(compressed, zstd.WithEncoderLevel(level), zstd.WithWindowSize(1<<20))
		if err != nil {
			return fmt.Errorf("zstd: %w", err)
		}
		raw.w = enc
	}

	if !opts.Quiet && opts.Counter == nil {
		opts.Counter = &progress.Counter{}
	}
	stopProgress := func() {}
	if !opts.Quiet {
		stopProgress = progress.Show(stderr, opts.Progress, "crsdump", opts.Counter)
	}
	var st Stats
	limit := ratelimit.New(opts.Rate)
	if opts.Busy != nil {
		limit = ratelimit.WithGate(limit, opts.Busy)
	}
	st.Stats, err = copyDump(ctx, in, format.NewWriter(raw), opts.Counter, limit)
	st.HeldMs, st.PeakCPU = opts.Busy.Held().Milliseconds(), opts.Busy.Peak()
	stopProgress()
	st.Bytes = raw.n
	if enc != nil {
		// Close the zstd frame even after a failure, so that what was
		// written reads back as a dump without a trailer: a loader then
		// reports it as truncated rather than as corrupt. A failure before
		// the first byte (a refused pre-flight) leaves the output empty.
		if err != nil && raw.n == 0 {
			enc.Reset(io.Discard)
		}
		if cerr := enc.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("write: %w", cerr)
		}
	}
	if err == nil && file != nil {
		err = file.Commit()
	}
	sum := struct {
		Stats
		Written int64   `json:"written_bytes"`
		CRC32C  string  `json:"written_crc32c"`
		Seconds float64 `json:"seconds"`
	}{st, compressed.n, fmt.Sprintf("%08x", compressed.crc.Sum32()), st.Elapsed.Seconds()}
	if opts.Summary != nil {
		report.JSON(opts.Summary, "crsdump", sum, err)
	}
	switch {
	case opts.JSON:
		report.JSON(stderr, "crsdump", sum, err)
	case !opts.Quiet && (err == nil || st.Records > 0):
		// A failure before the first record is its cause alone, one line.
		fmt.Fprintln(stderr, summary(st, compressed.n, err))
	}
	return err
}

// copyDump writes the dump in holds to fw: the source runs beside the
// writer (decoding in one goroutine, encoding and compressing in this
// one), and its counts come back at the end.
func copyDump(ctx context.Context, in records.Input, fw *format.Writer, p *progress.Counter, limit *ratelimit.Limiter) (records.Stats, error) {
	r, err := in.Open(ctx, p)
	if err != nil {
		return records.Stats{}, err
	}
	err = func() error {
		h, err := r.Header()
		if err != nil {
			return err
		}
		if err := fw.WriteHeader(h); err != nil {
			return fmt.Errorf("write: %w", err)
		}
		err = records.Each(ctx, r, func(rec *format.Record) error {
			if err := fw.Write(rec); err != nil {
				return fmt.Errorf("write: %w", err)
			}
			if !rec.More {
				return limit.Wait(ctx, 1)
			}
			return nil
		})
		if err != nil {
			return err
		}
		if err := fw.Close(); err != nil {
			return fmt.Errorf("write: %w", err)
		}
		return nil
	}()
	st, serr := r.Close()
	if err == nil {
		err = serr
	}
	return st, err
}

// checkOutput checks the output options and returns the zstd level.
func checkOutput(opts Options) (zstd.EncoderLevel, error) {
	switch opts.Compress {
	case "zstd":
		if opts.ZstdLevel < 1 || opts.ZstdLevel > 4 {
			return 0, fmt.Errorf("%w: --zstd-level must be 1 to 4, not %d", ErrOptions, opts.ZstdLevel)
		}
		return zstd.EncoderLevel(opts.ZstdLevel), nil
	case "none":
		return 0, nil
	}
	return 0, fmt.Errorf("%w: --compress must be zstd or none, not %q", ErrOptions, opts.Compress)
}

// openOutput returns where the dump goes: standard output (never
// compressed bytes to a terminal), or a file or object that is whole only
// once committed, returned too.
func openOutput(ctx context.Context, opts Options, stdout io.Writer) (io.Writer, *store.Writer, error) {
	if opts.Output == "" || opts.Output == "-" {
		if opts.Compress != "none" && isTerminal(stdout) {
			return nil, nil, ErrTerminal
		}
		return stdout, nil, nil
	}
	w, err := store.Create(ctx, opts.Output, opts.PartSize)
	if err != nil {
		return nil, nil, err
	}
	return w, w, nil
}

func summary(st Stats, outBytes int64, err error) string {
	var b strings.Builder
	if err != nil {
		b.WriteString("crsdump: FAILED after ")
	} else {
		b.WriteString("crsdump: dumped ")
	}
	fmt.Fprintf(&b, "%d keys", st.Keys)
	b.WriteString(report.TypeCounts(st.ByType))
	if st.Libraries > 0 {
		fmt.Fprintf(&b, " and %d function libraries", st.Libraries)
	}
	fmt.Fprintf(&b, " from %d databases, %s of JSON, %s written, in %.2fs",
		st.Databases, report.Bytes(st.Bytes), report.Bytes(outBytes), st.Elapsed.Seconds())
	if s := st.Elapsed.Seconds(); s > 0 {
		fmt.Fprintf(&b, " (%.0f keys/s)", float64(st.Keys)/s)
	}
	switch st.From {
	case "rdb", "snapshot": // what the file held that the dump does not
		fmt.Fprintf(&b, "; skipped %d already expired", st.Expired)
	case "server", "cluster":
		fmt.Fprintf(&b, "; %d vanished while dumping, %d returned twice by SCAN, %d read again because they changed while read in parts", st.Vanished, st.Duplicates, st.Reread)
		b.WriteString(report.KeysOnDisk(st.Deferred, st.DiskBytes))
		if st.Changing > 0 {
			fmt.Fprintf(&b, "; %d KEYS KEPT CHANGING and were written as last read (--allow-changing)", st.Changing)
		}
	}
	b.WriteString(st.Notes())
	b.WriteString(report.HeldBack(st.HeldMs, st.PeakCPU))
	if st.Part != "" {
		fmt.Fprintf(&b, "; part %s", st.Part)
	}
	if st.ShardsOf > 0 {
		switch {
		case st.Part != "":
			fmt.Fprintf(&b, ": %d of %d shards read", st.Shards, st.ShardsOf)
		case st.Shards < st.ShardsOf:
			fmt.Fprintf(&b, "; node-only: %d of %d shards", st.Shards, st.ShardsOf)
		default:
			fmt.Fprintf(&b, "; a cluster of %d shards", st.Shards)
		}
		fmt.Fprintf(&b, "; %d keys left out from slots their node did not serve", st.NotOwned)
	}
	return b.String()
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// castagnoli is CRC-32C's table: a dump set's entries name each part's
// CRC-32C (FORMAT.md §11), which S3 and GCS check objects with too.
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// countingWriter counts the bytes written through it, and with a crc
// sums them.
type countingWriter struct {
	w   io.Writer
	n   int64
	crc hash.Hash32
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	if c.crc != nil {
		c.crc.Write(p[:n])
	}
	return n, err
}
