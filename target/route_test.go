package target

import (
	"context"
	"fmt"
	"net"
	"testing"

	"github.com/crs-tool/crs/internal/redisconn"
	"github.com/crs-tool/crs/internal/redistest"
	"github.com/crs-tool/crs/internal/resp"
)

// TestRouterFollows sends commands through a Router to masters that no
// longer serve their slot (MOVED), to a master whose slot is migrating
// (ASK, for a key already moved), and a transaction that one of them
// redirects: every reply handed over is the one of the master that
// applied it, in the batch's order, and the keys end where they belong.
func TestRouterFollows(t *testing.T) {
	ctx := context.Background()
	c := redistest.StartCluster(t, 3, 0, "")
	o := redisconn.NewOptions()
	o.URL = c.Nodes[0].URL
	tgt, err := Open(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	defer tgt.Close()
	r, err := NewRouter(ctx, tgt)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	cc := c.Client(t)
	wrong := func(key string) int { return (tgt.Node(key) + 1) % 3 }

	// MOVED: every command to the next master, a transaction too.
	var cmds []Cmd
	for i := range 30 {
		key := fmt.Sprintf("k:%d", i)
		cmds = append(cmds, Cmd{Args: []string{"RPUSH", key, "a"}, Node: wrong(key)}, Cmd{Args: []string{"RPUSH", key, "b"}, Node: wrong(key)})
	}
	tx := "{t}:x"
	cmds = append(cmds,
		Cmd{Args: []string{"MULTI"}, Node: wrong(tx)},
		Cmd{Args: []string{"INCR", tx}, Node: wrong(tx)},
		Cmd{Args: []string{"INCR", "{t}:y"}, Node: wrong(tx)},
		Cmd{Args: []string{"EXEC"}, Node: wrong(tx)})
	replies := map[int]resp.Value{}
	var order []int
	if err := r.Send(ctx, cmds, func(i int, v resp.Value) error {
		if _, twice := replies[i]; twice {
			t.Errorf("command %d handed over twice", i)
		}
		replies[i], order = v, append(order, i)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(replies) != len(cmds) || r.Redirected == 0 {
		t.Fatalf("%d replies of %d commands, %d redirected", len(replies), len(cmds), r.Redirected)
	}
	for i, v := range replies {
		if v.Kind == resp.KindError {
			t.Errorf("command %d %v: %s", i, cmds[i].Args, v.Str)
		}
	}
	if exec := replies[len(cmds)-1]; exec.Kind != resp.KindArray || len(exec.Array) != 2 {
		t.Errorf("EXEC's reply: %+v", exec)
	}
	for i := range 30 {
		key := fmt.Sprintf("k:%d", i)
		if got, _ := cc.LRange(ctx, key, 0, -1).Result(); fmt.Sprint(got) != "[a b]" {
			t.Errorf("%s holds %v, want [a b] (in order, once)", key, got)
		}
	}
	if got, _ := cc.Get(ctx, "{t}:y").Result(); got != "1" {
		t.Errorf("the transaction's second key: %q", got)
	}

	// ASK: key m:1's slot migrating from its master to another, the key
	// already moved; the first master answers ASK for it.
	key := "m:1"
	from, to := c.Nodes[tgt.Node(key)], c.Nodes[(tgt.Node(key)+1)%3]
	if err := cc.Set(ctx, key, "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	slot, _ := cc.ClusterKeySlot(ctx, key).Result()
	fc, tc := redistest.Client(t, from, 0), redistest.Client(t, to, 0)
	if err := tc.Do(ctx, "CLUSTER", "SETSLOT", slot, "IMPORTING", redistest.NodeID(t, from)).Err(); err != nil {
		t.Fatal(err)
	}
	if err := fc.Do(ctx, "CLUSTER", "SETSLOT", slot, "MIGRATING", redistest.NodeID(t, to)).Err(); err != nil {
		t.Fatal(err)
	}
	host, port, _ := net.SplitHostPort(to.Addr)
	if err := fc.Do(ctx, "MIGRATE", host, port, key, 0, 5000).Err(); err != nil {
		t.Fatal(err)
	}
	before := r.Redirected
	var got resp.Value
	if err := r.Send(ctx, []Cmd{{Args: []string{"APPEND", key, "w"}, Node: tgt.Node(key)}}, func(_ int, v resp.Value) error { got = v; return nil }); err != nil {
		t.Fatal(err)
	}
	if got.Kind != resp.KindInt || got.Int != 2 || r.Redirected != before+1 {
		t.Errorf("APPEND during the migration: %+v, %d redirections", got, r.Redirected-before)
	}
}
