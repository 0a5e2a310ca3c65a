package livesync

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"

	"github.com/redis/go-redis/v9"

	"github.com/crs-tool/crs/internal/redisconn"
)

// expiryWatch collects the keys the target expires on its own clock, as
// its keyspace notifications name them (every master's, on a cluster):
// each is read again from the source (see repair), which may have kept
// it alive, or written it before the expiry where the target applied the
// write after. It turns the notifications on where they are off, and back
// at the end.
type expiryWatch struct {
	clients []*redis.Client
	subs    []*redis.PubSub
	restore []*string // each node's notify-keyspace-events before, nil where unchanged
	addrs   []string  // each node's address
	said    []string  // what was put back that a killed sync had left
	pongs   []chan string
	// route names the shard (the source master's link) a key of the
	// target comes from, -1 for none.
	route func(dbKey) int

	mu    sync.Mutex
	keys  map[int]map[dbKey]struct{} // by shard, of the target
	err   error
	token int
	wg    sync.WaitGroup
}

// expiredChannels is the pattern of the channels the expired events of
// every database come on.
const expiredChannels = "__keyevent@*__:expired"

// watchExpiries subscribes to the target's expired events. Where the
// target refuses CONFIG (a managed service), it returns nil and the
// reason.
func watchExpiries(ctx context.Context, t *targetSide, route func(dbKey) int) (_ *expiryWatch, why error, err error) {
	w := &expiryWatch{keys: map[int]map[dbKey]struct{}{}, route: route}
	defer func() {
		if err != nil || why != nil {
			w.close(context.WithoutCancel(ctx))
		}
	}()
	for _, n := range t.tgt.Nodes() {
		c, _, err := redisconn.Open(ctx, n, 0, 1)
		if err != nil {
			return nil, nil, err
		}
		w.clients, w.addrs = append(w.clients, c), append(w.addrs, n.Address())
		undone, err := redisconn.UndoLeftover(ctx, n.Address(), "notify-keyspace-events", c)
		if err != nil {
			return nil, err, nil
		}
		w.said = append(w.said, undone)
		v, err := c.ConfigGet(ctx, "notify-keyspace-events").Result()
		cur, ok := v["notify-keyspace-events"]
		if err != nil || !ok {
			return nil, fmt.Errorf("CONFIG GET notify-keyspace-events: %v", err), nil
		}
		w.restore = append(w.restore, nil)
		if !expiredOn(cur) {
			redisconn.NoteConfig(n.Address(), "notify-keyspace-events", cur)
			if err := c.ConfigSet(ctx, "notify-keyspace-events", cur+"Ex").Err(); err != nil {
				return nil, fmt.Errorf("CONFIG SET notify-keyspace-events: %w", err), nil
			}
			w.restore[len(w.restore)-1] = &cur
		}
	}
	for _, c := range w.clients {
		ps := c.PSubscribe(ctx, expiredChannels)
		if _, err := ps.Receive(ctx); err != nil {
			ps.Close()
			return nil, nil, fmt.Errorf("the target: psubscribe %s: %w", expiredChannels, err)
		}
		pongs := make(chan string, 1)
		w.subs, w.pongs = append(w.subs, ps), append(w.pongs, pongs)
		w.wg.Add(1)
		go w.collect(ps, pongs)
	}
	return w, nil, nil
}

// expiredOn reports whether notify-keyspace-events flags publish the
// expired keyevents.
func expiredOn(flags string) bool {
	return strings.Contains(flags, "E") && (strings.Contains(flags, "x") || strings.Contains(flags, "A"))
}

// collect adds every key expired, until the subscription ends.
func (w *expiryWatch) collect(ps *redis.PubSub, pongs chan<- string) {
	defer w.wg.Done()
	for {
		msg, err := ps.Receive(context.Background())
		if err != nil {
			w.mu.Lock()
			if w.err == nil && w.subs != nil {
				w.err = fmt.Errorf("the target's keyspace notifications: %w", err)
			}
			w.mu.Unlock()
			close(pongs)
			return
		}
		switch m := msg.(type) {
		case *redis.Message:
			db, err := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(m.Channel, "__keyevent@"), "__:expired"))
			if err != nil {
				continue
			}
			k := dbKey{db, m.Payload}
			shard := w.route(k)
			if shard < 0 {
				continue
			}
			w.mu.Lock()
			if w.keys[shard] == nil {
				w.keys[shard] = map[dbKey]struct{}{}
			}
			w.keys[shard][k] = struct{}{}
			w.mu.Unlock()
		case *redis.Pong:
			pongs <- m.Payload
		}
	}
}

// barrier returns once every expired event published before it has been
// collected: a PING on each subscription, whose answer comes after them.
func (w *expiryWatch) barrier(ctx context.Context) error {
	w.mu.Lock()
	w.token++
	token := fmt.Sprintf("crs-barrier-%d", w.token)
	w.mu.Unlock()
	for i, ps := range w.subs {
		if err := ps.Ping(ctx, token); err != nil {
			return fmt.Errorf("the target's keyspace notifications: %w", err)
		}
		for {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case p, ok := <-w.pongs[i]:
				if !ok {
					return w.failed()
				}
				if p != token {
					continue
				}
			}
			break
		}
	}
	return nil
}

func (w *expiryWatch) failed() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// take returns the keys of shard expired since its last take (of the
// target's databases), or the error that ended a subscription.
func (w *expiryWatch) take(shard int) ([]dbKey, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		return nil, w.err
	}
	keys := w.keys[shard]
	if len(keys) == 0 {
		return nil, nil
	}
	out := make([]dbKey, 0, len(keys))
	for k := range keys {
		out = append(out, k)
	}
	clear(keys)
	return out, nil
}

// close ends the subscriptions and puts the notification settings back.
func (w *expiryWatch) close(ctx context.Context) {
	w.mu.Lock()
	subs := w.subs
	w.subs = nil
	w.mu.Unlock()
	for _, ps := range subs {
		ps.Close()
	}
	w.wg.Wait()
	for i, c := range w.clients {
		if i < len(w.restore) && w.restore[i] != nil {
			if c.ConfigSet(ctx, "notify-keyspace-events", *w.restore[i]).Err() == nil {
				redisconn.ForgetConfig(w.addrs[i], "notify-keyspace-events")
			}
		}
		c.Close()
	}
}
