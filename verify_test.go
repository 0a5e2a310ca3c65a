package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/crs-tool/crs/internal/e2e"

	"github.com/redis/go-redis/v9"

	"github.com/crs-tool/crs/internal/redisserver"
	"github.com/crs-tool/crs/internal/redistest"
)

// oldCommands starts a server without the commands Redis 6.2 and 7.0
// added that verify and dump use where they can, as an older server is.
var oldCommands = []string{"--rename-command", "PEXPIRETIME", "", "--rename-command", "SMISMEMBER", "", "--rename-command", "ZMSCORE", "", "--rename-command", "MEMORY", ""}

func TestVerify(t *testing.T) {
	src := redistest.Start(t)
	fill(t, src)
	fillStreams(t, src)
	dir := t.TempDir()
	file, _ := runDump(t, src, func(o *dumpSetup) { o.PartElems = 50 })
	for _, kind := range []string{"current", "without PEXPIRETIME, SMISMEMBER, ZMSCORE"} {
		t.Run(kind, func(t *testing.T) {
			var dst *redisserver.Server
			if kind == "current" {
				dst = redistest.Start(t)
			} else {
				dst = redistest.Start(t, oldCommands...)
			}
			verifyTarget(t, dir, file, src, dst)
		})
	}
}

func verifyTarget(t *testing.T, dir, file string, src, dst *redisserver.Server) {
	if out, err := runLoad(t, dst, file, nil); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	ctx := context.Background()

	out, code := e2e.Sh(t, dir, "crs verify -u "+dst.URL+" "+file)
	if code != 0 || !strings.Contains(out, "0 differences") {
		t.Fatalf("clean target: exit %d:\n%s", code, out)
	}
	out, code = e2e.Sh(t, dir, "crs verify --source "+src.URL+" --target "+dst.URL)
	if code != 0 || !strings.Contains(out, "0 differences") {
		t.Fatalf("two servers: exit %d:\n%s", code, out)
	}

	// Plant one difference of each kind.
	d := redistest.Client(t, dst, 0)
	d.HSet(ctx, "hash:small", "f", "changed value")
	d.Del(ctx, "zero-padded")
	d.PExpireAt(ctx, "hash:big", time.Now().Add(time.Hour))
	d.ZAdd(ctx, "zset:scores", redis.Z{Score: 0.30000000000000004, Member: "tenth"})
	d.Del(ctx, "set:intset")
	d.Set(ctx, "set:intset", "now a string", 0)
	d.RPop(ctx, "list:long")
	d.Do(ctx, "XGROUP", "DELCONSUMER", "events", "workers", "idle-consumer")
	want := []string{
		`key "events": group "workers": 3 consumers, target 2`,
		`key "hash:small": field "f" differs`,
		`key "zero-padded": missing from the target`,
		`key "hash:big": no expiry in the dump, target expires at`,
		`key "zset:scores": member "tenth": score 0.1, target 0.30000000000000004`,
		`key "set:intset": type set, target string`,
		`key "list:long": element 4999 differs`,
	}
	for _, args := range []string{"crs verify -u " + dst.URL + " " + file, "crs verify --source " + src.URL + " --target " + dst.URL} {
		out, code = e2e.Sh(t, dir, args)
		if code != 6 || !strings.Contains(out, "7 differences (1 keys missing)") {
			t.Errorf("%s: exit %d:\n%s", args, code, out)
		}
		for _, w := range want {
			if !strings.Contains(out, w) {
				t.Errorf("%s: does not report %s:\n%s", args, w, out)
			}
		}
	}

	// crsload --verify runs the same check right after a load.
	again := redistest.Start(t)
	out, code = e2e.Sh(t, dir, "crsload --verify -u "+again.URL+" "+file)
	if code != 0 || !strings.Contains(out, "crs verify:") || !strings.Contains(out, "0 differences") {
		t.Errorf("crsload --verify: exit %d:\n%s", code, out)
	}
}
