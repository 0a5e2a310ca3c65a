// Package pick chooses a source from the command line: a file (a crs
// dump, zstd or plain, an RDB file, an AOF or a file of commands such as
// redis-dump-go writes, or the JSON lines of the Ruby redis-dump gem,
// told apart by their first bytes),
// standard input, or, without either, the server the connection flags
// name (one server or a cluster; read with SCAN or a snapshot). It is the
// one place that knows every kind of source; consumers get a
// records.Input.
package pick

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/crs-tool/crs/format"
	"github.com/crs-tool/crs/internal/progress"
	"github.com/crs-tool/crs/internal/redisconn"
	"github.com/crs-tool/crs/internal/slotmap"
	"github.com/crs-tool/crs/internal/store"
	"github.com/crs-tool/crs/rdb"
	"github.com/crs-tool/crs/records"
	"github.com/crs-tool/crs/source/cluster"
	"github.com/crs-tool/crs/source/dumpfile"
	"github.com/crs-tool/crs/source/rdbfile"
	"github.com/crs-tool/crs/source/redisdump"
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
	// AllowTruncated reads an AOF whose last command was cut short (by a
	// crash) up to that command, saying so, instead of failing.
	AllowTruncated bool
	// Select chooses the keys read, from any source; Reshape then
	// renames them and maps their databases.
	Select  records.Selection
	Reshape records.Reshape
	// SetParts, when not nil, are the parts of a dump set read
	// (--parts-file); others are left out. Not a set: an error.
	SetParts []int
}

// shape selects and reshapes what rc reads, as spec says.
func (spec Spec) shape(rc records.ReadCloser) records.ReadCloser {
	return records.Apply(records.Select(rc, spec.Select), spec.Reshape)
}

// NewSpec returns a spec with every source's defaults: a server, unless
// File is set.
func NewSpec() Spec {
	return Spec{Scan: scan.NewOptions(), RDB: rdbfile.NewOptions()}
}

// Open returns the input spec names: an AOF (a directory, a file named
// *.aof, a file of commands) as a records.ChangesInput, anything else as
// a records.Input. A file may be a URL of object storage (the store
// package's). Nothing but an AOF's manifest, and the entries of a dump
// set, is read yet.
func Open(ctx context.Context, spec Spec) records.Input {
	if spec.File != "" && spec.File != "-" {
		if in, ok := openSet(ctx, spec); ok {
			return in
		}
	}
	if spec.SetParts != nil {
		return failed{spec.File, fmt.Errorf("--parts-file selects parts of a dump set (a directory that crsdump -o DIR/ wrote), and %q is not one", spec.File)}
	}
	if u := store.Redact(spec.File); store.IsURL(u) && (strings.HasSuffix(u, ".aof") || strings.HasSuffix(u, ".manifest")) {
		return failed{u, fmt.Errorf("%s: an AOF is read from a local file or directory (its parts and manifest together): copy it from the bucket first", u)}
	}
	if spec.File != "" && spec.File != "-" && isAOFPath(spec.File) {
		in, err := openAOF(spec)
		if err != nil {
			return failed{spec.File, err}
		}
		return in
	}
	in := &input{spec: spec, path: spec.File}
	if spec.File == "-" {
		in.path = ""
		in.stdin = bufio.NewReaderSize(spec.Stdin, 1<<20)
	}
	return in
}

// input is a records.Input: a file, standard input, or a server.
type input struct {
	spec  Spec
	path  string        // a file, or a spool of standard input
	stdin *bufio.Reader // standard input, until it is opened or spooled
	spool string        // the spool file, removed by Close
}

func (in *input) Name() string {
	switch {
	case in.spec.File == "-":
		return "stdin"
	case in.spec.File != "":
		return store.Redact(in.spec.File)
	}
	return in.spec.Scan.Conn.Address()
}

func (in *input) server() bool { return in.spec.File == "" }

