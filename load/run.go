package load

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/klauspost/compress/zstd"
	"golang.org/x/term"

	"github.com/crs-tool/crs/format"
	"github.com/crs-tool/crs/internal/redisconn"
)

// ErrNoInput is returned when crsload would read a dump from a terminal.
var ErrNoInput = errors.New("no input: give a dump file, or pipe one in (crsload < FILE)")

// Run loads the dump in opts.Input (or stdin) and prints a summary to
// stderr. Compressed and plain input are told apart by the zstd magic
// bytes.
//
// When the target cannot set hash field expiries and --drop-field-expiry
// is not given, Run first reads the whole dump (spooling standard input to
// a private temporary file) and refuses, naming the keys, if any has them:
// nothing is written.
func Run(ctx context.Context, opts Options, stdin io.Reader, stderr io.Writer) error {
	if err := checkOptions(opts); err != nil {
		return err
	}
	if opts.Check {
		return check(ctx, opts, stdin, stderr)
	}
	path := opts.Input
	if path == "-" {
		path = ""
	}
	if path == "" {
		if f, ok := stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
			return ErrNoInput
		}
	} else if _, err := os.Stat(path); err != nil {
		return fmt.Errorf("open input: %w", err)
	}
	in := stdin
	if path != "" {
		f, err := os.Open(path)
		if err != nil {
			return fmt.Errorf("open input: %w", err)
		}
		defer f.Close()
		in = f
	}
	counted := &countingReader{r: in}
	br := bufio.NewReaderSize(counted, 1<<20)
	if !opts.DropFieldExpiry {
		// A dump may hold hash field expiries unless its header says the
		// source could not; a target without HPEXPIREAT then needs the
		// whole dump read before anything is written.
		hdr, err := peekHeader(br)
		if err != nil {
			return err
		}
		if !hdr.NoFieldExpiry {
			lacks, err := targetLacksFieldExpiry(ctx, opts)
			if err != nil {
				return err
			}
			if lacks {
				if path == "" {
					spool, err := spoolToFile(br)
					if err != nil {
						return err
					}
					defer os.Remove(spool)
					path = spool
				}
				if err := refuseFieldExpiry(path); err != nil {
					return err
				}
				f, err := os.Open(path)
				if err != nil {
					return fmt.Errorf("open input: %w", err)
				}
				defer f.Close()
				counted = &countingReader{r: f}
				br = bufio.NewReaderSize(counted, 1<<20)
			}
		}
	}
	r, closeInput, err := decompress(br)
	if err != nil {
		return err
	}
	defer closeInput()
	st, err := Load(ctx, format.NewReader(r), opts)
	st.Bytes = counted.n
	if !opts.Quiet {
		fmt.Fprintln(stderr, summary(st, err))
	}
	return err
}

// check reads and validates a whole dump, touching no server, and prints
// what it holds.
func check(ctx context.Context, opts Options, stdin io.Reader, stderr io.Writer) error {
	in := stdin
	if opts.Input != "" && opts.Input != "-" {
		f, err := os.Open(opts.Input)
		if err != nil {
			return fmt.Errorf("open input: %w", err)
		}
		defer f.Close()
		in = f
	} else if f, ok := stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		return ErrNoInput
	}
	r, closeInput, err := decompress(in)
	if err != nil {
		return err
	}
	defer closeInput()
	fr := format.NewReader(r)
	hdr, err := fr.Header()
	if err != nil {
		return err
	}
	byType := make(map[string]int64)
	var expiring, parts int64
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		rec, err := fr.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		if rec.Part > 0 {
			parts++
		}
		if rec.Part <= 1 {
			byType[rec.Type]++
			if rec.ExpireAtMs > 0 {
				expiring++
			}
		}
	}
	tr, _ := fr.Trailer()
	st := Stats{ByType: byType}
	var b strings.Builder
	fmt.Fprintf(&b, "crsload --check: the dump is intact: %d keys", tr.Keys)
	b.WriteString(typeCounts(st.ByType))
	fmt.Fprintf(&b, " in %d records (%d of them parts of large keys), %d with an expiry; crc32c %08x matches.", tr.Records, parts, expiring, tr.CRC32C)
	fmt.Fprintf(&b, " Made %s from %s (%s %s), format version %d.", time.UnixMilli(hdr.CreatedMs).UTC().Format(time.RFC3339), hdr.Source, hdr.Engine, hdr.ServerVersion, hdr.Version)
	if !opts.Quiet {
		fmt.Fprintln(stderr, b.String())
	}
	return nil
}

