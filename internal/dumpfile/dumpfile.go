// Package dumpfile opens a dump file for reading, zstd or plain, told
// apart by the zstd magic bytes, and walks its records.
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
)

var zstdMagic = []byte{0x28, 0xb5, 0x2f, 0xfd}

// Open returns the plain lines of the dump at path and a function that
// closes it.
func Open(path string) (io.Reader, func(), error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, fmt.Errorf("open input: %w", err)
	}
	br := bufio.NewReaderSize(f, 1<<20)
	if b, _ := br.Peek(len(zstdMagic)); !bytes.Equal(b, zstdMagic) {
		return br, func() { f.Close() }, nil
	}
	dec, err := zstd.NewReader(br)
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("zstd: %w", err)
	}
	return dec, func() { dec.Close(); f.Close() }, nil
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
