package target

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/crs-tool/crs/internal/resp"
)

// A Router sends commands to a target's servers: each batch of commands,
// in order on each server, in one round trip a server; into a cluster it
// follows the redirections (MOVED once a slot moved, ASK while it moves)
// by sending the commands they name again where the cluster says, in
// their order, ASKING first while a slot moves, and reads the slot map
// again after MOVED. A source's transaction (MULTI … EXEC) goes as one:
// redirected, all of it goes. The loader's AOF commands and crs sync's
// stream into a cluster both write through it.
type Router struct {
	tgt     Target
	conns   []*resp.Conn
	dbs     []int
	others  map[string]*resp.Conn
	otherDB map[string]*int
	// Redirected counts the commands (transactions) sent again where a
	// redirection said.
	Redirected int64
}

// Cmd is a command for a Router: its arguments (its name first), the
// database it writes (a SELECT goes before it where the connection is on
// another), and the index of the server (in Nodes) that takes it.
type Cmd struct {
	Args []string
	DB   int
	Node int
}

// NewRouter connects to each of the target's servers.
func NewRouter(ctx context.Context, tgt Target) (*Router, error) {
	r := &Router{tgt: tgt}
	for _, n := range tgt.Nodes() {
		c, err := Dial(ctx, n, "", 0)
		if err != nil {
			r.Close()
			return nil, err
		}
		r.conns, r.dbs = append(r.conns, c), append(r.dbs, 0)
	}
	return r, nil
}

// Do sends one command to database db of server node (in Nodes) and
// returns its reply, after any redirections; an error reply is returned
// as a resp.ServerError.
func (r *Router) Do(ctx context.Context, node, db int, args ...string) (resp.Value, error) {
	var out resp.Value
	err := r.Send(ctx, []Cmd{{Args: args, DB: db, Node: node}}, func(_ int, v resp.Value) error {
		out = v
		return nil
	})
	if err == nil && out.Kind == resp.KindError {
		err = resp.ServerError(out.Str)
	}
	return out, err
}

// SendTx sends cmds to server node (in Nodes) as one transaction, MULTI
// … EXEC, with the commands of position (crs's own: where a stream's
// commands are up to) last in it: the server runs all of them or none
// (one that fails inside EXEC does not undo the others). It calls reply
// with each of cmds' replies (its index in cmds): EXEC's result for it
// (applied), or the server's refusal to queue it (not applied: then EXEC
// ran nothing). A refusal of a command of position is the error, a
// resp.ServerError. No redirection is followed: a transaction goes to a
// server that holds every key of it.
func (r *Router) SendTx(ctx context.Context, node int, cmds, position []Cmd, reply func(i int, v resp.Value, applied bool) error) error {
	c, db := r.conns[node], &r.dbs[node]
	const own = -1
	var sent []int // cmds' index of each command queued, or own
	queue := func(i int, cmd Cmd) {
		if cmd.DB != *db {
			c.Begin("SELECT", 1).Str(strconv.Itoa(cmd.DB))
			sent, *db = append(sent, own), cmd.DB
		}
		c.Begin(cmd.Args[0], len(cmd.Args)-1)
		for _, s := range cmd.Args[1:] {
			c.Str(s)
		}
		sent = append(sent, i)
	}
	before := *db
	c.Begin("MULTI", 0)
	sent = append(sent, own)
	for i, cmd := range cmds {
		queue(i, cmd)
	}
	for _, cmd := range position {
		queue(own, cmd)
	}
	c.Begin("EXEC", 0)
	var stop, refused error
	queueRefused := false
	err := c.ExecValues(ctx, func(j int, v resp.Value) error {
		switch {
		case stop != nil:
		case j == len(sent): // EXEC: the replies of those queued, in order
			if v.Kind != resp.KindArray {
				*db = before // the SELECTs queued did not run either
				if refused == nil && !queueRefused {
					refused = fmt.Errorf("EXEC: %w", resp.ServerError(v.Str))
				}
				return nil
			}
			for n, e := range v.Array {
				switch i := sent[n+1]; {
				case i >= 0:
					stop = reply(i, e, true)
				case e.Kind == resp.KindError && refused == nil:
					refused = resp.ServerError(e.Str)
				}
				if stop != nil {
					break
				}
			}
		case v.Kind != resp.KindError:
		case sent[j] >= 0:
			queueRefused = true
			stop = reply(sent[j], v, false)
		case refused == nil:
			refused = resp.ServerError(v.Str)
		}
		return nil
	})
	switch {
	case err != nil:
		return err
	case stop != nil:
		return stop
	}
	return refused
}