// Header returns the dump's header without consuming anything: of a file,
// from its first bytes; of a server, from a source started and stopped.
func (in *input) Header(ctx context.Context) (format.Header, error) {
	if in.server() {
		rc, err := in.Open(ctx, nil)
		if err != nil {
			return format.Header{}, err
		}
		h, err := rc.Header()
		rc.Close()
		return h, err
	}
	br, done, err := in.file(ctx, false)
	if err != nil {
		return format.Header{}, err
	}
	defer done()
	var h format.Header
	switch {
	case isRDB(br):
		h, err = rdbfile.PeekHeader(br, in.Name())
	case redisdump.Is(br):
		h = redisdump.Header(in.Name(), time.Now().UnixMilli())
	default:
		h, err = dumpfile.PeekHeader(br)
	}
	return in.spec.Reshape.Header(h), err
}

// Open starts reading the input from its start.
func (in *input) Open(ctx context.Context, p *progress.Counter) (records.ReadCloser, error) {
	if in.server() {
		src, err := server(ctx, in.spec)
		if err != nil {
			return nil, err
		}
		return in.spec.shape(records.Open(ctx, src, p)), nil
	}
	br, done, err := in.file(ctx, true)
	if err != nil {
		return nil, err
	}
	counted := &countingReader{r: br}
	cbr := bufio.NewReaderSize(counted, 1<<20)
	var src records.Source
	switch {
	case isRDB(br):
		src = rdbfile.New(cbr, in.rdbOptions())
	case redisdump.Is(br):
		src = redisdump.New(cbr, in.Name(), time.Now().UnixMilli())
	}
	if src != nil {
		s := records.Open(ctx, src, p)
		return in.spec.shape(&closer{Wrapped: records.Wrapped{ReadCloser: s}, counted: counted, done: done}), nil
	}
	r, err := dumpfile.Open(cbr, p)
	if err != nil {
		done()
		return nil, err
	}
	return in.spec.shape(&closer{Wrapped: records.Wrapped{ReadCloser: r}, counted: counted, done: done}), nil
}

// PayloadsFor makes later Opens of an RDB file hand its values over as
// DUMP payloads for a server of engine writing RDB version rdbVersion,
// undecoded, where that server reads the file's encodings.
func (in *input) PayloadsFor(engine string, rdbVersion int) {
	in.spec.RDB.Payloads = rdb.PayloadTarget{Engine: engine, RDB: rdbVersion}
}

// Skim reads an RDB file skimming its values; any other input is read
// whole.
func (in *input) Skim(ctx context.Context) (records.ReadCloser, error) {
	if in.server() {
		return in.Open(ctx, nil)
	}
	br, done, err := in.file(ctx, false)
	if err != nil {
		return nil, err
	}
	rdbFile := isRDB(br)
	done()
	if !rdbFile {
		return in.Open(ctx, nil)
	}
	if br, done, err = in.file(ctx, true); err != nil {
		return nil, err
	}
	counted := &countingReader{r: br}
	o := in.rdbOptions()
	o.Skim = true
	s := records.OpenSkim(ctx, rdbfile.New(bufio.NewReaderSize(counted, 1<<20), o))
	return in.spec.shape(&closer{Wrapped: records.Wrapped{ReadCloser: s}, counted: counted, done: done}), nil
}

// file returns the buffered bytes of the file (or object) or of standard
// input; with consume, standard input is handed over (it can be read
// once).
func (in *input) file(ctx context.Context, consume bool) (*bufio.Reader, func(), error) {
	if in.path == "" {
		if in.stdin == nil {
			return nil, nil, fmt.Errorf("standard input was read already")
		}
		br := in.stdin
		if consume {
			in.stdin = nil
		}
		return br, func() {}, nil
	}
	f, err := store.Open(ctx, in.path)
	if err != nil {
		return nil, nil, fmt.Errorf("open input: %w", err)
	}
	return bufio.NewReaderSize(f, 1<<20), func() { f.Close() }, nil
}

// Replayable spools standard input, unread, to a private temporary file
// (mode 0600) that later Opens read.
func (in *input) Replayable() error {
	if in.path != "" || in.server() {
		return nil
	}
	if in.stdin == nil {
		return fmt.Errorf("standard input was read already")
	}
	f, err := os.CreateTemp("", "crs-*.spool")
	if err != nil {
		return fmt.Errorf("spool input: %w", err)
	}
	_, err = io.Copy(f, in.stdin)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("spool input: %w", err)
	}
	in.stdin, in.path, in.spool = nil, f.Name(), f.Name()
	return nil
}

