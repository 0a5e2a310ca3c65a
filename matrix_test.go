package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/crs-tool/crs/internal/e2e"

	"github.com/crs-tool/crs/internal/redisserver"
	"github.com/crs-tool/crs/internal/redistest"
)

// counterLine matches what a load into a server before 7.0 leaves out
// under --drop-stream-counters.
var counterLine = regexp.MustCompile(`entries-added|max-deleted-entry-id|entries-read`)

// TestVersionMatrix moves the round-trip corpus (every type, streams with
// groups, field expiries where the source has them) from every server at
// hand to every other and to itself, and compares the two servers key by
// key. The servers are chosen by what they are (redistest.Servers), so
// every boundary the set holds is crossed both ways: before 7.0 and 7.0
// (stream counters), 7.0 and 8.0 (field expiry), 8.0 and 8.6, Redis and
// Valkey. A downgrade that loses data must be refused, naming the flag,
// and load with it, counting what it dropped.
func TestVersionMatrix(t *testing.T) {
	bins := redistest.Servers(t)
	t.Logf("servers:\n%s", redistest.Describe(bins))
	var table []string
	for _, src := range bins {
		for _, dst := range bins {
			table = append(table, matrixPair(t, src, dst))
		}
	}
	t.Logf("the matrix:\n%s", strings.Join(table, "\n"))
}

// downgradeFlags are the flags a load from a server like src into one
// like dst needs, each for something dst cannot hold.
func downgradeFlags(src, dst redistest.Binary) []string {
	var flags []string
	if src.FieldExpiry && !dst.FieldExpiry {
		flags = append(flags, "--drop-field-expiry")
	}
	if src.StreamCounters && !dst.StreamCounters {
		flags = append(flags, "--drop-stream-counters")
	}
	if src.IDMP && !dst.IDMP {
		flags = append(flags, "--drop-stream-idmp")
	}
	return flags
}

// fillCorpus fills a server of binary b with the round-trip corpus:
// every type, streams in every state, and field expiries and idempotent
// producers where b has them.
func fillCorpus(t *testing.T, b redistest.Binary, src *redisserver.Server) {
	t.Helper()
	soon := fill(t, src)
	if err := redistest.Client(t, src, 0).Del(context.Background(), soon...).Err(); err != nil {
		t.Fatal(err)
	}
	fillStreams(t, src)
	if b.FieldExpiry {
		fillFieldExpiry(t, src)
	}
	if b.IDMP {
		fillIDMP(t, src)
	}
}

// matrixPair moves the corpus from a server of binary srcBin to one of
// dstBin through a SCAN dump and returns the matrix's row for the pair.
func matrixPair(t *testing.T, srcBin, dstBin redistest.Binary) string {
	row := fmt.Sprintf("%-14s → %-14s FAILED", srcBin.Name, dstBin.Name)
	t.Run(srcBin.Name+"→"+dstBin.Name, func(t *testing.T) {
		begin := time.Now()
		src := redistest.StartBinary(t, srcBin.Path)
		fillCorpus(t, srcBin, src)
		dir := t.TempDir()
		file := filepath.Join(dir, "d.zst")
		if out, code := e2e.Sh(t, dir, "crsdump -q -u "+src.URL+" -o "+file); code != 0 {
			t.Fatalf("dump: exit %d\n%s", code, out)
		}
		keys, n, flags := loadAndDiff(t, srcBin, src, dstBin, file)
		row = fmt.Sprintf("%-14s → %-14s %4d keys (db 0) %2d differences %5.1fs %v", srcBin.Name, dstBin.Name, keys, n, time.Since(begin).Seconds(), flags)
	})
	return row
}

