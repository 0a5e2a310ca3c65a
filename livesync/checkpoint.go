package livesync

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/crs-tool/crs/internal/redisconn"
	"github.com/crs-tool/crs/internal/resp"
	"github.com/crs-tool/crs/target"
)

// CheckpointKey is the hash, in database 0 of the target, where a sync
// records the position of the commands the target holds. The cutover
// removes it.
const CheckpointKey = "crs:sync:position"

// checkpointFields are the HSET arguments that record pos.
func checkpointFields(key string, pos Position, source string) []string {
	return []string{key, "replid", pos.ReplID, "offset", strconv.FormatInt(pos.Offset, 10), "db", strconv.Itoa(pos.DB), "source", source, "at_ms", strconv.FormatInt(time.Now().UnixMilli(), 10)}
}

// writeCheckpoint records a.pos on a standalone target (after the
// snapshot); a cluster target keeps none.
func (a *applier) writeCheckpoint(ctx context.Context) error {
	if a.t.cluster {
		return nil
	}
	if _, err := a.t.router.Do(ctx, 0, 0, append([]string{"HSET"}, checkpointFields(a.key, a.pos, a.link.Name())...)...); err != nil {
		return fmt.Errorf("record the position on the target: %w", err)
	}
	return nil
}

// ReadCheckpoint returns the position a sync recorded on the target in
// the hash key, and the source it named; nil when there is none.
func ReadCheckpoint(ctx context.Context, conn redisconn.Options, key string) (*Position, string, error) {
	tgt, err := target.Open(ctx, conn)
	if err != nil {
		return nil, "", err
	}
	cluster := tgt.SlotRouted()
	tgt.Close()
	if cluster {
		return nil, "", nil // a cluster target keeps no position
	}
	c, err := target.Dial(ctx, conn, "", 0)
	if err != nil {
		return nil, "", err
	}
	defer c.Close()
	var pos *Position
	var source string
	c.Begin("HGETALL", 1).Str(key)
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

// checkpointed reports whether the target holds the sync's position: a
// standalone target of a sync by replication.
func (a *applier) checkpointed() bool { return !a.notify && !a.t.cluster }

// dropCheckpoint removes the checkpoint: the target then holds the
// source's keys and nothing else.
func (a *applier) dropCheckpoint(ctx context.Context) error {
	if !a.checkpointed() {
		return nil
	}
	if _, err := a.t.router.Do(ctx, 0, 0, "DEL", a.key); err != nil {
		return fmt.Errorf("remove %s from the target: %w", CheckpointKey, err)
	}
	return nil
}
