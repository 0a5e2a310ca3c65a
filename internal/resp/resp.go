// Package resp is a minimal RESP2 pipeline connection for crsload's write
// path: commands are appended to one buffer, sent together, and their
// replies read in order, with no allocation per command or argument.
// go-redis does the rest of crs's talking; its per-command objects and
// boxed arguments cost more than the loading itself on large dumps.
package resp

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"
	"unsafe"
)

// Options say where and how to connect.
type Options struct {
	Network, Addr      string
	TLS                *tls.Config
	Username, Password string
	DB                 int
	DialTimeout        time.Duration
	IOTimeout          time.Duration
	ReadOnly           bool // send READONLY (reads from a cluster replica)
}

// Conn is one connection. It is not safe for concurrent use.
type Conn struct {
	c       net.Conn
	r       *bufio.Reader
	buf     []byte
	pending int // commands written to buf, not yet sent
	arena   []byte
	opts    Options
}

// Dial connects, authenticates and selects the database.
func Dial(ctx context.Context, o Options) (*Conn, error) {
	d := net.Dialer{Timeout: o.DialTimeout}
	var nc net.Conn
	var err error
	if o.TLS != nil {
		td := tls.Dialer{NetDialer: &d, Config: o.TLS}
		nc, err = td.DialContext(ctx, o.Network, o.Addr)
	} else {
		nc, err = d.DialContext(ctx, o.Network, o.Addr)
	}
	if err != nil {
		return nil, err
	}
	c := &Conn{c: nc, r: bufio.NewReaderSize(nc, 64<<10), opts: o}
	if o.Password != "" {
		if o.Username != "" {
			c.Begin("AUTH", 2).Str(o.Username).Str(o.Password)
		} else {
			c.Begin("AUTH", 1).Str(o.Password)
		}
	}
	if o.DB != 0 {
		c.Begin("SELECT", 1).Int(int64(o.DB))
	}
	if o.ReadOnly {
		c.Begin("READONLY", 0)
	}
	if c.pending > 0 {
		err := c.Exec(ctx, func(i int, r Reply) error {
			// A password sent to a server that has none is no error
			// (go-redis and redis-cli let it pass too).
			if r.Kind == KindError && !strings.Contains(r.Text, "without any password configured") {
				return r.Err()
			}
			return nil
		})
		if err != nil {
			nc.Close()
			return nil, err
		}
	}
	return c, nil
}

// Raw returns the connection and its buffered reader, for a protocol that
// leaves RESP (such as the RDB payload of a replication handshake). The
// Conn must not be used for commands after that.
func (c *Conn) Raw() (net.Conn, *bufio.Reader) { return c.c, c.r }

// Close closes the connection.
func (c *Conn) Close() error { return c.c.Close() }

// Begin starts a command with its name and the number of arguments that
// follow it.
func (c *Conn) Begin(name string, args int) *Conn {
	c.buf = append(c.buf, '*')
	c.buf = strconv.AppendInt(c.buf, int64(args+1), 10)
	c.buf = append(c.buf, '\r', '\n')
	c.pending++
	return c.Str(name)
}

// Str appends a bulk string argument.
func (c *Conn) Str(s string) *Conn {
	c.buf = appendBulk(c.buf, s)
	return c
}

// Bytes appends a bulk string argument held in b.
func (c *Conn) Bytes(b []byte) *Conn {
	c.buf = appendBulk(c.buf, b)
	return c
}

func appendBulk[S string | []byte](buf []byte, s S) []byte {
	buf = append(buf, '$')
	buf = strconv.AppendInt(buf, int64(len(s)), 10)
	buf = append(buf, '\r', '\n')
	buf = append(buf, s...)
	return append(buf, '\r', '\n')
}

// Int appends an integer argument.
func (c *Conn) Int(n int64) *Conn {
	var tmp [20]byte
	d := strconv.AppendInt(tmp[:0], n, 10)
	c.buf = append(c.buf, '$')
	c.buf = strconv.AppendInt(c.buf, int64(len(d)), 10)
	c.buf = append(c.buf, '\r', '\n')
	c.buf = append(c.buf, d...)
	c.buf = append(c.buf, '\r', '\n')
	return c
}

// Pending returns the number of commands written and not yet sent.
func (c *Conn) Pending() int { return c.pending }

// Reply kinds.
const (
	KindStatus = '+'
	KindError  = '-'
	KindInt    = ':'
	KindBulk   = '$'
	KindArray  = '*'
)

// Reply is what one command answered. Status and error text and integers
// are kept; bulk strings and arrays are read and dropped (Len says their
// length, -1 for nil).
type Reply struct {
	Kind byte
	Text string // error text
	Int  int64  // integer, or length of a bulk string or array
}

// Err returns the reply as an error, for KindError.
func (r Reply) Err() error { return ServerError(r.Text) }

// ServerError is an error reply.
type ServerError string

func (e ServerError) Error() string { return string(e) }

// Code is the error's first word, its code: ERR, WRONGTYPE, LOADING, ...
func (e ServerError) Code() string {
	code, _, _ := strings.Cut(string(e), " ")
	return code
}

