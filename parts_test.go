package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/crs-tool/crs/format"
	"github.com/crs-tool/crs/internal/e2e"
	"github.com/crs-tool/crs/internal/redistest"
	"github.com/crs-tool/crs/internal/s3test"
	"go.yaml.in/yaml/v3"
)

// jobSpec is what the test reads of a Kubernetes Job's manifest.
type jobSpec struct {
	Kind string `yaml:"kind"`
	Spec struct {
		CompletionMode string `yaml:"completionMode"`
		Completions    int    `yaml:"completions"`
		Parallelism    int    `yaml:"parallelism"`
		Template       struct {
			Spec struct {
				SecurityContext struct {
					RunAsNonRoot bool `yaml:"runAsNonRoot"`
				} `yaml:"securityContext"`
				Containers []struct {
					Command []string `yaml:"command"`
					Env     []struct {
						Name string `yaml:"name"`
					} `yaml:"env"`
				} `yaml:"containers"`
			} `yaml:"spec"`
		} `yaml:"template"`
	} `yaml:"spec"`
}

// readJob reads deploy/kubernetes/NAME and checks it is an Indexed Job of
// one container that runs as a user that is not root.
func readJob(t *testing.T, name string) jobSpec {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("deploy", "kubernetes", name))
	if err != nil {
		t.Fatal(err)
	}
	var j jobSpec
	if err := yaml.Unmarshal(b, &j); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	s := j.Spec
	if j.Kind != "Job" || s.CompletionMode != "Indexed" || s.Completions < 2 || s.Parallelism < 1 || len(s.Template.Spec.Containers) != 1 || !s.Template.Spec.SecurityContext.RunAsNonRoot {
		t.Fatalf("%s is not an Indexed Job of one container run as a user not root: %+v", name, j)
	}
	c := s.Template.Spec.Containers[0]
	if want := fmt.Sprintf("auto/%d", s.Completions); !slices.Contains(c.Command, want) {
		t.Fatalf("%s: %d completions, and its command %q does not say --part %s", name, s.Completions, c.Command, want)
	}
	return j
}

// jobLine is a Job's command as the arguments of env(1) run here: the
// environment env (VAR=value), each VAR one that the Job's container sets,
// then the command with $(VAR) from it.
func jobLine(t *testing.T, j jobSpec, env []string) string {
	t.Helper()
	c := j.Spec.Template.Spec.Containers[0]
	var words []string
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		if !slices.ContainsFunc(c.Env, func(e struct {
			Name string `yaml:"name"`
		}) bool {
			return e.Name == k
		}) {
			t.Fatalf("the Job's container does not set %s, which the test sets", k)
		}
		words = append(words, "'"+kv+"'")
		for i, w := range c.Command {
			c.Command[i] = strings.ReplaceAll(w, "$("+k+")", v)
		}
	}
	for _, w := range c.Command {
		if strings.Contains(w, "$(") {
			t.Fatalf("the Job's command %q uses a variable the test does not set", w)
		}
		words = append(words, "'"+w+"'")
	}
	return strings.Join(words, " ")
}

