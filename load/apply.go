package load

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/crs-tool/crs/internal/ratelimit"
	"github.com/crs-tool/crs/internal/resp"
	"github.com/crs-tool/crs/records"
	"github.com/crs-tool/crs/target"
)

// Commands are applied to the target in the order they were made, on one
// connection a node, commandsPerTrip to a round trip; MULTI and EXEC go
// as they are to one server, so a transaction is applied whole.
const commandsPerTrip = 512

// CommandError is a command of a stream of changes that the target
// refused, or that it has no command for.
type CommandError struct {
	File   string
	Offset int64
	Cmd    string
	Err    error
}

func (e *CommandError) Error() string {
	return fmt.Sprintf("%s offset %d: %s: %v", e.File, e.Offset, e.Cmd, e.Err)
}
func (e *CommandError) Unwrap() error { return e.Err }

// firstUse is where a command name first appears in a stream of changes.
type firstUse struct {
	n         int64
	file, key string
	offset    int64
	name      string
}

// checkCommands reads every command in's changes hold and returns the
// problems of those the target has no command for (COMMAND INFO answers
// nil for them), each named with where it first appears.
func checkCommands(ctx context.Context, in records.ChangesInput, ti targetInfo, c *redis.Client) ([]error, error) {
	uses := map[string]*firstUse{}
	var n int64
	_, err := records.EachChange(ctx, in, func(cmd *records.Command) error {
		n++
		name := strings.ToLower(cmd.Args[0])
		u := uses[name]
		if u == nil {
			u = &firstUse{file: cmd.File, offset: cmd.Offset, name: strings.ToUpper(cmd.Args[0])}
			if len(cmd.Args) > 1 {
				u.key = cmd.Args[1]
			}
			uses[name] = u
		}
		u.n++
		return nil
	})
	if err != nil {
		return nil, err
	}
	var problems []error
	names := make([]string, 0, len(uses))
	for name := range uses {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		switch name {
		case "multi", "exec":
			continue
		}
		info, err := c.Do(ctx, "COMMAND", "INFO", name).Slice()
		if err != nil {
			return nil, fmt.Errorf("command info %s: %w", name, err)
		}
		if len(info) == 1 && info[0] == nil {
			u := uses[name]
			problems = append(problems, fmt.Errorf("%w: the input holds %d %s commands (the first at %s offset %d, key %q), and the target, %s %s, has no %s", ErrTargetLacks, u.n, u.name, u.file, u.offset, u.key, ti.Engine, ti.Version, u.name))
		}
	}
	return problems, nil
}

// applyChanges applies in's commands to the target, in order, into each
// command's database (or opts' --db for all), and counts them by name.
// Into a cluster, each command goes to the master that holds its keys,
// in order on each; one without keys (FLUSHALL, SCRIPT LOAD …) goes to
// every master once what came before is applied; a transaction's
// commands go one by one (a cluster runs none across masters), counted.
func applyChanges(ctx context.Context, in records.ChangesInput, opts Options, st *Stats) (err error) {
	ch, closeChanges, err := in.Changes(ctx)
	if err != nil {
		return err
	}
	defer func() {
		note, cerr := closeChanges()
		st.ChangesNote = note
		if err == nil {
			err = cerr
		}
	}()
	tgt, err := target.Open(ctx, opts.Conn)
	if err != nil {
		return err
	}
	defer tgt.Close()
	a := &applying{st: st, tgt: tgt, cluster: tgt.SlotRouted(), limiter: ratelimit.New(opts.Rate)}
	a.target, _ = opts.Conn.SelectedDB()
	for _, n := range tgt.Nodes() {
		c, err := target.Dial(ctx, n, "", 0)
		if err != nil {
			return err
		}
		defer c.Close()
		a.nodes = append(a.nodes, &nodeBatch{c: c})
	}
	if a.cluster {
		a.keys = target.NewKeys(a.nodes[0].c)
	}
	if st.Commands == nil {
		st.Commands = map[string]int64{}
	}
	for {
		cmd, err := ch.Next()
		if errors.Is(err, io.EOF) {
			return a.flushAll(ctx)
		}
		if err != nil {
			if ferr := a.flushAll(ctx); ferr != nil {
				return ferr
			}
			return err
		}
		if err := a.add(ctx, cmd); err != nil {
			return err
		}
	}
}

