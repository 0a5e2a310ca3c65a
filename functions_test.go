package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

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
	out, code := sh(t, dir, "crsdump -u "+src.URL+" -o d.zst")
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
		out, code := sh(t, dir, "crsload -u "+dst.URL+" "+in+" && crs verify -u "+dst.URL+" "+in)
		if code != 0 || !strings.Contains(out, "2 keys checked, 0 differences") {
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
		out, code = sh(t, dir, "crsload -u "+dst.URL+" "+in)
		if code != 4 || !strings.Contains(out, `function library "crslib" exists on the target`) {
			t.Errorf("%s again: exit %d\n%s", in, code, out)
		}
		if out, code := sh(t, dir, "crsload --replace -u "+dst.URL+" "+in); code != 0 {
			t.Errorf("%s with --replace: exit %d\n%s", in, code, out)
		}
		// A library that differs is a difference.
		if err := dc.FunctionLoadReplace(ctx, strings.Replace(library, "hello ", "bye ", 1)).Err(); err != nil {
			t.Fatal(err)
		}
		if out, code := sh(t, dir, "crs verify -u "+dst.URL+" "+in); code != 6 || !strings.Contains(out, "its code differs") {
			t.Errorf("%s: verify of a changed library: exit %d\n%s", in, code, out)
		}
	}
}
