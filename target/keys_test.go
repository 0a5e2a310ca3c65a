package target

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/crs-tool/crs/internal/redistest"
)

// TestKeysOf: the keys of a command, and where they are, as the server
// says: from COMMAND INFO's first, last and step, a container's from its
// subcommand's (XGROUP|CREATE); from COMMAND GETKEYS only for movable
// keys (not placed), so a command without keys (PUBLISH, propagated to
// replicas) costs no round trip.
func TestKeysOf(t *testing.T) {
	ctx := context.Background()
	s := redistest.Start(t)
	tgt := openTarget(t, s.URL)
	r := openRouter(t, tgt)
	k := NewKeys(r)
	for _, tt := range []struct {
		cmd     string
		keys    []string
		at      []int
		failing string
	}{
		{cmd: "SET k v PX 10", keys: []string{"k"}, at: []int{1}},
		{cmd: "MSET a 1 b 2", keys: []string{"a", "b"}, at: []int{1, 3}},
		{cmd: "RENAME a b", keys: []string{"a", "b"}, at: []int{1, 2}},
		{cmd: "XGROUP CREATE s s $ MKSTREAM", keys: []string{"s"}, at: []int{2}},
		{cmd: "XGROUP SETID st g 0-1", keys: []string{"st"}, at: []int{2}},
		{cmd: "ZUNIONSTORE d 2 a b", keys: []string{"d", "a", "b"}},
		{cmd: "FLUSHALL"},
		{cmd: "PUBLISH ch message"},
		{cmd: "FUNCTION LOAD code"},
		{cmd: "NOSUCHCOMMAND x", failing: "has no NOSUCHCOMMAND"},
	} {
		keys, at, err := k.Of(ctx, strings.Fields(tt.cmd))
		switch {
		case tt.failing != "":
			if err == nil || !strings.Contains(err.Error(), tt.failing) {
				t.Errorf("%s: err = %v, want %q", tt.cmd, err, tt.failing)
			}
		case err != nil:
			t.Errorf("%s: %v", tt.cmd, err)
		case !slices.Equal(keys, tt.keys) || !slices.Equal(at, tt.at):
			t.Errorf("%s: keys %q at %v, want %q at %v", tt.cmd, keys, at, tt.keys, tt.at)
		}
	}
	// Asked again: nothing more than the one movable command's GETKEYS.
	for _, cmd := range []string{"XGROUP CREATE s g $", "PUBLISH ch m", "SET k v"} {
		if _, _, err := k.Of(ctx, strings.Fields(cmd)); err != nil {
			t.Fatal(err)
		}
	}
	stats, err := redistest.Client(t, s, 0).Info(ctx, "commandstats").Result()
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(stats, "cmdstat_command|getkeys:calls=1,"); n != 1 {
		t.Errorf("COMMAND GETKEYS asked other than once (for ZUNIONSTORE):\n%s", stats)
	}
}
