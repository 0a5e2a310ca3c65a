package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/crs-tool/crs/internal/e2e"
	"github.com/crs-tool/crs/internal/redistest"
)

// TestPartsAcrossProcesses runs what a Kubernetes Indexed Job of three
// pods would: three crsdump processes, each told its index in
// JOB_COMPLETION_INDEX (--part auto/3), dump one cluster at once; one of
// them is killed while it writes and run again, as the Job's retry would.
// Two processes then load the three parts into another cluster, and
// crs verify of each part against it finds no difference.
func TestPartsAcrossProcesses(t *testing.T) {
	src := redistest.StartCluster(t, 3, 0, "")
	n := redistest.FillCluster(t, src, 900)
	dir := t.TempDir()
	part := func(i int) string { return filepath.Join(dir, fmt.Sprintf("part-%d.zst", i)) }
	dumpLine := func(i int, flags string) string {
		return fmt.Sprintf("env JOB_COMPLETION_INDEX=%d crsdump %s --part auto/3 -u %s -o %s", i, flags, src.URL(), part(i))
	}
	// Part 1, slowed down, is killed once it has begun writing.
	slow, progress := e2e.Start(t, mkdir(t, dir, "slow"), dumpLine(1, "--progress plain --rate 50"))
	begun := regexp.MustCompile(` [1-9][0-9]*(/[0-9]+)? keys,`)
	redistest.WaitFor(t, "part 1 to have dumped keys", func() bool {
		_, err := os.Stat(part(1) + ".tmp")
		return err == nil && begun.MatchString(progress())
	})
	slow.Process.Kill()
	slow.Wait()
	if _, err := os.Stat(part(1)); err == nil {
		t.Fatal("a killed part left a whole-looking file")
	}
	// The three at once, part 1 again among them.
	type run struct {
		wait func() error
		out  func() string
	}
	var runs []run
	for i := 0; i < 3; i++ {
		cmd, out := e2e.Start(t, mkdir(t, dir, strconv.Itoa(i)), dumpLine(i, ""))
		runs = append(runs, run{cmd.Wait, out})
	}
	total := 0
	dumped := regexp.MustCompile(`dumped (\d+) keys`)
	for i, r := range runs {
		if err := r.wait(); err != nil {
			t.Fatalf("part %d: %v\n%s", i, err, r.out())
		}
		m := dumped.FindStringSubmatch(r.out())
		// On a cluster that redis-cli --cluster create made, each part is
		// one master's slots.
		if m == nil || !strings.Contains(r.out(), fmt.Sprintf("; part %d/3 (slots ", i)) || !strings.Contains(r.out(), ": 1 of 3 shards read") {
			t.Fatalf("part %d's summary:\n%s", i, r.out())
		}
		t.Logf("part %d: %s", i, strings.TrimSpace(r.out()))
		k, _ := strconv.Atoi(m[1])
		if k == 0 || k == n {
			t.Errorf("part %d holds %d of %d keys", i, k, n)
		}
		total += k
	}
	if total != n {
		t.Fatalf("the parts hold %d keys, the cluster %d", total, n)
	}
	// Two loaders share the three parts (the target is not empty after
	// the first part: --replace, which the parts' keys never share).
	dst := redistest.StartCluster(t, 3, 0, "")
	loads := []string{
		fmt.Sprintf("crsload -q --replace -u %s %s && crsload -q --replace -u %s %s", dst.URL(), part(0), dst.URL(), part(2)),
		fmt.Sprintf("crsload -q --replace -u %s %s", dst.URL(), part(1)),
	}
	var loaders []run
	for i, l := range loads {
		cmd, out := e2e.Start(t, mkdir(t, dir, fmt.Sprintf("load%d", i)), "sh -c '"+l+"'")
		loaders = append(loaders, run{cmd.Wait, out})
	}
	for i, r := range loaders {
		if err := r.wait(); err != nil {
			t.Fatalf("loader %d: %v\n%s", i, err, r.out())
		}
	}
	checked := regexp.MustCompile(`(\d+) keys checked, 0 differences`)
	verified := 0
	for i := 0; i < 3; i++ {
		out, code := e2e.Sh(t, dir, "crs verify -u "+dst.URL()+" "+part(i))
		m := checked.FindStringSubmatch(out)
		if code != 0 || m == nil {
			t.Fatalf("verify of part %d: exit %d\n%s", i, code, out)
		}
		k, _ := strconv.Atoi(m[1])
		verified += k
	}
	if verified != n {
		t.Errorf("verified %d keys, the source holds %d", verified, n)
	}
	out, code := e2e.Sh(t, dir, "crs verify -u "+dst.URL()+" --source "+src.URL())
	if code != 0 || !strings.Contains(out, " 0 differences") {
		t.Errorf("verify of the clusters: exit %d\n%s", code, out)
	}
}

