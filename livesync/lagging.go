package livesync

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/crs-tool/crs/records"
)

// A stream group read with XREADGROUP replicates, before Redis 7.2, as
// XCLAIM … LASTID alone, which moves the group's last-delivered-id on
// the target but not its entries-read: the cutover's check copies the
// source's (setEntriesRead) for the streams it compares. It compares the
// keys written during this run; a run that continues from the target's
// position, after the source restarted or crs stopped, would not compare
// a stream read before it stopped and not since. So each stream a group
// read touched is named in the target's checkpoint (a field
// "claimed:DB:KEY", written with the position, once) and a continuing
// run compares them all at its cutover.

// claimedPrefix starts the checkpoint's fields that name such streams.
const claimedPrefix = "claimed:"

// claimedFields notes the streams the commands of planned that apply
// says claim entries in (the planning remembered them as changed), and
// returns the checkpoint fields (field, value, …) that name those the
// checkpoint does not name yet.
func (a *applier) claimedFields(planned []*records.Command, apply []bool) []string {
	var out []string
	for i, cmd := range planned {
		if !apply[i] || !isName(cmd, "xclaim") || len(cmd.Args) < 2 {
			continue
		}
		k := dbKey{cmd.DB, cmd.Args[1]}
		if a.claimed == nil {
			a.claimed = map[dbKey]bool{}
		}
		if !a.claimed[k] {
			a.claimed[k] = true
			out = append(out, claimedPrefix+strconv.Itoa(k.db)+":"+k.key, "1")
		}
	}
	return out
}

// readClaimed reads, for a run that continues from the target's position,
// the streams its checkpoint names as claimed in, to be compared, and
// their groups' entries-read set, at the cutover.
func (a *applier) readClaimed(ctx context.Context) error {
	if !a.checkpointed() {
		return nil
	}
	v, err := a.t.router.Do(ctx, 0, 0, "HKEYS", a.key)
	if err != nil {
		return fmt.Errorf("read %s on the target: %w", a.key, err)
	}
	for _, f := range v.Array {
		rest, ok := strings.CutPrefix(f.Str, claimedPrefix)
		if !ok {
			continue
		}
		dbs, key, ok := strings.Cut(rest, ":")
		db, err := strconv.Atoi(dbs)
		if !ok || err != nil {
			continue
		}
		if a.claimed == nil {
			a.claimed = map[dbKey]bool{}
		}
		a.claimed[dbKey{db, key}] = true
		a.remember(db, a.pos.Offset, key)
	}
	return nil
}
