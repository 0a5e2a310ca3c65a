package livesync

import (
	"context"
	"fmt"
	"io"

	"github.com/crs-tool/crs/internal/redisconn"
	"github.com/crs-tool/crs/records"
	"github.com/crs-tool/crs/target"
)

// An Origin is the source as crs sync opens it: its server, and the
// replication links and keyspace notifications it gives. The CLI makes
// one over package repl and the sources of records, so that livesync
// imports no source; Start decides what to do with it.
type Origin interface {
	Source
	// Address is the source's address, for messages.
	Address() string
	// Links names the replication links a sync follows: "" for the
	// source's own, or each master's address of a cluster source.
	Links() (names []string, cluster bool)
	// Holds fails when link name cannot continue from pos (its backlog
	// moved past it, or it has another history).
	Holds(ctx context.Context, name string, pos Position) error
	// Pausable says why the source's writes cannot be paused at the
	// cutover; nil when they can.
	Pausable() error
	// SpoolSpace checks that the spool has room for the snapshots, and
	// says where they go.
	SpoolSpace(ctx context.Context) (said string, err error)
	// Dial opens link name continuing from resume, or, when resume is
	// nil, from a snapshot, which the shard then holds.
	Dial(ctx context.Context, name string, resume *Position) (Shard, error)
	// Refused reports whether err, of Dial, says that the source refuses
	// replication.
	Refused(err error) bool
	// Notifications subscribes to the source's keyspace notifications
	// (turned on where they are off, until done) and opens the copy of
	// its keys to read while they arrive; said tells the user how.
	Notifications(ctx context.Context) (sub Notifications, copy records.Input, said string, done func(), err error)
}

// The ways a sync follows its source (Options.Mode).
const (
	ModeAuto        = "auto"        // replication, or notifications where the source refuses it
	ModeReplication = "replication" // PSYNC: a snapshot, then the write stream
	ModeNotify      = "notify"      // SCAN, then every key notified as changed read again
)

// Start syncs the target with the source o opens, as Options.Mode says:
// by replication, continuing each link from the position the target
// holds where the source still has it (from a snapshot where the target
// holds none, or under Replace, after emptying the target), or by
// keyspace notifications where the source refuses replication (ModeAuto)
// or where asked to.
func Start(ctx context.Context, opts Options, o Origin, stderr io.Writer) error {
	release, err := Claim(ctx, opts, stderr)
	if err != nil {
		return err
	}
	defer release()
	// The cutover's check (and a sync by notifications) reads the keys
	// changed during the sync as this does: a refusal is found now, not
	// in the cutover's pause.
	if _, err := o.Dumps(ctx, 0, opts.Select.ProbeKeys()); redisconn.IsNoPerm(err) {
		return &redisconn.Error{Addr: o.Address(), Err: fmt.Errorf("crs sync reads the keys changed during the sync (DUMP, for the cutover's check), and the ACL user may not (--match chooses keys it may read): %w", err)}
	} else if err != nil {
		return err
	}
	if opts.Mode == ModeNotify {
		return startNotify(ctx, opts, o, stderr)
	}
	return startReplication(ctx, opts, o, stderr)
}

