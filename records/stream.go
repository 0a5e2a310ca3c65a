package records

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/crs-tool/crs/format"
	"github.com/crs-tool/crs/internal/progress"
)

// The records in flight between a source and its reader: batches of at
// most batchRecords records or about batchBytes bytes, at most
// batchesInFlight of them, so memory stays bounded whatever the source.
const (
	batchRecords    = 256
	batchBytes      = 1 << 20
	batchesInFlight = 4
)

// ErrNoClose means a source returned without error and without closing
// its dump: a source's mistake, reported rather than taken for the end.
var ErrNoClose = errors.New("the source ended without finishing its dump")

// Stream is a Source read as a Reader: the source runs in a goroutine of
// its own, and its records come through in order, checked.
type Stream struct {
	cancel  context.CancelFunc
	headerc chan format.Header
	batches chan []*format.Record
	done    chan struct{} // closed when the source has returned

	header    *format.Header
	cur       []*format.Record
	stats     Stats
	err       error // the source's, set before done is closed
	stopped   bool  // Close was called before the end
	closeOnce sync.Once
}

// Open starts src and returns the stream of its records. Close releases
// it.
func Open(ctx context.Context, src Source, p *progress.Counter) *Stream {
	return open(ctx, src, p, true)
}

// OpenSkim is Open for a source that skims (Input.Skim): its records are
// not checked, as they lack values.
func OpenSkim(ctx context.Context, src Source) *Stream {
	return open(ctx, src, nil, false)
}

func open(ctx context.Context, src Source, p *progress.Counter, check bool) *Stream {
	ctx, cancel := context.WithCancel(ctx)
	s := &Stream{
		cancel:  cancel,
		headerc: make(chan format.Header, 1),
		batches: make(chan []*format.Record, batchesInFlight),
		done:    make(chan struct{}),
	}
	w := &streamWriter{ctx: ctx, s: s, check: check}
	go func() {
		st, err := src.Dump(ctx, w, p)
		if err == nil && !w.closed {
			err = ErrNoClose
		}
		s.stats, s.err = st, err
		close(s.batches)
		close(s.done)
	}()
	return s
}

// Header returns the source's header once it has written it.
func (s *Stream) Header() (format.Header, error) {
	if s.header != nil {
		return *s.header, nil
	}
	select {
	case h := <-s.headerc:
		s.header = &h
		return h, nil
	case <-s.done:
		select {
		case h := <-s.headerc:
			s.header = &h
			return h, nil
		default:
		}
		if s.err == nil {
			return format.Header{}, ErrNoClose
		}
		return format.Header{}, s.err
	}
}

// Read returns the next record, and io.EOF after the last one once the
// source has finished cleanly; a source's failure is returned as it
// happened, after the records it wrote before it.
func (s *Stream) Read() (*format.Record, error) {
	if _, err := s.Header(); err != nil {
		return nil, err
	}
	for len(s.cur) == 0 {
		b, ok := <-s.batches
		if !ok {
			<-s.done
			if s.err != nil {
				return nil, s.err
			}
			return nil, io.EOF
		}
		s.cur = b
	}
	rec := s.cur[0]
	s.cur[0] = nil
	s.cur = s.cur[1:]
	return rec, nil
}

// Close stops the source if it is still running, waits for it, and
// returns what it counted and the error that ended it: nil at the clean
// end, and when Close stopped it.
func (s *Stream) Close() (Stats, error) {
	s.closeOnce.Do(func() {
		select {
		case <-s.done:
		default:
			s.stopped = true
		}
		s.cancel()
		for range s.batches { // let a blocked send go
		}
		<-s.done
	})
	if s.stopped {
		return s.stats, nil
	}
	return s.stats, s.err
}

// streamWriter is what the source writes to: it checks each record and
// hands records over in batches.
type streamWriter struct {
	ctx     context.Context
	s       *Stream
	checker *format.Checker
	check   bool // check records (not a skim's)
	batch   []*format.Record
	bytes   int
	n       int64
	closed  bool
}

