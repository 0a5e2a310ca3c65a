package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/crs-tool/crs/internal/e2e"

	"github.com/crs-tool/crs/internal/redisserver"
	"github.com/crs-tool/crs/internal/redistest"
)

// leastPrivilege is what each command needs of an ACL user on Redis 7.0,
// as the README's "Least privilege" lists it.
var leastPrivilege = []struct {
	name  string
	rules []string
	run   func(src, dst *redisserver.Server, user string) string // the command line
}{
	{"crsdump", []string{"~*", "+@read", "+info", "+function|list", "+multi", "+exec", "+watch"},
		func(src, _ *redisserver.Server, u string) string {
			return "crsdump -q -u redis://" + u + "@" + src.Addr + " -o d.zst"
		}},
	{"crsdump --snapshot", []string{"+info", "+psync", "+replconf"},
		func(src, _ *redisserver.Server, u string) string {
			return "crsdump -q --snapshot -u redis://" + u + "@" + src.Addr + " -o s.zst"
		}},
	{"crsload", []string{"~*", "+@write", "+info", "+time"},
		func(_, dst *redisserver.Server, u string) string {
			return "crsload -q -u redis://" + u + "@" + dst.Addr + " all.zst"
		}},
	{"crs verify", []string{"~*", "+@read", "+info", "+function|list"},
		func(src, _ *redisserver.Server, u string) string {
			return "crs verify -q -u redis://" + u + "@" + src.Addr + " all.zst"
		}},
	{"crs stats", []string{"~*", "+@read", "+info", "+function|list", "+multi", "+exec", "+watch"},
		func(src, _ *redisserver.Server, u string) string { return "crs stats -u redis://" + u + "@" + src.Addr }},
	// crs sync: the rules of its source's user (the target's is crsload's).
	{"crs sync --mode replication", []string{"~*", "+info", "+psync", "+replconf", "+client|pause", "+multi", "+exec", "+dump", "+pexpiretime"},
		func(src, dst *redisserver.Server, u string) string {
			return "crs sync -q --mode replication --cutover --pause 5s --source redis://" + u + "@" + src.Addr + " -u " + dst.URL
		}},
	{"crs sync --mode notify", []string{"~*", "&*", "+@read", "+info", "+function|list", "+multi", "+exec", "+watch", "+psubscribe", "+config|get", "+config|set", "+ping"},
		func(src, dst *redisserver.Server, u string) string {
			return "crs sync -q --mode notify --cutover --pause 5s --source redis://" + u + "@" + src.Addr + " -u " + dst.URL
		}},
}

// TestLeastPrivilege runs each command as an ACL user with exactly the
// rules the README lists for it, then with each rule taken away: the
// first succeeds, each of the others fails naming a rule to add.
func TestLeastPrivilege(t *testing.T) {
	ctx := context.Background()
	src := redistest.Start(t, "--repl-diskless-sync-delay", "0")
	sc := redistest.Client(t, src, 0)
	sc.Set(ctx, "k", "v", 0)
	sc.HSet(ctx, "h", "f", "v")
	sc.Do(ctx, "XADD", "s", "*", "f", "v")
	if err := sc.FunctionLoad(ctx, library).Err(); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if out, code := e2e.Sh(t, dir, "crsdump -q -u "+src.URL+" -o all.zst"); code != 0 {
		t.Fatalf("dump: exit %d\n%s", code, out)
	}
	for _, lp := range leastPrivilege {
		t.Run(lp.name, func(t *testing.T) {
			for drop := -1; drop < len(lp.rules); drop++ {
				var rules []string
				for i, r := range lp.rules {
					if i != drop {
						rules = append(rules, r)
					}
				}
				dst := redistest.Start(t)
				user := fmt.Sprintf("u%d", drop+1)
				for _, s := range []*redisserver.Server{src, dst} {
					args := append([]interface{}{"ACL", "SETUSER", user, "reset", "on", ">pw"}, anys(rules)...)
					if err := redistest.Client(t, s, 0).Do(ctx, args...).Err(); err != nil {
						t.Fatal(err)
					}
				}
				out, code := e2e.Sh(t, dir, lp.run(src, dst, user+":pw"))
				switch {
				case drop < 0 && code != 0:
					t.Errorf("with %v: exit %d\n%s", rules, code, out)
				case drop >= 0 && (code == 0 || !strings.Contains(out, "the ACL user ")):
					t.Errorf("without %s: exit %d, and no rule named:\n%s", lp.rules[drop], code, out)
				}
			}
		})
	}
}