// startReplication syncs by replication, a link for the source or for
// each master of a cluster source: each continues from the position the
// target holds, or all from snapshots.
func startReplication(ctx context.Context, opts Options, o Origin, stderr io.Writer) (err error) {
	names, cluster := o.Links()
	keys := []string{CheckpointKey}
	if cluster {
		keys = nil
		for _, m := range names {
			keys = append(keys, CheckpointKey+":"+m)
		}
		// A cluster has database 0 only, which its snapshots do not say.
		if db, _ := opts.Load.Conn.SelectedDB(); db < 0 && len(opts.Reshape.DBMap) == 0 {
			opts.Load.Conn.DB = 0
		}
	}
	positions, held, err := heldPositions(ctx, opts, o, names, keys)
	if err != nil {
		return err
	}
	said, err := Preflight(ctx, opts, held == 0, opts.Load.Replace, o.Pausable())
	if err != nil {
		return err
	}
	say(opts, stderr, said)
	if held == 0 {
		said, err := o.SpoolSpace(ctx)
		if err != nil {
			return err
		}
		say(opts, stderr, said)
	}
	switch {
	case opts.Load.Replace:
		if err := emptyTarget(ctx, opts.Load.Conn); err != nil {
			return err
		}
	case held > 0 && held < len(names):
		return fmt.Errorf("%w: the target holds the positions of %d of the source's %d masters (its masters changed since): crs sync --replace empties the target and starts over", ErrStopped, held, len(names))
	}
	var shards []Shard
	defer func() {
		for _, sh := range shards {
			if err != nil {
				sh.Link.Close()
			}
			if sh.Snapshot != nil {
				sh.Snapshot.Close()
			}
		}
	}()
	for i, name := range names {
		sh, err := o.Dial(ctx, name, positions[i])
		if o.Refused(err) && opts.Mode == ModeAuto && held == 0 && i == 0 {
			say(opts, stderr, fmt.Sprintf("crs sync: %v\ncrs sync: so it syncs by keyspace notifications (--mode notify: convergence once writes pause, proved at the cutover; --mode replication stops here instead)", err))
			return startNotify(ctx, opts, o, stderr)
		}
		if err != nil {
			return err
		}
		sh.Key, sh.Source = keys[i], name
		shards = append(shards, sh)
	}
	return Run(ctx, opts, shards, o, stderr)
}

// heldPositions reads the position the target holds of each link (keys
// name their checkpoints), and checks that the source can continue from
// it; under Replace none is taken. held counts those taken.
func heldPositions(ctx context.Context, opts Options, o Origin, names, keys []string) (positions []*Position, held int, err error) {
	positions = make([]*Position, len(names))
	for i, name := range names {
		pos, source, err := ReadCheckpoint(ctx, opts.Load.Conn, keys[i])
		if err != nil {
			return nil, 0, err
		}
		if pos == nil || opts.Load.Replace {
			continue
		}
		if err := o.Holds(ctx, name, *pos); err != nil {
			return nil, 0, fmt.Errorf("the target holds a sync from %s up to offset %d, which cannot continue: %w; crs sync --replace empties the target and starts over", source, pos.Offset, err)
		}
		positions[i] = pos
		held++
	}
	return positions, held, nil
}

// startNotify syncs by keyspace notifications: from an empty target (one
// that holds a replication position is refused unless Replace).
func startNotify(ctx context.Context, opts Options, o Origin, stderr io.Writer) error {
	if pos, _, err := ReadCheckpoint(ctx, opts.Load.Conn, CheckpointKey); err != nil {
		return err
	} else if pos != nil && !opts.Load.Replace {
		return fmt.Errorf("%w: the target holds the position of a sync by replication (%s): a sync by notifications starts from an empty target (--replace empties it)", ErrStopped, CheckpointKey)
	}
	checked, err := Preflight(ctx, opts, true, opts.Load.Replace, nil)
	if err != nil {
		return err
	}
	say(opts, stderr, checked)
	sub, in, said, done, err := o.Notifications(ctx)
	if err != nil {
		return err
	}
	defer done()
	defer in.Close()
	say(opts, stderr, "crs sync: "+said)
	if opts.Load.Replace {
		if err := emptyTarget(ctx, opts.Load.Conn); err != nil {
			sub.Close()
			return err
		}
	}
	return RunNotify(ctx, opts, in, o, sub, stderr)
}

// emptyTarget empties every server of the target (--replace).
func emptyTarget(ctx context.Context, o redisconn.Options) error {
	tgt, err := target.Open(ctx, o)
	if err != nil {
		return err
	}
	defer tgt.Close()
	if err := target.FlushAll(ctx, tgt); err != nil {
		return fmt.Errorf("--replace: the target: %w", err)
	}
	return nil
}

// say prints a line of what the sync does, unless quiet or JSON.
func say(opts Options, stderr io.Writer, line string) {
	if line != "" && !opts.Quiet && !opts.JSON {
		fmt.Fprintln(stderr, line)
	}
}
