package target

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/crs-tool/crs/internal/redistest"
)

// TestKeysOf: the keys of a command, and where they are, as the server
// says: from COMMAND INFO's first, last and step; from COMMAND GETKEYS
// for a container's subcommand (placed among the arguments) and for
// movable keys (not placed).
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
}
