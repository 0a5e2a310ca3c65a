// Package dumpfile is the source that reads a crs dump file, zstd or
// plain, told apart by the zstd magic bytes. Every reader of dump files
// (crsload, crs stats, crs verify, tests) opens them here.
package dumpfile

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"

	"github.com/klauspost/compress/zstd"

	"github.com/crs-tool/crs/format"
	"github.com/crs-tool/crs/internal/progress"
	"github.com/crs-tool/crs/source"
)

// ZstdMagic starts every zstd frame.
var ZstdMagic = []byte{0x28, 0xb5, 0x2f, 0xfd}

// IsZstd reports whether the buffered input starts with a zstd frame.
func IsZstd(br *bufio.Reader) bool {
	b, _ := br.Peek(len(ZstdMagic))
	return bytes.Equal(b, ZstdMagic)
}

// Decompress returns the plain lines of in, whether zstd or plain, and a
// function that releases the decoder.
func Decompress(in io.Reader) (io.Reader, func(), error) {
	br, ok := in.(*bufio.Reader)
	if !ok {
		br = bufio.NewReaderSize(in, 1<<20)
	}
	if !IsZstd(br) {
		return br, func() {}, nil
	}
	dec, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(2), zstd.WithDecoderLowmem(true))
	if err != nil {
		return nil, nil, fmt.Errorf("zstd: %w", err)
	}
	return dec, dec.Close, nil
}

// Open returns the plain lines of the dump at path and a function that
// closes it.
func Open(path string) (io.Reader, func(), error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, fmt.Errorf("open input: %w", err)
	}
	r, done, err := Decompress(f)
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	return r, func() { done(); f.Close() }, nil
}

// PeekHeader reads the header at the start of br without consuming
// anything: it decompresses just the first bytes when they are zstd. It
// waits only for the bytes the header needs, so that a slow producer on
// standard input does not hold the load back.
func PeekHeader(br *bufio.Reader) (format.Header, error) {
	raw, err := br.Peek(1)
	for {
		line, complete, lerr := firstLine(raw)
		switch {
		case complete:
			return format.NewReader(bytes.NewReader(line)).Header()
		case err != nil || len(raw) >= br.Size():
			// The input ended (or fills the buffer) before a whole line:
			// let the reader say what is wrong with what there is.
			if lerr != nil && len(line) == 0 {
				return format.Header{}, &format.ParseError{Line: 1, Err: fmt.Errorf("%w: %v", format.ErrRead, lerr)}
			}
			return format.NewReader(bytes.NewReader(line)).Header()
		}
		raw, err = br.Peek(len(raw) + 1) // returns once more has arrived
		raw = raw[:br.Buffered()]
	}
}

// firstLine returns the first line of raw, decompressed when it is zstd,
// and whether it is whole (ends in a newline).
func firstLine(raw []byte) ([]byte, bool, error) {
	var plain io.Reader = bytes.NewReader(raw)
	if bytes.HasPrefix(raw, ZstdMagic) {
		dec, err := zstd.NewReader(plain, zstd.WithDecoderConcurrency(1))
		if err != nil {
			return nil, false, fmt.Errorf("zstd: %w", err)
		}
		defer dec.Close()
		plain = dec
	}
	line, err := bufio.NewReader(plain).ReadBytes('\n')
	if err == io.EOF {
		err = nil
	}
	return line, len(line) > 0 && line[len(line)-1] == '\n', err
}

// Each calls fn with every record fr reads, until the clean end (nil), a
// read error, an error from fn, or ctx being done between two records.
func Each(ctx context.Context, fr *format.Reader, fn func(*format.Record) error) error {
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		rec, err := fr.Read()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if err := fn(rec); err != nil {
			return err
		}
	}
}

// Source is a dump file as a source: its records, checked and written
// again (to convert, recompress or check a dump with crsdump).
type Source struct {
	r io.Reader
}

// New returns a source that reads the dump (zstd or plain) from r.
func New(r io.Reader) *Source { return &Source{r: r} }

// Dump copies the dump's header and records to fw.
func (s *Source) Dump(ctx context.Context, fw *format.Writer, p *progress.Counter) (st source.Stats, err error) {
	st.From = "dump"
	r, done, err := Decompress(s.r)
	if err != nil {
		return st, err
	}
	defer done()
	fr := format.NewReader(r)
	h, err := fr.Header()
	if err != nil {
		return st, err
	}
	st.Databases = len(h.Databases)
	var total int64
	for _, d := range h.Databases {
		total += d.Keys
	}
	p.SetTotal(total)
	if err := fw.WriteHeader(h); err != nil {
		return st, fmt.Errorf("write: %w", err)
	}
	err = Each(ctx, fr, func(rec *format.Record) error {
		if err := fw.Write(rec); err != nil {
			return fmt.Errorf("write: %w", err)
		}
		st.Count(rec)
		if !rec.More {
			p.Add(1)
		}
		return nil
	})
	if err != nil {
		return st, err
	}
	if err := fw.Close(); err != nil {
		return st, fmt.Errorf("write: %w", err)
	}
	return st, nil
}
