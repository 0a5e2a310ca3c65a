package main

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/crs-tool/crs/internal/e2e"

	"github.com/crs-tool/crs/internal/redistest"
)

// TestSelection: --match, --exclude, --type and --from-db choose the same
// keys on every command: a dump, a load of a whole dump, stats, and a
// verify of only what was moved.
func TestSelection(t *testing.T) {
	ctx := context.Background()
	// Every command in the slow log, to see what SCAN was asked.
	src := redistest.Start(t, "--slowlog-log-slower-than", "0", "--slowlog-max-len", "100000")
	c := redistest.Client(t, src, 0)
	for _, k := range []string{"client_keys:1", "client_keys:2", "client_keys:x", "other:1"} {
		c.Set(ctx, k, "v", 0)
	}
	c.HSet(ctx, "client_keys:h", "f", "v")
	redistest.Client(t, src, 2).Set(ctx, "client_keys:db2", "v", 0)
	dir := t.TempDir()
	// A dump of some keys.
	out, code := e2e.Sh(t, dir, "crsdump --match 'client_keys:*' --exclude '*:x' --type string -u "+src.URL+" -o some.zst")
	if code != 0 || !strings.Contains(out, "dumped 3 keys") {
		t.Fatalf("dump: exit %d\n%s", code, out)
	}
	// One --match and one --type go to the server: SCAN … MATCH … TYPE.
	var pushed bool
	logs, _ := c.SlowLogGet(ctx, -1).Result()
	for _, l := range logs {
		args := strings.ToUpper(strings.Join(func() []string {
			var a []string
			for _, x := range l.Args {
				a = append(a, fmt.Sprint(x))
			}
			return a
		}(), " "))
		pushed = pushed || (strings.HasPrefix(args, "SCAN ") && strings.Contains(args, "MATCH CLIENT_KEYS:*") && strings.Contains(args, "TYPE STRING"))
	}
	if !pushed {
		t.Errorf("no SCAN with MATCH and TYPE among the %d commands the server ran", len(logs))
	}
	dst := redistest.Start(t)
	if out, code := e2e.Sh(t, dir, "crsload -u "+dst.URL+" some.zst"); code != 0 {
		t.Fatalf("load: exit %d\n%s", code, out)
	}
	got0, _ := redistest.Keys(ctx, redistest.Client(t, dst, 0))
	got2, _ := redistest.Keys(ctx, redistest.Client(t, dst, 2))
	if strings.Join(got0, " ") != "client_keys:1 client_keys:2" || strings.Join(got2, " ") != "client_keys:db2" {
		t.Errorf("the target holds %v and %v", got0, got2)
	}
	// A whole dump, loaded in part, then verified in part.
	if out, code := e2e.Sh(t, dir, "crsdump -q -u "+src.URL+" -o all.zst"); code != 0 {
		t.Fatalf("dump: exit %d\n%s", code, out)
	}
	dst2 := redistest.Start(t)
	out, code = e2e.Sh(t, dir, "crsload --type hash --from-db 0 -u "+dst2.URL+" all.zst")
	if code != 0 || !strings.Contains(out, "loaded 1 keys") || !strings.Contains(out, "left out 5 keys the selection does not take (4 by --type, 1 by --from-db)") {
		t.Errorf("load of hashes: exit %d\n%s", code, out)
	}
	if out, code := e2e.Sh(t, dir, "crs verify --type hash --from-db 0 -u "+dst2.URL+" all.zst"); code != 0 || !strings.Contains(out, "1 keys checked, 0 differences") {
		t.Errorf("verify of what was moved: exit %d\n%s", code, out)
	}
	if out, code := e2e.Sh(t, dir, "crs verify -u "+dst2.URL+" all.zst"); code != 6 || !strings.Contains(out, "5 keys missing") {
		t.Errorf("verify of all: exit %d\n%s", code, out)
	}
	// stats of a server and of the file agree on a selection.
	for _, from := range []string{"-u " + src.URL, "all.zst"} {
		out, code := e2e.Sh(t, dir, "crs stats --match 'client_keys:*' --exclude 'client_keys:h' "+from)
		if code != 0 || !strings.Contains(out, "db 0: 3 keys (string 3)") || !strings.Contains(out, "db 2: 1 keys (string 1)") {
			t.Errorf("stats %s: exit %d\n%s", from, code, out)
		}
	}
	// Keys over --max-key-bytes are left out and named, a list read in
	// parts too.
	for i := 0; i < 10; i++ {
		c.RPush(ctx, "client_keys:biglist", strings.Repeat("x", 100))
	}
	out, code = e2e.Sh(t, dir, "crsdump --part-elems 2 --max-key-bytes 500 -u "+src.URL+" -o small.zst")
	if code != 0 || !strings.Contains(out, `LEFT OUT as larger than --max-key-bytes: "client_keys:biglist" (db 0, list)`) {
		t.Errorf("--max-key-bytes: exit %d\n%s", code, out)
	}
	if out, code := e2e.Sh(t, dir, "crs stats small.zst"); code != 0 || strings.Contains(out, "list") {
		t.Errorf("the dump holds a list: exit %d\n%s", code, out)
	}
	// A pattern the matcher refuses is a usage error.
	if out, code := e2e.Sh(t, dir, "crs stats --type function all.zst"); code != 2 {
		t.Errorf("--type function: exit %d\n%s", code, out)
	}
}

