package livesync

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/crs-tool/crs/internal/redisconn"
	"github.com/crs-tool/crs/load"
	"github.com/crs-tool/crs/target"
)

// Preflight checks the target before the source's snapshot is asked for:
// a sync that starts over (no position the target holds) needs an empty
// target, or replace, which empties it; it returns what replace would
// empty, to be said first. A cutover asked for needs a source that can
// pause its writes (pausable says whether it can, and why not).
func Preflight(ctx context.Context, opts Options, fresh, replace bool, pausable error) (said string, err error) {
	if opts.Cutover && pausable != nil {
		return "", fmt.Errorf("%w: --cutover pauses the source's writes, and %v", ErrStopped, pausable)
	}
	if !fresh && !replace {
		return "", nil
	}
	tgt, err := target.Open(ctx, opts.Load.Conn)
	if err != nil {
		return "", fmt.Errorf("the target: %w", err)
	}
	defer tgt.Close()
	counts := map[int]int64{}
	for _, n := range tgt.Nodes() {
		c, _, err := redisconn.Open(ctx, n, 0, 1)
		if err != nil {
			return "", fmt.Errorf("the target: %w", err)
		}
		ks, err := redisconn.Keyspace(ctx, c)
		c.Close()
		if err != nil {
			return "", fmt.Errorf("the target: %w", err)
		}
		for db, k := range ks {
			counts[db] += k
		}
	}
	var busy []string
	for _, db := range slices.Sorted(maps.Keys(counts)) {
		if counts[db] > 0 {
			busy = append(busy, fmt.Sprintf("db %d holds %d keys", db, counts[db]))
		}
	}
	switch {
	case len(busy) == 0:
		return "", nil
	case replace:
		return fmt.Sprintf("crs sync: --replace empties the whole target (FLUSHALL) before the copy: %s", strings.Join(busy, ", ")), nil
	}
	return "", fmt.Errorf("%w (%s), and crs sync copies into an empty target: crs sync --replace empties it first (FLUSHALL of every database), or empty it yourself", load.ErrTargetNotEmpty, strings.Join(busy, ", "))
}
