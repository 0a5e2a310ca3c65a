package repl

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/crs-tool/crs/internal/redisconn"
	"github.com/crs-tool/crs/internal/resp"
	"github.com/crs-tool/crs/records"
	"github.com/crs-tool/crs/source/aof"
)

// Options configure a link.
type Options struct {
	Conn redisconn.Options
	// Dir is where the snapshot and the spooled stream are kept (a new
	// directory in it; TMPDIR when empty).
	Dir string
	// Idle is how long the server may send nothing while it prepares
	// the snapshot before the link is given up.
	Idle time.Duration
}

// ErrNoBacklog is wrapped when the server no longer holds the position a
// link was to continue from.
var ErrNoBacklog = errors.New("the source's replication backlog no longer holds the position")

// ErrLinkLost is wrapped when the replication link ends mid-stream: the
// source closed it (shut down, restarted, dropped crs as a replica) or
// sent nothing, not even its pings, for the idle time.
var ErrLinkLost = errors.New("the replication link was lost")

// Link is a replication link: after Dial, the snapshot (for a full
// resynchronization) is on disk, and the commands that follow it arrive
// in the background, read with Next.
type Link struct {
	opts  Options
	addr  string
	conn  net.Conn
	dir   string
	reply Reply
	start time.Time

	snapshot string       // the snapshot's file
	received atomic.Int64 // the offset of the last byte received
	acked    atomic.Int64 // the offset the consumer has applied
	ackNow   chan struct{}

	mu      sync.Mutex
	arrived []arrival // when unapplied bytes arrived, oldest first
	err     error     // what ended the receiving
	segs    []string  // spool files, oldest first; the last is written
	more    chan struct{}

	cmds   *aof.Reader
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// arrival is when the bytes up to offset end arrived.
type arrival struct {
	end int64
	at  time.Time
}

// removeStaleSpools removes the spool directories in dir (TMPDIR when "")
// of syncs whose process is gone (killed: a sync that ends removes its
// own), which would otherwise hold the snapshot and stream for good.
func removeStaleSpools(dir string) {
	if dir == "" {
		dir = os.TempDir()
	}
	old, _ := filepath.Glob(filepath.Join(dir, "crs-sync-*-*"))
	for _, d := range old {
		pid, err := strconv.Atoi(strings.SplitN(strings.TrimPrefix(filepath.Base(d), "crs-sync-"), "-", 2)[0])
		if err != nil || pid == os.Getpid() {
			continue
		}
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); errors.Is(err, os.ErrNotExist) {
			os.RemoveAll(d)
		}
	}
}

// segmentBytes is the size at which the spool moves to a new file.
const segmentBytes = 64 << 20

// Dial connects to the server, asks to continue from the position from
// (nil: a full resynchronization) and, for a full one, receives the
// snapshot into a file before it returns. The stream then spools in the
// background until Close. A position the server no longer holds is an
// error wrapping ErrNoBacklog, before anything is received.
func Dial(ctx context.Context, opts Options, from *Position) (_ *Link, err error) {
	if opts.Idle <= 0 {
		opts.Idle = time.Minute
	}
	at, err := redisconn.Resolve(ctx, opts.Conn)
	if err != nil {
		return nil, err
	}
	ro, err := at.RESP(0)
	if err != nil {
		return nil, err
	}
	addr := at.Address()
	c, err := resp.Dial(ctx, ro)
	if err != nil {
		return nil, &redisconn.Error{Addr: addr, Err: err}
	}
	conn, br := c.Raw()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	removeStaleSpools(opts.Dir)
	dir, err := os.MkdirTemp(opts.Dir, fmt.Sprintf("crs-sync-%d-", os.Getpid()))
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("spool: %w", err)
	}
	l := &Link{opts: opts, addr: addr, conn: conn, dir: dir, ackNow: make(chan struct{}, 1), more: make(chan struct{}, 1), start: time.Now()}
	defer func() {
		if err != nil {
			l.Close()
			if ctx.Err() != nil {
				err = ctx.Err()
			}
		}
	}()
	rep, payload, err := Handshake(ctx, c, from, false, opts.Idle)
	if err != nil {
		return nil, fmt.Errorf("replication link to %s: %w", addr, err)
	}
	if rep.Full && from != nil {
		return nil, fmt.Errorf("replication link to %s: %w (it answered a PSYNC from %s offset %d with a full resynchronization)", addr, ErrNoBacklog, from.ReplID, from.Offset+1)
	}
	l.reply = rep
	if rep.Full {
		l.snapshot = filepath.Join(dir, "snapshot.rdb")
		if err := l.download(payload); err != nil {
			return nil, fmt.Errorf("replication link to %s: the snapshot: %w", addr, err)
		}
	}
	l.received.Store(rep.Position.Offset)
	l.acked.Store(rep.Position.Offset)
	first, err := l.newSegment()
	if err != nil {
		return nil, err
	}
	rd, err := os.Open(first)
	if err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	l.cmds = aof.NewReader("the replication stream of "+addr, &follower{l: l, f: rd}, rep.Position.Offset, rep.Position.DB, false)
	// A server streaming its snapshot (no file) starts the commands only
	// once the replica acknowledges; a real replica does so after it has
	// loaded the snapshot, crs once it is on disk.
	if err := l.sendAck(); err != nil {
		return nil, fmt.Errorf("replication link to %s: %w", addr, err)
	}
	rctx, cancel := context.WithCancel(context.Background())
	l.cancel = cancel
	l.wg.Add(2)
	go l.receive(br)
	go l.acks(rctx)
	return l, nil
}

