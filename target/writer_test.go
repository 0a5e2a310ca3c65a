package target

import (
	"context"
	"fmt"
	"math"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/crs-tool/crs/format"
	"github.com/crs-tool/crs/internal/redisconn"
	"github.com/crs-tool/crs/internal/redistest"
)

func TestFormatScore(t *testing.T) {
	for f, want := range map[float64]string{
		0.1: "0.1", 5e-324: "5e-324", math.Inf(1): "inf", math.Inf(-1): "-inf", 1e21: "1e+21", -3: "-3",
	} {
		if got := formatScore(f); got != want {
			t.Errorf("formatScore(%v) = %q, want %q", f, got, want)
		}
	}
}

// writeAll runs a Writer to node i of tgt and sends it batches, one at a
// time, each once the last is written (between calls to between).
func writeAll(t *testing.T, tgt Target, i int, batches [][]Item, between func(n int)) (*WriteStats, error) {
	t.Helper()
	ctx := context.Background()
	o := tgt.Nodes()[i]
	c, srv, err := redisconn.Open(ctx, o, 0, 1)
	if err != nil {
		t.Fatal(err)
	}
	caps, err := redisconn.ProbeCaps(ctx, c)
	c.Close()
	if err != nil {
		t.Fatal(err)
	}
	var line atomic.Int64
	st := &WriteStats{}
	w := NewWriter(tgt, o, Server{Server: srv, Caps: caps}, WriterOptions{Pipeline: 16, RetryFor: 20 * time.Second}, &line, st)
	ch := make(chan Item, 16)
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx, ctx, ch) }()
	for n, b := range batches {
		for _, it := range b {
			ch <- it
		}
		last := int64(b[len(b)-1].Line)
		redistest.WaitFor(t, fmt.Sprintf("batch %d written", n), func() bool { return line.Load() >= last })
		if between != nil {
			between(n)
		}
	}
	close(ch)
	return st, <-done
}

// records are whole keys of every plain type, the first at line from.
func records(from int, suffix string) []Item {
	recs := []*format.Record{
		{Key: "s" + suffix, Type: format.TypeString, Str: "v\x00\xff"},
		{Key: "l" + suffix, Type: format.TypeList, Elems: []string{"a", "b", "a"}},
		{Key: "h" + suffix, Type: format.TypeHash, Hash: []format.Field{{Name: "f", Value: "1"}}},
		{Key: "z" + suffix, Type: format.TypeZSet, ZSet: []format.Member{{Member: "m", Score: 0.1}}},
		{Key: "e" + suffix, Type: format.TypeSet, Elems: []string{"x", "y"}},
	}
	var out []Item
	for i, r := range recs {
		out = append(out, Item{Rec: r, Line: from + i, Last: true, Exp: time.Now().Add(time.Hour).UnixMilli()})
	}
	return out
}

// TestWriterRetriesLostConnection: a Writer whose connection the server
// closed between two batches sends the second again on a new one, after
// a DEL of each key, so that nothing is doubled, and counts the retry.
func TestWriterRetriesLostConnection(t *testing.T) {
	ctx := context.Background()
	s := redistest.Start(t)
	tgt := openTarget(t, s.URL)
	c := redistest.Client(t, s, 0)
	st, err := writeAll(t, tgt, 0, [][]Item{records(1, "1"), records(6, "2")}, func(n int) {
		if n == 0 {
			if err := c.Do(ctx, "CLIENT", "KILL", "TYPE", "normal").Err(); err != nil {
				t.Fatal(err)
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if st.Keys != 10 || st.Retries != 1 || st.ByType[format.TypeList] != 2 {
		t.Errorf("wrote %d keys (%v) with %d retries, want 10 with 1", st.Keys, st.ByType, st.Retries)
	}
	for _, suffix := range []string{"1", "2"} {
		if got := c.LRange(ctx, "l"+suffix, 0, -1).Val(); !slices.Equal(got, []string{"a", "b", "a"}) {
			t.Errorf("list l%s = %q", suffix, got)
		}
		if got := c.Get(ctx, "s"+suffix).Val(); got != "v\x00\xff" {
			t.Errorf("string s%s = %q", suffix, got)
		}
		if ttl := c.PTTL(ctx, "z"+suffix).Val(); ttl < 50*time.Minute {
			t.Errorf("zset z%s expires in %s, want about an hour", suffix, ttl)
		}
	}
}

// TestWriterFollowsMoved: a Writer given every key, on one master of a
// cluster, writes the keys of the others' slots where their MOVED
// replies say.
func TestWriterFollowsMoved(t *testing.T) {
	ctx := context.Background()
	cl := redistest.StartCluster(t, 3, 0, "")
	tgt := openTarget(t, cl.Nodes[0].URL)
	var batches [][]Item
	for i := 0; i < 6; i++ {
		batches = append(batches, records(1+5*i, fmt.Sprint(i)))
	}
	st, err := writeAll(t, tgt, 0, batches, nil)
	if err != nil {
		t.Fatal(err)
	}
	if st.Keys != 30 || st.Redirects == 0 {
		t.Errorf("wrote %d keys with %d redirections, want 30 with some", st.Keys, st.Redirects)
	}
	cc := cl.Client(t)
	elsewhere := 0
	for _, b := range batches {
		for _, it := range b {
			if n, err := cc.Exists(ctx, it.Rec.Key).Result(); err != nil || n != 1 {
				t.Errorf("key %q: exists %d, %v", it.Rec.Key, n, err)
			}
			if tgt.Node(it.Rec.Key) != 0 {
				elsewhere++
			}
		}
	}
	if elsewhere == 0 {
		t.Fatal("every key went to node 0: the test shows nothing")
	}
}