// TestKubernetesJobs runs the command lines of deploy/kubernetes's two
// Indexed Jobs as the Jobs would, as local processes each told its index
// in JOB_COMPLETION_INDEX, with the set in a bucket of an S3-compatible
// server: the dump Job's pods all at once against a 6-master cluster
// (one of them killed while it writes and run again, as the Job's retry
// would), then the load Job's, as many at a time as its parallelism,
// into another cluster. crs verify of the set against the target, and of
// the two clusters, finds no difference.
func TestKubernetesJobs(t *testing.T) {
	dumpJob, loadJob := readJob(t, "dump-job.yaml"), readJob(t, "load-job.yaml")
	s3 := s3test.Start(t)
	src := redistest.StartCluster(t, 6, 0, "")
	n := redistest.FillCluster(t, src, 1200)
	dir := t.TempDir()
	set := s3.URL("set/")
	env := append(s3.Env(), "SET_URL="+set)
	line := jobLine(t, dumpJob, append(env, "SOURCE_URL="+src.URL()))
	parts := dumpJob.Spec.Completions
	pod := func(i int, line string) string { return fmt.Sprintf("env JOB_COMPLETION_INDEX=%d %s", i, line) }

	// Part 1, slowed down, is killed once it has begun.
	slow, progress := e2e.Start(t, mkdir(t, dir, "slow"), pod(1, line)+" --progress plain --rate 50")
	begun := regexp.MustCompile(` [1-9][0-9]*(/[0-9]+)? keys,`)
	redistest.WaitFor(t, "part 1 to have dumped keys", func() bool { return begun.MatchString(progress()) })
	slow.Process.Kill()
	slow.Wait()
	for _, name := range []string{format.EntryName(1, parts), format.PartName(1, parts) + ".jsonl.zst"} {
		if _, err := os.Stat(s3.Path("set/" + name)); err == nil {
			t.Fatalf("a killed part left %s in the bucket", name)
		}
	}
	outs := runPods(t, dir, "dump", parts, dumpJob.Spec.Parallelism, func(i int) string { return pod(i, line) })
	// The parts' ranges are redis-cli's: with 3 parts of 6 masters, each
	// part reads two of them, no more.
	for i, out := range outs {
		if !strings.Contains(out, fmt.Sprintf("part %d/%d (slots ", i, parts)) || !strings.Contains(out, ": 2 of 6 shards read") {
			t.Errorf("dump pod %d read other than its two masters:\n%s", i, out)
		}
	}
	out, code := e2e.Sh(t, dir, "crs stats --list '"+set+"'", s3.Env()...)
	if code != 0 || !strings.Contains(out, fmt.Sprintf("%d of %d parts, %d keys", parts, parts, n)) {
		t.Fatalf("stats --list: exit %d\n%s", code, out)
	}
	t.Logf("the set:\n%s", out)

	dst := redistest.StartCluster(t, 3, 0, "")
	loadLine := jobLine(t, loadJob, append(env, "TARGET_URL="+dst.URL()))
	runPods(t, dir, "load", loadJob.Spec.Completions, loadJob.Spec.Parallelism, func(i int) string { return pod(i, loadLine) })
	out, code = e2e.Sh(t, dir, "crs verify -u "+dst.URL()+" '"+set+"'", s3.Env()...)
	if code != 0 || !strings.Contains(out, fmt.Sprintf("%d keys checked, 0 differences", n)) {
		t.Errorf("verify of the set: exit %d\n%s", code, out)
	}
	out, code = e2e.Sh(t, dir, "crs verify -u "+dst.URL()+" --source "+src.URL())
	if code != 0 || !strings.Contains(out, " 0 differences") {
		t.Errorf("verify of the clusters: exit %d\n%s", code, out)
	}
}

// runPods runs a Job's pods 0..completions-1 as processes, parallelism at
// a time, fails t on any that fails, and returns their outputs.
func runPods(t *testing.T, dir, name string, completions, parallelism int, line func(i int) string) []string {
	t.Helper()
	var outs []string
	for first := 0; first < completions; first += parallelism {
		type pod struct {
			wait func() error
			out  func() string
		}
		var pods []pod
		for i := first; i < min(first+parallelism, completions); i++ {
			cmd, out := e2e.Start(t, mkdir(t, dir, fmt.Sprintf("%s%d", name, i)), line(i))
			pods = append(pods, pod{cmd.Wait, out})
		}
		for k, p := range pods {
			if err := p.wait(); err != nil {
				t.Fatalf("%s pod %d: %v\n%s", name, first+k, err, p.out())
			}
			t.Logf("%s pod %d: %s", name, first+k, strings.TrimSpace(p.out()))
			outs = append(outs, p.out())
		}
	}
	return outs
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
	if out, code := e2e.Sh(t, dir, "crsload --parts-at-once 3 -u "+dst.URL+" "+set); code != 0 || !strings.Contains(out, "a dump set's 3 parts, 3 at a time") {
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

	// Parts 0 and 2 by a list, as pg_restore -L takes one: the list
	// printed, part 1's line removed.
	var list []string
	for _, line := range strings.Split(out, "\n") {
		if !strings.HasPrefix(line, "1/3") {
			list = append(list, line)
		}
	}
	listFile := filepath.Join(dir, "parts.list")
	if err := os.WriteFile(listFile, []byte(strings.Join(list, "\n")), 0o600); err != nil {
		t.Fatal(err)
	}
	two := redistest.Start(t)
	if out, code := e2e.Sh(t, dir, "crsload --parts-file "+listFile+" -u "+two.URL+" "+set); code != 0 {
		t.Fatalf("load --parts-file: exit %d\n%s", code, out)
	}
	if k, _ := redistest.Client(t, two, 0).DBSize(ctx).Result(); k != n-got {
		t.Errorf("parts 0 and 2 loaded %d keys, want %d (all but part 1's %d)", k, n-got, got)
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
