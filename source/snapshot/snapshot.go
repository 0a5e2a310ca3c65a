// Package snapshot is the source that takes a point-in-time consistent
// dump of a live server over the replication protocol: it asks for a full
// resynchronization as a replica would (REPLCONF, PSYNC ? -1), decodes the
// RDB snapshot with package rdb as it arrives, and closes the connection
// after it. Every key comes from one instant, which a SCAN dump of a
// server taking writes cannot promise.
package snapshot

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/crs-tool/crs/internal/progress"
	"github.com/crs-tool/crs/internal/redisconn"
	"github.com/crs-tool/crs/internal/resp"
	"github.com/crs-tool/crs/rdb"
	"github.com/crs-tool/crs/records"
	"github.com/crs-tool/crs/source/rdbfile"
	"github.com/crs-tool/crs/source/repl"
)

// Options configure a snapshot.
type Options struct {
	Conn redisconn.Options
	// RDB bounds the records (PartElems, PartBytes) and says what to do
	// with expired keys.
	RDB rdbfile.Options
	// Idle is how long the server may send nothing (not even the
	// newlines it sends while it prepares the snapshot) before the
	// snapshot is given up.
	Idle time.Duration
}

// Source is a live server's replication snapshot.
type Source struct{ opts Options }

// New returns a source that takes a snapshot of the server opts.Conn
// names.
func New(opts Options) *Source {
	if opts.Idle <= 0 {
		opts.Idle = time.Minute
	}
	return &Source{opts: opts}
}

// ErrRefused is wrapped when the server will not replicate to crs.
var ErrRefused = repl.ErrRefused

// Dump takes the snapshot and writes its keys as records to fw.
func (s *Source) Dump(ctx context.Context, fw records.Writer, p *progress.Counter) (st records.Stats, err error) {
	start := time.Now()
	defer func() { st.Elapsed = time.Since(start) }()
	addr := s.opts.Conn.Address()
	modules, err := serverModules(ctx, s.opts.Conn)
	if err != nil {
		return records.Stats{From: "snapshot"}, err
	}
	at, err := redisconn.Resolve(ctx, s.opts.Conn)
	if err != nil {
		return records.Stats{From: "snapshot"}, err
	}
	ro, err := at.RESP(0)
	if err != nil {
		return records.Stats{From: "snapshot"}, err
	}
	c, err := resp.Dial(ctx, ro)
	if err != nil {
		return records.Stats{From: "snapshot"}, &redisconn.Error{Addr: addr, Err: err}
	}
	defer c.Close()
	conn, _ := c.Raw()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	// rdb-only (7.0+): the server sends the snapshot and nothing after,
	// and keeps no replication backlog for us; older servers do not know
	// it.
	_, payload, err := repl.Handshake(ctx, c, nil, true, s.opts.Idle)
	if err != nil {
		switch {
		case ctx.Err() != nil:
			err = ctx.Err()
		case errors.Is(err, io.EOF):
			err = fmt.Errorf("the server closed the connection before it sent the snapshot (see its log): %w", err)
		}
		return records.Stats{From: "snapshot"}, fmt.Errorf("snapshot of %s: %w", addr, err)
	}
	o := s.opts.RDB
	if o.Name == "" {
		o.Name = addr
	}
	o.Modules = modules
	in := &idleReader{c: conn, r: payload, idle: s.opts.Idle}
	st, err = rdbfile.New(in, o).Dump(ctx, fw, p)
	st.From = "snapshot"
	if err != nil && ctx.Err() == nil {
		var re *rdb.Error
		if errors.As(err, &re) && (errors.Is(in.err, io.EOF) || errors.Is(in.err, io.ErrUnexpectedEOF) || errors.Is(in.err, net.ErrClosed)) {
			err = fmt.Errorf("snapshot of %s: the server closed the connection part way through the snapshot (is its client-output-buffer-limit for replicas too small for the writes it takes meanwhile?): %w", addr, err)
		}
	}
	return st, err
}

// serverModules asks the server which modules it has, for the header: a
// loader then knows whether the snapshot may hold a type its target
// lacks without reading it all first. nil when the server would not say.
func serverModules(ctx context.Context, o redisconn.Options) ([]string, error) {
	c, _, err := redisconn.Open(ctx, o, 0, 1)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	caps, err := redisconn.ProbeCaps(ctx, c)
	return caps.Modules, err
}

// idleReader reads the payload, failing when the server sends nothing
// for the idle time, and keeps the read error that ended it.
type idleReader struct {
	c    net.Conn
	r    io.Reader
	idle time.Duration
	err  error
}

func (r *idleReader) Read(p []byte) (int, error) {
	r.c.SetReadDeadline(time.Now().Add(r.idle))
	n, err := r.r.Read(p)
	if err != nil && r.err == nil {
		r.err = err
	}
	return n, err
}
