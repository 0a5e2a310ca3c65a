package main

import (
	"context"
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/crs-tool/crs/internal/redistest"
)

// versionPairs covers every boundary a migration meets, both ways: 6.2
// (no stream counters) and 7.0, 7.0 and 7.4 (hash field expiry), 7.4 and
// 8.0, 8.0 and Valkey 9, Valkey 8 and Redis 7.2; and each server to
// itself.
var versionPairs = [][2]string{
	{"redis-6.2.16", "debian-redis"},
	{"debian-redis", "redis-7.4.1"},
	{"redis-7.4.1", "redis-8.0.6"},
	{"redis-8.0.6", "valkey-9.1.2"},
	{"valkey-8.0.1", "redis-7.2.6"},
	{"redis-7.4.1", "redis-6.2.16"}, // the downgrade: field expiry and stream counters both dropped
}

// counterLine matches what a load into a server before 7.0 leaves out
// under --drop-stream-counters.
var counterLine = regexp.MustCompile(`entries-added|max-deleted-entry-id|entries-read`)

// TestVersionMatrix moves the round-trip corpus (every type, streams with
// groups, field expiries where the source has them) between each ordered
// pair of versionPairs and from each server to itself, and compares the
// two servers key by key. A downgrade that loses data must be refused,
// naming the flag, and load with it, counting what it dropped.
func TestVersionMatrix(t *testing.T) {
	bins := serverBinaries(t)
	var pairs [][2]string
	for _, p := range versionPairs {
		pairs = append(pairs, p, [2]string{p[1], p[0]})
	}
	for name := range bins {
		pairs = append(pairs, [2]string{name, name})
	}
	var table []string
	for _, p := range pairs {
		srcBin, dstBin := bins[p[0]], bins[p[1]]
		if srcBin == "" || dstBin == "" {
			t.Errorf("no server %s or %s", p[0], p[1])
			continue
		}
		t.Run(p[0]+"→"+p[1], func(t *testing.T) {
			begin := time.Now()
			src := redistest.StartBinary(t, srcBin)
			dst := redistest.StartBinary(t, dstBin)
			soon := fill(t, src)
			ctx := context.Background()
			if err := redistest.Client(t, src, 0).Del(ctx, soon...).Err(); err != nil {
				t.Fatal(err)
			}
			fillStreams(t, src)
			srcFE, dstFE := hasFieldExpiry(t, src), hasFieldExpiry(t, dst)
			if srcFE {
				fillFieldExpiry(t, src)
			}
			dir := t.TempDir()
			file := filepath.Join(dir, "d.zst")
			if out, code := sh(t, dir, "crsdump -q -u "+src.URL+" -o "+file); code != 0 {
				t.Fatalf("dump: exit %d\n%s", code, out)
			}
			var flags []string
			if srcFE && !dstFE {
				flags = append(flags, "--drop-field-expiry")
			}
			dstInfo, _ := redistest.Client(t, dst, 0).Info(ctx, "server").Result()
			srcInfo, _ := redistest.Client(t, src, 0).Info(ctx, "server").Result()
			dropCounters := strings.Contains(dstInfo, "redis_version:6.") && !strings.Contains(srcInfo, "redis_version:6.")
			if dropCounters {
				flags = append(flags, "--drop-stream-counters")
			}
			if len(flags) > 0 {
				// Without the flags, nothing is written and the flags are named.
				out, code := sh(t, dir, "crsload -u "+dst.URL+" "+file)
				for _, f := range flags {
					if code != 4 || !strings.Contains(out, f) {
						t.Errorf("load without %s: exit %d\n%s", f, code, out)
					}
				}
				if n, _ := redistest.Client(t, dst, 0).DBSize(ctx).Result(); n != 0 {
					t.Errorf("a refused load wrote %d keys", n)
				}
			}
			out, code := sh(t, dir, "crsload "+strings.Join(flags, " ")+" -u "+dst.URL+" "+file)
			if code != 0 {
				t.Fatalf("load %v: exit %d\n%s", flags, code, out)
			}
			if dropCounters && !strings.Contains(out, "DROPPED the counters of") {
				t.Errorf("the summary does not count the dropped counters:\n%s", out)
			}
			diffs, err := redistest.Diff(ctx, src, dst, expiryTolerance(t, src, dst))
			if err != nil {
				t.Fatal(err)
			}
			// A source before 7.0 reports no stream counters; the target
			// makes its own.
			fromOld := strings.Contains(srcInfo, "redis_version:6.")
			n := 0
			for _, d := range diffs {
				if (dropCounters || fromOld) && counterLine.MatchString(d) {
					continue
				}
				t.Error(d)
				n++
			}
			if len(flags) == 0 {
				if out, code := sh(t, dir, "crs verify -u "+dst.URL+" "+file); code != 0 || !strings.Contains(out, " 0 differences") {
					t.Errorf("verify: exit %d\n%s", code, out)
					n++
				}
			}
			keys, _ := redistest.Client(t, dst, 0).DBSize(ctx).Result()
			table = append(table, fmt.Sprintf("%-14s → %-14s %4d keys (db 0) %2d differences %5.1fs %v", p[0], p[1], keys, n, time.Since(begin).Seconds(), flags))
		})
	}
	t.Logf("the matrix:\n%s", strings.Join(table, "\n"))
}
