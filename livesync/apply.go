package livesync

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/crs-tool/crs/internal/redisconn"
	"github.com/crs-tool/crs/internal/resp"
	"github.com/crs-tool/crs/internal/slotmap"
	"github.com/crs-tool/crs/records"
	"github.com/crs-tool/crs/target"
)

// CheckpointKey is the hash, in database 0 of the target, where a sync
// records the position of the commands the target holds. The cutover
// removes it.
const CheckpointKey = "crs:sync:position"

// maxChanged is how many changed keys are remembered for the cutover's
// check; past it the check covers key counts, and every key only with
// --verify.
const maxChanged = 1 << 20

// cmdInfo is what the target says of a command: whether it has it, and
// where its keys are (COMMAND INFO's first key, last key and step).
type cmdInfo struct {
	known               bool
	first, last, step   int
	movable             bool
	name                string // upper case, for counts and messages
	changesOtherDBs     bool   // MOVE, COPY … DB, SWAPDB: refused under a database map
	replicationProtocol bool   // PING, REPLCONF: not applied
}

// probeTarget learns what the target can do.
func (a *applier) probeTarget(ctx context.Context) error {
	c, srv, err := redisconn.Open(ctx, a.opts.Load.Conn, 0, 1)
	if err != nil {
		return err
	}
	defer c.Close()
	a.counters = srv.AtLeast(7, 0)
	if cluster, err := slotmap.Enabled(ctx, c); err != nil || cluster {
		return fmt.Errorf("%w: the target is a Redis Cluster, and crs sync applies a command stream to a standalone server only so far (crsdump --snapshot and crsload move a cluster, with writes stopped)", ErrStopped)
	}
	a.caps, err = redisconn.ProbeCaps(ctx, c)
	return err
}

