package livesync

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/crs-tool/crs/internal/redisconn"
	"github.com/crs-tool/crs/internal/resp"
	"github.com/crs-tool/crs/records"
	"github.com/crs-tool/crs/target"
)

// maxChanged is how many changed keys are remembered for the cutover's
// check; past it the check covers key counts, and every key only with
// --verify.
const maxChanged = 1 << 20

// cmdInfo is what the target says of a command: whether it has it, and
// where its keys are (COMMAND INFO's first key, last key and step).
type cmdInfo struct {
	known               bool
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
	a.t.exact = a.counters
	a.caps, err = redisconn.ProbeCaps(ctx, c)
	return err
}

// info returns what the target says of cmd's command, asking once.
func (a *applier) info(ctx context.Context, name string) (*cmdInfo, error) {
	// The stream spells each command one way: the name as sent is the
	// key, so the hot path does not lower it.
	if ci := a.infos[name]; ci != nil {
		return ci, nil
	}
	lower := strings.ToLower(name)
	if ci := a.infos[lower]; ci != nil {
		a.infos[name] = ci
		return ci, nil
	}
	ci := &cmdInfo{name: strings.ToUpper(name)}
	switch lower {
	case "ping", "replconf":
		ci.known, ci.replicationProtocol = true, true
	case "multi", "exec":
		ci.known = true
	default:
		spec, err := a.t.keys.Spec(ctx, lower)
		if err != nil {
			return nil, err
		}
		ci.known = spec.Known
	}
	switch lower {
	case "move", "copy", "swapdb":
		ci.changesOtherDBs = true
	}
	a.infos[lower], a.infos[name] = ci, ci
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
	if ci.changesOtherDBs && (len(a.opts.Reshape.DBMap) > 0 || a.oneDB() >= 0 || len(a.opts.Select.DBs) > 0) {
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

// apply applies batch to the target and moves the position past it.
func (a *applier) apply(ctx context.Context, batch []*records.Command) error {
	end := batch[len(batch)-1]
	if err := a.repairExpired(ctx); err != nil {
		return err
	}
	planned, apply, nodes, n, err := a.planRepaired(ctx, batch)
	if err != nil {
		return err
	}
	next := Position{ReplID: a.pos.ReplID, Offset: end.End, DB: end.DB}
	var lost []dbKey
	if a.judges() {
		if err := a.applyJudged(ctx, planned, apply, nodes, next); err != nil {
			return err
		}
	} else if n > 0 {
		if a.t.cluster {
			lost, err = a.applyRouted(ctx, batch, planned, apply, nodes)
		} else {
			lost, err = a.applyTx(ctx, batch, planned, apply, next)
		}
		if err != nil {
			return err
		}
		a.st.Transactions++
	} else if a.checkpointed() && next.Offset > a.pos.Offset {
		// Nothing to apply (the source's pings, a REPLCONF GETACK): the
		// position still moves, since every byte of the stream counts
		// toward it. A source shut down sends a GETACK last, and restarts
		// with its backlog beginning right after it.
		a.pos = next
		if err := a.writeCheckpoint(ctx); err != nil {
			return err
		}
	}
	// The source learns the offset (at once when it asked, REPLCONF
	// GETACK), replication pings included.
	a.pos = next
	a.link.Ack(next.Offset, isName(end, "replconf"))
	if len(lost) > 0 {
		if err := a.repair(ctx, lost); err != nil {
			return err
		}
	}
	if len(a.skip) > 0 {
		a.forget()
	}
	return nil
}

// planRepaired plans batch (a copy of it: plan renames its commands),
// first repairing the keys that commands on repaired keys also write.
func (a *applier) planRepaired(ctx context.Context, batch []*records.Command) (planned []*records.Command, apply []bool, nodes []int, n int, err error) {
	for {
		planned = slices.Clone(batch)
		// A plan thrown away must not count twice (only a sync that has
		// repaired keys can throw one away).
		var st Stats
		var skipped, by map[string]int64
		if len(a.skip) > 0 {
			st, skipped, by = a.st, maps.Clone(a.st.Skipped), maps.Clone(a.st.ByCommand)
		}
		var extra []dbKey
		if apply, nodes, n, extra, err = a.plan(ctx, planned); err != nil || len(extra) == 0 {
			return planned, apply, nodes, n, err
		}
		a.st = st
		a.st.Skipped, a.st.ByCommand = skipped, by
		if err := a.repair(ctx, extra); err != nil {
			return nil, nil, nil, 0, err
		}
	}
}

// plan says which commands of batch are applied (not the replication
// protocol's, not of a database left out, not skipped), and on a cluster
// target to which node each goes (a source's MULTI and EXEC go with the
// transaction's commands). It asks the target about each command before
// anything is queued: a connection carries one exchange at a time.
//
// A command on keys repaired past it is left out; one on repaired keys and
// others returns the others in extra, to be repaired before the batch is
// planned again.
func (a *applier) plan(ctx context.Context, batch []*records.Command) (apply []bool, nodes []int, n int, extra []dbKey, err error) {
	apply, nodes = make([]bool, len(batch)), make([]int, len(batch))
	if a.judges() {
		a.rereads = make([][]dbKey, len(batch))
	}
	tx := -1 // where the source's open transaction began
	for i, cmd := range batch {
		ci, err := a.info(ctx, cmd.Args[0])
		if err != nil {
			return nil, nil, 0, nil, err
		}
		switch {
		case isName(cmd, "multi"):
			tx, nodes[i] = i, -1
			apply[i] = a.t.cluster
			continue
		case isName(cmd, "exec"):
			if tx >= 0 {
				nodes[i], apply[i] = nodes[tx], a.t.cluster && nodes[tx] >= 0
				apply[tx] = apply[i]
			}
			tx = -1
			continue
		case ci.replicationProtocol:
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
			return nil, nil, 0, nil, fmt.Errorf("%w at offset %d of %s: %s %q: %s; the target holds everything before it (crs sync --skip-unsupported skips and counts such commands)", ErrStopped, cmd.Offset+1, a.link.Name(), ci.name, firstKey(cmd), why)
		}
		keys, at, err := a.keysOf(ctx, cmd)
		if err != nil {
			return nil, nil, 0, nil, err
		}
		if all, rest := a.covered(cmd, keys); all {
			a.st.Covered++
			continue
		} else if rest != nil {
			extra = append(extra, rest...)
			continue
		}
		sel, err := a.selectKeys(cmd, ci, keys, at)
		if err != nil {
			return nil, nil, 0, nil, err
		}
		if sel == nil {
			a.st.NotSelected++
			continue
		}
		a.remember(cmd.DB, cmd.End, keys...)
		if a.judges() && len(keys) > 0 {
			// Its keys are read again instead (see applyJudged).
			a.rereads[i] = a.keysWritten(cmd, ci, keys)
			a.st.Applied++
			a.st.ByCommand[ci.name]++
			continue
		}
		batch[i] = sel
		for j, k := range keys {
			keys[j] = a.opts.Reshape.Key(k)
		}
		if a.t.cluster {
			if len(keys) == 0 {
				return nil, nil, 0, nil, fmt.Errorf("%w at offset %d of %s: %s names no key, so it has no master to go to in the target cluster", ErrStopped, cmd.Offset+1, a.link.Name(), ci.name)
			}
			nodes[i] = a.t.node(keys[0])
			if tx >= 0 {
				if nodes[tx] >= 0 && nodes[tx] != nodes[i] {
					return nil, nil, 0, nil, fmt.Errorf("%w at offset %d of %s: a transaction of the source writes keys that different masters of the target cluster serve (%q among them), which no transaction there can do", ErrStopped, cmd.Offset+1, a.link.Name(), keys[0])
				}
				nodes[tx] = nodes[i]
			}
		}
		apply[i] = true
		n++
	}
	return apply, nodes, n, extra, nil
}

// applyTx applies the commands of planned apply says in one transaction
// on a standalone target, with the write of the position next. It
// returns the keys (of the source, as batch names them) the target
// turned out to lack (see repair).
func (a *applier) applyTx(ctx context.Context, batch, planned []*records.Command, apply []bool, next Position) ([]dbKey, error) {
	var cmds []target.Cmd
	var idx []int // planned's index of each of cmds
	for i, cmd := range planned {
		if apply[i] {
			db, _ := a.mapDB(cmd.DB)
			cmds, idx = append(cmds, target.Cmd{Args: cmd.Args, DB: db}), append(idx, i)
		}
	}
	position := []target.Cmd{{Args: append([]string{"HSET"}, append(checkpointFields(a.key, next, a.link.Name()), a.claimedFields(planned, apply)...)...)}}
	var refusal error
	var lost []dbKey
	now := time.Now().UnixMilli()
	err := a.t.router.SendTx(ctx, 0, cmds, position, func(j int, v resp.Value, applied bool) error {
		k := idx[j]
		switch {
		case !applied:
			if refusal == nil {
				refusal = a.refused(planned[k], v.Str)
			}
		case lostBy(batch[k], v, now):
			lost = append(lost, lostKeys(batch[k])...)
		case v.Kind == resp.KindError && refusal == nil:
			refusal = a.refusedInTx(planned[k], v.Str)
		}
		return nil
	})
	switch {
	case refusal != nil:
		return nil, refusal
	case errors.As(err, new(resp.ServerError)):
		return nil, a.refused(nil, err.Error())
	case err != nil:
		return nil, err // the connection lost, ^C
	}
	a.count(planned, idx)
	return lost, nil
}

// lostKeys are the keys of cmd, a command lostBy names, of the source.
func lostKeys(cmd *records.Command) []dbKey {
	out := []dbKey{{cmd.DB, cmd.Args[1]}}
	if len(cmd.Args) > 2 && strings.HasPrefix(strings.ToUpper(cmd.Args[0]), "RENAME") {
		out = append(out, dbKey{cmd.DB, cmd.Args[2]})
	}
	return out
}

// applyRouted applies the commands of planned apply says to the masters
// of a cluster target that nodes name, in order on each (a source's
// transaction as one there), through the target's Router, which follows
// the cluster's redirections; no position is recorded. It returns the
// keys the target turned out to lack, as applyTx does.
func (a *applier) applyRouted(ctx context.Context, batch, planned []*records.Command, apply []bool, nodes []int) ([]dbKey, error) {
	var cmds []target.Cmd
	var idx []int // planned's index of each of cmds
	for i, cmd := range planned {
		if apply[i] {
			db, _ := a.mapDB(cmd.DB)
			cmds, idx = append(cmds, target.Cmd{Args: cmd.Args, DB: db, Node: nodes[i]}), append(idx, i)
		}
	}
	var lost []dbKey
	var refusal error
	var tx []int // the source's transaction being read: its queued commands
	now := time.Now().UnixMilli()
	before := a.t.router.Redirected
	err := a.t.router.Send(ctx, cmds, func(j int, v resp.Value) error {
		k := idx[j]
		cmd := planned[k]
		switch {
		case isName(cmd, "multi"):
			tx = tx[:0]
		case isName(cmd, "exec") && v.Kind == resp.KindArray:
			for n, r := range v.Array {
				switch {
				case n >= len(tx):
				case lostBy(batch[tx[n]], r, now):
					lost = append(lost, lostKeys(batch[tx[n]])...)
				case r.Kind == resp.KindError && refusal == nil:
					refusal = a.refusedInTx(planned[tx[n]], r.Str)
				}
			}
			a.count(planned, tx)
		case v.Kind == resp.KindStatus && v.Str == "QUEUED":
			tx = append(tx, k)
		case lostBy(batch[k], v, now):
			lost = append(lost, lostKeys(batch[k])...)
			a.count(planned, []int{k})
		case v.Kind == resp.KindError:
			if refusal == nil {
				refusal = a.refused(cmd, v.Str)
			}
		default:
			a.count(planned, []int{k})
		}
		return nil
	})
	a.st.Redirected += a.t.router.Redirected - before
	if err != nil {
		return nil, err
	}
	if refusal != nil {
		return nil, refusal
	}
	return lost, nil
}

// count adds the commands of planned that sent names (-1: crs's own) to
// the counts.
func (a *applier) count(planned []*records.Command, sent []int) {
	for _, i := range sent {
		if i < 0 {
			continue
		}
		if cmd := planned[i]; !isName(cmd, "multi") && !isName(cmd, "exec") {
			a.st.Applied++
			a.st.ByCommand[strings.ToUpper(cmd.Args[0])]++
		}
	}
}

func (a *applier) refused(cmd *records.Command, msg string) error {
	if cmd == nil {
		return fmt.Errorf("%w: the target refused crs's transaction: %s", ErrStopped, msg)
	}
	return fmt.Errorf("%w: the target refused %s %q (offset %d of %s), and applied nothing of its transaction: %s", ErrStopped, strings.ToUpper(cmd.Args[0]), firstKey(cmd), cmd.Offset+1, a.link.Name(), msg)
}

func (a *applier) refusedInTx(cmd *records.Command, msg string) error {
	return fmt.Errorf("%w: the target refused %s %q (offset %d of %s) inside a transaction whose other commands it applied, so it may now differ from the source (verify it, or start over with crs sync --replace): %s", ErrStopped, strings.ToUpper(cmd.Args[0]), firstKey(cmd), cmd.Offset+1, a.link.Name(), msg)
}

func firstKey(cmd *records.Command) string {
	if len(cmd.Args) > 1 {
		return cmd.Args[1]
	}
	return ""
}

// keysOf returns the keys cmd writes, and where they are among its
// arguments (nil for a command whose keys' places depend on its
// arguments: the target says which they are).
func (a *applier) keysOf(ctx context.Context, cmd *records.Command) (keys []string, at []int, err error) {
	return a.t.keys.Of(ctx, cmd.Args)
}

// remember notes keys of source database db as changed at offset at, for
// the comparisons while streaming and the cutover's check.
func (a *applier) remember(db int, at int64, keys ...string) {
	if !a.many {
		for _, k := range keys {
			a.changed[dbKey{db, k}] = at
		}
		if len(a.changed) > maxChanged {
			a.many, a.changed = true, nil
		}
	}
}