// download writes the snapshot to its file.
func (l *Link) download(payload io.Reader) error {
	f, err := os.OpenFile(l.snapshot, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	_, err = io.Copy(f, &idleReader{c: l.conn, r: payload, idle: l.opts.Idle})
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// Reply says what the server answered: a full resynchronization and the
// position the stream starts after, or a continuation.
func (l *Link) Reply() Reply { return l.reply }

// Snapshot returns the file the snapshot was received into ("" for a
// continuation). It is removed by Close.
func (l *Link) Snapshot() string { return l.snapshot }

// Name says where the link goes.
func (l *Link) Name() string { return l.addr }

// Next returns the next command of the stream, waiting for one. Every
// command the server sends is returned, the replication-only ones (PING,
// REPLCONF GETACK) too, so that offsets stay whole; SELECT is not: it
// sets the database of the commands after it. Offset and End are
// replication offsets. After the link is lost, Next returns what had
// arrived, then the error.
func (l *Link) Next() (*records.Command, error) { return l.cmds.Next() }

// Pending reports whether bytes have arrived that Next has not returned.
func (l *Link) Pending() bool { return l.received.Load() > l.cmds.Consumed() }

// Received returns the offset of the last byte that has arrived.
func (l *Link) Received() int64 { return l.received.Load() }

// Ack says the consumer has applied the stream up to offset: the server
// is told with the next REPLCONF ACK, which goes at once when now.
func (l *Link) Ack(offset int64, now bool) {
	l.acked.Store(offset)
	l.mu.Lock()
	i := 0
	for i < len(l.arrived) && l.arrived[i].end <= offset {
		i++
	}
	l.arrived = l.arrived[i:]
	l.mu.Unlock()
	if now {
		select {
		case l.ackNow <- struct{}{}:
		default:
		}
	}
}

// Behind returns how long ago the oldest byte not yet applied arrived (0
// when everything received is applied).
func (l *Link) Behind() time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.arrived) == 0 {
		return 0
	}
	return time.Since(l.arrived[0].at)
}

// Close ends the link and removes its files.
func (l *Link) Close() error {
	l.conn.Close()
	if l.cancel != nil {
		l.cancel()
	}
	l.wg.Wait()
	return os.RemoveAll(l.dir)
}

