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
	"github.com/crs-tool/crs/records"
	"github.com/crs-tool/crs/source/aof"
	"github.com/crs-tool/crs/source/rdbfile"
)

// isAOFPath reports whether path names an AOF: a directory (Redis 7's
// appendonlydir), a file named *.aof, or a file of commands.
func isAOFPath(path string) bool {
	fi, err := os.Stat(path)
	if err != nil {
		return false
	}
	if fi.IsDir() || strings.HasSuffix(path, ".aof") {
		return true
	}
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	return aof.IsAOF(bufio.NewReader(f))
}

// aofInput is an AOF read as a records.ChangesInput: its base's keys as
// records, then its commands.
type aofInput struct {
	spec  Spec
	parts []aof.Part
	rdb   bool  // the base is (or starts with) an RDB file
	end   int64 // where the base's RDB data ends, once read; -1 before
}

func openAOF(spec Spec) (*aofInput, error) {
	parts, err := aof.Parts(spec.File)
	if err != nil {
		return nil, err
	}
	in := &aofInput{spec: spec, parts: parts, end: -1}
	if len(parts) > 0 && parts[0].Base {
		f, err := os.Open(parts[0].Path)
		if err != nil {
			return nil, fmt.Errorf("open input: %w", err)
		}
		in.rdb = isRDB(bufio.NewReader(f))
		f.Close()
	}
	return in, nil
}

func (in *aofInput) Name() string      { return in.spec.File }
func (in *aofInput) Replayable() error { return nil }
func (in *aofInput) Close() error      { return nil }

func (in *aofInput) Header(ctx context.Context) (format.Header, error) {
	if !in.rdb {
		return format.Header{Version: format.Version, CreatedMs: time.Now().UnixMilli(), Source: in.Name()}, nil
	}
	f, err := os.Open(in.parts[0].Path)
	if err != nil {
		return format.Header{}, fmt.Errorf("open input: %w", err)
	}
	defer f.Close()
	h, err := rdbfile.PeekHeader(bufio.NewReaderSize(f, 1<<20), in.Name())
	return in.spec.Reshape.Header(h), err
}

// Open reads the base's keys: its RDB data (a base file, or the preamble
// of a single AOF), or none for a base of commands.
func (in *aofInput) Open(ctx context.Context, p *progress.Counter) (records.ReadCloser, error) {
	if !in.rdb {
		return in.spec.shape(records.Open(ctx, emptySource{in.Name()}, p)), nil
	}
	f, err := os.Open(in.parts[0].Path)
	if err != nil {
		return nil, fmt.Errorf("open input: %w", err)
	}
	counted := &countingReader{r: f}
	o := in.spec.RDB
	o.Name, o.End = in.Name(), &in.end
	o.PartElems, o.PartBytes = in.spec.Scan.PartElems, int(in.spec.Scan.PartBytes)
	s := records.Open(ctx, rdbfile.New(bufio.NewReaderSize(counted, 1<<20), o), p)
	return in.spec.shape(&closer{Wrapped: records.Wrapped{ReadCloser: s}, counted: counted, done: func() { f.Close() }}), nil
}

// Skim reads the base's keys skimming an RDB base's values.
func (in *aofInput) Skim(ctx context.Context) (records.ReadCloser, error) {
	if !in.rdb {
		return in.Open(ctx, nil)
	}
	f, err := os.Open(in.parts[0].Path)
	if err != nil {
		return nil, fmt.Errorf("open input: %w", err)
	}
	o := in.spec.RDB
	o.Name, o.Skim = in.Name(), true
	s := records.OpenSkim(ctx, rdbfile.New(bufio.NewReaderSize(f, 1<<20), o))
	return in.spec.shape(&closer{Wrapped: records.Wrapped{ReadCloser: s}, counted: &countingReader{}, done: func() { f.Close() }}), nil
}

// Changes reads every command after the base's RDB data, file by file.
func (in *aofInput) Changes(ctx context.Context) (records.Changes, func() (string, error), error) {
	if in.rdb && in.end < 0 {
		// Where the preamble ends is known once it has been read.
		if err := in.findEnd(ctx); err != nil {
			return nil, nil, err
		}
	}
	c := &chain{in: in}
	return c, c.close, nil
}

// findEnd reads the base's RDB data to learn where it ends.
func (in *aofInput) findEnd(ctx context.Context) error {
	r, err := in.Open(ctx, nil)
	if err != nil {
		return err
	}
	err = records.Each(ctx, r, func(*format.Record) error { return nil })
	if _, cerr := r.Close(); err == nil {
		err = cerr
	}
	return err
}

// chain reads the commands of each file in turn.
type chain struct {
	in   *aofInput
	i    int // the file being read
	cur  *aof.Reader
	f    *os.File
	db   int
	note string
}

func (c *chain) Next() (*records.Command, error) {
	for {
		if c.cur == nil {
			if c.i >= len(c.in.parts) {
				return nil, io.EOF
			}
			if err := c.openPart(); err != nil {
				return nil, err
			}
		}
		cmd, err := c.cur.Next()
		if err != io.EOF {
			return cmd, err
		}
		if t := c.cur.Truncated; t != nil {
			c.note = fmt.Sprintf("LEFT OUT the command cut short at %s offset %d (--allow-truncated)", t.File, t.Offset)
		}
		c.db = c.cur.DB()
		c.f.Close()
		c.cur, c.f = nil, nil
		c.i++
	}
}

func (c *chain) openPart() error {
	p := c.in.parts[c.i]
	f, err := os.Open(p.Path)
	if err != nil {
		return fmt.Errorf("open input: %w", err)
	}
	var off int64
	if p.Base && c.in.rdb {
		if off, err = f.Seek(c.in.end, io.SeekStart); err != nil {
			f.Close()
			return fmt.Errorf("read %s: %w", p.Path, err)
		}
	}
	r := aof.NewReader(p.Path, f, off, c.db, c.i == len(c.in.parts)-1)
	r.AllowTruncated = c.in.spec.AllowTruncated
	c.cur, c.f = r, f
	return nil
}

func (c *chain) close() (string, error) {
	if c.f != nil {
		c.f.Close()
	}
	return c.note, nil
}

// emptySource is a dump of no keys: the base of an AOF of commands.
type emptySource struct{ name string }

func (e emptySource) Dump(ctx context.Context, w records.Writer, p *progress.Counter) (records.Stats, error) {
	st := records.Stats{From: "aof"}
	h := format.Header{Version: format.Version, CreatedMs: time.Now().UnixMilli(), Source: e.name}
	if err := w.WriteHeader(h); err != nil {
		return st, err
	}
	return st, w.Close()
}
