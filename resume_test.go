package main

import (
	"context"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/crs-tool/crs/internal/e2e"

	"github.com/crs-tool/crs/internal/redisconn"
	"github.com/crs-tool/crs/internal/redisserver"
	"github.com/crs-tool/crs/internal/redistest"
)

// commandCalls is the number of commands a server has run, from INFO
// commandstats.
func commandCalls(t *testing.T, s *redisserver.Server) int64 {
	info, err := redistest.Client(t, s, 0).Info(context.Background(), "commandstats").Result()
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, v := range redisconn.InfoFields(info) {
		if calls, ok := strings.CutPrefix(v, "calls="); ok {
			c, _ := strconv.ParseInt(calls[:strings.IndexByte(calls, ',')], 10, 64)
			n += c
		}
	}
	return n
}

// loadUntil fills a source, dumps it to d.zst (every hash in three parts)
// and starts crsload --rate 10000 of it, with flags, into a new server;
// it returns once more than a part-th of the keys are on the target.
func loadUntil(t *testing.T, flags string, part int64) (src, dst *redisserver.Server, dir string, cmd *exec.Cmd, output func() string) {
	t.Helper()
	return loadOf(t, "d.zst", "", flags, part)
}

// loadOf is loadUntil of a dump to file, written with dumpFlags too.
func loadOf(t *testing.T, file, dumpFlags, flags string, part int64) (src, dst *redisserver.Server, dir string, cmd *exec.Cmd, output func() string) {
	t.Helper()
	ctx := context.Background()
	src = redistest.Start(t)
	e2e.FillMany(t, src, 20_000)
	dir = t.TempDir()
	if out, code := e2e.Sh(t, dir, "crsdump -q --part-elems 2 "+dumpFlags+" -u "+src.URL+" -o "+file); code != 0 {
		t.Fatalf("dump: exit %d\n%s", code, out)
	}
	total, _ := redistest.Client(t, src, 0).DBSize(ctx).Result()
	dst = redistest.Start(t)
	dc := redistest.Client(t, dst, 0)
	cmd, output = e2e.Start(t, dir, "crsload --rate 10000 "+flags+" -u "+dst.URL+" "+file)
	redistest.WaitFor(t, "part of the keys on the target", func() bool {
		n, _ := dc.DBSize(ctx).Result()
		return n > total/part
	})
	return src, dst, dir, cmd, output
}

// TestResumeLoad interrupts a load half way (^C), then continues it with
// --resume: the target ends equal to the source, key by key, keys in parts
// whole, and the resumed run sends fewer commands than loading it all
// again would (with --replace, as a target that holds keys needs).
func TestResumeLoad(t *testing.T) {
	src, dst, dir, cmd, output := loadUntil(t, "", 3)
	cmd.Process.Signal(syscall.SIGINT)
	err := cmd.Wait()
	if code := e2e.ExitCodeOf(err); code != 130 || !strings.Contains(output(), "crsload --resume with the same arguments continues this load") {
		t.Fatalf("the interrupted load: exit %d\n%s", code, output())
	}
	resumeAndCompare(t, dir, "d.zst", src, dst)
}

// TestResumeLoadOfSet interrupts the load of a dump set, its parts loaded
// side by side, and continues it with --resume: each part from its own
// checkpoint.
func TestResumeLoadOfSet(t *testing.T) {
	src, dst, dir, cmd, output := loadOf(t, "d/", "--parts 3", "--parts-at-once 2", 3)
	cmd.Process.Signal(syscall.SIGINT)
	err := cmd.Wait()
	if code := e2e.ExitCodeOf(err); code != 130 || !strings.Contains(output(), "crsload --resume with the same arguments continues this load") {
		t.Fatalf("the interrupted load: exit %d\n%s", code, output())
	}
	resumeAndCompare(t, dir, "d/", src, dst)
}