// typeCounts formats keys per type as " (hash 3, string 2)".
func typeCounts(byType map[string]int64) string {
	if len(byType) == 0 {
		return ""
	}
	types := make([]string, 0, len(byType))
	for t := range byType {
		types = append(types, t)
	}
	sort.Strings(types)
	var b strings.Builder
	b.WriteString(" (")
	for i, t := range types {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s %d", t, byType[t])
	}
	b.WriteString(")")
	return b.String()
}

// peekHeader reads the header at the start of br without consuming
// anything: it decompresses just the first bytes when they are zstd.
func peekHeader(br *bufio.Reader) (format.Header, error) {
	raw, _ := br.Peek(256 << 10) // at least one whole zstd block, if there is one
	var plain io.Reader = bytes.NewReader(raw)
	if bytes.HasPrefix(raw, zstdMagic) {
		dec, err := zstd.NewReader(plain, zstd.WithDecoderConcurrency(1))
		if err != nil {
			return format.Header{}, fmt.Errorf("zstd: %w", err)
		}
		defer dec.Close()
		plain = dec
	}
	// The header is the first line; a cut-off prefix may end in an error
	// after it, which the header reader does not reach.
	line, err := bufio.NewReader(plain).ReadBytes('\n')
	if err != nil && err != io.EOF && len(line) == 0 {
		return format.Header{}, &format.ParseError{Line: 1, Err: fmt.Errorf("%w: %v", format.ErrRead, err)}
	}
	return format.NewReader(bytes.NewReader(line)).Header()
}

// decompress returns the plain lines of in, whether zstd or plain.
func decompress(in io.Reader) (io.Reader, func(), error) {
	br, ok := in.(*bufio.Reader)
	if !ok {
		br = bufio.NewReaderSize(in, 1<<20)
	}
	if !isZstd(br) {
		return br, func() {}, nil
	}
	dec, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(2), zstd.WithDecoderLowmem(true))
	if err != nil {
		return nil, nil, fmt.Errorf("zstd: %w", err)
	}
	return dec, dec.Close, nil
}

func targetLacksFieldExpiry(ctx context.Context, opts Options) (bool, error) {
	c, srv, err := redisconn.Open(ctx, opts.Conn, 0, 1)
	if err != nil {
		return false, err
	}
	defer c.Close()
	t, err := probeTarget(ctx, c, srv)
	return !t.fieldExpiry, err
}

// spoolToFile copies r to a new temporary file, mode 0600, and returns its
// name.
func spoolToFile(r io.Reader) (string, error) {
	f, err := os.CreateTemp("", "crsload-*.spool")
	if err != nil {
		return "", fmt.Errorf("spool input: %w", err)
	}
	_, err = io.Copy(f, r)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(f.Name())
		return "", fmt.Errorf("spool input: %w", err)
	}
	return f.Name(), nil
}

// refuseFieldExpiry reads the whole dump at path and fails, naming them,
// if any of its keys has hash field expiries.
func refuseFieldExpiry(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("open input: %w", err)
	}
	defer f.Close()
	r, closeInput, err := decompress(f)
	if err != nil {
		return err
	}
	defer closeInput()
	fr := format.NewReader(r)
	var keys []string
	n := 0
	for {
		rec, err := fr.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		if len(rec.FieldExpire) > 0 {
			if n < 10 {
				keys = append(keys, fmt.Sprintf("%q (db %d)", rec.Key, rec.DB))
			}
			n++
		}
	}
	if n == 0 {
		return nil
	}
	more := ""
	if n > len(keys) {
		more = fmt.Sprintf(" and %d more", n-len(keys))
	}
	return fmt.Errorf("%w: %d keys have hash field expiries, which the target cannot set (HPEXPIREAT needs Redis 7.4+): %s%s; nothing was written. Use --drop-field-expiry to load them without", ErrTargetLacks, n, strings.Join(keys, ", "), more)
}

func summary(st Stats, err error) string {
	var b strings.Builder
	if err != nil {
		b.WriteString("crsload: FAILED after writing ")
	} else {
		b.WriteString("crsload: loaded ")
	}
	fmt.Fprintf(&b, "%d keys", st.Keys)
	b.WriteString(typeCounts(st.ByType))
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
	if st.Retries > 0 {
		fmt.Fprintf(&b, "; reconnected and resent %d times", st.Retries)
	}
	if st.DroppedField > 0 {
		fmt.Fprintf(&b, "; DROPPED %d hash field expiries (--drop-field-expiry)", st.DroppedField)
	}
	return b.String()
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}