// Close closes the connections.
func (r *Router) Close() {
	for _, c := range r.conns {
		c.Close()
	}
	for _, c := range r.others {
		c.Close()
	}
}

// Send sends cmds, those of each server in one pipeline, and calls reply
// with each command's reply (its index in cmds), the server's that
// applied it: after any redirections, and a transaction's replies only
// once its EXEC has run where it went. The first error reply of a
// SELECT stops it; reply's error stops it too. It follows up to five
// redirections of a command.
func (r *Router) Send(ctx context.Context, cmds []Cmd, reply func(i int, v resp.Value) error) error {
	groups := make([]route, len(r.conns))
	for n := range r.conns {
		groups[n] = route{conn: r.conns[n], db: &r.dbs[n]}
	}
	for i, c := range cmds {
		groups[c.Node].idx = append(groups[c.Node].idx, i)
	}
	for hop := 0; ; hop++ {
		var again []redirect
		for _, g := range groups {
			if len(g.idx) == 0 {
				continue
			}
			a, err := r.send(ctx, cmds, g, reply)
			if err != nil {
				return err
			}
			again = append(again, a...)
		}
		if len(again) == 0 {
			return nil
		}
		if hop == 5 {
			c := cmds[again[0].idx[0]]
			return fmt.Errorf("the target cluster redirected %s six times (it is resharding faster than crs follows)", strings.ToUpper(c.Args[0]))
		}
		var err error
		if groups, err = r.regroup(ctx, again); err != nil {
			return err
		}
	}
}

// route is commands (their indexes in a batch, in order) for one
// connection; ask sends each (each transaction) after ASKING.
type route struct {
	conn *resp.Conn
	db   *int // the connection's selected database
	idx  []int
	ask  bool
}

// redirect is a command, or a whole transaction, a server sent elsewhere.
type redirect struct {
	idx  []int
	addr string
	ask  bool
}

// regroup groups redirected commands by where they go, in their order,
// after reading the slot map again where one was MOVED.
func (r *Router) regroup(ctx context.Context, again []redirect) ([]route, error) {
	type where struct {
		addr string
		ask  bool
	}
	moved := false
	var groups []route
	at := map[where]int{}
	for _, rd := range again {
		moved = moved || !rd.ask
		k := where{rd.addr, rd.ask}
		g, ok := at[k]
		if !ok {
			c, db, err := r.connTo(ctx, rd.addr)
			if err != nil {
				return nil, err
			}
			g = len(groups)
			at[k] = g
			groups = append(groups, route{conn: c, db: db, ask: rd.ask})
		}
		groups[g].idx = append(groups[g].idx, rd.idx...)
	}
	if moved {
		r.tgt.Moved(ctx)
	}
	for _, g := range groups {
		slices.Sort(g.idx) // the batch's order
	}
	r.Redirected += int64(len(again))
	return groups, nil
}

// connTo returns a connection to the server at addr, and its selected
// database: one of the nodes', or one of its own.
func (r *Router) connTo(ctx context.Context, addr string) (*resp.Conn, *int, error) {
	for i, n := range r.tgt.Nodes() {
		if n.Address() == addr {
			return r.conns[i], &r.dbs[i], nil
		}
	}
	if c := r.others[addr]; c != nil {
		return c, r.otherDB[addr], nil
	}
	c, err := Dial(ctx, r.tgt.Nodes()[0], addr, 0)
	if err != nil {
		return nil, nil, err
	}
	if r.others == nil {
		r.others, r.otherDB = map[string]*resp.Conn{}, map[string]*int{}
	}
	r.others[addr], r.otherDB[addr] = c, new(int)
	return c, r.otherDB[addr], nil
}

