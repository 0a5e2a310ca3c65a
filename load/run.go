package load

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/klauspost/compress/zstd"
	"golang.org/x/term"

	"github.com/crs-tool/crs/format"
)

// ErrNoInput is returned when crsload would read a dump from a terminal.
var ErrNoInput = errors.New("no input: give a dump file, or pipe one in (crsload < FILE)")

// Run loads the dump in opts.Input (or stdin) and prints a summary to
// stderr. Compressed and plain input are told apart by the zstd magic
// bytes.
func Run(ctx context.Context, opts Options, stdin io.Reader, stderr io.Writer) error {
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
	counted := &countingReader{r: in}
	br := bufio.NewReaderSize(counted, 1<<20)
	var r io.Reader = br
	if isZstd(br) {
		dec, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(2), zstd.WithDecoderLowmem(true))
		if err != nil {
			return fmt.Errorf("zstd: %w", err)
		}
		defer dec.Close()
		r = dec
	}
	st, err := Load(ctx, format.NewReader(r), opts)
	st.Bytes = counted.n
	if !opts.Quiet {
		fmt.Fprintln(stderr, summary(st, err))
	}
	return err
}

func summary(st Stats, err error) string {
	var b strings.Builder
	if err != nil {
		b.WriteString("crsload: FAILED after writing ")
	} else {
		b.WriteString("crsload: loaded ")
	}
	fmt.Fprintf(&b, "%d keys", st.Keys)
	if len(st.ByType) > 0 {
		types := make([]string, 0, len(st.ByType))
		for t := range st.ByType {
			types = append(types, t)
		}
		sort.Strings(types)
		b.WriteString(" (")
		for i, t := range types {
			if i > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "%s %d", t, st.ByType[t])
		}
		b.WriteString(")")
	}
	fmt.Fprintf(&b, " from %d records, %d bytes read, in %.2fs", st.Records, st.Bytes, st.Elapsed.Seconds())
	if s := st.Elapsed.Seconds(); s > 0 {
		fmt.Fprintf(&b, " (%.0f keys/s)", float64(st.Keys)/s)
	}
	fmt.Fprintf(&b, "; skipped %d already expired", st.Expired)
	if st.Existing > 0 {
		fmt.Fprintf(&b, ", %d existing (--skip-existing)", st.Existing)
	}
	if st.Replaced > 0 {
		fmt.Fprintf(&b, "; replaced %d existing keys", st.Replaced)
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