// mkdir makes a directory under dir for one background process (each
// keeps its output in a file of its own).
func mkdir(t *testing.T, dir, name string) string {
	t.Helper()
	d := filepath.Join(dir, name)
	if err := os.MkdirAll(d, 0o755); err != nil {
		t.Fatal(err)
	}
	return d
}

// TestDumpSet writes a dump set (crsdump --parts 3 -o DIR/), lists it,
// loads and verifies it whole and by part, and refuses one with a part
// missing or cut short, naming it, before writing anything.
func TestDumpSet(t *testing.T) {
	src := redistest.Start(t)
	ctx := context.Background()
	// The corpus without its keys that expire within seconds: the set is
	// compared with the source strictly, long after.
	if soon := fill(t, src); redistest.Client(t, src, 0).Del(ctx, soon...).Err() != nil {
		t.Fatal("DEL")
	}
	e2e.FillMany(t, src, 2000)
	n, _ := redistest.Client(t, src, 0).DBSize(ctx).Result()
	dir := t.TempDir()
	set := filepath.Join(dir, "set") + "/"
	if out, code := e2e.Sh(t, dir, "crsdump --parts 3 -u "+src.URL+" -o "+set); code != 0 || strings.Count(out, "crsdump: dumped") != 3 {
		t.Fatalf("dump: exit %d\n%s", code, out)
	}
	out, code := e2e.Sh(t, dir, "crs stats --list "+set)
	if code != 0 || !strings.Contains(out, "3 of 3 parts") || strings.Count(out, "part-000") != 3 {
		t.Fatalf("stats --list: exit %d\n%s", code, out)
	}
	t.Logf("crs stats --list:\n%s", out)

	dst := redistest.Start(t)
	if out, code := e2e.Sh(t, dir, "crsload -u "+dst.URL+" "+set); code != 0 {
		t.Fatalf("load: exit %d\n%s", code, out)
	}
	e2e.AssertNoDiff(t, src, dst)
	if out, code := e2e.Sh(t, dir, "crs verify -u "+dst.URL+" "+set); code != 0 || !strings.Contains(out, " 0 differences") {
		t.Errorf("verify: exit %d\n%s", code, out)
	}

	// One part alone, as one of N loaders would take it.
	one := redistest.Start(t)
	if out, code := e2e.Sh(t, dir, "crsload --part 1/3 -u "+one.URL+" "+set); code != 0 {
		t.Fatalf("load --part 1/3: exit %d\n%s", code, out)
	}
	got, _ := redistest.Client(t, one, 0).DBSize(ctx).Result()
	if got == 0 || got >= n {
		t.Errorf("part 1 of 3 loaded %d keys of %d", got, n)
	}

	// A part cut short, then one missing: refused, naming it, with
	// nothing written.
	files, _ := filepath.Glob(filepath.Join(set, "part-0002-of-0003.jsonl*"))
	if len(files) != 1 {
		t.Fatalf("part 2's dump: %v", files)
	}
	if err := os.Truncate(files[0], 100); err != nil {
		t.Fatal(err)
	}
	empty := redistest.Start(t)
	out, code = e2e.Sh(t, dir, "crsload -u "+empty.URL+" "+set)
	if code != 3 || !strings.Contains(out, "part 2 of 3") || !strings.Contains(out, "cut short") {
		t.Errorf("a part cut short: exit %d\n%s", code, out)
	}
	if err := os.Remove(filepath.Join(set, "part-0001-of-0003.json")); err != nil {
		t.Fatal(err)
	}
	out, code = e2e.Sh(t, dir, "crsload -u "+empty.URL+" "+set)
	if code != 3 || !strings.Contains(out, "part 1 of 3 is missing") {
		t.Errorf("a part missing: exit %d\n%s", code, out)
	}
	if k, _ := redistest.Client(t, empty, 0).DBSize(ctx).Result(); k != 0 {
		t.Errorf("a refused set wrote %d keys", k)
	}

	// Three processes, each its part (an Indexed Job's pods), one set.
	set2 := filepath.Join(dir, "set2") + "/"
	for i := 0; i < 3; i++ {
		if out, code := e2e.Sh(t, dir, fmt.Sprintf("env JOB_COMPLETION_INDEX=%d crsdump -q --part auto/3 -u %s -o %s", i, src.URL, set2)); code != 0 {
			t.Fatalf("part %d: exit %d\n%s", i, code, out)
		}
	}
	again := redistest.Start(t)
	if out, code := e2e.Sh(t, dir, "crsload -q -u "+again.URL+" "+set2); code != 0 {
		t.Fatalf("load of the set three processes wrote: exit %d\n%s", code, out)
	}
	e2e.AssertNoDiff(t, src, again)
}
