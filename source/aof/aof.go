// Package aof reads Redis append-only files: a single appendonly.aof
// (Redis before 7.0; with or without an RDB preamble) or a Redis 7
// appendonlydir/, whose manifest lists a base (an RDB file or commands)
// and the increments that follow it, in order. An AOF is a base and a
// stream of changes, as a replication link is: the base's keys come as
// records (package rdb decodes a preamble), and every command after it as
// a records.Command, with the file and byte offset it starts at, in the
// order the server wrote them.
//
// A command cut short at the end of the last file (what a crash leaves)
// is an error naming its offset, unless Options.AllowTruncated, as Redis's
// aof-load-truncated, stops before it and says so.
package aof

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/crs-tool/crs/records"
)

// Part is one file of an AOF, in the order it is read.
type Part struct {
	Path string
	Base bool // the base (an RDB file, or commands), first
}

// Parts returns the files of the AOF at path: the files a directory's
// manifest lists (base, then the increments in order), or the one file.
func Parts(path string) ([]Part, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("open input: %w", err)
	}
	if !fi.IsDir() {
		return []Part{{Path: path, Base: true}}, nil
	}
	manifests, _ := filepath.Glob(filepath.Join(path, "*.manifest"))
	if len(manifests) != 1 {
		return nil, fmt.Errorf("%s: an AOF directory holds one manifest (*.manifest), and it has %d", path, len(manifests))
	}
	b, err := os.ReadFile(manifests[0])
	if err != nil {
		return nil, fmt.Errorf("open input: %w", err)
	}
	var base []Part
	var incr []Part
	for i, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		if len(f) < 6 || len(f)%2 != 0 {
			return nil, fmt.Errorf("%s line %d: not a manifest line (file NAME seq N type b|h|i): %q", manifests[0], i+1, line)
		}
		kv := map[string]string{}
		for j := 0; j+1 < len(f); j += 2 {
			kv[f[j]] = f[j+1]
		}
		name := kv["file"]
		if name == "" || filepath.Base(name) != name {
			return nil, fmt.Errorf("%s line %d: file %q is not a file name", manifests[0], i+1, name)
		}
		p := Part{Path: filepath.Join(path, name)}
		switch kv["type"] {
		case "b":
			p.Base = true
			base = append(base, p)
		case "i":
			incr = append(incr, p)
		case "h": // history: rewritten away, not part of the data
		default:
			return nil, fmt.Errorf("%s line %d: unknown file type %q", manifests[0], i+1, kv["type"])
		}
	}
	if len(base) > 1 {
		return nil, fmt.Errorf("%s: %d base files, and an AOF has at most one", manifests[0], len(base))
	}
	return append(base, incr...), nil
}

// IsAOF reports whether the buffered input starts like an AOF of commands
// (a RESP array, "*"), which an RDB file or a dump never does.
func IsAOF(br *bufio.Reader) bool {
	b, _ := br.Peek(1)
	return len(b) == 1 && b[0] == '*'
}

// ErrTruncated is wrapped when a command is cut short at the end of the
// last file.
var ErrTruncated = errors.New("the AOF ends inside a command (the server that wrote it stopped mid-write)")

// Error is a failure to read a command, at a file's byte offset.
type Error struct {
	File   string
	Offset int64
	Err    error
}

func (e *Error) Error() string {
	return fmt.Sprintf("aof: %s: offset %d: %v", e.File, e.Offset, e.Err)
}
func (e *Error) Unwrap() error { return e.Err }

// Reader reads the commands of one file of an AOF, from where its base
// RDB ends (0 for a file of commands).
type Reader struct {
	file string
	r    *bufio.Reader
	off  int64
	db   int
	last bool // the last file: a command cut short there may be a crash's
	// AllowTruncated stops at a command cut short at the end of the last
	// file instead of failing; Truncated then says where.
	AllowTruncated bool
	Truncated      *Error
}

// NewReader returns a reader of the commands r holds, which start at
// offset off of file; db is the database selected before them (0 at the
// start of an AOF; the base's last SELECT for the next file). last says
// whether this is the AOF's last file.
func NewReader(file string, r io.Reader, off int64, db int, last bool) *Reader {
	return &Reader{file: file, r: bufio.NewReaderSize(r, 1<<20), off: off, db: db, last: last}
}