// loadAndDiff loads file (a dump or an RDB file of src) into a new server
// of dstBin with the flags the pair needs, after checking that without
// them the load is refused, naming them, with nothing written; it then
// compares the two servers key by key, leaving out only what the flags
// dropped, and checks the target with crs verify where nothing was. It
// returns the target's keys in db 0, the differences and the flags.
func loadAndDiff(t *testing.T, srcBin redistest.Binary, src *redisserver.Server, dstBin redistest.Binary, file string) (keys int64, n int, flags []string) {
	t.Helper()
	ctx := context.Background()
	dst := redistest.StartBinary(t, dstBin.Path)
	dir := t.TempDir()
	flags = downgradeFlags(srcBin, dstBin)
	if len(flags) > 0 {
		out, code := e2e.Sh(t, dir, "crsload -u "+dst.URL+" "+file)
		for _, f := range flags {
			if code != 4 || !strings.Contains(out, f) {
				t.Errorf("load without %s: exit %d\n%s", f, code, out)
			}
		}
		if n, _ := redistest.Client(t, dst, 0).DBSize(ctx).Result(); n != 0 {
			t.Errorf("a refused load wrote %d keys", n)
		}
	}
	out, code := e2e.Sh(t, dir, "crsload --summary-json sum.json "+strings.Join(flags, " ")+" -u "+dst.URL+" "+file)
	if code != 0 {
		t.Fatalf("load %v: exit %d\n%s", flags, code, out)
	}
	// Every server here takes RESTORE: the whole keys go that way.
	if restored := summaryField(t, filepath.Join(dir, "sum.json"), "keys_restored"); restored == 0 {
		t.Errorf("no key was written by RESTORE of a payload crs encoded:\n%s", out)
	}
	dropCounters := srcBin.StreamCounters && !dstBin.StreamCounters
	if dropCounters && !strings.Contains(out, "DROPPED the counters of") {
		t.Errorf("the summary does not count the dropped counters:\n%s", out)
	}
	dropIDMP := srcBin.IDMP && !dstBin.IDMP
	if dropIDMP && !strings.Contains(out, "DROPPED the idempotent-producer state of 1 streams") {
		t.Errorf("the summary does not count the one stream whose IDMP state was dropped:\n%s", out)
	}
	diffs, err := redistest.Diff(ctx, src, dst, expiryTolerance(t, src, dst))
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range diffs {
		// Counters dropped, or a source without them (the target makes
		// its own).
		if (dropCounters || !srcBin.StreamCounters) && counterLine.MatchString(d) {
			continue
		}
		if dropIDMP && strings.Contains(d, "idmp") {
			continue
		}
		t.Error(d)
		n++
	}
	if len(flags) == 0 {
		if out, code := e2e.Sh(t, dir, "crs verify -u "+dst.URL+" "+file); code != 0 || !strings.Contains(out, " 0 differences") {
			t.Errorf("verify: exit %d\n%s", code, out)
			n++
		}
	}
	keys, _ = redistest.Client(t, dst, 0).DBSize(ctx).Result()
	// The same file by commands alone, into another server.
	byCommands := redistest.StartBinary(t, dstBin.Path)
	if out, code := e2e.Sh(t, dir, "crsload --load-by commands "+strings.Join(flags, " ")+" -u "+byCommands.URL+" "+file); code != 0 {
		t.Fatalf("load --load-by commands %v: exit %d\n%s", flags, code, out)
	}
	diffs, err = redistest.Diff(ctx, dst, byCommands, expiryTolerance(t, dst, byCommands))
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range diffs {
		t.Errorf("restored, and by commands: %s", d)
		n++
	}
	return keys, n, flags
}

// summaryField reads a number from a --summary-json file.
func summaryField(t *testing.T, path, name string) float64 {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	v, _ := m[name].(float64)
	return v
}

// TestEveryInputOfTheNewest takes the newest Redis at hand (8.6 and its
// idempotent producers, today), filled with the corpus, as a SCAN dump, a
// replication snapshot and an RDB file (SAVE), and loads each into every
// server at hand, comparing key by key.
func TestEveryInputOfTheNewest(t *testing.T) {
	bins := redistest.Servers(t)
	newest, _ := redistest.Newest(bins, "redis")
	src := redistest.StartBinary(t, newest.Path, "--repl-diskless-sync-delay", "0")
	fillCorpus(t, newest, src)
	dir := t.TempDir()
	inputs := map[string]string{"SCAN": filepath.Join(dir, "scan.zst"), "snapshot": filepath.Join(dir, "snap.zst")}
	if out, code := e2e.Sh(t, dir, "crsdump -q -u "+src.URL+" -o "+inputs["SCAN"]+" && crsdump -q --snapshot -u "+src.URL+" -o "+inputs["snapshot"]); code != 0 {
		t.Fatalf("dumps: exit %d\n%s", code, out)
	}
	sc := redistest.Client(t, src, 0)
	redistest.WaitFor(t, "the snapshot's child to end", func() bool {
		info, _ := sc.Info(context.Background(), "persistence").Result()
		return strings.Contains(info, "rdb_bgsave_in_progress:0")
	})
	if err := sc.Save(context.Background()).Err(); err != nil {
		t.Fatal(err)
	}
	inputs["RDB file"] = filepath.Join(src.Dir, "dump.rdb")
	var table []string
	for _, in := range []string{"SCAN", "snapshot", "RDB file"} {
		for _, dstBin := range bins {
			t.Run(in+" to "+dstBin.Name, func(t *testing.T) {
				keys, n, flags := loadAndDiff(t, newest, src, dstBin, inputs[in])
				table = append(table, fmt.Sprintf("%-8s of %s → %-14s %4d keys (db 0) %2d differences %v", in, newest.Name, dstBin.Name, keys, n, flags))
			})
		}
	}
	t.Logf("every input of %s:\n%s", newest.Name, strings.Join(table, "\n"))
}
