package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/crs-tool/crs/internal/e2e"

	"github.com/crs-tool/crs/internal/keyspace"
	"github.com/crs-tool/crs/internal/redistest"
)

func TestStats(t *testing.T) {
	ctx := context.Background()
	src := redistest.Start(t)
	c0 := redistest.Client(t, src, 0)
	if _, err := keyspace.Fill(ctx, c0, 2000); err != nil {
		t.Fatal(err)
	}
	redistest.Client(t, src, 3).Set(ctx, "elsewhere", "x", 0)

	// What the server holds, counted here with SCAN and TYPE, apart from
	// the code under test.
	keys, err := redistest.Keys(ctx, c0)
	if err != nil {
		t.Fatal(err)
	}
	byType := map[string]int{}
	expiring := 0
	for _, k := range keys {
		byType[c0.Type(ctx, k).Val()]++
		if c0.PTTL(ctx, k).Val() > 0 {
			expiring++
		}
	}
	count := func(pattern string) int64 {
		n, err := keyspace.Count(ctx, c0, pattern)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}

	dir := t.TempDir()
	if out, code := e2e.Sh(t, dir, "crsdump -q -u "+src.URL+" -o d.zst"); code != 0 {
		t.Fatalf("dump: %s", out)
	}
	fromFile, code := e2e.Sh(t, dir, "crs stats --top 2 d.zst")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, fromFile)
	}
	fromServer, code := e2e.Sh(t, dir, "crs stats --top 2 -u "+src.URL)
	// The first line names the source and the memory its keys took there,
	// then when they were read, which differs.
	head, fromServer, _ := strings.Cut(fromServer, "\n")
	if !strings.HasPrefix(head, "source: redis ") || !strings.Contains(head, "at "+src.Addr+", its keys took about ") {
		t.Errorf("first line: %s", head)
	}
	_, fromFile, _ = strings.Cut(fromFile, "\n")
	if code != 0 || fromServer != fromFile {
		t.Errorf("stats of the server differ from those of its dump:\n%s\n%s", fromServer, fromFile)
	}
	for _, want := range []string{
		fmt.Sprintf("db 0: %d keys (hash %d, string %d), %d with an expiry", len(keys), byType["hash"], byType["string"], expiring),
		fmt.Sprintf("client_keys:*  %d", count("client_keys:*")),
		fmt.Sprintf("high_rate_limit:*:*:window  %d", count("high_rate_limit:*:*:window")),
		fmt.Sprintf("refresh_attempts:*:*  %d", count("refresh_attempts:*")),
		"global_refresh_success_lock  1",
		"db 3: 1 keys (string 1), 0 with an expiry",
		`hash   "`, // a permanent_binding hash is among the two biggest
		"_pool:permanent_binding\"",
	} {
		if !strings.Contains(squeeze(fromFile), squeeze(want)) {
			t.Errorf("stats do not show %q:\n%s", want, fromFile)
		}
	}

	out, code := e2e.Sh(t, dir, "crs stats --json --pattern 'client_keys:*' --pattern '*_pool:*' --top 1 d.zst")
	var v struct {
		Databases []struct {
			DB       int
			Keys     int64
			Patterns []struct {
				Pattern string
				Keys    int64
			}
			Biggest []struct{ Key string } `json:"biggest_keys"`
		}
	}
	if err := json.Unmarshal([]byte(out), &v); err != nil || code != 0 {
		t.Fatalf("--json: exit %d, %v:\n%s", code, err, out)
	}
	db0 := v.Databases[0]
	if db0.Keys != int64(len(keys)) || len(db0.Patterns) != 2 || len(db0.Biggest) != 1 ||
		db0.Patterns[0].Keys != count("client_keys:*") || db0.Patterns[1].Keys != count("*_pool:*") {
		t.Errorf("--json: %+v", db0)
	}
	if len(v.Databases) != 2 || v.Databases[1].DB != 3 || v.Databases[1].Keys != 1 {
		t.Errorf("--json databases: %+v", v.Databases)
	}

	// Bad input names the line and exits 3.
	if out, code := e2e.Sh(t, dir, "printf 'not a dump\\n' > bad && crs stats bad"); code != 3 || !strings.Contains(out, "line 1") {
		t.Errorf("stats of a bad file: exit %d:\n%s", code, out)
	}
}

// squeeze folds runs of spaces into one, so that column widths do not matter.
func squeeze(s string) string { return strings.Join(strings.Fields(s), " ") }