// info returns what the target says of cmd's command, asking once.
func (a *applier) info(ctx context.Context, name string) (*cmdInfo, error) {
	lower := strings.ToLower(name)
	if ci := a.infos[lower]; ci != nil {
		return ci, nil
	}
	ci := &cmdInfo{name: strings.ToUpper(name)}
	switch lower {
	case "ping", "replconf":
		ci.known, ci.replicationProtocol = true, true
	case "multi", "exec":
		ci.known = true
	default:
		a.target.Begin("COMMAND", 2).Str("INFO").Str(lower)
		err := a.target.ExecValues(ctx, func(_ int, v resp.Value) error {
			if v.Kind == resp.KindError {
				return fmt.Errorf("command info %s: %s", lower, v.Str)
			}
			if len(v.Array) != 1 || v.Array[0].Nil || len(v.Array[0].Array) < 6 {
				return nil // the target has no such command
			}
			d := v.Array[0].Array
			ci.known = true
			ci.first, ci.last, ci.step = int(d[3].Int), int(d[4].Int), int(d[5].Int)
			for _, f := range d[2].Array {
				if f.Str == "movablekeys" {
					ci.movable = true
				}
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	switch lower {
	case "move", "copy", "swapdb":
		ci.changesOtherDBs = true
	}
	a.infos[lower] = ci
	return ci, nil
}

// unsupported says why the target cannot apply cmd ("" when it can).
func (a *applier) unsupported(cmd *records.Command, ci *cmdInfo) string {
	if !ci.known {
		return fmt.Sprintf("the target has no %s command", ci.name)
	}
	if ci.name == "XADD" && !a.caps.IDMP && xaddIDMP(cmd.Args) {
		return "the target has no idempotent producers (XADD … IDMP, Redis 8.6)"
	}
	if ci.changesOtherDBs && (len(a.opts.DBMap) > 0 || a.oneDB() >= 0 || len(a.opts.DBs) > 0) {
		return fmt.Sprintf("%s names a database, which the database mapping (-n, --db-map, --from-db) would have to change", ci.name)
	}
	return ""
}

// xaddIDMP reports whether an XADD's options name an idempotent producer.
func xaddIDMP(args []string) bool {
	for i := 2; i < len(args); i++ {
		switch strings.ToUpper(args[i]) {
		case "IDMP", "IDMPAUTO":
			return true
		case "NOMKSTREAM", "=", "~":
		case "MAXLEN", "MINID", "LIMIT":
			i++
		default:
			if i > 2 && (strings.EqualFold(args[i-1], "=") || strings.EqualFold(args[i-1], "~")) {
				continue // a threshold after = or ~
			}
			return false // the entry ID
		}
	}
	return false
}

// oneDB is the database everything goes into (-n), or -1.
func (a *applier) oneDB() int {
	db, _ := a.opts.Load.Conn.SelectedDB()
	return db
}

// mapDB returns the target database of source database db, and false
// when db is not synced.
func (a *applier) mapDB(db int) (int, bool) {
	if len(a.opts.DBs) > 0 && !slices.Contains(a.opts.DBs, db) {
		return 0, false
	}
	if one := a.oneDB(); one >= 0 {
		return one, true
	}
	if to, ok := a.opts.DBMap[db]; ok {
		return to, true
	}
	return db, true
}

// apply applies batch in one transaction on the target, with the
// position it brings the target to.
func (a *applier) apply(ctx context.Context, batch []*records.Command) error {
	end := batch[len(batch)-1]
	var sent []*records.Command // the commands queued, nil for crs's own
	queue := func(cmd *records.Command, name string, args ...string) {
		a.target.Begin(name, len(args))
		for _, s := range args {
			a.target.Str(s)
		}
		sent = append(sent, cmd)
	}
	// What the target says of each command is asked before anything is
	// queued: the connection carries one exchange at a time.
	apply := make([]bool, len(batch))
	for i, cmd := range batch {
		ci, err := a.info(ctx, cmd.Args[0])
		if err != nil {
			return err
		}
		if ci.replicationProtocol || isName(cmd, "multi") || isName(cmd, "exec") {
			continue
		}
		if _, ok := a.mapDB(cmd.DB); !ok {
			continue
		}
		if why := a.unsupported(cmd, ci); why != "" {
			if a.opts.SkipUnsupported {
				a.st.Skipped[ci.name]++
				continue
			}
			return fmt.Errorf("%w at offset %d of %s: %s %q: %s; the target holds everything before it (crs sync --skip-unsupported skips and counts such commands)", ErrStopped, cmd.Offset+1, a.link.Name(), ci.name, firstKey(cmd), why)
		}
		if err := a.remember(ctx, cmd, ci); err != nil {
			return err
		}
		apply[i] = true
	}
	for i, cmd := range batch {
		if !apply[i] {
			continue
		}
		if len(sent) == 0 {
			queue(nil, "MULTI")
		}
		if db, _ := a.mapDB(cmd.DB); db != a.tdb {
			queue(nil, "SELECT", strconv.Itoa(db))
			a.tdb = db
		}
		queue(cmd, cmd.Args[0], cmd.Args[1:]...)
	}
	next := Position{ReplID: a.pos.ReplID, Offset: end.End, DB: end.DB}
	if len(sent) == 0 {
		// Only replication pings: nothing to record; the source learns
		// the offset.
		a.pos = next
		a.link.Ack(next.Offset, isName(end, "replconf"))
		return nil
	}
	if a.tdb != 0 {
		queue(nil, "SELECT", "0")
		a.tdb = 0
	}
	queue(nil, "HSET", checkpointFields(next, a.link.Name())...)
	queue(nil, "EXEC")
	var refusal error
	err := a.target.ExecValues(ctx, func(i int, v resp.Value) error {
		cmd := sent[i]
		switch {
		case i == len(sent)-1 && v.Kind == resp.KindArray:
			// EXEC's replies, in the order queued, MULTI not among them.
			for j, r := range v.Array {
				if c := sent[j+1]; c != nil && r.Kind == resp.KindError && refusal == nil {
					refusal = fmt.Errorf("%w: the target refused %s %q (offset %d of %s) inside a transaction whose other commands it applied, so it may now differ from the source (verify it, or start over with crs sync --replace): %s", ErrStopped, strings.ToUpper(c.Args[0]), firstKey(c), c.Offset+1, a.link.Name(), r.Str)
				}
			}
		case v.Kind == resp.KindError && refusal == nil:
			if cmd != nil {
				refusal = fmt.Errorf("%w: the target refused %s %q (offset %d of %s), and applied nothing of its transaction: %s", ErrStopped, strings.ToUpper(cmd.Args[0]), firstKey(cmd), cmd.Offset+1, a.link.Name(), v.Str)
			} else {
				refusal = fmt.Errorf("%w: the target refused crs's transaction: %s", ErrStopped, v.Str)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	if refusal != nil {
		return refusal
	}
	for _, cmd := range sent {
		if cmd != nil {
			a.st.Applied++
			a.st.ByCommand[strings.ToUpper(cmd.Args[0])]++
		}
	}
	a.st.Transactions++
	a.pos = next
	a.link.Ack(next.Offset, isName(end, "replconf"))
	return nil
}

func firstKey(cmd *records.Command) string {
	if len(cmd.Args) > 1 {
		return cmd.Args[1]
	}
	return ""
}

// remember notes the keys cmd writes, for the cutover's check.
func (a *applier) remember(ctx context.Context, cmd *records.Command, ci *cmdInfo) error {
	if a.many {
		return nil
	}
	var keys []string
	switch {
	case ci.movable:
		// Where the keys are depends on the arguments: the target says.
		a.target.Begin("COMMAND", len(cmd.Args)).Str("GETKEYS")
		for _, s := range cmd.Args {
			a.target.Str(s)
		}
		err := a.target.ExecValues(ctx, func(_ int, v resp.Value) error {
			if v.Kind == resp.KindArray {
				keys, _ = v.Strings()
			}
			return nil
		})
		if err != nil {
			return err
		}
	case ci.first > 0:
		last := ci.last
		if last < 0 {
			last = len(cmd.Args) + last
		}
		step := max(ci.step, 1)
		for i := ci.first; i <= last && i < len(cmd.Args); i += step {
			keys = append(keys, cmd.Args[i])
		}
	}
	for _, k := range keys {
		a.changed[dbKey{cmd.DB, k}] = struct{}{}
	}
	if len(a.changed) > maxChanged {
		a.many, a.changed = true, nil
	}
	return nil
}

// checkpointFields are the HSET arguments that record pos.
func checkpointFields(pos Position, source string) []string {
	return []string{CheckpointKey, "replid", pos.ReplID, "offset", strconv.FormatInt(pos.Offset, 10), "db", strconv.Itoa(pos.DB), "source", source, "at_ms", strconv.FormatInt(time.Now().UnixMilli(), 10)}
}

// writeCheckpoint records a.pos on the target (after the snapshot).
func (a *applier) writeCheckpoint(ctx context.Context) error {
	if a.tdb != 0 {
		a.target.Begin("SELECT", 1).Str("0")
		a.tdb = 0
	}
	f := checkpointFields(a.pos, a.link.Name())
	a.target.Begin("HSET", len(f))
	for _, s := range f {
		a.target.Str(s)
	}
	return a.target.Exec(ctx, func(_ int, r resp.Reply) error {
		if r.Kind == resp.KindError {
			return fmt.Errorf("record the position on the target: %w", r.Err())
		}
		return nil
	})
}

// ReadCheckpoint returns the position a sync recorded on the target, and
// the source it named; nil when there is none.
func ReadCheckpoint(ctx context.Context, conn redisconn.Options) (*Position, string, error) {
	c, err := target.Dial(ctx, conn, "", 0)
	if err != nil {
		return nil, "", err
	}
	defer c.Close()
	var pos *Position
	var source string
	c.Begin("HGETALL", 1).Str(CheckpointKey)
	err = c.ExecValues(ctx, func(_ int, v resp.Value) error {
		if v.Kind == resp.KindError {
			return fmt.Errorf("read %s on the target: %s", CheckpointKey, v.Str)
		}
		f := map[string]string{}
		for i := 0; i+1 < len(v.Array); i += 2 {
			f[v.Array[i].Str] = v.Array[i+1].Str
		}
		if len(f) == 0 {
			return nil
		}
		off, err1 := strconv.ParseInt(f["offset"], 10, 64)
		db, err2 := strconv.Atoi(f["db"])
		if f["replid"] == "" || err1 != nil || err2 != nil {
			return fmt.Errorf("the target's %s is not a position crs wrote: %v", CheckpointKey, f)
		}
		pos, source = &Position{ReplID: f["replid"], Offset: off, DB: db}, f["source"]
		return nil
	})
	return pos, source, err
}
