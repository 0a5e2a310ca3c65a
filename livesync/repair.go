package livesync

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/crs-tool/crs/format"
	"github.com/crs-tool/crs/internal/resp"
	"github.com/crs-tool/crs/load"
	"github.com/crs-tool/crs/records"
)

// Keys the target expires on its own clock.
//
// A replica never expires a key by itself: its master sends the DEL. The
// target of a sync is a master, and deletes a key once its expiry passes
// by its own clock, while crs applies the source's writes a little later
// than the source took them (seconds later while the snapshot loads). A
// key the source keeps alive by renewing its expiry (a session, a lock,
// a rate-limit window) can so pass its old expiry on the target before
// the renewal arrives: the renewal then finds no key there, and every
// later write to the key builds on nothing.
//
// The stream says when this happened: a renewal the source applied
// (PEXPIREAT, PEXPIRE, PERSIST: the source propagates one only when it
// changed the key) that the target answers 0, or a RENAME of a key the
// target lacks. Such a key is repaired: read again from the source
// together with the source's replication offset at that moment (one
// transaction), written over the target's, and every command of the
// stream on it up to that offset is then left out, since what was read
// holds their effect.

// lostBy reports whether the target's reply v to cmd says that the target
// lacked a key the source held when it ran cmd, or whether cmd set an
// expiry that had passed when the target applied it (by now, unix ms):
// the source wrote a key that lived on there, and may write it again
// before it expires, which the target would then apply to nothing.
func lostBy(cmd *records.Command, v resp.Value, now int64) bool {
	name := strings.ToUpper(cmd.Args[0])
	switch name {
	case "PEXPIREAT", "EXPIREAT":
		return (v.Kind == resp.KindInt && v.Int == 0) || expiredOnArrival(cmd.Args[2:3], name == "EXPIREAT", now)
	case "PEXPIRE", "EXPIRE", "PERSIST":
		return v.Kind == resp.KindInt && v.Int == 0
	case "RENAME", "RENAMENX":
		return v.Kind == resp.KindError && strings.Contains(v.Str, "no such key")
	case "SET":
		for i := 3; i+1 < len(cmd.Args); i++ {
			switch strings.ToUpper(cmd.Args[i]) {
			case "PXAT":
				return expiredOnArrival(cmd.Args[i+1:i+2], false, now)
			case "EXAT":
				return expiredOnArrival(cmd.Args[i+1:i+2], true, now)
			}
		}
	}
	return false
}

// expiredOnArrival reports whether the absolute expiry in at (unix ms, or
// seconds) had passed by now.
func expiredOnArrival(at []string, seconds bool, now int64) bool {
	if len(at) == 0 {
		return false
	}
	t, err := strconv.ParseInt(at[0], 10, 64)
	if seconds {
		t *= 1000
	}
	return err == nil && t <= now
}

// covered reports whether every key of cmd (of source database cmd.DB)
// was repaired at an offset past cmd, which the repair's read holds; it
// returns the keys that were not, when some were.
func (a *applier) covered(cmd *records.Command, keys []string) (all bool, rest []dbKey) {
	if len(a.skip) == 0 || len(keys) == 0 {
		return false, nil
	}
	n := 0
	for _, k := range keys {
		if at, ok := a.skip[dbKey{cmd.DB, k}]; ok && cmd.End <= at {
			n++
		} else {
			rest = append(rest, dbKey{cmd.DB, k})
		}
	}
	switch n {
	case 0:
		return false, nil
	case len(keys):
		return true, nil
	}
	return false, rest
}

// repair reads keys (of source databases) again from the source, with the
// offset the read stands at, writes them over the target's (deleting
// those the source no longer holds) and leaves out the commands of the
// stream on them up to that offset.
func (a *applier) repair(ctx context.Context, keys []dbKey) error {
	var taken []dbKey
	seen := make(map[dbKey]bool, len(keys))
	for _, k := range keys {
		if _, ok := a.mapDB(k.db); ok && !seen[k] {
			seen[k] = true
			taken = append(taken, k)
		}
	}
	return a.eachSourceBatch(ctx, taken, true, func(db, to int, part, names []string, dumps []records.Dumped, offsets []int64) error {
		for i, k := range part {
			a.skip[dbKey{db, k}] = offsets[i]
			a.remember(db, offsets[i], k)
		}
		_, inFlight, err := a.writeKeys(ctx, to, names, dumps)
		if err != nil {
			return err
		}
		for _, i := range inFlight {
			a.recheck = append(a.recheck, dbKey{db, part[i]})
		}
		a.st.Repaired += int64(len(part))
		return nil
	})
}