// Passing reports whether the refusal may pass by trying again later: the
// server is loading its data, busy with a script, or between masters.
func (e ServerError) Passing() bool {
	switch e.Code() {
	case "LOADING", "BUSY", "TRYAGAIN", "MASTERDOWN", "CLUSTERDOWN":
		return true
	}
	return false
}

// Exec sends the pending commands and calls fn with each reply, in order.
// An error from fn stops the reading but not before every reply has been
// read, so the connection stays usable. A connection failure is returned
// as is.
func (c *Conn) Exec(ctx context.Context, fn func(i int, r Reply) error) error {
	return c.exec(ctx, func(i int) error {
		r, err := c.read()
		if err != nil {
			return errConn{err}
		}
		return fn(i, r)
	})
}

// exec sends the pending commands and calls one for each reply, in order.
// After fn's first error it keeps reading, without calling fn, so the
// connection stays in step; it returns that first error. When ctx ends,
// the connection's deadline is moved to now, so a stalled server cannot
// hold the call: it returns ctx's error and the connection is closed.
func (c *Conn) exec(ctx context.Context, one func(i int) error) (err error) {
	n := c.pending
	c.pending = 0
	if n == 0 {
		return nil
	}
	if err := ctx.Err(); err != nil {
		c.buf = c.buf[:0]
		return err
	}
	if c.opts.IOTimeout > 0 {
		c.c.SetDeadline(time.Now().Add(c.opts.IOTimeout))
	}
	stop := context.AfterFunc(ctx, func() { c.c.SetDeadline(time.Now()) })
	defer func() {
		if !stop() && ctx.Err() != nil {
			c.c.Close()
			err = ctx.Err()
		}
	}()
	// Send while reading, as redis-cli --pipe does: a large batch of
	// commands could otherwise fill both sides' buffers and stall.
	werr := make(chan error, 1)
	buf := c.buf
	go func() {
		_, err := c.c.Write(buf)
		werr <- err
	}()
	var first, rerr error
	for i := 0; i < n; i++ {
		var err error
		if first == nil {
			err = one(i)
		} else {
			_, err = c.read()
			if err != nil {
				err = errConn{err}
			}
		}
		if ce, ok := err.(errConn); ok {
			rerr = ce.error
			break
		}
		if err != nil && first == nil {
			first = err
		}
	}
	if err := <-werr; err != nil && rerr == nil {
		rerr = err
	}
	c.buf = c.buf[:0]
	if rerr != nil {
		c.c.Close()
		return fmt.Errorf("%w to %s: %w", ErrLost, c.opts.Addr, rerr)
	}
	return first
}

var errProtocol = errors.New("protocol error")

// ErrLost is wrapped by the error of an Exec whose connection failed:
// some, all or none of its commands may have run.
var ErrLost = errors.New("lost the connection")

// read reads one reply.
func (c *Conn) read() (Reply, error) {
	line, err := c.line()
	if err != nil {
		return Reply{}, err
	}
	return c.rest(line)
}

// rest reads the rest of a reply whose first line is line.
func (c *Conn) rest(line []byte) (Reply, error) {
	var err error
	if len(line) == 0 {
		return Reply{}, errProtocol
	}
	r := Reply{Kind: line[0]}
	switch r.Kind {
	case KindStatus:
		// Not kept: callers check only errors, and +OK per SET would
		// otherwise cost an allocation each.
	case KindError:
		r.Text = string(line[1:])
	case KindInt:
		r.Int, err = strconv.ParseInt(string(line[1:]), 10, 64)
	case KindBulk:
		r.Int, err = strconv.ParseInt(string(line[1:]), 10, 64)
		if err == nil && r.Int >= 0 {
			_, err = c.r.Discard(int(r.Int) + 2)
		}
	case KindArray:
		r.Int, err = strconv.ParseInt(string(line[1:]), 10, 64)
		for i := int64(0); err == nil && i < r.Int; i++ {
			_, err = c.read()
		}
	default:
		err = fmt.Errorf("%w: reply starts with %q", errProtocol, r.Kind)
	}
	return r, err
}

// line reads a line without its CRLF.
func (c *Conn) line() ([]byte, error) {
	line, err := c.r.ReadSlice('\n')
	if err == bufio.ErrBufferFull {
		return nil, fmt.Errorf("%w: reply line too long", errProtocol)
	}
	if err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	if len(line) < 2 || line[len(line)-2] != '\r' {
		return nil, errProtocol
	}
	return line[:len(line)-2], nil
}

// Value is a whole reply, for callers that need its content.
type Value struct {
	Kind  byte
	Nil   bool    // a nil bulk string or array
	Int   int64   // an integer
	Str   string  // a status, error or bulk string
	Array []Value // an array's elements
}

// Strings returns an array of bulk strings as strings.
func (v Value) Strings() ([]string, error) {
	if v.Kind != KindArray {
		return nil, fmt.Errorf("expected an array, got %q", v.Kind)
	}
	out := make([]string, len(v.Array))
	for i, e := range v.Array {
		if e.Kind != KindBulk || e.Nil {
			return nil, fmt.Errorf("array item %d is not a string", i)
		}
		out[i] = e.Str
	}
	return out, nil
}

