// Package pick chooses a source from the command line: a file (a crs
// dump, zstd or plain) or, without one, the server the connection flags
// name. It is the one place that knows every kind of source.
package pick

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"

	"github.com/crs-tool/crs/format"
	"github.com/crs-tool/crs/internal/progress"
	"github.com/crs-tool/crs/source"
	"github.com/crs-tool/crs/source/dumpfile"
	"github.com/crs-tool/crs/source/scan"
)

// Spec names a source.
type Spec struct {
	// File is a file to read; "-" is Stdin. Empty means a server.
	File  string
	Stdin io.Reader
	// Scan says how to read a server.
	Scan scan.Options
}

// Source returns the source spec names and a function that releases it.
func Source(spec Spec) (source.Source, func(), error) {
	if spec.File == "" {
		return scan.New(spec.Scan), func() {}, nil
	}
	r, done, err := openFile(spec)
	if err != nil {
		return nil, nil, err
	}
	return dumpfile.New(r), done, nil
}

// Read calls read with a Reader of the dump of the source spec names: a
// dump file is read as it is; any other source is dumped into a pipe as
// it is read.
func Read(ctx context.Context, spec Spec, p *progress.Counter, read func(ctx context.Context, fr *format.Reader) error) error {
	if spec.File != "" {
		r, done, err := openFile(spec)
		if err != nil {
			return err
		}
		defer done()
		plain, release, err := dumpfile.Decompress(r)
		if err != nil {
			return err
		}
		defer release()
		return read(ctx, format.NewReader(plain))
	}
	src, done, err := Source(spec)
	if err != nil {
		return err
	}
	defer done()
	return source.Pipe(ctx, src, p, read)
}

// openFile opens spec.File, or standard input for "-", buffered so that
// its first bytes can be looked at.
func openFile(spec Spec) (*bufio.Reader, func(), error) {
	if spec.File == "-" {
		return bufio.NewReaderSize(spec.Stdin, 1<<20), func() {}, nil
	}
	f, err := os.Open(spec.File)
	if err != nil {
		return nil, nil, fmt.Errorf("open input: %w", err)
	}
	return bufio.NewReaderSize(f, 1<<20), func() { f.Close() }, nil
}
