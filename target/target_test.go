package target

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/crs-tool/crs/internal/redisconn"
	"github.com/crs-tool/crs/internal/redistest"
	"github.com/crs-tool/crs/internal/resp"
)

// TestClusterRouting: every key goes to the master the cluster says
// serves its slot, and a command sent there is not redirected; a command
// sent elsewhere is, and Redirection reads where to.
func TestClusterRouting(t *testing.T) {
	ctx := context.Background()
	c := redistest.StartCluster(t, 3, 0, "")
	tgt := openTarget(t, c.Nodes[1].URL)
	if !tgt.SlotRouted() || len(tgt.Nodes()) != 3 {
		t.Fatalf("a cluster of 3 masters opened as %d nodes, slot-routed %v", len(tgt.Nodes()), tgt.SlotRouted())
	}
	conns := make([]*resp.Conn, 3)
	for i, n := range tgt.Nodes() {
		var err error
		if conns[i], err = Dial(ctx, n, "", 0); err != nil {
			t.Fatal(err)
		}
		defer conns[i].Close()
	}
	for i := range 200 {
		key := fmt.Sprintf("k:%d", i)
		if i%3 == 0 {
			key = fmt.Sprintf("{user%d}:k", i)
		}
		right := tgt.Node(key)
		for n, conn := range conns {
			conn.Begin("SET", 2).Str(key).Str("v")
			var reply string
			if err := conn.Exec(ctx, func(_ int, r resp.Reply) error {
				reply = r.Text
				if r.Kind != resp.KindError {
					reply = "OK"
				}
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			addr, ask, redirected := tgt.Redirection(reply)
			switch {
			case n == right && reply != "OK":
				t.Fatalf("%q on the master Node names (%d): %s", key, n, reply)
			case n != right && (!redirected || ask || addr != tgt.Nodes()[right].Address()):
				t.Fatalf("%q on master %d: %q read as %q ask %v, want MOVED to %s", key, n, reply, addr, ask, tgt.Nodes()[right].Address())
			}
		}
	}
	if _, _, ok := tgt.Redirection("ERR something else"); ok {
		t.Error("an error read as a redirection")
	}
	if _, ask, ok := tgt.Redirection("ASK 3999 127.0.0.1:7001"); !ok || !ask {
		t.Error("ASK not read")
	}
}

// TestStandalone: one server takes every key.
func TestStandalone(t *testing.T) {
	s := redistest.Start(t)
	tgt := openTarget(t, s.URL)
	if tgt.SlotRouted() || len(tgt.Nodes()) != 1 || tgt.Node("anything") != 0 || !strings.Contains(tgt.Nodes()[0].Address(), s.Addr) {
		t.Errorf("a standalone server opened as %v", tgt.Nodes())
	}
}

// openTarget opens the target at url, closed when the test ends.
func openTarget(t *testing.T, url string) Target {
	t.Helper()
	o := redisconn.NewOptions()
	o.URL = url
	tgt, err := Open(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tgt.Close)
	return tgt
}

// openRouter connects a Router to tgt's servers, closed when the test ends.
func openRouter(t *testing.T, tgt Target) *Router {
	t.Helper()
	r, err := NewRouter(context.Background(), tgt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	return r
}
