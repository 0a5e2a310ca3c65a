package format

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
)

// member is where a record member's value starts in its line.
type member struct {
	name string
	at   int
}

// DefaultMaxLineSize is the longest line a Reader accepts unless its
// MaxLineSize says otherwise.
const DefaultMaxLineSize = 1 << 30

// A Reader reads a dump written by a Writer (or by any implementation of
// FORMAT.md). Read returns records one at a time and io.EOF at the clean
// end, after the trailer has been read and checked. Every other error is a
// *ParseError naming the line, or an error from the underlying io.Reader.
type Reader struct {
	// MaxLineSize bounds the length of one line, so that input without
	// newlines cannot exhaust memory. Zero means DefaultMaxLineSize.
	MaxLineSize int

	br      *bufio.Reader
	crc     hash.Hash32
	buf     []byte
	line    int
	header  *Header
	trailer *Trailer
	records int64
	keys    int64
	size    int
	checker *Checker // the records' sequence
	err     error    // sticky
}

// NewReader returns a Reader that reads from r.
func NewReader(r io.Reader) *Reader {
	return &Reader{
		br:  bufio.NewReaderSize(r, 256<<10),
		crc: crc32.New(castagnoli),
	}
}

// Line returns the line number of the last line read.
func (r *Reader) Line() int { return r.line }

// LineSize returns the length in bytes of the last record line read.
func (r *Reader) LineSize() int { return r.size }

// Header reads the header line, if it has not been read yet, and returns it.
func (r *Reader) Header() (Header, error) {
	if r.header != nil {
		return *r.header, nil
	}
	if r.err != nil {
		return Header{}, r.err
	}
	b, err := r.readLine()
	if err == io.EOF {
		if r.line == 0 {
			r.line = 1
		}
		return Header{}, r.fail(fmt.Errorf("%w: the input is empty", ErrNotDump))
	}
	if err != nil {
		return Header{}, r.fail(err)
	}
	h, err := parseHeader(b)
	if err != nil {
		return Header{}, r.fail(err)
	}
	r.crc.Write(b)
	r.header = &h
	r.checker = NewChecker(h)
	return h, nil
}

// Trailer returns the trailer once Read has returned io.EOF.
func (r *Reader) Trailer() (Trailer, bool) {
	if r.trailer == nil {
		return Trailer{}, false
	}
	return *r.trailer, true
}

// Read returns the next record. At the end of a complete, intact dump it
// returns nil, io.EOF.
func (r *Reader) Read() (*Record, error) {
	if _, err := r.Header(); err != nil {
		return nil, err
	}
	if r.err != nil {
		return nil, r.err
	}
	if r.trailer != nil {
		return nil, io.EOF
	}
	b, err := r.readLine()
	if err == io.EOF {
		r.line++
		if o, open := r.checker.Open(); open {
			return nil, r.fail(fmt.Errorf("%w: it ends inside key %q, after part %d", ErrTruncated, o.Key, o.Part))
		}
		return nil, r.fail(fmt.Errorf("%w after %d records", ErrTruncated, r.records))
	}
	if err != nil {
		return nil, r.fail(err)
	}
	rec, tr, err := parseLine(b)
	if err != nil {
		return nil, r.fail(err)
	}
	if tr != nil {
		if o, open := r.checker.Open(); open {
			return nil, r.fail(fmt.Errorf("%w: the trailer comes before the last part of key %q", ErrTruncated, o.Key))
		}
		if err := r.finish(tr); err != nil {
			return nil, r.fail(err)
		}
		return nil, io.EOF
	}
	if err := r.checker.sequence(rec); err != nil {
		return nil, r.fail(err)
	}
	r.crc.Write(b)
	r.size = len(b)
	r.records++
	if rec.Part <= 1 {
		r.keys++
	}
	return rec, nil
}

func (r *Reader) finish(tr *Trailer) error {
	if tr.Records != r.records {
		return fmt.Errorf("%w: trailer counts %d records, read %d", ErrChecksum, tr.Records, r.records)
	}
	if tr.Keys != r.keys {
		return fmt.Errorf("%w: trailer counts %d keys, read %d", ErrChecksum, tr.Keys, r.keys)
	}
	if sum := r.crc.Sum32(); tr.CRC32C != sum {
		return fmt.Errorf("%w: trailer checksum %08x, computed %08x", ErrChecksum, tr.CRC32C, sum)
	}
	// Nothing may follow the trailer.
	for {
		b, err := r.readLine()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		if len(bytes.TrimSpace(b)) > 0 {
			return fmt.Errorf("%w: data after the trailer", ErrRecord)
		}
	}
	r.trailer = tr
	return nil
}

// fail records err and returns it as a *ParseError. An error from the
// underlying reader (a corrupt compressed stream, say) names the line that
// was being read.
func (r *Reader) fail(err error) error {
	var pe *ParseError
	switch {
	case errors.As(err, &pe):
	case isFormatError(err):
		err = &ParseError{Line: r.line, Err: err}
	case errors.Is(err, io.ErrUnexpectedEOF):
		// A compressed stream cut short.
		err = &ParseError{Line: r.line + 1, Err: fmt.Errorf("%w: the input ends in the middle of a line (%v)", ErrTruncated, err)}
	default:
		err = &ParseError{Line: r.line + 1, Err: fmt.Errorf("%w: %v", ErrRead, err)}
	}
	r.err = err
	return err
}

func isFormatError(err error) bool {
	for _, e := range []error{ErrNotDump, ErrVersion, ErrTruncated, ErrChecksum, ErrSyntax, ErrRecord, ErrLineTooLong, ErrUnsupported, ErrRead} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// readLine returns the next line including its newline. The slice is valid
// until the next call. A final line without a newline is a truncation.
func (r *Reader) readLine() ([]byte, error) {
	max := r.MaxLineSize
	if max <= 0 {
		max = DefaultMaxLineSize
	}
	r.buf = r.buf[:0]
	for {
		frag, err := r.br.ReadSlice('\n')
		if len(r.buf)+len(frag) > max {
			r.line++
			return nil, fmt.Errorf("%w: more than %d bytes", ErrLineTooLong, max)
		}
		if err == nil {
			if len(r.buf) == 0 {
				r.line++
				return frag, nil
			}
			r.buf = append(r.buf, frag...)
			r.line++
			return r.buf, nil
		}
		r.buf = append(r.buf, frag...)
		if err == bufio.ErrBufferFull {
			continue
		}
		if err == io.EOF {
			if len(r.buf) > 0 {
				r.line++
				if r.header == nil {
					return nil, fmt.Errorf("%w: the first line has no newline", ErrNotDump)
				}
				return nil, fmt.Errorf("%w: the last line has no newline", ErrTruncated)
			}
			return nil, io.EOF
		}
		return nil, err
	}
}