// Consumed returns the offset just after the last command returned (and
// the SELECTs before it): the offset given to NewReader plus the bytes
// read.
func (r *Reader) Consumed() int64 { return r.off }

// DB is the database the commands read so far selected.
func (r *Reader) DB() int { return r.db }

// Next returns the next command, io.EOF at the file's clean end. SELECT
// is not returned: it sets the database of the commands after it.
func (r *Reader) Next() (*records.Command, error) {
	for {
		start := r.off
		args, err := r.command()
		if err == io.EOF {
			return nil, io.EOF
		}
		if err != nil {
			e := &Error{File: r.file, Offset: start, Err: err}
			if errors.Is(err, ErrTruncated) && r.last && r.AllowTruncated {
				r.Truncated = e
				return nil, io.EOF
			}
			return nil, e
		}
		if strings.EqualFold(args[0], "SELECT") {
			if len(args) != 2 {
				return nil, &Error{File: r.file, Offset: start, Err: fmt.Errorf("SELECT with %d arguments", len(args)-1)}
			}
			db, err := strconv.Atoi(args[1])
			if err != nil || db < 0 {
				return nil, &Error{File: r.file, Offset: start, Err: fmt.Errorf("SELECT %q", args[1])}
			}
			r.db = db
			continue
		}
		return &records.Command{DB: r.db, Args: args, File: r.file, Offset: start, End: r.off}, nil
	}
}

// command reads one RESP array of bulk strings.
func (r *Reader) command() ([]string, error) {
	line, err := r.line()
	if err == io.EOF {
		return nil, io.EOF
	}
	if err != nil {
		return nil, err
	}
	if len(line) < 2 || line[0] != '*' {
		return nil, fmt.Errorf("%q where a command (a RESP array, \"*<count>\") belongs: not an AOF, or a corrupt one", clip(line))
	}
	n, err := strconv.Atoi(string(line[1:]))
	if err != nil || n < 1 || n > 1<<20 {
		return nil, fmt.Errorf("bad argument count %q", clip(line))
	}
	args := make([]string, n)
	for i := range args {
		line, err := r.line()
		if err == io.EOF {
			return nil, ErrTruncated
		}
		if err != nil {
			return nil, err
		}
		if len(line) < 2 || line[0] != '$' {
			return nil, fmt.Errorf("%q where argument %d (a bulk string, \"$<length>\") belongs", clip(line), i+1)
		}
		size, err := strconv.ParseInt(string(line[1:]), 10, 64)
		if err != nil || size < 0 || size > 512<<20 {
			return nil, fmt.Errorf("bad length %q of argument %d", clip(line), i+1)
		}
		b := make([]byte, size+2)
		got, err := io.ReadFull(r.r, b)
		r.off += int64(got)
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return nil, ErrTruncated
		}
		if err != nil {
			return nil, err
		}
		if b[size] != '\r' || b[size+1] != '\n' {
			return nil, fmt.Errorf("argument %d does not end with CRLF", i+1)
		}
		args[i] = string(b[:size])
	}
	return args, nil
}

// line reads a line ending in CRLF, without it. io.EOF only at a clean
// end; a line cut short is ErrTruncated.
func (r *Reader) line() ([]byte, error) {
	b, err := r.r.ReadSlice('\n')
	r.off += int64(len(b))
	switch {
	case err == io.EOF && len(b) == 0:
		return nil, io.EOF
	case err == io.EOF:
		return nil, ErrTruncated
	case err == bufio.ErrBufferFull:
		return nil, fmt.Errorf("a line of more than %d bytes", r.r.Size())
	case err != nil:
		return nil, err
	}
	if len(b) < 2 || b[len(b)-2] != '\r' {
		return nil, fmt.Errorf("%q does not end with CRLF", clip(b))
	}
	return bytes.Clone(b[:len(b)-2]), nil
}

func clip(b []byte) string {
	if len(b) > 40 {
		return string(b[:40]) + "…"
	}
	return string(b)
}
