package repl

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/redis/go-redis/v9"

	"github.com/crs-tool/crs/internal/redisconn"
	"github.com/crs-tool/crs/internal/resp"
)

// NotifyFlags are the notify-keyspace-events classes a sync by
// notifications needs: keyspace events (K) of every kind of write (A:
// generic, string, list, set, hash, sorted set, stream, module key,
// expired and evicted).
const NotifyFlags = "KA"

// ErrNotifications is wrapped when the source's keyspace notifications
// are not set as a sync by notifications needs, and crs cannot set them.
var ErrNotifications = errors.New("keyspace notifications are off")

// EnsureNotifications checks that the server publishes the keyspace
// notifications a sync needs and, where they are off, turns them on with
// CONFIG SET. It returns the setting to restore at the end (nil when it
// changed nothing) and a line saying what it did.
func (s *Server) EnsureNotifications(ctx context.Context) (restore *string, said string, err error) {
	v, err := s.c.ConfigGet(ctx, "notify-keyspace-events").Result()
	cur, ok := v["notify-keyspace-events"]
	if err != nil || !ok {
		return nil, "", fmt.Errorf("%w: CONFIG GET notify-keyspace-events was refused (%v): a sync by notifications needs it to hold %s; on a managed service, set notify-keyspace-events = %s in its parameter group", ErrNotifications, err, NotifyFlags, NotifyFlags)
	}
	if hasNotifyFlags(cur) && s.masters == nil {
		return nil, fmt.Sprintf("the source publishes keyspace notifications (notify-keyspace-events %q)", cur), nil
	}
	want := cur
	if !hasNotifyFlags(cur) {
		want = cur + NotifyFlags
	}
	// Every master of a cluster publishes its own.
	err = s.each(func(c *redis.Client) error { return c.ConfigSet(ctx, "notify-keyspace-events", want).Err() })
	if err != nil {
		return nil, "", fmt.Errorf("%w: the source's notify-keyspace-events is %q, a sync by notifications needs %s, and CONFIG SET was refused (%v): on a managed service, set notify-keyspace-events = %s in its parameter group", ErrNotifications, cur, NotifyFlags, err, NotifyFlags)
	}
	if want == cur {
		return nil, fmt.Sprintf("the source publishes keyspace notifications (notify-keyspace-events %q, now on every master)", cur), nil
	}
	return &cur, fmt.Sprintf("turned on the source's keyspace notifications (notify-keyspace-events %q, was %q; restored at the end)", want, cur), nil
}

// RestoreNotifications sets notify-keyspace-events back.
func (s *Server) RestoreNotifications(ctx context.Context, v string) error {
	return s.each(func(c *redis.Client) error { return c.ConfigSet(ctx, "notify-keyspace-events", v).Err() })
}

// hasNotifyFlags reports whether flags hold K and every class of A.
func hasNotifyFlags(flags string) bool {
	if !strings.Contains(flags, "K") {
		return false
	}
	if strings.Contains(flags, "A") {
		return true
	}
	for _, c := range "g$lshzxet" {
		if !strings.ContainsRune(flags, c) {
			return false
		}
	}
	return true
}

// Event is a keyspace notification: key of database DB had Op done to
// it; or, with Barrier, the answer to a Barrier call, which comes after
// every notification published before it.
type Event struct {
	DB      int
	Key     string
	Op      string
	Barrier bool
}

// Subscription receives keyspace notifications from one server, or from
// every master of a cluster (notifications are per node), on connections
// of its own. It never reconnects by itself: a lost connection means
// notifications were lost, which Next returns as an error.
type Subscription struct {
	subs   []*nodeSub
	events chan Event
	errs   chan error
	pongs  atomic.Int32 // barrier answers still to come
	done   chan struct{}
}

// nodeSub is the subscription to one server.
type nodeSub struct {
	c    *resp.Conn
	addr string
}