func (in *input) Close() error {
	if in.spool != "" {
		return os.Remove(in.spool)
	}
	return nil
}

// closer closes a file's reader and the file, and counts the bytes read.
type closer struct {
	records.Wrapped
	counted *countingReader
	done    func()
}

func (c *closer) Close() (records.Stats, error) {
	st, err := c.Wrapped.Close()
	c.done()
	st.InputBytes = c.counted.n
	return st, err
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

// isRDB reports whether the buffered input starts with an RDB magic.
func isRDB(br *bufio.Reader) bool {
	b, _ := br.Peek(9)
	return rdb.IsRDB(b)
}

// server returns the source for the server spec names: one server, or a
// cluster; read with SCAN or through a snapshot.
func server(ctx context.Context, spec Spec) (records.Source, error) {
	if spec.Scan.Conn.SentinelMaster != "" && spec.FromReplicas {
		// A replica of the Sentinel-managed master, not a cluster's.
		spec.Scan.Conn.SentinelReplica, spec.FromReplicas = true, false
	}
	c, _, err := redisconn.Open(ctx, spec.Scan.Conn, 0, 1)
	if err != nil {
		return nil, err
	}
	isCluster, err := slotmap.Enabled(ctx, c)
	c.Close()
	if err != nil {
		return nil, err
	}
	rdbOpts := spec.RDB
	rdbOpts.PartElems, rdbOpts.PartBytes = spec.Scan.PartElems, int(spec.Scan.PartBytes)
	// The server does the work where it can: one --match is SCAN MATCH,
	// one --type SCAN TYPE (the selection still checks every record).
	spec.Scan.Part = spec.Select.Part
	spec.Scan.Probe = spec.Select.ProbeKeys()
	if m := spec.Select.Match; len(m) == 1 && spec.Scan.Match == "" {
		spec.Scan.Match = m[0]
	}
	if t := spec.Select.Types; len(t) == 1 && spec.Scan.Type == "" {
		spec.Scan.Type = t[0]
	}
	switch {
	case isCluster && spec.Snapshot:
		return nil, fmt.Errorf("--snapshot of a cluster is not supported yet: dump it without --snapshot (every shard with SCAN)")
	case isCluster:
		return cluster.New(cluster.Options{Scan: spec.Scan, FromReplicas: spec.FromReplicas, NodeOnly: spec.NodeOnly, Part: spec.Select.Part}), nil
	case spec.FromReplicas || spec.NodeOnly:
		return nil, fmt.Errorf("--from-replicas and --node-only are for a cluster, and %s is not in cluster mode", spec.Scan.Conn.Address())
	case spec.Snapshot:
		return snapshot.New(snapshot.Options{Conn: spec.Scan.Conn, RDB: rdbOpts}), nil
	}
	return scan.New(spec.Scan), nil
}

// failed is an input that could not be opened: every use says why.
type failed struct {
	name string
	err  error
}

func (f failed) Name() string                                  { return f.name }
func (f failed) Header(context.Context) (format.Header, error) { return format.Header{}, f.err }
func (f failed) Replayable() error                             { return f.err }
func (f failed) Close() error                                  { return nil }
func (f failed) Open(context.Context, *progress.Counter) (records.ReadCloser, error) {
	return nil, f.err
}
func (f failed) Skim(context.Context) (records.ReadCloser, error) { return nil, f.err }

// rdbOptions are the options of an RDB file's decoder: the spec's, with
// the bound on a record of a live dump, for a whole file.
func (in *input) rdbOptions() rdbfile.Options {
	o := in.spec.RDB
	if o.Name == "" {
		o.Name = in.Name()
	}
	o.PartElems, o.PartBytes = in.spec.Scan.PartElems, int(in.spec.Scan.PartBytes)
	o.Whole = true
	return o
}