// applying is an AOF's commands on their way to the target's nodes.
type applying struct {
	st      *Stats
	tgt     target.Target
	cluster bool
	keys    *target.Keys // a cluster's: where each command goes
	target  int          // --db, or -1
	limiter *ratelimit.Limiter
	nodes   []*nodeBatch
}

// nodeBatch is a node's connection, its selected database and the
// commands queued for it; count is false for the copies of a command
// sent to every master but the first.
type nodeBatch struct {
	c     *resp.Conn
	db    int
	batch []queued
}

type queued struct {
	cmd   *records.Command
	count bool
}

// add queues cmd for the node that takes it.
func (a *applying) add(ctx context.Context, cmd *records.Command) error {
	if !a.cluster {
		return a.queue(ctx, 0, cmd, true)
	}
	switch strings.ToLower(cmd.Args[0]) {
	case "multi":
		return nil
	case "exec":
		a.st.Unwrapped++
		return nil
	}
	keys, err := a.keys.Of(ctx, cmd.Args)
	if err != nil {
		return &CommandError{File: cmd.File, Offset: cmd.Offset, Cmd: strings.ToUpper(cmd.Args[0]), Err: err}
	}
	if len(keys) == 0 { // every master, after what came before
		if err := a.flushAll(ctx); err != nil {
			return err
		}
		for i := range a.nodes {
			if err := a.queue(ctx, i, cmd, i == 0); err != nil {
				return err
			}
		}
		return a.flushAll(ctx)
	}
	n := a.tgt.Node(keys[0])
	for _, k := range keys[1:] {
		if a.tgt.Node(k) != n {
			return &CommandError{File: cmd.File, Offset: cmd.Offset, Cmd: strings.ToUpper(cmd.Args[0]),
				Err: fmt.Errorf("its keys %q and %q are on different masters of the cluster, which no command spans", keys[0], k)}
		}
	}
	return a.queue(ctx, n, cmd, true)
}

func (a *applying) queue(ctx context.Context, node int, cmd *records.Command, count bool) error {
	nb := a.nodes[node]
	nb.batch = append(nb.batch, queued{cmd, count})
	if len(nb.batch) >= commandsPerTrip {
		return a.flush(ctx, nb)
	}
	return nil
}

func (a *applying) flushAll(ctx context.Context) error {
	for _, nb := range a.nodes {
		if err := a.flush(ctx, nb); err != nil {
			return err
		}
	}
	return nil
}

// flush sends a node's queued commands in one round trip. Each reply is
// judged; the first refusal stops the load, naming the command, its file
// and offset.
func (a *applying) flush(ctx context.Context, nb *nodeBatch) error {
	if len(nb.batch) == 0 {
		return nil
	}
	var refusal error
	var sent []queued
	for _, q := range nb.batch {
		want := q.cmd.DB
		if a.target >= 0 {
			want = a.target
		}
		if want != nb.db {
			nb.c.Begin("SELECT", 1).Int(int64(want))
			sent = append(sent, queued{})
			nb.db = want
		}
		nb.c.Begin(q.cmd.Args[0], len(q.cmd.Args)-1)
		for _, arg := range q.cmd.Args[1:] {
			nb.c.Str(arg)
		}
		sent = append(sent, q)
	}
	if err := a.limiter.Wait(ctx, len(sent)); err != nil {
		return err
	}
	err := nb.c.Exec(ctx, func(i int, r resp.Reply) error {
		q := sent[i]
		switch {
		case q.cmd == nil && r.Kind == resp.KindError:
			if refusal == nil {
				refusal = fmt.Errorf("SELECT: %w", r.Err())
			}
		case q.cmd == nil:
		case r.Kind == resp.KindError && refusal == nil:
			refusal = &CommandError{File: q.cmd.File, Offset: q.cmd.Offset, Cmd: strings.ToUpper(q.cmd.Args[0]), Err: r.Err()}
		case r.Kind != resp.KindError && q.count:
			a.st.Commands[strings.ToUpper(q.cmd.Args[0])]++
			a.st.Applied++
		}
		return nil
	})
	nb.batch = nb.batch[:0]
	if err != nil {
		return err
	}
	return refusal
}
