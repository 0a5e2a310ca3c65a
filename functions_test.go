package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/crs-tool/crs/internal/e2e"

	"github.com/redis/go-redis/v9"

	"github.com/crs-tool/crs/internal/redistest"
)

const library = "#!lua name=crslib\nredis.register_function('crs_hello', function(keys, args) return 'hello ' .. (args[1] or '') end)"

// libraries returns the function libraries of a server, name to code.
func libraries(t *testing.T, c *redis.Client) map[string]string {
	t.Helper()
	libs, err := c.FunctionList(context.Background(), redis.FunctionListQuery{WithCode: true}).Result()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, l := range libs {
		out[l.Name] = l.Code
	}
	return out
}

// TestFunctionLibrariesMove: a function library survives a move, from a
// live dump and from an RDB file; a library the target has already is
// refused unless --replace; crs verify compares libraries.
func TestFunctionLibrariesMove(t *testing.T) {
	ctx := context.Background()
	src := redistest.Start(t)
	sc := redistest.Client(t, src, 0)
	if err := sc.FunctionLoad(ctx, library).Err(); err != nil {
		t.Fatal(err)
	}
	sc.Set(ctx, "k", "v", 0)
	dir := t.TempDir()
	out, code := e2e.Sh(t, dir, "crsdump -u "+src.URL+" -o d.zst")
	if code != 0 || !strings.Contains(out, "and 1 function libraries") {
		t.Fatalf("dump: exit %d\n%s", code, out)
	}
	if err := sc.Save(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	rdbFile := filepath.Join(src.Dir, "dump.rdb")
	for _, in := range []string{"d.zst", rdbFile} {
		dst := redistest.Start(t)
		dc := redistest.Client(t, dst, 0)
		out, code := e2e.Sh(t, dir, "crsload -u "+dst.URL+" "+in+" && crs verify -u "+dst.URL+" "+in)
		if code != 0 || !strings.Contains(out, "1 keys and 1 function libraries checked, 0 differences") {
			t.Fatalf("%s: exit %d\n%s", in, code, out)
		}
		if got := libraries(t, dc)["crslib"]; got != library {
			t.Errorf("%s: the target's library is %q", in, got)
		}
		if v, err := dc.FCall(ctx, "crs_hello", nil, "you").Text(); err != nil || v != "hello you" {
			t.Errorf("%s: FCALL: %q %v", in, v, err)
		}
		// Loaded again: the library exists; refused unless --replace.
		dc.Del(ctx, "k")
		out, code = e2e.Sh(t, dir, "crsload -u "+dst.URL+" "+in)
		if code != 4 || !strings.Contains(out, `function library "crslib" exists on the target`) {
			t.Errorf("%s again: exit %d\n%s", in, code, out)
		}
		if out, code := e2e.Sh(t, dir, "crsload --replace -u "+dst.URL+" "+in); code != 0 {
			t.Errorf("%s with --replace: exit %d\n%s", in, code, out)
		}
		// A library that differs is a difference.
		if err := dc.FunctionLoadReplace(ctx, strings.Replace(library, "hello ", "bye ", 1)).Err(); err != nil {
			t.Fatal(err)
		}
		if out, code := e2e.Sh(t, dir, "crs verify -u "+dst.URL+" "+in); code != 6 || !strings.Contains(out, "its code differs") {
			t.Errorf("%s: verify of a changed library: exit %d\n%s", in, code, out)
		}
	}
}

// TestFunctionsIntoAServerWithout: a dump with a function library, into a
// server before 7.0 (no FUNCTION LOAD), is refused by pre-flight naming
// the library and the flag, with nothing written; --skip-functions loads
// the keys and counts the library. crs stats and crs verify of a file of
// libraries only say what it holds.
func TestFunctionsIntoAServerWithout(t *testing.T) {
	var old *redistest.Binary
	for _, b := range redistest.Servers(t) {
		if b.Engine == "redis" && !b.AtLeast(7, 0) {
			old = &b
			break
		}
	}
	if old == nil {
		t.Skip("no server before Redis 7.0 at hand")
	}
	t.Logf("into %s", old.Name)
	ctx := context.Background()
	src := redistest.Start(t)
	sc := redistest.Client(t, src, 0)
	if err := sc.FunctionLoad(ctx, library).Err(); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if out, code := e2e.Sh(t, dir, "crsdump -q -u "+src.URL+" -o lib.zst && crs stats lib.zst"); code != 0 || !strings.Contains(out, "0 keys in 0 databases; 1 function libraries") {
		t.Errorf("stats of a file of one library: exit %d\n%s", code, out)
	}
	if out, code := e2e.Sh(t, dir, "crs verify -u "+src.URL+" lib.zst"); code != 0 || !strings.Contains(out, "0 keys and 1 function libraries checked, 0 differences") {
		t.Errorf("verify of a file of one library: exit %d\n%s", code, out)
	}
	sc.Set(ctx, "k", "v", 0)
	if out, code := e2e.Sh(t, dir, "crsdump -q -u "+src.URL+" -o d.zst"); code != 0 {
		t.Fatalf("dump: exit %d\n%s", code, out)
	}
	dst := redistest.StartBinary(t, old.Path)
	dc := redistest.Client(t, dst, 0)
	out, code := e2e.Sh(t, dir, "crsload -u "+dst.URL+" d.zst")
	if code != 4 || !strings.Contains(out, `the dump holds 1 function libraries, which need FUNCTION LOAD (Redis 7.0+), and the target is redis `+old.Name[len("redis-"):]+`: "crslib"`) || !strings.Contains(out, "--skip-functions") {
		t.Errorf("load into %s: exit %d\n%s", old.Name, code, out)
	}
	if n, _ := dc.DBSize(ctx).Result(); n != 0 {
		t.Errorf("the refused load wrote %d keys", n)
	}
	out, code = e2e.Sh(t, dir, "crsload --skip-functions -u "+dst.URL+" d.zst")
	if code != 0 || !strings.Contains(out, "SKIPPED 1 function libraries (--skip-functions)") {
		t.Errorf("load --skip-functions: exit %d\n%s", code, out)
	}
	if v, _ := dc.Get(ctx, "k").Result(); v != "v" {
		t.Errorf("k = %q after the load", v)
	}
}
