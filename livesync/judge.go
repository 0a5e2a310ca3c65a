package livesync

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/crs-tool/crs/format"
	"github.com/crs-tool/crs/records"
)

// A selection by type (--type) or size (--max-key-bytes) judges a key by
// what it holds, which a command of the stream does not say (RENAME, a
// RESTORE, SORT … STORE or ZUNIONSTORE can change a key's type; any write
// its size). So under one the stream's commands are not applied: each
// says which keys changed, and those are read again from the source
// after it, as a sync by notifications reads them (reread), and the
// selection judges what was read: a key it leaves out is deleted from the
// target. Commands that name no key (FLUSHDB, FLUSHALL, SWAPDB) are
// applied, in order, after the keys changed before them are read again.

// judges reports whether the selection judges keys by their type or size.
func (a *applier) judges() bool {
	return len(a.opts.Select.Types) > 0 || a.opts.Select.MaxKeyBytes > 0
}

// keysWritten returns the keys cmd (of source database cmd.DB) may
// change: its keys, and for MOVE and COPY … DB the key in the other
// database.
func (a *applier) keysWritten(cmd *records.Command, ci *cmdInfo, keys []string) []dbKey {
	out := make([]dbKey, 0, len(keys)+1)
	for _, k := range keys {
		out = append(out, dbKey{cmd.DB, k})
	}
	switch {
	case ci.name == "MOVE" && len(cmd.Args) > 2:
		if db, err := strconv.Atoi(cmd.Args[2]); err == nil {
			out = append(out, dbKey{db, cmd.Args[1]})
		}
	case ci.name == "COPY" && len(cmd.Args) > 2:
		for i := 3; i+1 < len(cmd.Args); i++ {
			if strings.EqualFold(cmd.Args[i], "db") {
				if db, err := strconv.Atoi(cmd.Args[i+1]); err == nil {
					out = append(out, dbKey{db, cmd.Args[2]})
				}
			}
		}
	}
	return out
}

// applyJudged applies a batch under a selection by type or size: the keys
// its commands write are read again from the source; a command without
// keys is applied after the keys changed before it are read, and the
// position is recorded once all are.
func (a *applier) applyJudged(ctx context.Context, batch []*records.Command, apply []bool, nodes []int, next Position) error {
	pending := map[dbKey]struct{}{}
	for i, cmd := range batch {
		for _, k := range a.rereads[i] {
			pending[k] = struct{}{}
		}
		if !apply[i] || isName(cmd, "multi") || isName(cmd, "exec") {
			continue
		}
		if err := a.reread(ctx, pending); err != nil {
			return err
		}
		clear(pending)
		only := make([]bool, len(batch))
		only[i] = true
		var err error
		if a.t.cluster {
			_, err = a.applyRouted(ctx, batch, batch, only, nodes)
		} else {
			_, err = a.applyTx(ctx, batch, batch, only, Position{ReplID: a.pos.ReplID, Offset: cmd.End, DB: cmd.DB})
		}
		if err != nil {
			return err
		}
		a.st.Transactions++
	}
	if len(pending) == 0 {
		return nil
	}
	if err := a.reread(ctx, pending); err != nil {
		return err
	}
	if a.t.cluster {
		return nil
	}
	a.st.Transactions++
	_, err := a.applyTx(ctx, batch, batch, make([]bool, len(batch)), next)
	return err
}

// judge reports whether the selection takes a key read from the source,
// recs its records; one it leaves out is counted, by reason.
func (a *applier) judge(recs []*format.Record) bool {
	why := a.leftOutFor(recs)
	if why == "" {
		return true
	}
	if a.st.LeftOut == nil {
		a.st.LeftOut = map[string]int64{}
	}
	a.st.LeftOut[why]++
	if name := fmt.Sprintf("%q (db %d, %s)", recs[0].Key, recs[0].DB, recs[0].Type); why == "max-key-bytes" && len(a.st.TooBig) < 10 && !slices.Contains(a.st.TooBig, name) {
		a.st.TooBig = append(a.st.TooBig, name)
	}
	return false
}

// leftOutFor says why the selection leaves out the key whose records are
// recs ("type", "max-key-bytes"; "" when it takes it).
func (a *applier) leftOutFor(recs []*format.Record) string {
	if len(recs) == 0 || !a.judges() {
		return ""
	}
	if ok, why := (records.Selection{Types: a.opts.Select.Types}).Takes(recs[0]); !ok {
		return why
	}
	if limit := a.opts.Select.MaxKeyBytes; limit > 0 {
		var n int64
		for _, r := range recs {
			n += int64(format.ApproxSize(r))
		}
		if n > limit {
			return "max-key-bytes"
		}
	}
	return ""
}