func anys(ss []string) []interface{} {
	out := make([]interface{}, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

// TestKeyRules: an ACL user whose key rules (~app:*) do not cover every
// key is found before anything is read or written: a dump or a sync of
// every key is refused naming the key rule, one of the keys it may read
// (--match app:*) goes through; a load of keys it may not write is
// refused with the target left empty, and a load of every key is warned.
func TestKeyRules(t *testing.T) {
	ctx := context.Background()
	src, dst := redistest.Start(t), redistest.Start(t)
	for _, s := range []*redisserver.Server{src, dst} {
		if err := redistest.Client(t, s, 0).Do(ctx, "ACL", "SETUSER", "app", "on", ">pw", "~app:*", "+@all").Err(); err != nil {
			t.Fatal(err)
		}
	}
	sc := redistest.Client(t, src, 0)
	sc.Set(ctx, "app:1", "a", 0)
	sc.Set(ctx, "other:1", "b", 0)
	dir := t.TempDir()
	if out, code := e2e.Sh(t, dir, "crsdump -q -u "+src.URL+" -o all.zst"); code != 0 {
		t.Fatalf("dump: exit %d\n%s", code, out)
	}
	asApp := func(s *redisserver.Server) string { return "redis://app:pw@" + s.Addr }
	for _, c := range []struct {
		line string
		code int
		says string
	}{
		{"crsdump -u " + asApp(src) + " -o d.zst", 5, `the ACL user may not touch key "crs:acl-probe": SCAN returns every key`},
		{"crsdump --match 'app:*' -u " + asApp(src) + " -o d.zst", 0, "dumped 1 keys"},
		{"crs sync --source " + asApp(src) + " -u " + dst.URL, 5, "crs sync reads the keys changed during the sync"},
		{"crsload --match 'other:*' -u " + asApp(dst) + " all.zst", 5, `the ACL user may not touch key "other:acl-probe": the load stops`},
		{"crsload --match 'other:*' --key-prefix app: -u " + asApp(dst) + " -n 1 all.zst", 0, "loaded 1 keys"},
		{"crsload -u " + asApp(dst) + " all.zst", 1, `BEWARE: the ACL user may not write every key`},
	} {
		out, code := e2e.Sh(t, dir, c.line)
		if code != c.code || !strings.Contains(out, c.says) {
			t.Errorf("%s: exit %d, want %d and %q\n%s", c.line, code, c.code, c.says, out)
		}
		if c.code == 5 && redistest.Client(t, dst, 0).DBSize(ctx).Val() != 0 {
			t.Errorf("%s: the target holds keys", c.line)
		}
	}
	// Refused before the first byte, a dump to stdout writes none.
	if out, code := e2e.Sh(t, dir, "crsdump -u "+asApp(src)+" > out.zst"); code != 5 {
		t.Errorf("crsdump to stdout: exit %d\n%s", code, out)
	} else if b, err := os.ReadFile(filepath.Join(dir, "out.zst")); err != nil || len(b) != 0 {
		t.Errorf("crsdump to stdout, refused: %v, %d bytes written", err, len(b))
	}
	if v := redistest.Client(t, dst, 1).Get(ctx, "app:other:1").Val(); v != "b" {
		t.Errorf("app:other:1 in database 1 of the target: %q", v)
	}
}
