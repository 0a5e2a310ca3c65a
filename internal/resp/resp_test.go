package resp_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/crs-tool/crs/internal/redistest"
	"github.com/crs-tool/crs/internal/resp"
)

// TestExecEach reads replies element by element: a long array, an empty
// and a nil one, an error, a reply that is not an array; and the
// connection stays in step after fn fails part way.
func TestExecEach(t *testing.T) {
	s := redistest.Start(t)
	ctx := context.Background()
	c, err := resp.Dial(ctx, resp.Options{Network: "tcp", Addr: s.Addr})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var want []string
	c.Begin("RPUSH", 1+20000).Str("l")
	for i := 0; i < 20000; i++ {
		e := fmt.Sprintf("element %d %s", i, strings.Repeat("x", i%50))
		want = append(want, e)
		c.Str(e)
	}
	c.Begin("SET", 2).Str("s").Str("v")
	if err := c.Exec(ctx, func(int, resp.Reply) error { return nil }); err != nil {
		t.Fatal(err)
	}
	each := func(fn func([]byte) error, args ...string) error {
		c.Begin(args[0], len(args)-1)
		for _, a := range args[1:] {
			c.Str(a)
		}
		return c.ExecEach(ctx, fn)
	}
	var got []string
	if err := each(func(b []byte) error { got = append(got, string(b)); return nil }, "LRANGE", "l", "0", "-1"); err != nil {
		t.Fatal(err)
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("got %d elements, want %d", len(got), len(want))
	}
	n := 0
	if err := each(func([]byte) error { n++; return nil }, "LRANGE", "missing", "0", "-1"); err != nil || n != 0 {
		t.Errorf("empty array: %d elements, %v", n, err)
	}
	var se resp.ServerError
	if err := each(func([]byte) error { return nil }, "LRANGE", "s", "0", "-1"); !errors.As(err, &se) || !strings.HasPrefix(string(se), "WRONGTYPE") {
		t.Errorf("error reply: %v", err)
	}
	if err := each(func([]byte) error { return nil }, "GET", "s"); err == nil || !strings.Contains(err.Error(), "expected an array") {
		t.Errorf("a bulk string reply: %v", err)
	}
	stop := errors.New("enough")
	seen := 0
	if err := each(func([]byte) error { seen++; return stop }, "LRANGE", "l", "0", "-1"); err != stop || seen != 1 {
		t.Errorf("fn's error: %v after %d elements", err, seen)
	}
	got = got[:0]
	if err := each(func(b []byte) error { got = append(got, string(b)); return nil }, "LRANGE", "l", "0", "1"); err != nil || len(got) != 2 || got[1] != want[1] {
		t.Errorf("after fn's error the connection is out of step: %q, %v", got, err)
	}
}
