// Package repl is a replication link to a live server: crs poses as a
// replica (REPLCONF, PSYNC), takes the snapshot the server sends, and
// then the stream of write commands that follows it, as a replica of
// the server would apply them, each with its replication offset.
//
// The link keeps what arrives on disk, not in memory, as fast as the
// server sends it: the snapshot to a file first (as a replica with a
// disk-based load does), then the command stream to spool files that are
// removed once read past, so a consumer that takes minutes to load the
// snapshot never makes the server buffer writes for it (and trip its
// client-output-buffer-limit for replicas). It acknowledges the offset
// its consumer has applied with REPLCONF ACK, once a second, so the
// server's INFO replication shows the lag.
//
// The handshake is shared with package snapshot, which asks for the
// snapshot alone.
package repl

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/crs-tool/crs/internal/resp"
)

// ErrRefused is wrapped when the server will not replicate to crs.
var ErrRefused = errors.New("the server refuses replication")

// Position is a place in a server's replication history: its
// replication ID and the offset of the last byte taken, and the database
// the stream had selected there (a continued stream does not say it
// again).
type Position struct {
	ReplID string
	Offset int64
	DB     int
}

// Reply is the server's answer to PSYNC.
type Reply struct {
	// Full is true for +FULLRESYNC: a snapshot follows, and the stream
	// after it starts after Position.Offset. For +CONTINUE, the stream
	// continues after the offset asked for, under Position.ReplID.
	Full     bool
	Position Position
}

// Handshake announces crs as a replica on c (REPLCONF, with rdb-only
// when rdbOnly: the snapshot and nothing after it, 7.0+) and sends PSYNC
// for the position from (nil: a full resynchronization). For a full
// resynchronization it returns a reader of the snapshot's RDB payload,
// which ends at the payload's end (a payload sent with an EOF mark ends
// where the mark is found).
func Handshake(ctx context.Context, c *resp.Conn, from *Position, rdbOnly bool, idle time.Duration) (Reply, io.Reader, error) {
	conn, br := c.Raw()
	if rdbOnly {
		c.Begin("REPLCONF", 2).Str("rdb-only").Str("1")
	}
	c.Begin("REPLCONF", 4).Str("capa").Str("eof").Str("capa").Str("psync2")
	last := c.Pending() - 1
	err := c.Exec(ctx, func(i int, r resp.Reply) error {
		if r.Kind == resp.KindError && i == last {
			return refused("REPLCONF", r.Text)
		}
		return nil
	})
	if err != nil {
		return Reply{}, nil, err
	}
	replid, off := "?", "-1"
	if from != nil {
		replid, off = from.ReplID, strconv.FormatInt(from.Offset+1, 10)
	}
	conn.SetDeadline(time.Now().Add(idle))
	cmd := fmt.Sprintf("*3\r\n$5\r\nPSYNC\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n", len(replid), replid, len(off), off)
	if _, err := conn.Write([]byte(cmd)); err != nil {
		return Reply{}, nil, err
	}
	line, err := readNonEmpty(conn, br, idle)
	if err != nil {
		return Reply{}, nil, err
	}
	var rep Reply
	switch f := strings.Fields(line); {
	case len(f) == 3 && f[0] == "+FULLRESYNC":
		n, err := strconv.ParseInt(f[2], 10, 64)
		if err != nil {
			return Reply{}, nil, fmt.Errorf("unexpected reply to PSYNC: %q", line)
		}
		rep = Reply{Full: true, Position: Position{ReplID: f[1], Offset: n}}
	case len(f) >= 1 && f[0] == "+CONTINUE" && from != nil:
		rep = Reply{Position: *from}
		if len(f) == 2 {
			rep.Position.ReplID = f[1]
		}
		return rep, nil, nil
	default:
		return Reply{}, nil, refused("PSYNC", strings.TrimPrefix(line, "-"))
	}
	// While it makes the snapshot, the server sends newlines to show it
	// is alive; then "$<length>" or, streamed without a file,
	// "$EOF:<40-byte mark>", the mark following the payload.
	line, err = readNonEmpty(conn, br, idle)
	if err != nil {
		return Reply{}, nil, err
	}
	if !strings.HasPrefix(line, "$") {
		return Reply{}, nil, fmt.Errorf("unexpected reply to PSYNC: %q", line)
	}
	if mark, ok := strings.CutPrefix(line, "$EOF:"); ok {
		if len(mark) != 40 {
			return Reply{}, nil, fmt.Errorf("unexpected EOF mark in the reply to PSYNC: %q", line)
		}
		return rep, &markReader{r: br, mark: []byte(mark)}, nil
	}
	n, err := strconv.ParseInt(line[1:], 10, 64)
	if err != nil || n < 0 {
		return Reply{}, nil, fmt.Errorf("unexpected reply to PSYNC: %q", line)
	}
	return rep, io.LimitReader(br, n), nil
}

func refused(cmd, msg string) error {
	return fmt.Errorf("%w: %s: %s. Managed services often disable replication, and an ACL user needs +psync and +replconf; a dump with SCAN (crsdump without --snapshot) reads such a server", ErrRefused, cmd, msg)
}

// readNonEmpty reads the next line that is not a keepalive newline,
// without its CRLF.
func readNonEmpty(conn net.Conn, br *bufio.Reader, idle time.Duration) (string, error) {
	for {
		conn.SetReadDeadline(time.Now().Add(idle))
		line, err := br.ReadString('\n')
		if err != nil {
			return "", err
		}
		if line = strings.TrimRight(line, "\r\n"); line != "" {
			return line, nil
		}
	}
}

// markReader reads a payload sent with an EOF mark: it ends where the
// last 40 bytes read are the mark, which it does not return. The server
// sends nothing after the mark until the replica acknowledges, so the
// mark is always at the end of what has arrived.
type markReader struct {
	r     *bufio.Reader
	mark  []byte
	buf   []byte
	held  []byte // the last bytes read, not yet returned: they may be the mark
	found bool
}

func (m *markReader) Read(p []byte) (int, error) {
	for {
		if m.found {
			if len(m.held) == 0 {
				return 0, io.EOF
			}
			n := copy(p, m.held)
			m.held = m.held[n:]
			return n, nil
		}
		// Return what cannot be part of the mark.
		if keep := len(m.mark); len(m.held) > keep {
			n := copy(p, m.held[:len(m.held)-keep])
			m.held = m.held[n:]
			return n, nil
		}
		if m.buf == nil {
			m.buf = make([]byte, 64<<10)
		}
		n, err := m.r.Read(m.buf)
		m.held = append(m.held, m.buf[:n]...)
		if k := len(m.held) - len(m.mark); k >= 0 && string(m.held[k:]) == string(m.mark) && m.r.Buffered() == 0 {
			m.held, m.found = m.held[:k], true
			continue
		}
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return 0, err
		}
	}
}
