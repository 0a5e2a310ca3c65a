package target

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"

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
	tgt := openTarget(t, c.Nodes[0].URL)
	r := openRouter(t, tgt)
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

// TestSendTx: a transaction with its position applies all of it or
// nothing. Commands of several databases go with SELECTs crs adds (and
// their replies are not handed over); a command the server refuses to
// queue leaves everything unapplied, the position too, and the
// connection on the database it was on; one that fails inside EXEC is
// handed over as applied, the rest applied with it.
func TestSendTx(t *testing.T) {
	ctx := context.Background()
	s := redistest.Start(t)
	tgt := openTarget(t, s.URL)
	r := openRouter(t, tgt)
	c0, c3 := redistest.Client(t, s, 0), redistest.Client(t, s, 3)
	position := func(at string) []Cmd { return []Cmd{{Args: []string{"HSET", "pos", "at", at}}} }
	type got struct {
		i       int
		v       string
		applied bool
	}
	send := func(cmds []Cmd, at string) ([]got, error) {
		var out []got
		err := r.SendTx(ctx, 0, cmds, position(at), func(i int, v resp.Value, applied bool) error {
			out = append(out, got{i, fmt.Sprintf("%v %s %d", v.Kind == resp.KindError, v.Str, v.Int), applied})
			return nil
		})
		return out, err
	}

	replies, err := send([]Cmd{{Args: []string{"SET", "a", "1"}, DB: 3}, {Args: []string{"INCR", "n"}}, {Args: []string{"INCR", "n"}, DB: 3}}, "1")
	if err != nil || len(replies) != 3 || !replies[0].applied || replies[2].v != "false  1" {
		t.Fatalf("replies %v, %v", replies, err)
	}
	if c3.Get(ctx, "a").Val() != "1" || c0.Get(ctx, "n").Val() != "1" || c0.HGet(ctx, "pos", "at").Val() != "1" {
		t.Fatal("the transaction was not applied where its commands said")
	}

	// Refused while queued (wrong arity): nothing applied.
	replies, err = send([]Cmd{{Args: []string{"SET", "b", "1"}, DB: 5}, {Args: []string{"GET"}, DB: 5}}, "2")
	if err != nil || len(replies) != 1 || replies[0].i != 1 || replies[0].applied {
		t.Fatalf("replies %v, %v", replies, err)
	}
	if c0.HGet(ctx, "pos", "at").Val() != "1" || redistest.Client(t, s, 5).Exists(ctx, "b").Val() != 0 {
		t.Fatal("an aborted transaction applied something")
	}

	// Failing inside EXEC: handed over as applied, the others applied;
	// the connection is still on database 0 after the aborted one.
	c0.Set(ctx, "str", "x", 0)
	replies, err = send([]Cmd{{Args: []string{"INCR", "str"}}, {Args: []string{"SET", "c", "1"}}}, "3")
	if err != nil || len(replies) != 2 || !replies[0].applied || !strings.HasPrefix(replies[0].v, "true") {
		t.Fatalf("replies %v, %v", replies, err)
	}
	if c0.Get(ctx, "c").Val() != "1" || c0.HGet(ctx, "pos", "at").Val() != "3" {
		t.Fatal("the rest of a transaction with a failing command was not applied on database 0")
	}

	// The position refused (a string where its hash goes): the error is
	// the server's, not the connection's.
	err = r.SendTx(ctx, 0, []Cmd{{Args: []string{"SET", "d", "1"}}}, []Cmd{{Args: []string{"HSET", "str", "at", "4"}}}, func(int, resp.Value, bool) error { return nil })
	if !errors.As(err, new(resp.ServerError)) || !strings.Contains(err.Error(), "WRONGTYPE") {
		t.Errorf("a refused position: %v", err)
	}
}
