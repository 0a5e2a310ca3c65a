// Package rdbfile is the source that reads an RDB file (a backup made with
// SAVE or BGSAVE, or what a server sends a replica) with package rdb, so
// that a backup of any version becomes a dump, or loads straight into an
// older server, without a server of its own version.
package rdbfile

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/crs-tool/crs/format"
	"github.com/crs-tool/crs/internal/progress"
	"github.com/crs-tool/crs/rdb"
	"github.com/crs-tool/crs/records"
)

// Options configure the conversion.
type Options struct {
	// Name is where the file came from, for the header's source field.
	Name string
	// PartElems and PartBytes bound one record, as for a live dump.
	PartElems int
	PartBytes int
	// KeepExpired keeps keys whose expiry has passed; by default they are
	// skipped and counted, as a server loading the file would drop them.
	KeepExpired bool
	// Modules, if not nil, are the modules of the server the stream comes
	// from, for the header (a file does not say).
	Modules []string
	// DropKeyMeta reads keys that carry module key metadata (Redis 8.6)
	// without it, counting them, instead of failing.
	DropKeyMeta bool
	// Whole says the input is a whole RDB file: bytes after its end are an
	// error. End, when not nil, is set to where the RDB data ended (an
	// AOF's commands start there).
	Whole bool
	End   *int64
	// Skim reads for a pre-flight only (rdb.Options.Skim).
	Skim bool
	// Payloads hands values over undecoded, as DUMP payloads for that
	// server, where it reads the file (rdb.Options.Payloads).
	Payloads rdb.PayloadTarget
}

// NewOptions returns the defaults, those of a live dump.
func NewOptions() Options {
	return Options{PartElems: 5000, PartBytes: 1 << 20}
}

// Source is an RDB stream.
type Source struct {
	r    io.Reader
	opts Options
}

// New returns a source that decodes the RDB stream r.
func New(r io.Reader, opts Options) *Source { return &Source{r: r, opts: opts} }

// Header is the dump header for an RDB file: its aux fields say which
// server made it, when, and how much memory its data took.
func Header(info rdb.Info, name string) format.Header {
	h := format.Header{
		CreatedMs:     info.CreatedMs,
		Source:        name,
		ServerVersion: info.ServerVersion,
		Engine:        info.Engine,
		MemoryBytes:   info.UsedMem,
		// Field expiries came with RDB 12 (Redis 7.4) and VALKEY080.
		NoFieldExpiry: info.Engine == "redis" && info.Version < 12 || info.Engine == "valkey" && info.Version < 80,
	}
	if h.CreatedMs == 0 {
		h.CreatedMs = time.Now().UnixMilli()
	}
	return h
}

// PeekHeader returns the dump header of the RDB stream at the start of br
// without consuming it, waiting only for the bytes the aux fields take.
func PeekHeader(br *bufio.Reader, name string) (format.Header, error) {
	b, err := br.Peek(9) // the magic and version
	for {
		info, ierr := rdb.NewDecoder(bytes.NewReader(b), rdb.Options{}).Info()
		if ierr == nil {
			return Header(info, name), nil
		}
		if !errors.Is(ierr, rdb.ErrTruncated) || err != nil || len(b) >= br.Size() {
			return format.Header{}, ierr
		}
		b, err = br.Peek(len(b) + 1)
		b = b[:br.Buffered()]
	}
}

// Dump decodes the RDB stream and writes its keys as records to fw.
func (s *Source) Dump(ctx context.Context, fw records.Writer, p *progress.Counter) (st records.Stats, err error) {
	st.From = "rdb"
	start := time.Now()
	defer func() { st.Elapsed = time.Since(start) }()
	o := rdb.Options{PartElems: s.opts.PartElems, PartBytes: s.opts.PartBytes, DropKeyMeta: s.opts.DropKeyMeta, Whole: s.opts.Whole, Skim: s.opts.Skim, Payloads: s.opts.Payloads}
	if !s.opts.KeepExpired {
		o.NowMs = time.Now().UnixMilli()
	}
	dec := rdb.NewDecoder(s.r, o)
	info, err := dec.Info()
	if err != nil {
		return st, err
	}
	hdr := Header(info, s.opts.Name)
	hdr.Modules = s.opts.Modules
	if err := fw.WriteHeader(hdr); err != nil {
		return st, fmt.Errorf("write: %w", err)
	}
	dbs := map[int]bool{}
	err = dec.Decode(ctx, func(rec *format.Record) error {
		if err := fw.Write(rec); err != nil {
			return fmt.Errorf("write: %w", err)
		}
		st.Count(rec)
		if rec.Type != format.TypeFunction {
			dbs[rec.DB] = true
		}
		if !rec.More && rec.Type != format.TypeFunction {
			p.Add(1)
		}
		return nil
	})
	ds := dec.Stats
	st.Expired, st.Databases, st.Functions = ds.Expired, len(dbs), ds.FunctionsPreGA
	st.ExpiredFields, st.ModuleAux, st.KeyMeta, st.KeyMetaKeys = ds.ExpiredFields, ds.ModuleAuxNames, ds.KeyMeta, ds.KeyMetaKeys
	st.LengthMisses, st.LengthMismatch = ds.LengthMismatch, ds.LengthMismatchKeys
	st.EmptyKeys, st.EmptyKeyNames, st.OddZipmaps = ds.EmptyKeys, ds.EmptyKeyNames, ds.OddZipmaps
	if err != nil {
		return st, err
	}
	if s.opts.End != nil {
		*s.opts.End = dec.End()
	}
	if err := fw.Close(); err != nil {
		return st, fmt.Errorf("write: %w", err)
	}
	return st, nil
}
