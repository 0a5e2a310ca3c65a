package livesync

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/crs-tool/crs/internal/redisconn"
)

// ErrBusy is returned when another crs sync writes to the target.
var ErrBusy = errors.New("another crs sync writes to this target")

// claimPrefix begins the client name a sync gives one connection to each
// node of its target for as long as it runs: crs-sync-<unix ms>-<pid>-<host>.
const claimPrefix = "crs-sync-"

// claim holds the target for one sync: a connection to each node, named
// for this process. Two syncs into one target would each apply the stream
// from the same position, twice over; the second to start sees the
// first's connections and stops, naming it. The claim lasts exactly as
// long as the process holds its connections, so a killed sync holds
// nothing.
type claim struct {
	clients []*redis.Client
	conns   []*redis.Conn
}

// Claim holds the target opts names for this sync until release is
// called (see claim); it fails with ErrBusy, naming the other, where
// another crs sync holds it.
func Claim(ctx context.Context, opts Options, stderr io.Writer) (release func(), err error) {
	tgt, err := openTarget(ctx, opts.Load.Conn)
	if err != nil {
		return nil, fmt.Errorf("the target: %w", err)
	}
	defer tgt.close()
	say := func(format string, args ...any) {
		if !opts.Quiet && !opts.JSON {
			fmt.Fprintf(stderr, format+"\n", args...)
		}
	}
	cl, err := claimTarget(ctx, tgt, say)
	if err != nil {
		return nil, err
	}
	return cl.release, nil
}

// claimTarget names a connection to each node of t, then looks for
// another sync's: the earlier of two that started together keeps the
// target. A target that refuses CLIENT LIST is not claimed (warned).
func claimTarget(ctx context.Context, t *targetSide, say func(string, ...any)) (_ *claim, err error) {
	host, _ := os.Hostname()
	// The sequence number tells apart two claims of one process in one
	// millisecond (tests make them).
	me := fmt.Sprintf("%s%d-%d-%d-%s", claimPrefix, time.Now().UnixMilli(), os.Getpid(), claims.Add(1), strings.ReplaceAll(host, " ", "_"))
	cl := &claim{}
	defer func() {
		if err != nil {
			cl.release()
		}
	}()
	for _, n := range t.tgt.Nodes() {
		c, _, err := redisconn.Open(ctx, n, 0, 1)
		if err != nil {
			return nil, fmt.Errorf("the target: %w", err)
		}
		cl.clients = append(cl.clients, c)
		conn := c.Conn()
		cl.conns = append(cl.conns, conn)
		if err := conn.ClientSetName(ctx, me).Err(); err != nil {
			say("crs sync: BEWARE: the target refuses CLIENT SETNAME (%v), so nothing stops a second crs sync into it", err)
			return cl, nil
		}
	}
	for _, conn := range cl.conns {
		list, err := conn.ClientList(ctx).Result()
		if err != nil {
			say("crs sync: BEWARE: the target refuses CLIENT LIST (%v), so nothing stops a second crs sync into it", err)
			return cl, nil
		}
		if other := earlierSync(list, me); other != "" {
			return nil, fmt.Errorf("%w: %s; a target takes one crs sync at a time (the other's claim ends when it exits or is killed)", ErrBusy, other)
		}
	}
	return cl, nil
}

// earlierSync describes the connection of another sync in a CLIENT LIST
// that started before me (or at the same millisecond, with a smaller
// name), "" when there is none.
func earlierSync(list, me string) string {
	for _, line := range strings.Split(list, "\n") {
		var name, addr string
		for _, f := range strings.Fields(line) {
			if v, ok := strings.CutPrefix(f, "name="); ok {
				name = v
			} else if v, ok := strings.CutPrefix(f, "addr="); ok {
				addr = v
			}
		}
		if !strings.HasPrefix(name, claimPrefix) || name == me || !earlier(name, me) {
			continue
		}
		// ms-pid-seq-host; an earlier crs wrote ms-pid-host.
		parts := strings.SplitN(strings.TrimPrefix(name, claimPrefix), "-", 4)
		if len(parts) < 3 {
			return fmt.Sprintf("client %s (%s)", addr, name)
		}
		host := parts[2]
		if _, err := strconv.Atoi(parts[2]); err == nil && len(parts) == 4 {
			host = parts[3]
		} else if len(parts) == 4 {
			host = parts[2] + "-" + parts[3]
		}
		ms, _ := strconv.ParseInt(parts[0], 10, 64)
		return fmt.Sprintf("pid %s on host %s, since %s (its connection %s)", parts[1], host, time.UnixMilli(ms).Format(time.RFC3339), addr)
	}
	return ""
}

// claims numbers the claims this process makes.
var claims atomic.Int64

// earlier orders two claims by their start, then by name.
func earlier(a, b string) bool {
	ta, _ := strconv.ParseInt(strings.SplitN(strings.TrimPrefix(a, claimPrefix), "-", 2)[0], 10, 64)
	tb, _ := strconv.ParseInt(strings.SplitN(strings.TrimPrefix(b, claimPrefix), "-", 2)[0], 10, 64)
	return ta < tb || (ta == tb && a < b)
}

// release ends the claim.
func (cl *claim) release() {
	if cl == nil {
		return
	}
	for _, conn := range cl.conns {
		conn.Close()
	}
	for _, c := range cl.clients {
		c.Close()
	}
}