// resumeAndCompare runs crsload --resume of file into dst: the target
// must end equal to src, the run send fewer commands than the whole load
// again, and a second --resume find nothing to resume.
func resumeAndCompare(t *testing.T, dir, file string, src, dst *redisserver.Server) {
	t.Helper()
	before := commandCalls(t, dst)
	out, code := e2e.Sh(t, dir, "crsload --resume -u "+dst.URL+" "+file)
	if code != 0 || !strings.Contains(out, "resumed: skipped ") || strings.HasSuffix(file, "/") && !strings.Contains(out, "a dump set's 3 parts") {
		t.Fatalf("--resume: exit %d\n%s", code, out)
	}
	resumed := commandCalls(t, dst) - before
	e2e.AssertNoDiff(t, src, dst)
	// The whole load again, for the count.
	full := redistest.Start(t)
	if out, code := e2e.Sh(t, dir, "crsload -q --replace -u "+full.URL+" "+file); code != 0 {
		t.Fatalf("the whole load: exit %d\n%s", code, out)
	}
	whole := commandCalls(t, full)
	if resumed >= whole {
		t.Errorf("the resumed run sent %d commands, the whole load again %d", resumed, whole)
	}
	t.Logf("%s; the resumed run: %d commands, the whole load again (--replace): %d", strings.TrimSpace(out), resumed, whole)
	// Nothing is left to resume.
	if out, code := e2e.Sh(t, dir, "crsload --resume -u "+dst.URL+" "+file); code == 0 || !strings.Contains(out, "no checkpoint to resume from") {
		t.Errorf("a second --resume: exit %d\n%s", code, out)
	}
}

// TestResumeAfterTheTargetIsLost stops the target (SIGSTOP) half way
// through a load, for longer than --retry-for: the load fails, naming
// --resume; once the target answers again, --resume finishes the load.
func TestResumeAfterTheTargetIsLost(t *testing.T) {
	src, dst, dir, cmd, output := loadUntil(t, "--timeout 2s --retry-for 2s", 2)
	dst.Pause()
	err := cmd.Wait()
	dst.Resume()
	if code := e2e.ExitCodeOf(err); code == 0 || !strings.Contains(output(), "crsload --resume with the same arguments continues this load") {
		t.Fatalf("the load whose target was lost: exit %d\n%s", code, output())
	}
	t.Log(e2e.LineWith(output(), "lost the connection"))
	resumeAndCompare(t, dir, "d.zst", src, dst)
}

// TestResumeAfterACrash kills the load (SIGKILL: its checkpoint lags what
// it wrote) and resumes it: lists, whose pushes a resend would double,
// end equal to the source's.
func TestResumeAfterACrash(t *testing.T) {
	ctx := context.Background()
	src := redistest.Start(t)
	c := redistest.Client(t, src, 0)
	for i := 0; i < 3000; i++ {
		c.RPush(ctx, "list:"+strconv.Itoa(i), "a", "b", "c", "d", "e")
	}
	dir := t.TempDir()
	if out, code := e2e.Sh(t, dir, "crsdump -q --part-elems 2 -u "+src.URL+" -o d.zst"); code != 0 {
		t.Fatalf("dump: exit %d\n%s", code, out)
	}
	dst := redistest.Start(t)
	dc := redistest.Client(t, dst, 0)
	cmd, _ := e2e.Start(t, dir, "crsload --rate 3000 -u "+dst.URL+" d.zst")
	redistest.WaitFor(t, "a third of the keys on the target", func() bool {
		n, _ := dc.DBSize(ctx).Result()
		return n > 1000
	})
	cmd.Process.Kill()
	cmd.Wait()
	out, code := e2e.Sh(t, dir, "crsload --resume -u "+dst.URL+" d.zst")
	if code != 0 || !strings.Contains(out, "resumed: skipped ") {
		t.Fatalf("--resume: exit %d\n%s", code, out)
	}
	e2e.AssertNoDiff(t, src, dst)
}