// receive spools the stream as it arrives, until the connection ends.
func (l *Link) receive(br io.Reader) {
	defer l.wg.Done()
	buf := make([]byte, 256<<10)
	l.mu.Lock()
	path := l.segs[len(l.segs)-1]
	l.mu.Unlock()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0o600)
	var size int64
	for err == nil {
		var n int
		// The server pings its replicas every 10 s by default; a link
		// silent for the idle time is a dead one, as Redis's repl-timeout.
		l.conn.SetReadDeadline(time.Now().Add(l.opts.Idle))
		n, err = br.Read(buf)
		if n > 0 {
			if _, werr := f.Write(buf[:n]); werr != nil {
				err = fmt.Errorf("spool: %w", werr)
				break
			}
			size += int64(n)
			end := l.received.Add(int64(n))
			now := time.Now()
			l.mu.Lock()
			if k := len(l.arrived); k > 0 && now.Sub(l.arrived[k-1].at) < 10*time.Millisecond {
				l.arrived[k-1].end = end
			} else {
				l.arrived = append(l.arrived, arrival{end: end, at: now})
			}
			l.mu.Unlock()
			if size >= segmentBytes {
				f.Close()
				var next string
				if next, err = l.newSegment(); err == nil {
					f, err = os.OpenFile(next, os.O_WRONLY|os.O_APPEND, 0o600)
					size = 0
				}
			}
			l.notify()
		}
	}
	if f != nil {
		f.Close()
	}
	var ne net.Error
	switch {
	case errors.As(err, &ne) && ne.Timeout():
		err = fmt.Errorf("%w: the source sent nothing on it for %s (not even its pings): %w", ErrLinkLost, l.opts.Idle, err)
	case errors.Is(err, net.ErrClosed) || errors.Is(err, io.EOF):
		err = fmt.Errorf("%w: the source closed it (it restarted, was shut down, or dropped crs as a replica: see its log)", ErrLinkLost)
	}
	l.mu.Lock()
	l.err = err
	l.mu.Unlock()
	l.notify()
}

func (l *Link) notify() {
	select {
	case l.more <- struct{}{}:
	default:
	}
}

// newSegment adds a spool file and returns its path.
func (l *Link) newSegment() (string, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	path := filepath.Join(l.dir, fmt.Sprintf("stream-%06d", len(l.segs)))
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return "", fmt.Errorf("spool: %w", err)
	}
	f.Close()
	l.segs = append(l.segs, path)
	return path, nil
}

// acks sends REPLCONF ACK once a second, and at once when asked.
func (l *Link) acks(ctx context.Context) {
	defer l.wg.Done()
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-l.ackNow:
		}
		if l.sendAck() != nil {
			return // the receiving side reports the lost link
		}
	}
}

func (l *Link) sendAck() error {
	off := strconv.FormatInt(l.acked.Load(), 10)
	l.conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
	_, err := fmt.Fprintf(l.conn, "*3\r\n$8\r\nREPLCONF\r\n$3\r\nACK\r\n$%d\r\n%s\r\n", len(off), off)
	return err
}

// follower reads the spool files in order, waiting at the end of the last
// one for more, and returns the link's error once everything that arrived
// has been read.
type follower struct {
	l   *Link
	f   *os.File
	seg int
}

func (r *follower) Read(p []byte) (int, error) {
	for {
		n, err := r.f.Read(p)
		if n > 0 {
			return n, nil
		}
		if err != nil && err != io.EOF {
			return 0, fmt.Errorf("spool: %w", err)
		}
		r.l.mu.Lock()
		next, lerr := "", r.l.err
		if r.seg+1 < len(r.l.segs) {
			next = r.l.segs[r.seg+1]
		}
		r.l.mu.Unlock()
		switch {
		case next != "":
			// The writer has moved on: this file is whole, and read.
			old := r.f.Name()
			r.f.Close()
			os.Remove(old)
			f, err := os.Open(next)
			if err != nil {
				return 0, fmt.Errorf("spool: %w", err)
			}
			r.f, r.seg = f, r.seg+1
			continue
		case lerr != nil:
			// One more read: bytes may have landed before the error.
			if n, _ := r.f.Read(p); n > 0 {
				return n, nil
			}
			return 0, lerr
		}
		<-r.l.more
	}
}

// idleReader reads the payload, failing when the server sends nothing
// for the idle time.
type idleReader struct {
	c    net.Conn
	r    io.Reader
	idle time.Duration
}

func (r *idleReader) Read(p []byte) (int, error) {
	r.c.SetReadDeadline(time.Now().Add(r.idle))
	return r.r.Read(p)
}