// TestReshape: --rename, --key-prefix and --db-map move keys to new names
// and databases; crs verify with the same flags compares each with its
// original; a rename that makes two keys one is refused before writing.
func TestReshape(t *testing.T) {
	ctx := context.Background()
	src := redistest.Start(t)
	c := redistest.Client(t, src, 0)
	c.Set(ctx, "trial_1", "a", 0)
	c.Set(ctx, "trial_2", "b", 0)
	c.HSet(ctx, "client_keys:k", "tier", "free")
	redistest.Client(t, src, 1).Set(ctx, "other", "c", 0)
	dir := t.TempDir()
	if out, code := e2e.Sh(t, dir, "crsdump -q -u "+src.URL+" -o d.zst"); code != 0 {
		t.Fatalf("dump: exit %d\n%s", code, out)
	}
	dst := redistest.Start(t)
	flags := "--rename 'trial_*=free_*' --key-prefix app1: --db-map 1=5"
	if out, code := e2e.Sh(t, dir, "crsload "+flags+" -u "+dst.URL+" d.zst"); code != 0 {
		t.Fatalf("load: exit %d\n%s", code, out)
	}
	got0, _ := redistest.Keys(ctx, redistest.Client(t, dst, 0))
	got5, _ := redistest.Keys(ctx, redistest.Client(t, dst, 5))
	if strings.Join(got0, " ") != "app1:client_keys:k app1:free_1 app1:free_2" || strings.Join(got5, " ") != "app1:other" {
		t.Errorf("the target holds %v in db 0 and %v in db 5", got0, got5)
	}
	if v, _ := redistest.Client(t, dst, 0).Get(ctx, "app1:free_2").Result(); v != "b" {
		t.Errorf("app1:free_2 = %q", v)
	}
	if out, code := e2e.Sh(t, dir, "crs verify "+flags+" -u "+dst.URL+" d.zst"); code != 0 || !strings.Contains(out, "4 keys checked, 0 differences") {
		t.Errorf("verify with the reshape: exit %d\n%s", code, out)
	}
	if out, code := e2e.Sh(t, dir, "crs verify -u "+dst.URL+" d.zst"); code != 6 || !strings.Contains(out, "4 keys missing") {
		t.Errorf("verify without it: exit %d\n%s", code, out)
	}
	// trial_1 and trial_2 become one key: refused, nothing written.
	dst2 := redistest.Start(t)
	out, code := e2e.Sh(t, dir, "crsload --rename 'trial_*=free' -u "+dst2.URL+" d.zst")
	if code != 4 || !strings.Contains(out, `1 keys would be written twice, two source keys becoming one on the target`) || !strings.Contains(out, `"free" (db 0)`) {
		t.Errorf("a merging rename: exit %d\n%s", code, out)
	}
	if n, _ := redistest.Client(t, dst2, 0).DBSize(ctx).Result(); n != 0 {
		t.Errorf("the refused load wrote %d keys", n)
	}

	// Into a cluster, a rename that takes a key out of its hash tag's
	// slot is refused, naming it; one that keeps the tag loads.
	c.Set(ctx, "{user1}:plan", "p", 0)
	c.Set(ctx, "{user1}:quota", "q", 0)
	if out, code := e2e.Sh(t, dir, "crsdump -q -u "+src.URL+" -n 0 -o tagged.zst"); code != 0 {
		t.Fatalf("dump: exit %d\n%s", code, out)
	}
	cl := redistest.StartCluster(t, 3, 0, "")
	out, code = e2e.Sh(t, dir, "crsload --rename '{user1}:plan=user1:plan' -u "+cl.URL()+" tagged.zst")
	if code != 4 || !strings.Contains(out, "1 keys with a hash tag would go to another slot") || !strings.Contains(out, `"{user1}:plan" → "user1:plan"`) {
		t.Errorf("a rename out of the tag's slot: exit %d\n%s", code, out)
	}
	if out, code := e2e.Sh(t, dir, "crsload --key-prefix app: -u "+cl.URL()+" tagged.zst"); code != 0 || cl.Keys(t) != 5 {
		t.Errorf("a prefix that keeps the tags: exit %d, %d keys\n%s", code, cl.Keys(t), out)
	}
}
