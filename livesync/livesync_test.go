package livesync

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/crs-tool/crs/internal/redisconn"
	"github.com/crs-tool/crs/internal/redistest"
	"github.com/crs-tool/crs/internal/resp"
	"github.com/crs-tool/crs/records"
	"github.com/prometheus/client_golang/prometheus"
)

func cmd(db int, end int64, args ...string) *records.Command {
	return &records.Command{DB: db, Args: args, End: end}
}

func TestLostBy(t *testing.T) {
	zero, one := resp.Value{Kind: resp.KindInt, Int: 0}, resp.Value{Kind: resp.KindInt, Int: 1}
	noKey := resp.Value{Kind: resp.KindError, Str: "ERR no such key"}
	for _, tt := range []struct {
		args  []string
		reply resp.Value
		lost  bool
		keys  []string
	}{
		{[]string{"PEXPIREAT", "k", "9000"}, zero, true, []string{"k"}},
		{[]string{"pexpireat", "k", "9000"}, one, false, nil},
		{[]string{"PERSIST", "k"}, zero, true, []string{"k"}},
		{[]string{"EXPIRE", "k", "5"}, zero, true, []string{"k"}},
		{[]string{"RENAME", "a", "b"}, noKey, true, []string{"a", "b"}},
		{[]string{"RENAMENX", "a", "b"}, noKey, true, []string{"a", "b"}},
		{[]string{"RENAME", "a", "b"}, resp.Value{Kind: resp.KindStatus, Str: "OK"}, false, nil},
		{[]string{"INCR", "k"}, one, false, nil},
		{[]string{"DEL", "k"}, zero, false, nil}, // a DEL of nothing is the source's own
		// An expiry that had passed when the target applied it.
		{[]string{"PEXPIREAT", "k", "4000"}, one, true, []string{"k"}},
		{[]string{"PEXPIREAT", "k", "6000"}, one, false, nil},
		{[]string{"SET", "k", "v", "PXAT", "5000"}, resp.Value{Kind: resp.KindStatus, Str: "OK"}, true, []string{"k"}},
		{[]string{"SET", "k", "v", "EXAT", "6"}, resp.Value{Kind: resp.KindStatus, Str: "OK"}, false, nil},
		{[]string{"SET", "k", "v", "KEEPTTL"}, resp.Value{Kind: resp.KindStatus, Str: "OK"}, false, nil},
	} {
		c := cmd(0, 10, tt.args...)
		if got := lostBy(c, tt.reply, 5000); got != tt.lost {
			t.Errorf("lostBy(%q, %v) = %v", tt.args, tt.reply, got)
			continue
		}
		if tt.lost {
			var keys []string
			for _, k := range lostKeys(c) {
				keys = append(keys, k.key)
			}
			if fmt.Sprint(keys) != fmt.Sprint(tt.keys) {
				t.Errorf("lostKeys(%q) = %q, want %q", tt.args, keys, tt.keys)
			}
		}
	}
}

// TestCovered: a command on keys read again at an offset past it is left
// out; one on a key read again and another returns the other, to be read
// again too; one past the read is applied.
func TestCovered(t *testing.T) {
	a := &applier{skip: map[dbKey]int64{{0, "k"}: 100, {1, "j"}: 50}}
	for _, tt := range []struct {
		c    *records.Command
		keys []string
		all  bool
		rest []dbKey
	}{
		{cmd(0, 90, "INCR", "k"), []string{"k"}, true, nil},
		{cmd(0, 100, "INCR", "k"), []string{"k"}, true, nil},
		{cmd(0, 101, "INCR", "k"), []string{"k"}, false, nil},
		{cmd(1, 90, "INCR", "k"), []string{"k"}, false, nil}, // another database's k
		{cmd(0, 90, "RENAME", "k", "x"), []string{"k", "x"}, false, []dbKey{{0, "x"}}},
		{cmd(0, 90, "SET", "x", "1"), []string{"x"}, false, nil},
		{cmd(0, 90, "FLUSHDB"), nil, false, nil},
	} {
		all, rest := a.covered(tt.c, tt.keys)
		if all != tt.all || fmt.Sprint(rest) != fmt.Sprint(tt.rest) {
			t.Errorf("covered(%q at %d) = %v, %v; want %v, %v", tt.c.Args, tt.c.End, all, rest, tt.all, tt.rest)
		}
	}
	a.pos.Offset = 60
	a.forget()
	if _, ok := a.skip[dbKey{1, "j"}]; ok || len(a.skip) != 1 {
		t.Errorf("forget at 60 kept %v", a.skip)
	}
}