// targetNames returns the names keys of the source take on the target.
func (a *applier) targetNames(keys []string) []string {
	if !a.renames() {
		return keys
	}
	names := make([]string, len(keys))
	for i, k := range keys {
		names[i] = a.opts.Reshape.Key(k)
	}
	return names
}

// repairExpired repairs the keys of this link's master that the target
// expired on its own clock since the last time (see expiryWatch): each
// is read again from the source, which may hold it still, or hold what
// the writes the target applied after the expiry made of it.
func (a *applier) repairExpired(ctx context.Context) error {
	var expired []dbKey
	if a.watch != nil {
		var err error
		if expired, err = a.watch.take(a.shard); err != nil {
			return fmt.Errorf("%w: %w (keys the target expires on its own clock can no longer be read again from the source)", ErrStopped, err)
		}
	}
	// The snapshot's keys the load left out as expired, the first time.
	expired, a.loadExpired = append(expired, a.loadExpired...), nil
	// Keys a repair found expiring as it read them, once more: the source
	// may have written them since, before they expired there.
	lost := a.recheck
	a.recheck = nil
	for _, k := range expired {
		var from []dbKey
		for _, db := range a.sourceDBsOf(k.db) {
			for _, key := range a.opts.Reshape.Sources(k.key) {
				from = append(from, dbKey{db, key})
			}
		}
		switch len(from) {
		case 0:
		case 1:
			lost = append(lost, from[0])
		default:
			// More than one key of the source takes this name: not read
			// again, which the cutover's check covers.
			a.st.Unrepaired++
		}
	}
	if len(lost) == 0 {
		return nil
	}
	a.st.Expired += int64(len(lost))
	return a.repair(ctx, lost)
}

// sourceDBsOf returns the source databases that may be synced into
// target database to.
func (a *applier) sourceDBsOf(to int) []int {
	if a.oneDB() < 0 && len(a.opts.Reshape.DBMap) == 0 {
		if _, ok := a.mapDB(to); ok {
			return []int{to}
		}
		return nil
	}
	var out []int
	for db := 0; db < 16; db++ {
		if t, ok := a.mapDB(db); ok && t == to {
			out = append(out, db)
		}
	}
	for db := range a.opts.Reshape.DBMap {
		if t, ok := a.mapDB(db); ok && t == to && db >= 16 {
			out = append(out, db)
		}
	}
	return out
}

// forget drops the repairs the position has passed.
func (a *applier) forget() {
	for k, at := range a.skip {
		if at <= a.pos.Offset {
			delete(a.skip, k)
		}
	}
}

// writeKeys writes keys of the source, read with DUMP, over the target's
// keys names of database to: decoded and loaded (a payload of any RDB
// version), or deleted where the source holds none or the selection
// leaves the key out. It returns how many were deleted, and which keys
// (by index) were deleted as their expiry passes about now: the source
// held them when it was read and may still have written them before they
// expired there, commands the target would apply to nothing, so a sync
// reads them again (see recheck).
func (a *applier) writeKeys(ctx context.Context, to int, names []string, dumps []records.Dumped) (int, []int, error) {
	var recs []*format.Record
	var gone []string
	var inFlight []int
	now := time.Now().UnixMilli()
	for i, d := range dumps {
		if d.Payload != nil && expiring(d, now) {
			inFlight = append(inFlight, i)
		}
		if d.Payload == nil || expiring(d, now) {
			gone = append(gone, names[i])
			continue
		}
		var err error
		from := len(recs)
		if recs, err = a.decode(d, to, names[i], recs); err != nil {
			return 0, nil, err
		}
		if !a.judge(recs[from:]) {
			recs = recs[:from]
			gone = append(gone, names[i])
		}
	}
	if len(recs) > 0 {
		lo := a.opts.Load
		lo.Replace, lo.Quiet, lo.Counter, lo.Checkpoint, lo.KeysKnown = true, true, nil, "", nil
		if _, err := load.Load(ctx, &sliceReader{recs: recs}, lo); err != nil {
			return 0, nil, err
		}
	}
	return len(gone), inFlight, a.t.del(ctx, to, gone)
}