// Subscribe subscribes to every keyspace notification of each server
// nodes names (PSUBSCRIBE __keyspace@*__:*).
func Subscribe(ctx context.Context, nodes ...redisconn.Options) (_ *Subscription, err error) {
	s := &Subscription{events: make(chan Event, 4096), errs: make(chan error, len(nodes)), done: make(chan struct{})}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	for _, o := range nodes {
		n, err := subscribe(ctx, o)
		if err != nil {
			return nil, err
		}
		s.subs = append(s.subs, n)
	}
	for _, n := range s.subs {
		go s.receive(n)
	}
	return s, nil
}

func subscribe(ctx context.Context, opts redisconn.Options) (*nodeSub, error) {
	at, err := redisconn.Resolve(ctx, opts)
	if err != nil {
		return nil, err
	}
	ro, err := at.RESP(0)
	if err != nil {
		return nil, err
	}
	ro.IOTimeout = 0
	c, err := resp.Dial(ctx, ro)
	if err != nil {
		return nil, &redisconn.Error{Addr: at.Address(), Err: err}
	}
	n := &nodeSub{c: c, addr: at.Address()}
	c.Begin("PSUBSCRIBE", 1).Str("__keyspace@*__:*")
	if err := c.Send(); err != nil {
		c.Close()
		return nil, err
	}
	v, err := c.Receive()
	if err == nil && (v.Kind == resp.KindError || len(v.Array) < 1 || v.Array[0].Str != "psubscribe") {
		err = fmt.Errorf("psubscribe: %s", v.Str)
	}
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("subscribe to the keyspace notifications of %s: %w", n.addr, err)
	}
	return n, nil
}

// receive passes on one server's notifications until its connection ends.
func (s *Subscription) receive(n *nodeSub) {
	for {
		e, err := n.next()
		if err != nil {
			s.errs <- err
			return
		}
		select {
		case s.events <- e:
		case <-s.done:
			return
		}
	}
}

func (n *nodeSub) next() (Event, error) {
	for {
		v, err := n.c.Receive()
		if err != nil {
			return Event{}, fmt.Errorf("the subscription to the keyspace notifications of %s ended, so notifications may have been lost: %w", n.addr, err)
		}
		if v.Kind == resp.KindError {
			return Event{}, fmt.Errorf("the subscription to the keyspace notifications of %s: %w", n.addr, resp.ServerError(v.Str))
		}
		if v.Kind == resp.KindArray && len(v.Array) == 2 && v.Array[0].Str == "pong" {
			return Event{Barrier: true}, nil
		}
		if v.Kind != resp.KindArray || len(v.Array) != 4 || v.Array[0].Str != "pmessage" {
			continue
		}
		rest, ok := strings.CutPrefix(v.Array[2].Str, "__keyspace@")
		dbs, key, ok2 := strings.Cut(rest, "__:")
		db, err := strconv.Atoi(dbs)
		if !ok || !ok2 || err != nil {
			continue
		}
		return Event{DB: db, Key: strings.Clone(key), Op: strings.Clone(v.Array[3].Str)}, nil
	}
}

// Next returns the next notification, waiting for it; an Event with
// Barrier comes once every server has answered a Barrier call.
func (s *Subscription) Next() (Event, error) {
	for {
		select {
		case err := <-s.errs:
			return Event{}, err
		case e := <-s.events:
			if !e.Barrier {
				return e, nil
			}
			if s.pongs.Add(-1) == 0 {
				return e, nil
			}
		}
	}
}

// Barrier asks for an Event with Barrier set, which arrives after every
// notification the servers published before it (a PING on each
// subscribed connection).
func (s *Subscription) Barrier() error {
	s.pongs.Store(int32(len(s.subs)))
	for _, n := range s.subs {
		n.c.Begin("PING", 0)
		if err := n.c.Send(); err != nil {
			return err
		}
	}
	return nil
}

// Close ends the subscription; a Next waiting returns.
func (s *Subscription) Close() error {
	select {
	case <-s.done:
	default:
		close(s.done)
	}
	for _, n := range s.subs {
		n.c.Close()
	}
	return nil
}
