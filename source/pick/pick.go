// Package pick chooses a source from the command line: a file (a crs
// dump, zstd or plain, or an RDB file, told apart by their first bytes)
// or, without one, the server the connection flags name. It is the one
// place that knows every kind of source.
package pick

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"

	"github.com/crs-tool/crs/format"
	"github.com/crs-tool/crs/internal/progress"
	"github.com/crs-tool/crs/internal/redisconn"
	"github.com/crs-tool/crs/internal/slotmap"
	"github.com/crs-tool/crs/rdb"
	"github.com/crs-tool/crs/source"
	"github.com/crs-tool/crs/source/cluster"
	"github.com/crs-tool/crs/source/dumpfile"
	"github.com/crs-tool/crs/source/rdbfile"
	"github.com/crs-tool/crs/source/scan"
	"github.com/crs-tool/crs/source/snapshot"
)

// Spec names a source.
type Spec struct {
	// File is a file to read; "-" is Stdin. Empty means a server.
	File  string
	Stdin io.Reader
	// Scan says how to read a server.
	Scan scan.Options
	// RDB says how to read an RDB file.
	RDB rdbfile.Options
	// Snapshot reads the server through a replication snapshot (one
	// instant) instead of SCAN.
	Snapshot bool
	// FromReplicas and NodeOnly apply to a cluster (see source/cluster).
	FromReplicas bool
	NodeOnly     bool
}

// NewSpec returns a spec with every source's defaults: a server, unless
// File is set.
func NewSpec() Spec {
	return Spec{Scan: scan.NewOptions(), RDB: rdbfile.NewOptions()}
}

// isRDB reports whether the buffered input starts with an RDB magic.
func isRDB(br *bufio.Reader) bool {
	b, _ := br.Peek(9)
	return rdb.IsRDB(b)
}

// fileSource returns the source of an opened file: an RDB file or a dump.
func fileSource(spec Spec, br *bufio.Reader) source.Source {
	if isRDB(br) {
		return rdbfile.New(br, rdbOptions(spec))
	}
	return dumpfile.New(br)
}

// rdbOptions are spec's options for decoding RDB: the same bound on a
// record as for a live dump (--part-elems, --part-bytes).
func rdbOptions(spec Spec) rdbfile.Options {
	o := spec.RDB
	if o.Name == "" {
		o.Name = spec.File
	}
	o.PartElems, o.PartBytes = spec.Scan.PartElems, int(spec.Scan.PartBytes)
	return o
}

// Source returns the source spec names and a function that releases it.
// A server is asked whether it runs in cluster mode: a cluster is read
// whole, from any of its nodes.
func Source(ctx context.Context, spec Spec) (source.Source, func(), error) {
	if spec.File == "" {
		src, err := server(ctx, spec)
		return src, func() {}, err
	}
	r, done, err := openFile(spec)
	if err != nil {
		return nil, nil, err
	}
	return fileSource(spec, r), done, nil
}

// Read calls read with a Reader of the dump of the source spec names: a
// dump file is read as it is; any other source (a server, an RDB file) is
// dumped into a pipe as it is read.
func Read(ctx context.Context, spec Spec, p *progress.Counter, read func(ctx context.Context, fr *format.Reader) error) error {
	if spec.File != "" {
		r, done, err := openFile(spec)
		if err != nil {
			return err
		}
		defer done()
		if isRDB(r) {
			return source.Pipe(ctx, fileSource(spec, r), p, read)
		}
		plain, release, err := dumpfile.Decompress(r)
		if err != nil {
			return err
		}
		defer release()
		return read(ctx, format.NewReader(plain))
	}
	src, done, err := Source(ctx, spec)
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

// PeekHeader returns the dump header of the file at the start of br (a
// dump, zstd or plain, or an RDB file) without consuming anything.
func PeekHeader(br *bufio.Reader, name string) (format.Header, error) {
	if isRDB(br) {
		return rdbfile.PeekHeader(br, name)
	}
	return dumpfile.PeekHeader(br)
}

// Lines returns the plain lines of the dump of the file at the start of
// br: a dump decompressed, or an RDB file decoded into a dump as it is
// read. done releases what Lines started and returns the error that
// ended the RDB decoder, if any, which says more than a read error.
func Lines(ctx context.Context, spec Spec, br *bufio.Reader) (r io.Reader, done func() error, err error) {
	if !isRDB(br) {
		plain, release, err := dumpfile.Decompress(br)
		if err != nil {
			return nil, nil, err
		}
		return plain, func() error { release(); return nil }, nil
	}
	pr, pw := io.Pipe()
	ctx, cancel := context.WithCancel(ctx)
	errc := make(chan error, 1)
	go func() {
		_, err := fileSource(spec, br).Dump(ctx, format.NewWriter(pw), nil)
		pw.CloseWithError(err)
		errc <- err
	}()
	return pr, func() error {
		cancel()
		pr.Close()
		return <-errc
	}, nil
}

// server returns the source for the server spec names: one server, or a
// cluster; read with SCAN or through a snapshot.
func server(ctx context.Context, spec Spec) (source.Source, error) {
	c, _, err := redisconn.Open(ctx, spec.Scan.Conn, 0, 1)
	if err != nil {
		return nil, err
	}
	isCluster, err := slotmap.Enabled(ctx, c)
	c.Close()
	if err != nil {
		return nil, err
	}
	switch {
	case isCluster && spec.Snapshot:
		return nil, fmt.Errorf("--snapshot of a cluster is not supported yet: dump it without --snapshot (every shard with SCAN)")
	case isCluster:
		return cluster.New(cluster.Options{Scan: spec.Scan, FromReplicas: spec.FromReplicas, NodeOnly: spec.NodeOnly}), nil
	case spec.FromReplicas || spec.NodeOnly:
		return nil, fmt.Errorf("--from-replicas and --node-only are for a cluster, and %s is not in cluster mode", spec.Scan.Conn.Address())
	case spec.Snapshot:
		return snapshot.New(snapshot.Options{Conn: spec.Scan.Conn, RDB: rdbOptions(spec)}), nil
	}
	return scan.New(spec.Scan), nil
}