// send sends g's commands in one pipeline and hands their replies over,
// returning the commands the server redirected.
func (r *Router) send(ctx context.Context, cmds []Cmd, g route, reply func(int, resp.Value) error) (again []redirect, err error) {
	c := g.conn
	const asking, selecting = -1, -2
	var sent []int // the batch's index of each command queued, or asking, selecting
	multi := false
	for _, i := range g.idx {
		cmd := cmds[i]
		if cmd.DB != *g.db { // inside a transaction too, where it is queued
			c.Begin("SELECT", 1).Str(strconv.Itoa(cmd.DB))
			sent, *g.db = append(sent, selecting), cmd.DB
		}
		// ASKING holds for the next command, or a whole MULTI … EXEC.
		if g.ask && !multi {
			c.Begin("ASKING", 0)
			sent = append(sent, asking)
		}
		multi = isCmd(cmd, "multi") || multi && !isCmd(cmd, "exec")
		c.Begin(cmd.Args[0], len(cmd.Args)-1)
		for _, s := range cmd.Args[1:] {
			c.Str(s)
		}
		sent = append(sent, i)
	}
	var txAll []int            // a transaction open here: MULTI to EXEC
	var txReplies []resp.Value // and its replies, handed over at its EXEC
	var txOwn []bool           // of each command it queued, whether it is a SELECT of crs's
	var txTo *redirect         // where a command of it was redirected
	var stop error
	err = c.ExecValues(ctx, func(j int, v resp.Value) error {
		k := sent[j]
		switch {
		case stop != nil || k == asking:
			return nil
		case k == selecting:
			if v.Kind == resp.KindError {
				stop = fmt.Errorf("SELECT: %s", v.Str)
			} else if txAll != nil {
				txOwn = append(txOwn, true)
			}
			return nil
		}
		cmd := cmds[k]
		addr, ask, redirected := "", false, false
		if v.Kind == resp.KindError {
			addr, ask, redirected = r.tgt.Redirection(v.Str)
		}
		switch {
		case isCmd(cmd, "multi"):
			txAll, txReplies, txOwn, txTo = []int{k}, []resp.Value{v}, nil, nil
		case txAll != nil && isCmd(cmd, "exec"):
			if txTo != nil { // EXECABORT: none of it ran here; all of it goes there
				again = append(again, redirect{idx: append(txAll, k), addr: txTo.addr, ask: txTo.ask})
			} else {
				for n, q := range txAll {
					if stop == nil {
						stop = reply(q, txReplies[n])
					}
				}
				if stop == nil {
					stop = reply(k, withoutOwn(v, txOwn))
				}
			}
			txAll, txReplies, txOwn, txTo = nil, nil, nil, nil
		case txAll != nil:
			txAll, txReplies, txOwn = append(txAll, k), append(txReplies, v), append(txOwn, false)
			if redirected && txTo == nil {
				txTo = &redirect{addr: addr, ask: ask}
			}
		case redirected:
			again = append(again, redirect{idx: []int{k}, addr: addr, ask: ask})
		default:
			stop = reply(k, v)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return again, stop
}

// withoutOwn is EXEC's reply without the replies of the SELECTs crs
// queued in the transaction (own says which they are).
func withoutOwn(v resp.Value, own []bool) resp.Value {
	if v.Kind != resp.KindArray || !slices.Contains(own, true) {
		return v
	}
	var kept []resp.Value
	for n, e := range v.Array {
		if n >= len(own) || !own[n] {
			kept = append(kept, e)
		}
	}
	v.Array = kept
	return v
}

func isCmd(c Cmd, name string) bool { return strings.EqualFold(c.Args[0], name) }
