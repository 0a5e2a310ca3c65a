package main

import (
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
