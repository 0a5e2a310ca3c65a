package livesync

import (
	"fmt"
	"slices"

	"github.com/crs-tool/crs/format"
	"github.com/crs-tool/crs/records"
)

// What a sync takes of the source, and under which names and databases:
// --match, --exclude, --from-db, --rename, --key-prefix, --db-map, -n.

// selectsKeys reports whether the sync takes only some keys (--match,
// --exclude).
func (a *applier) selectsKeys() bool { return len(a.opts.Select.Match)+len(a.opts.Select.Exclude) > 0 }

// takes reports whether the selection takes key.
func (a *applier) takes(key string) bool {
	ok, _ := records.Selection{Match: a.opts.Select.Match, Exclude: a.opts.Select.Exclude}.Takes(&format.Record{Key: key})
	return ok
}

// renames reports whether keys get other names (--rename, --key-prefix).
func (a *applier) renames() bool {
	return len(a.opts.Reshape.Renames) > 0 || a.opts.Reshape.Prefix != ""
}

// selectKeys applies the selection and the renames to cmd, whose keys are
// at at: it returns the command to apply (nil: none of its keys is
// taken), or an error for one that cannot be split or renamed.
func (a *applier) selectKeys(cmd *records.Command, ci *cmdInfo, keys []string, at []int) (*records.Command, error) {
	if a.selectsKeys() {
		n := 0
		for _, k := range keys {
			if a.takes(k) {
				n++
			}
		}
		switch {
		case n == 0 && len(keys) > 0:
			return nil, nil
		case n < len(keys):
			return nil, fmt.Errorf("%w at offset %d of %s: %s writes keys the selection takes and keys it does not (%q among them), which one command cannot be split into", ErrStopped, cmd.Offset+1, a.link.Name(), ci.name, keys)
		}
	}
	if !a.renames() || len(keys) == 0 {
		return cmd, nil
	}
	if at == nil {
		return nil, fmt.Errorf("%w at offset %d of %s: %s has its keys where its arguments say, which a rename cannot rewrite", ErrStopped, cmd.Offset+1, a.link.Name(), ci.name)
	}
	out := *cmd
	out.Args = slices.Clone(cmd.Args)
	for _, i := range at {
		out.Args[i] = a.opts.Reshape.Key(out.Args[i])
	}
	return &out, nil
}

// oneDB is the database everything goes into (-n), or -1.
func (a *applier) oneDB() int {
	// Once: it parses the target's URL (a fifth of crs's CPU at full rate
	// when it did so for every command).
	a.oneOnce.Do(func() { a.one, _ = a.opts.Load.Conn.SelectedDB() })
	return a.one
}

// mapDB returns the target database of source database db, and false
// when db is not synced.
func (a *applier) mapDB(db int) (int, bool) {
	if len(a.opts.Select.DBs) > 0 && !slices.Contains(a.opts.Select.DBs, db) {
		return 0, false
	}
	if one := a.oneDB(); one >= 0 {
		return one, true
	}
	return a.opts.Reshape.DB(db), true
}