func TestExpiring(t *testing.T) {
	now := time.Now().UnixMilli()
	for _, tt := range []struct {
		at   int64
		want bool
	}{
		{0, false}, // no expiry: a key missing is missing
		{now - 5, true},
		{now + expirySlack, true},
		{now + expirySlack + 1, false},
		{now + 60_000, false},
	} {
		if got := expiring(records.Dumped{Payload: []byte("x"), ExpireAtMs: tt.at}, now); got != tt.want {
			t.Errorf("expiring(at %+d ms) = %v", tt.at-now, got)
		}
	}
}

func TestEarlierSync(t *testing.T) {
	me := claimPrefix + "2000-10-1-host"
	for _, tt := range []struct {
		list, want string
	}{
		{"id=1 addr=1.2.3.4:5 name=" + me + " cmd=ping\n", ""},
		{"id=2 addr=1.2.3.4:6 name=" + claimPrefix + "1000-7-other cmd=ping\n", "pid 7 on host other"},
		{"id=2 addr=1.2.3.4:6 name=" + claimPrefix + "3000-7-other cmd=ping\n", ""}, // later: it gives way
		{"id=2 addr=1.2.3.4:6 name=" + claimPrefix + "2000-1-a cmd=ping\n", "pid 1 on host a"},
		{"id=2 addr=1.2.3.4:6 name=" + claimPrefix + "2000-10-0-my-host cmd=ping\n", "pid 10 on host my-host"}, // this process's earlier claim
		{"id=2 addr=1.2.3.4:6 name=" + claimPrefix + "1500-7-old-host cmd=ping\n", "pid 7 on host old-host"},   // an earlier crs's name
		{"id=3 addr=x name=someone-else\n", ""},
	} {
		got := earlierSync(tt.list, me)
		if (tt.want == "") != (got == "") || !strings.Contains(got, tt.want) {
			t.Errorf("earlierSync(%q) = %q, want %q", tt.list, got, tt.want)
		}
	}
}

// TestWaiter: a cutover waits for the target to be in step, gives up at
// its timeout, and counts failed checks up to the attempts allowed.
func TestWaiter(t *testing.T) {
	var said []string
	w := waiter{opts: Options{CutoverAttempts: 2, CutoverTimeout: time.Hour}, say: func(f string, a ...any) { said = append(said, fmt.Sprintf(f, a...)) }}
	if _, start, _ := w.ready(Stats{InSync: true}); start {
		t.Fatal("began with nothing asked")
	}
	w.ask(true)
	if rehearse, start, _ := w.ready(Stats{InSync: true}); !rehearse || !start {
		t.Fatal("a rehearsal asked for did not begin in step")
	}
	if err := w.after(true, fmt.Errorf("x: %w", ErrDifferent)); err != nil || w.rehearse || len(said) != 1 {
		t.Fatalf("a failed rehearsal: %v, %v", err, said)
	}
	w.ask(false)
	if _, start, _ := w.ready(Stats{}); start {
		t.Fatal("a cutover began out of step")
	}
	if err := w.after(false, fmt.Errorf("x: %w", ErrDifferent)); err != nil {
		t.Fatalf("the first failed check ended the sync: %v", err)
	}
	if err := w.after(false, fmt.Errorf("x: %w", ErrDifferent)); !errors.Is(err, ErrDifferent) {
		t.Fatalf("the last attempt allowed: %v", err)
	}
	if err := w.after(false, io.ErrUnexpectedEOF); err != io.ErrUnexpectedEOF {
		t.Fatalf("another error: %v", err)
	}
	w.asked = time.Now().Add(-2 * time.Hour)
	if _, _, err := w.ready(Stats{LagBytes: 5}); !errors.Is(err, ErrStopped) || !strings.Contains(err.Error(), "--cutover-timeout") {
		t.Fatalf("past the timeout: %v", err)
	}
}

