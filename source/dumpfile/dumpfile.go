// Package dumpfile is the source that reads a crs dump file, zstd or
// plain, told apart by the zstd magic bytes: a format.Reader over its
// lines is already a records.Reader, so nothing runs beside it. Every
// reader of dump files (crsload, crs stats, crs verify, tests) opens them
// here, through source/pick.
package dumpfile

import (
	"bufio"
	"bytes"
	"fmt"
	"io"

	"github.com/klauspost/compress/zstd"

	"github.com/crs-tool/crs/format"
	"github.com/crs-tool/crs/internal/progress"
	"github.com/crs-tool/crs/records"
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

// Reader is a dump file read as records: a format.Reader over the
// decompressed lines, which counts what it reads and the keys done.
type Reader struct {
	*format.Reader
	release func()
	p       *progress.Counter
	st      records.Stats
}

// Open returns the records of the dump (zstd or plain) r holds.
func Open(r io.Reader, p *progress.Counter) (*Reader, error) {
	plain, release, err := Decompress(r)
	if err != nil {
		return nil, err
	}
	return &Reader{Reader: format.NewReader(plain), release: release, p: p, st: records.Stats{From: "dump", ByType: map[string]int64{}}}, nil
}

// Header reads the header and counts its keys as the total to do.
func (r *Reader) Header() (format.Header, error) {
	first := r.st.Databases == 0
	h, err := r.Reader.Header()
	if err == nil && first {
		r.st.Databases = len(h.Databases)
		var total int64
		for _, d := range h.Databases {
			total += d.Keys
		}
		r.p.SetTotal(total)
	}
	return h, err
}

// Read returns the next record, counting it.
func (r *Reader) Read() (*format.Record, error) {
	if _, err := r.Header(); err != nil {
		return nil, err
	}
	rec, err := r.Reader.Read()
	if err == nil {
		r.st.Count(rec)
		if !rec.More {
			r.p.Add(1)
		}
	}
	return rec, err
}

// Close releases the decoder and returns the counts.
func (r *Reader) Close() (records.Stats, error) {
	r.release()
	return r.st, nil
}
