package repl

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/crs-tool/crs/internal/redisconn"
	"github.com/crs-tool/crs/internal/resp"
)

// NotifyFlags are the notify-keyspace-events classes a sync by
// notifications needs: keyspace events (K) of every kind of write (A:
// generic, string, list, set, hash, sorted set, stream, module key,
// expired and evicted).
const NotifyFlags = "KA"

// ErrNoConfig is wrapped when the server refuses CONFIG GET, so that
// its notification setting can only be learned by ProbeNotifications.
var ErrNoConfig = errors.New("CONFIG is refused")

// ErrNotifications is wrapped when the source's keyspace notifications
// are not set as a sync by notifications needs, and crs cannot set them.
var ErrNotifications = errors.New("keyspace notifications are off")

// EnsureNotifications checks that the server publishes the keyspace
// notifications a sync needs and, where they are off, turns them on with
// CONFIG SET. It returns the setting to restore at the end (nil when it
// changed nothing) and a line saying what it did.
func (s *Server) EnsureNotifications(ctx context.Context) (restore *string, said string, err error) {
	undone, err := redisconn.UndoLeftover(ctx, s.opts.Address(), "notify-keyspace-events", s.nodes()...)
	if err != nil {
		return nil, "", fmt.Errorf("source: %w", err)
	}
	if undone != "" {
		said = undone + "; "
	}
	v, err := s.c.ConfigGet(ctx, "notify-keyspace-events").Result()
	cur, ok := v["notify-keyspace-events"]
	if err != nil || !ok {
		return nil, "", fmt.Errorf("%w: CONFIG GET notify-keyspace-events: %v", ErrNoConfig, err)
	}
	if hasNotifyFlags(cur) && s.masters == nil {
		return nil, said + fmt.Sprintf("the source publishes keyspace notifications (notify-keyspace-events %q)", cur), nil
	}
	want := cur
	if !hasNotifyFlags(cur) {
		want = cur + NotifyFlags
	}
	if want != cur {
		redisconn.NoteConfig(s.opts.Address(), "notify-keyspace-events", cur)
	}
	// Every master of a cluster publishes its own.
	err = s.each(func(c *redis.Client) error { return c.ConfigSet(ctx, "notify-keyspace-events", want).Err() })
	if err != nil {
		return nil, "", fmt.Errorf("%w: the source's notify-keyspace-events is %q, a sync by notifications needs %s, and CONFIG SET was refused (%v): on a managed service, set notify-keyspace-events = %s in its parameter group", ErrNotifications, cur, NotifyFlags, err, NotifyFlags)
	}
	if want == cur {
		return nil, said + fmt.Sprintf("the source publishes keyspace notifications (notify-keyspace-events %q, now on every master)", cur), nil
	}
	return &cur, said + fmt.Sprintf("turned on the source's keyspace notifications (notify-keyspace-events %q, was %q; restored at the end)", want, cur), nil
}

// RestoreNotifications sets notify-keyspace-events back.
func (s *Server) RestoreNotifications(ctx context.Context, v string) error {
	err := s.each(func(c *redis.Client) error { return c.ConfigSet(ctx, "notify-keyspace-events", v).Err() })
	if err == nil {
		redisconn.ForgetConfig(s.opts.Address(), "notify-keyspace-events")
	}
	return err
}

// nodes returns the clients of the server, or of every master.
func (s *Server) nodes() []*redis.Client {
	if s.masters == nil {
		return []*redis.Client{s.c}
	}
	return s.masters
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
	early  []Event      // notifications read by ProbeNotifications, for Next
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
	if len(s.early) > 0 {
		e := s.early[0]
		s.early = s.early[1:]
		return e, nil
	}
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

// ProbeNotifications proves, where CONFIG is refused, that the server
// publishes the notifications a sync needs: it writes probe keys of every
// type on each master (SET, LPUSH, SADD, HSET, ZADD, XADD, DEL, and a key
// left to expire) and waits, for a while at most, for each one's
// notification on sub. The probe keys are deleted.
func (s *Server) ProbeNotifications(ctx context.Context, sub *Subscription, wait time.Duration) error {
	var want []string
	err := s.eachNamed(func(name string, c *redis.Client) error {
		key := probeKey(s, name)
		exp := key + ":x"
		_, err := c.Pipelined(ctx, func(p redis.Pipeliner) error {
			p.Set(ctx, key+":s", "v", 0)
			p.LPush(ctx, key+":l", "v")
			p.SAdd(ctx, key+":t", "v")
			p.HSet(ctx, key+":h", "f", "v")
			p.ZAdd(ctx, key+":z", redis.Z{Member: "v"})
			p.XAdd(ctx, &redis.XAddArgs{Stream: key + ":x2", Values: []any{"f", "v"}})
			p.Del(ctx, key+":s", key+":l", key+":t", key+":h", key+":z", key+":x2")
			p.Set(ctx, exp, "v", time.Millisecond)
			return nil
		})
		if err != nil {
			return fmt.Errorf("probe the keyspace notifications: %w", err)
		}
		// Read it until it is gone (a read of an expired key expires it),
		// a millisecond apart, for the wait at most.
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for deadline := time.Now().Add(wait); c.Exists(ctx, exp).Val() == 1 && time.Now().Before(deadline); {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-tick.C:
			}
		}
		want = append(want, probeEvents...)
		return nil
	})
	if err != nil {
		return err
	}
	got, need := map[string]int{}, map[string]int{}
	for _, ev := range want {
		need[ev]++
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for missing(need, got) != "" {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-sub.errs:
			return err
		case e := <-sub.events:
			if strings.HasPrefix(e.Key, "crs:probe:") {
				got[e.Op]++
			} else {
				sub.early = append(sub.early, e) // a change, for Next
			}
		case <-timer.C:
			return fmt.Errorf("%w: CONFIG is refused, and writing probe keys brought no %s notification within %s: a sync by notifications needs notify-keyspace-events to hold %s; on a managed service, set notify-keyspace-events = %s in its parameter group", ErrNotifications, missing(need, got), wait, NotifyFlags, NotifyFlags)
		}
	}
	return nil
}

// probeEvents are the notifications the probe keys bring.
var probeEvents = []string{"set", "lpush", "sadd", "hset", "zadd", "xadd", "del", "expired"}

// missing names an event of need that got lacks ("" when none).
func missing(need, got map[string]int) string {
	for _, ev := range probeEvents {
		if got[ev] < need[ev] {
			return ev
		}
	}
	return ""
}

// probeKey is a probe key name on the master name (one whose slot that
// master serves, on a cluster).
func probeKey(s *Server, name string) string {
	base := fmt.Sprintf("crs:probe:%d", time.Now().UnixNano())
	if s.slots == nil {
		return base
	}
	for i := 0; ; i++ {
		k := fmt.Sprintf("%s:{%d}", base, i)
		if o := s.slots.Owner(k); o >= 0 && s.slots.Shards[o].Master.Addr == name {
			return k
		}
	}
}