// TestClaim: a second claim of one server fails naming the first; once
// the first is released, a claim holds again.
func TestClaim(t *testing.T) {
	ctx := context.Background()
	s := redistest.Start(t)
	o := NewOptions()
	o.Load.Conn = redisconn.NewOptions()
	o.Load.Conn.URL = s.URL
	release, err := Claim(ctx, o, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Claim(ctx, o, io.Discard); !errors.Is(err, ErrBusy) || !strings.Contains(err.Error(), "pid ") {
		t.Fatalf("the second claim: %v", err)
	}
	release()
	redistest.WaitFor(t, "the claim released", func() bool {
		r, err := Claim(ctx, o, io.Discard)
		if err == nil {
			r()
		}
		return err == nil
	})
}

// TestExpiryWatch: a key the server expires is collected, for the shard
// route names, once the barrier returns; the server's notification
// setting is put back at the end.
func TestExpiryWatch(t *testing.T) {
	ctx := context.Background()
	s := redistest.Start(t)
	o := redisconn.NewOptions()
	o.URL = s.URL
	ts, err := openTarget(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	defer ts.close()
	w, why, err := watchExpiries(ctx, ts, func(k dbKey) int {
		if strings.HasPrefix(k.key, "other") {
			return -1
		}
		return 0
	})
	if err != nil || why != nil {
		t.Fatal(err, why)
	}
	c := redistest.Client(t, s, 3)
	c.Set(ctx, "gone", 1, time.Millisecond)
	c.Set(ctx, "other", 1, time.Millisecond)
	var got []dbKey
	redistest.WaitFor(t, "the expiry collected", func() bool {
		c.Get(ctx, "gone") // expires it now, if the server has not yet
		c.Get(ctx, "other")
		if err := w.barrier(ctx); err != nil {
			t.Fatal(err)
		}
		keys, err := w.take(0)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, keys...)
		return len(got) > 0
	})
	if fmt.Sprint(got) != fmt.Sprint([]dbKey{{3, "gone"}}) {
		t.Errorf("collected %v", got)
	}
	w.close(ctx)
	if v, _ := c.ConfigGet(ctx, "notify-keyspace-events").Result(); v["notify-keyspace-events"] != "" {
		t.Errorf("notify-keyspace-events left at %q", v["notify-keyspace-events"])
	}
}

// TestDashboard: contrib/grafana/crs-sync.json is valid JSON, and every
// crs_sync_ metric its panels query is one the board serves.
func TestDashboard(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "contrib", "grafana", "crs-sync.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string
			Targets []struct{ Expr string }
		}
	}
	if err := json.Unmarshal(b, &dash); err != nil || len(dash.Panels) == 0 {
		t.Fatalf("dashboard: %v, %d panels", err, len(dash.Panels))
	}
	served := map[string]bool{}
	ch := make(chan *prometheus.Desc, 64)
	NewBoard().Collector().Describe(ch)
	close(ch)
	for d := range ch {
		name := regexp.MustCompile(`fqName: "([a-z_]+)"`).FindStringSubmatch(d.String())
		served[name[1]] = true
	}
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			for _, m := range regexp.MustCompile(`crs_sync_[a-z_]+`).FindAllString(tg.Expr, -1) {
				if !served[m] {
					t.Errorf("panel %q queries %s, which crs does not serve", p.Title, m)
				}
			}
		}
	}
}

// TestClaimedFields: each stream a group read claims entries in is named
// in the checkpoint once, by database and key (a key with a colon too).
func TestClaimedFields(t *testing.T) {
	a := &applier{}
	cmd := func(db int, args ...string) *records.Command { return &records.Command{DB: db, Args: args} }
	planned := []*records.Command{
		cmd(0, "XCLAIM", "s:1", "g", "c", "0", "1-1", "LASTID", "1-1"),
		cmd(0, "XCLAIM", "s:1", "g", "c", "0", "1-2", "LASTID", "1-2"),
		cmd(2, "XCLAIM", "s:1", "g", "c", "0", "1-1"),
		cmd(0, "SET", "k", "v"),
		cmd(0, "XCLAIM", "left:out", "g", "c", "0", "1-1"),
	}
	got := a.claimedFields(planned, []bool{true, true, true, true, false})
	if want := []string{"claimed:0:s:1", "1", "claimed:2:s:1", "1"}; !slices.Equal(got, want) {
		t.Errorf("fields %q, want %q", got, want)
	}
	if again := a.claimedFields(planned, []bool{true, true, true, true, true}); !slices.Equal(again, []string{"claimed:0:left:out", "1"}) {
		t.Errorf("a second batch: %q", again)
	}
}
