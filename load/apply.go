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
	router, err := target.NewRouter(ctx, tgt)
	if err != nil {
		return err
	}
	defer router.Close()
	a := &applying{st: st, tgt: tgt, router: router, cluster: tgt.SlotRouted(), limiter: ratelimit.New(opts.Rate)}
	a.target, _ = opts.Conn.SelectedDB()
	if a.cluster {
		a.keys = target.NewKeys(router)
	}
	if st.Commands == nil {
		st.Commands = map[string]int64{}
	}
	for {
		cmd, err := ch.Next()
		if errors.Is(err, io.EOF) {
			return a.flush(ctx)
		}
		if err != nil {
			if ferr := a.flush(ctx); ferr != nil {
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
	router  *target.Router
	cluster bool
	keys    *target.Keys // a cluster's: where each command goes
	target  int          // --db, or -1
	limiter *ratelimit.Limiter
	pending []target.Cmd
	queued  []queued
}

// queued is a command of the pending batch; count is false for the
// copies of a command sent to every master but the first.
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
	keys, _, err := a.keys.Of(ctx, cmd.Args)
	if err != nil {
		return &CommandError{File: cmd.File, Offset: cmd.Offset, Cmd: strings.ToUpper(cmd.Args[0]), Err: err}
	}
	if len(keys) == 0 { // every master, after what came before
		if err := a.flush(ctx); err != nil {
			return err
		}
		for i := range a.tgt.Nodes() {
			if err := a.queue(ctx, i, cmd, i == 0); err != nil {
				return err
			}
		}
		return a.flush(ctx)
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

// queue adds cmd for node to the batch, sent once it holds
// commandsPerTrip commands a node.
func (a *applying) queue(ctx context.Context, node int, cmd *records.Command, count bool) error {
	db := cmd.DB
	if a.target >= 0 {
		db = a.target
	}
	a.pending = append(a.pending, target.Cmd{Args: cmd.Args, DB: db, Node: node})
	a.queued = append(a.queued, queued{cmd, count})
	if len(a.pending) >= commandsPerTrip*len(a.tgt.Nodes()) {
		return a.flush(ctx)
	}
	return nil
}

// flush sends the queued commands, a round trip a node, through the
// router (which follows a cluster's redirections). Each reply is judged;
// the first refusal stops the load, naming the command, its file and
// offset.
func (a *applying) flush(ctx context.Context) error {
	if len(a.pending) == 0 {
		return nil
	}
	if err := a.limiter.Wait(ctx, len(a.pending)); err != nil {
		return err
	}
	var refusal error
	before := a.router.Redirected
	err := a.router.Send(ctx, a.pending, func(i int, r resp.Value) error {
		q := a.queued[i]
		switch {
		case r.Kind == resp.KindError && refusal == nil:
			refusal = &CommandError{File: q.cmd.File, Offset: q.cmd.Offset, Cmd: strings.ToUpper(q.cmd.Args[0]), Err: resp.ServerError(r.Str)}
		case r.Kind != resp.KindError && q.count:
			a.st.Commands[strings.ToUpper(q.cmd.Args[0])]++
			a.st.Applied++
		}
		return nil
	})
	a.st.Redirects += a.router.Redirected - before
	a.pending, a.queued = a.pending[:0], a.queued[:0]
	if err != nil {
		return err
	}
	return refusal
}
