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
// connection, commandsPerTrip to a round trip; MULTI and EXEC go as they
// are, so a transaction is applied whole.
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
// nil for them), each named with where it first appears. It also refuses
// a cluster target, which a stream of commands cannot be routed into
// yet.
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
	if n > 0 && ti.cluster {
		problems = append(problems, fmt.Errorf("%w: the input holds %d commands after its keys (an AOF), and applying commands to a Redis Cluster is not supported yet: load it into a standalone server", ErrTargetLacks, n))
	}
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
	c, err := target.Dial(ctx, opts.Conn, "", 0)
	if err != nil {
		return err
	}
	defer c.Close()
	target, _ := opts.Conn.SelectedDB()
	if st.Commands == nil {
		st.Commands = map[string]int64{}
	}
	db := 0
	limiter := ratelimit.New(opts.Rate)
	var batch []*records.Command
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		// Each reply is judged; the first refusal stops the load, naming
		// the command, its file and offset.
		var refusal error
		var sent []*records.Command
		for _, cmd := range batch {
			want := cmd.DB
			if target >= 0 {
				want = target
			}
			if want != db {
				c.Begin("SELECT", 1).Int(int64(want))
				sent = append(sent, nil)
				db = want
			}
			c.Begin(cmd.Args[0], len(cmd.Args)-1)
			for _, a := range cmd.Args[1:] {
				c.Str(a)
			}
			sent = append(sent, cmd)
		}
		if err := limiter.Wait(ctx, len(sent)); err != nil {
			return err
		}
		err := c.Exec(ctx, func(i int, r resp.Reply) error {
			cmd := sent[i]
			switch {
			case cmd == nil && r.Kind == resp.KindError:
				if refusal == nil {
					refusal = fmt.Errorf("SELECT: %w", r.Err())
				}
			case cmd == nil:
			case r.Kind == resp.KindError && refusal == nil:
				refusal = &CommandError{File: cmd.File, Offset: cmd.Offset, Cmd: strings.ToUpper(cmd.Args[0]), Err: r.Err()}
			case r.Kind != resp.KindError:
				st.Commands[strings.ToUpper(cmd.Args[0])]++
				st.Applied++
			}
			return nil
		})
		batch = batch[:0]
		if err != nil {
			return err
		}
		return refusal
	}
	for {
		cmd, err := ch.Next()
		if errors.Is(err, io.EOF) {
			return flush()
		}
		if err != nil {
			if ferr := flush(); ferr != nil {
				return ferr
			}
			return err
		}
		batch = append(batch, cmd)
		if len(batch) >= commandsPerTrip {
			if err := flush(); err != nil {
				return err
			}
		}
	}
}