func (w *streamWriter) WriteHeader(h format.Header) error {
	if w.checker != nil {
		return errors.New("records: the header written twice")
	}
	w.checker = format.NewChecker(h)
	w.checker.AllowPayloads() // in one process: an RDB file's values may go as payloads
	w.s.headerc <- h
	return nil
}

func (w *streamWriter) Write(rec *format.Record) error {
	if w.checker == nil {
		return errors.New("records: a record before the header")
	}
	w.n++
	if w.check {
		if err := w.checker.Check(rec); err != nil {
			return fmt.Errorf("record %d (db %d key %q), as the source made it: %w", w.n, rec.DB, rec.Key, err)
		}
	}
	w.batch = append(w.batch, rec)
	w.bytes += format.ApproxSize(rec)
	if len(w.batch) >= batchRecords || w.bytes >= batchBytes {
		return w.flush()
	}
	return nil
}

func (w *streamWriter) flush() error {
	if len(w.batch) == 0 {
		return nil
	}
	select {
	case w.s.batches <- w.batch:
	case <-w.ctx.Done():
		return w.ctx.Err()
	}
	w.batch, w.bytes = make([]*format.Record, 0, batchRecords), 0
	return nil
}

func (w *streamWriter) Close() error {
	if w.checker == nil {
		return errors.New("records: closed before the header")
	}
	if o, open := w.checker.Open(); open {
		return fmt.Errorf("records: the source ended inside key %q (db %d), after part %d", o.Key, o.DB, o.Part)
	}
	if err := w.flush(); err != nil {
		return err
	}
	w.closed = true
	return nil
}

// Each calls fn with every record r reads, until the clean end (nil), a
// read error, an error from fn, or ctx being done between two records.
func Each(ctx context.Context, r Reader, fn func(*format.Record) error) error {
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		rec, err := r.Read()
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

// Size is the size to count for a record just read from r: its line's,
// where r reads a file, else about what it takes.
func Size(r Reader, rec *format.Record) int {
	if lr, ok := r.(interface{ LineSize() int }); ok && lr.LineSize() > 0 {
		return lr.LineSize()
	}
	return format.ApproxSize(rec)
}

// LineOf is the line of the record just read from r, the n-th: its line
// in the file where r reads one, else the line it would have in a dump
// (the header is line 1).
func LineOf(r Reader, n int64) int {
	if lr, ok := r.(interface{ Line() int }); ok && lr.Line() > 0 {
		return lr.Line()
	}
	return int(n) + 1
}

// EachChange calls fn with every command in's changes hold, in order,
// until their end, an error, or ctx being done; it returns what the
// changes said was left out.
func EachChange(ctx context.Context, in ChangesInput, fn func(*Command) error) (note string, err error) {
	ch, closeChanges, err := in.Changes(ctx)
	if err != nil {
		return "", err
	}
	defer func() {
		n, cerr := closeChanges()
		note = n
		if err == nil {
			err = cerr
		}
	}()
	for {
		if err := ctx.Err(); err != nil {
			return "", err
		}
		cmd, err := ch.Next()
		if err == io.EOF {
			return "", nil
		}
		if err != nil {
			return "", err
		}
		if err := fn(cmd); err != nil {
			return "", err
		}
	}
}

// Wrapped is a ReadCloser that another wraps, overriding what it changes:
// a dump file's line numbers, line sizes and trailer pass through it.
type Wrapped struct {
	ReadCloser
}

// Line is the wrapped reader's line, or 0 where it reads no file.
func (w Wrapped) Line() int {
	if l, ok := w.ReadCloser.(interface{ Line() int }); ok {
		return l.Line()
	}
	return 0
}

// LineSize is the wrapped reader's last line's size, or 0.
func (w Wrapped) LineSize() int {
	if l, ok := w.ReadCloser.(interface{ LineSize() int }); ok {
		return l.LineSize()
	}
	return 0
}

// Trailer is the wrapped dump file's trailer, once read.
func (w Wrapped) Trailer() (format.Trailer, bool) {
	if t, ok := w.ReadCloser.(interface{ Trailer() (format.Trailer, bool) }); ok {
		return t.Trailer()
	}
	return format.Trailer{}, false
}