// ExecValues sends the pending commands and calls fn with each whole
// reply, in order, as Exec does.
func (c *Conn) ExecValues(ctx context.Context, fn func(i int, v Value) error) error {
	return c.exec(ctx, func(i int) error {
		v, err := c.readValue()
		if err != nil {
			return errConn{err}
		}
		return fn(i, v)
	})
}

// ExecEach sends the one pending command, whose reply is an array of bulk
// strings (or nil, or an error, returned as a ServerError), and calls fn
// with each element's bytes, valid only during the call: a reply of
// millions of elements is never held whole. After fn's first error the
// rest of the reply is read and dropped.
func (c *Conn) ExecEach(ctx context.Context, fn func(elem []byte) error) error {
	if c.pending != 1 {
		return fmt.Errorf("ExecEach with %d commands pending, want 1", c.pending)
	}
	var buf []byte
	return c.exec(ctx, func(int) error {
		line, err := c.line()
		switch {
		case err != nil:
			return errConn{err}
		case len(line) == 0:
			return errConn{errProtocol}
		case line[0] == KindError:
			return ServerError(line[1:])
		case line[0] != KindArray:
			if _, err := c.rest(line); err != nil {
				return errConn{err}
			}
			return fmt.Errorf("expected an array, got %q", line[0])
		}
		n, err := strconv.ParseInt(string(line[1:]), 10, 64)
		if err != nil {
			return errConn{err}
		}
		var first error
		for i := int64(0); i < n; i++ {
			line, err := c.line()
			if err != nil {
				return errConn{err}
			}
			size, err := strconv.ParseInt(string(line[1:]), 10, 64)
			if err != nil || len(line) == 0 || line[0] != KindBulk || size < 0 {
				return errConn{fmt.Errorf("%w: an array element that is not a bulk string", errProtocol)}
			}
			if cap(buf) < int(size)+2 {
				buf = make([]byte, size+2)
			}
			b := buf[:size+2]
			if _, err := io.ReadFull(c.r, b); err != nil {
				return errConn{err}
			}
			if first == nil {
				first = fn(b[:size])
			}
		}
		return first
	})
}

// alloc returns n bytes for a bulk string from the connection's arena:
// one allocation per 64 KiB of replies rather than two per string. Bytes
// handed out are never written again, so strings over them stay valid for
// as long as anything refers to them.
func (c *Conn) alloc(n int) []byte {
	if n > 16<<10 {
		return make([]byte, n)
	}
	if cap(c.arena)-len(c.arena) < n {
		c.arena = make([]byte, 0, 64<<10)
	}
	start := len(c.arena)
	c.arena = c.arena[:start+n]
	return c.arena[start : start+n : start+n]
}

// errConn marks a failure of the connection, as opposed to fn's own.
type errConn struct{ error }

func (c *Conn) readValue() (Value, error) {
	line, err := c.line()
	if err != nil {
		return Value{}, err
	}
	if len(line) == 0 {
		return Value{}, errProtocol
	}
	v := Value{Kind: line[0]}
	switch v.Kind {
	case KindStatus, KindError:
		v.Str = string(line[1:])
	case KindInt:
		v.Int, err = strconv.ParseInt(string(line[1:]), 10, 64)
	case KindBulk:
		n, err := strconv.ParseInt(string(line[1:]), 10, 64)
		if err != nil {
			return v, err
		}
		if n < 0 {
			v.Nil = true
			return v, nil
		}
		b := c.alloc(int(n) + 2)
		if _, err := io.ReadFull(c.r, b); err != nil {
			return v, err
		}
		if n > 0 {
			v.Str = unsafe.String(&b[0], n)
		}
	case KindArray:
		n, err := strconv.ParseInt(string(line[1:]), 10, 64)
		if err != nil {
			return v, err
		}
		if n < 0 {
			v.Nil = true
			return v, nil
		}
		v.Array = make([]Value, n)
		for i := range v.Array {
			if v.Array[i], err = c.readValue(); err != nil {
				return v, err
			}
		}
	default:
		err = fmt.Errorf("%w: reply starts with %q", errProtocol, v.Kind)
	}
	return v, err
}

// Send sends the pending commands without reading their replies: on a
// connection subscribed to channels, replies and messages come through
// Receive.
func (c *Conn) Send() error {
	c.pending = 0
	_, err := c.c.Write(c.buf)
	c.buf = c.buf[:0]
	if err != nil {
		c.c.Close()
		return fmt.Errorf("%w to %s: %w", ErrLost, c.opts.Addr, err)
	}
	return nil
}

// Receive reads the next reply or message, waiting as long as it takes
// (Close ends the wait), for a connection subscribed to channels.
func (c *Conn) Receive() (Value, error) {
	c.c.SetReadDeadline(time.Time{})
	v, err := c.readValue()
	if err != nil {
		return v, fmt.Errorf("%w to %s: %w", ErrLost, c.opts.Addr, err)
	}
	return v, nil
}
