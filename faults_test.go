package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/crs-tool/crs/internal/e2e"

	"github.com/crs-tool/crs/internal/redisserver"
	"github.com/crs-tool/crs/internal/redistest"
)

// digest is DEBUG DIGEST of s: one hash of every key, value and expiry.
func digest(t *testing.T, s *redisserver.Server) string {
	t.Helper()
	d, err := redistest.Client(t, s, 0).Do(context.Background(), "DEBUG", "DIGEST").Text()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestInterrupted(t *testing.T) {
	src := redistest.Start(t, "--enable-debug-command", "yes")
	e2e.FillMany(t, src, 100_000)
	dir := t.TempDir()
	if out, code := e2e.Sh(t, dir, "crsdump -u "+src.URL+" -o full.zst"); code != 0 {
		t.Fatalf("dump: %d %s", code, out)
	}
	// SIGINT comes while the server is stalled (SIGSTOP): the tool must
	// not wait out its 60 s timeout. SIGTERM comes while it works.
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
		stall := sig == syscall.SIGINT
		interrupt := func(t *testing.T, cmd *exec.Cmd, s *redisserver.Server) (int, time.Duration) {
			if stall {
				s.Pause()
				defer s.Resume()
			}
			begin := time.Now()
			cmd.Process.Signal(sig)
			err := cmd.Wait()
			return e2e.ExitCodeOf(err), time.Since(begin)
		}
		t.Run("dump "+sig.String(), func(t *testing.T) {
			cmd, output := e2e.Start(t, dir, "crsdump -u "+src.URL+" -o part.zst")
			redistest.WaitFor(t, "the dump's first bytes", redistest.FileHasBytes(filepath.Join(dir, "part.zst.tmp")))
			code, took := interrupt(t, cmd, src)
			if code != 130 {
				t.Errorf("exit %d, want 130:\n%s", code, output())
			}
			if took > 15*time.Second {
				t.Errorf("took %s to stop after the signal (stalled server: %v)", took, stall)
			}
			if !strings.Contains(output(), "crsdump: FAILED after") || !strings.Contains(output(), "crsdump: interrupted") {
				t.Errorf("output:\n%s", output())
			}
			for _, f := range []string{"part.zst", "part.zst.tmp"} {
				if _, err := os.Stat(filepath.Join(dir, f)); !os.IsNotExist(err) {
					t.Errorf("%s exists after the interruption", f)
				}
			}
		})
		t.Run("load "+sig.String(), func(t *testing.T) {
			dst := redistest.Start(t, "--enable-debug-command", "yes")
			cmd, output := e2e.Start(t, dir, "crsload -u "+dst.URL+" full.zst")
			c := redistest.Client(t, dst, 0)
			redistest.WaitFor(t, "keys on the target", func() bool {
				n, _ := c.DBSize(context.Background()).Result()
				return n > 0
			})
			code, took := interrupt(t, cmd, dst)
			if code != 130 {
				t.Errorf("exit %d, want 130:\n%s", code, output())
			}
			if took > 15*time.Second {
				t.Errorf("took %s to stop after the signal (stalled server: %v)", took, stall)
			}
			if !strings.Contains(output(), "crsload: FAILED after writing") || !strings.Contains(output(), "crsload: interrupted") {
				t.Errorf("output:\n%s", output())
			}
			if n, _ := redistest.Client(t, dst, 0).DBSize(context.Background()).Result(); n == 0 {
				t.Errorf("nothing was loaded before the signal: the test did not interrupt a load")
			}
			// Re-running with --replace completes the migration.
			if out, code := e2e.Sh(t, dir, "crsload --replace -q -u "+dst.URL+" full.zst"); code != 0 {
				t.Fatalf("re-run: %d %s", code, out)
			}
			if a, b := digest(t, src), digest(t, dst); a != b {
				t.Errorf("dataset digest %s, target %s", a, b)
			}
		})
	}
}

func TestSourceDiesMidDump(t *testing.T) {
	for _, to := range []string{"stdout", "file"} {
		t.Run(to, func(t *testing.T) {
			dir := t.TempDir()
			src := redistest.Start(t)
			e2e.FillMany(t, src, 200_000)
			script := "crsdump -u " + src.URL + " -o out.zst"
			if to == "stdout" {
				script = "crsdump -u " + src.URL + " > out.zst"
			}
			cmd := exec.Command("sh", "-c", script)
			cmd.Dir = dir
			cmd.Env = append(os.Environ(), "PATH="+e2e.Binaries(t)+":"+os.Getenv("PATH"))
			var stderr strings.Builder
			cmd.Stderr = &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			// The source dies once the dump has written its first bytes
			// (the header among them).
			redistest.WaitFor(t, "the dump's first bytes", redistest.FileHasBytes(filepath.Join(dir, "out.zst"), filepath.Join(dir, "out.zst.tmp")))
			src.Kill()
			err := cmd.Wait()
			if code := e2e.ExitCodeOf(err); code == 0 || code == 130 {
				t.Fatalf("exit %d after the source died:\n%s", code, stderr.String())
			}
			t.Logf("what the user sees:\n%s", stderr.String())
			if !strings.Contains(stderr.String(), "crsdump: FAILED after") || strings.Contains(stderr.String(), "goroutine ") {
				t.Errorf("stderr:\n%s", stderr.String())
			}
			_, statErr := os.Stat(filepath.Join(dir, "out.zst"))
			switch to {
			case "file":
				if !os.IsNotExist(statErr) {
					t.Errorf("out.zst exists under its final name")
				}
			case "stdout":
				// What reached stdout has no trailer: a loader says so.
				out, code := e2e.Sh(t, dir, "crsload --check out.zst")
				if code != 3 || !strings.Contains(out, "truncated") {
					t.Errorf("check: exit %d: %s", code, out)
				}
			}
		})
	}
}

func TestCheck(t *testing.T) {
	src := redistest.Start(t)
	fill(t, src)
	dir := t.TempDir()
	if out, code := e2e.Sh(t, dir, "crsdump -q -u "+src.URL+" --part-elems 100 -o d.zst"); code != 0 {
		t.Fatalf("dump: %d %s", code, out)
	}
	out, code := e2e.Sh(t, dir, "crsload --check d.zst")
	if code != 0 || !strings.Contains(out, "the dump is intact: 26 keys (hash 4, list 3, set 3, string 13, zset 3)") || !strings.Contains(out, "matches") {
		t.Errorf("exit %d: %s", code, out)
	}
	// No server was needed: the default address has none in this test.
	out, code = e2e.Sh(t, dir, "head -c 2000 d.zst > cut.zst; crsload --check cut.zst")
	if code != 3 || !strings.Contains(out, "truncated") {
		t.Errorf("cut dump: exit %d: %s", code, out)
	}
	// --json, for scripts: the same counts, or the failure.
	for _, tt := range []struct {
		file string
		code int
		want string
	}{
		{"d.zst", 0, `"ok":true,"keys":26,`},
		{"cut.zst", 3, `"ok":false,"error":"line `},
	} {
		out, code = e2e.Sh(t, dir, "crsload --check --json "+tt.file)
		first, _, _ := strings.Cut(out, "\n") // the JSON; then, on failure, the error line
		var v map[string]any
		if code != tt.code || !strings.Contains(first, tt.want) || json.Unmarshal([]byte(first), &v) != nil {
			t.Errorf("--check --json %s: exit %d: %s", tt.file, code, out)
		}
	}
}

func TestTargetDiesMidLoad(t *testing.T) {
	src := redistest.Start(t, "--enable-debug-command", "yes")
	e2e.FillMany(t, src, 100_000)
	dir := t.TempDir()
	if out, code := e2e.Sh(t, dir, "crsdump -q -u "+src.URL+" -o full.zst"); code != 0 {
		t.Fatalf("dump: %d %s", code, out)
	}
	dst := redistest.Start(t)
	cmd, output := e2e.Start(t, dir, "crsload --retry-for 1s -u "+dst.URL+" full.zst")
	dc := redistest.Client(t, dst, 0)
	redistest.WaitFor(t, "keys on the target", func() bool {
		n, _ := dc.DBSize(context.Background()).Result()
		return n > 0
	})
	dst.Kill()
	err := cmd.Wait()
	t.Logf("what the user sees:\n%s", output())
	if code := e2e.ExitCodeOf(err); code == 0 || code == 130 {
		t.Errorf("exit %d after the target died", code)
	}
	if !strings.Contains(output(), "crsload: FAILED after writing") || !strings.Contains(output(), "gave up after retrying for 1s") || strings.Contains(output(), "goroutine ") {
		t.Errorf("output:\n%s", output())
	}
	// The same load into a new target completes the migration.
	again := redistest.Start(t, "--enable-debug-command", "yes")
	if out, code := e2e.Sh(t, dir, "crsload --replace -q -u "+again.URL+" full.zst"); code != 0 {
		t.Fatalf("re-run: %d %s", code, out)
	}
	if a, b := digest(t, src), digest(t, again); a != b {
		t.Errorf("dataset digest %s, target %s", a, b)
	}
}

func TestACLUser(t *testing.T) {
	src, dst := redistest.Start(t), redistest.Start(t)
	for _, s := range []*redisserver.Server{src, dst} {
		c := redistest.Client(t, s, 0)
		if err := c.Do(context.Background(), "ACL", "SETUSER", "migrator", "on", ">mig-pass", "~*", "&*", "+@all").Err(); err != nil {
			t.Fatal(err)
		}
	}
	redistest.Client(t, src, 0).Set(context.Background(), "k", "v", 0)
	dir := t.TempDir()
	out, code := e2e.Sh(t, dir, "crsdump --user migrator -p "+port(src.Addr)+" -o d.zst && crsload -u redis://migrator@"+dst.Addr+" d.zst", "REDISCLI_AUTH=mig-pass")
	if code != 0 || strings.Contains(out, "mig-pass") {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	out, code = e2e.Sh(t, dir, "crsdump --user migrator -a wrong -p "+port(src.Addr)+" -o e.zst")
	if code != 5 || !strings.Contains(out, "authentication failed") {
		t.Errorf("wrong password: exit %d:\n%s", code, out)
	}
	e2e.AssertNoDiff(t, src, dst)
}

func TestDroppedConnectionsAreRetried(t *testing.T) {
	src := redistest.Start(t, "--enable-debug-command", "yes")
	e2e.FillMany(t, src, 100_000)
	dir := t.TempDir()
	if out, code := e2e.Sh(t, dir, "crsdump -q -u "+src.URL+" -o full.zst"); code != 0 {
		t.Fatalf("dump: %d %s", code, out)
	}
	for _, policy := range []string{"", "--replace", "--skip-existing"} {
		t.Run("policy "+policy, func(t *testing.T) {
			dst := redistest.Start(t, "--enable-debug-command", "yes")
			killer := redistest.Client(t, dst, 0)
			cmd, output := e2e.Start(t, dir, "crsload --pipeline 64 "+policy+" -u "+dst.URL+" full.zst")
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			// Drop every client connection but this one, again and again.
			var err error
			killed := 0
		loop:
			for {
				select {
				case err = <-done:
					break loop
				case <-time.After(40 * time.Millisecond):
					n, _ := killer.Do(context.Background(), "CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes").Int()
					killed += n
				}
			}
			t.Logf("killed %d connections; the user sees:\n%s", killed, output())
			if code := e2e.ExitCodeOf(err); code != 0 {
				t.Fatalf("exit %d", code)
			}
			if killed == 0 || !strings.Contains(output(), "reconnected and resent") {
				t.Errorf("no connection was dropped during the load: the test tested nothing")
			}
			if a, b := digest(t, src), digest(t, dst); a != b {
				t.Errorf("dataset digest %s, target %s", a, b)
			}
		})
	}
}

// TestFailureSummaryCountsWrittenKeys: when the target refuses a key part
// way through a load (here: out of memory), the keys the summary says were
// written are exactly the keys on the target, though the refusal came in
// the middle of pipelines of other keys that the target took.
func TestFailureSummaryCountsWrittenKeys(t *testing.T) {
	src := redistest.Start(t)
	e2e.FillMany(t, src, 30_000)
	dir := t.TempDir()
	if out, code := e2e.Sh(t, dir, "crsdump -q -u "+src.URL+" -o full.zst"); code != 0 {
		t.Fatalf("dump: %d %s", code, out)
	}
	dst := redistest.Start(t, "--maxmemory", "3mb", "--maxmemory-policy", "noeviction")
	out, code := e2e.Sh(t, dir, "crsload --json --ignore-memory -u "+dst.URL+" full.zst")
	if code != 1 || !strings.Contains(out, "OOM") {
		t.Fatalf("exit %d, want 1 with an OOM error: %s", code, out)
	}
	first, _, _ := strings.Cut(out, "\n")
	var v struct {
		OK   bool  `json:"ok"`
		Keys int64 `json:"keys"`
	}
	if err := json.Unmarshal([]byte(first), &v); err != nil {
		t.Fatalf("summary %q: %v", first, err)
	}
	n, err := redistest.Client(t, dst, 0).DBSize(context.Background()).Result()
	if err != nil {
		t.Fatal(err)
	}
	if v.OK || v.Keys == 0 || v.Keys != n {
		t.Errorf("summary says %d keys written (ok %v), the target holds %d", v.Keys, v.OK, n)
	}
}

// TestMaxServerCPU: a load held to a rate that keeps the target busier
// than --max-server-cpu is held back, says so, and still loads every key.
func TestMaxServerCPU(t *testing.T) {
	src := redistest.Start(t)
	e2e.FillMany(t, src, 20_000)
	dir := t.TempDir()
	if out, code := e2e.Sh(t, dir, "crsdump -q -u "+src.URL+" -o d.zst"); code != 0 {
		t.Fatalf("dump: exit %d\n%s", code, out)
	}
	dst := redistest.Start(t)
	out, code := e2e.Sh(t, dir, "crsload --rate 8000 --max-server-cpu 1 -u "+dst.URL+" d.zst")
	if code != 0 || !strings.Contains(out, "while the server's CPU was over --max-server-cpu") {
		t.Fatalf("exit %d\n%s", code, out)
	}
	e2e.AssertNoDiff(t, src, dst)
	t.Log(e2e.LineWith(out, "held back"))
}

// TestDatabasesPastTheTarget: a dump of a server configured with more
// databases than the target has. A dump that lists its databases is
// refused before anything is written; an RDB file, which does not list
// them, stops at the first key past the target's databases at once
// (7.0's "ERR DB index is out of range" was retried for --retry-for);
// --db-map moves the database.
func TestDatabasesPastTheTarget(t *testing.T) {
	ctx := context.Background()
	src := redistest.Start(t, "--databases", "64")
	redistest.Client(t, src, 3).Set(ctx, "low", "v", 0)
	redistest.Client(t, src, 57).Set(ctx, "high", "v", 0)
	if err := redistest.Client(t, src, 0).Save(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if out, code := e2e.Sh(t, dir, "crsdump -q -u "+src.URL+" -o d.zst"); code != 0 {
		t.Fatalf("dump: %d %s", code, out)
	}
	dst := redistest.Start(t)
	low := redistest.Client(t, dst, 3)
	out, code := e2e.Sh(t, dir, "crsload -u "+dst.URL+" d.zst")
	if code != 4 || !strings.Contains(out, "the dump holds keys in db 57 (1 keys), and the target has 16 databases") || !strings.Contains(out, "nothing was written") {
		t.Errorf("dump listing db 57: exit %d:\n%s", code, out)
	}
	if n, _ := low.DBSize(ctx).Result(); n != 0 {
		t.Errorf("the refused load wrote %d keys", n)
	}
	out, code = e2e.Sh(t, dir, "crsload --retry-for 10m -u "+dst.URL+" "+filepath.Join(src.Dir, "dump.rdb"))
	if code != 4 || !strings.Contains(out, "the load writes to db 57, and the target has 16 databases") || strings.Contains(out, "retrying") {
		t.Errorf("RDB file with db 57: exit %d:\n%s", code, out)
	}
	out, code = e2e.Sh(t, dir, "crsload --replace --db-map 57=5 -u "+dst.URL+" d.zst")
	if code != 0 {
		t.Fatalf("--db-map: exit %d:\n%s", code, out)
	}
	if v, err := redistest.Client(t, dst, 5).Get(ctx, "high").Result(); err != nil || v != "v" {
		t.Errorf("db 5 high = %q, %v", v, err)
	}
}

// TestDryRunAndCutInput: --dry-run runs the real load's pre-flight against
// the target (it said "the dump is intact" and exited 0 where the load was
// refused); a cut file half-loaded a target with nothing said of what it
// left there, and --check-first writes nothing of it.
func TestDryRunAndCutInput(t *testing.T) {
	ctx := context.Background()
	src := redistest.Start(t)
	e2e.FillMany(t, src, 20_000)
	dir := t.TempDir()
	if out, code := e2e.Sh(t, dir, "crsdump -q -u "+src.URL+" -o good.zst && head -c $(( $(wc -c < good.zst) / 2 )) good.zst > cut.zst"); code != 0 {
		t.Fatalf("dump: %d %s", code, out)
	}
	dst := redistest.Start(t)
	dc := redistest.Client(t, dst, 0)
	keys := func() int64 { n, _ := dc.DBSize(ctx).Result(); return n }
	want, _ := redistest.Client(t, src, 0).DBSize(ctx).Result()
	if out, code := e2e.Sh(t, dir, "crsload --dry-run -u "+dst.URL+" good.zst"); code != 0 || !strings.Contains(out, fmt.Sprintf("the load would write %d keys", want)) || keys() != 0 {
		t.Errorf("dry run into an empty target: exit %d, %d keys written:\n%s", code, keys(), out)
	}
	dc.Set(ctx, "there", "already", 0)
	if out, code := e2e.Sh(t, dir, "crsload --dry-run -u "+dst.URL+" good.zst"); code != 4 || !strings.Contains(out, "db 0 has 1 keys") {
		t.Errorf("dry run into a target that is not empty: exit %d:\n%s", code, out)
	}
	dc.FlushAll(ctx)
	if out, code := e2e.Sh(t, dir, "crsload --check-first -u "+dst.URL+" < cut.zst"); code != 3 || !strings.Contains(out, "nothing was written") || keys() != 0 {
		t.Errorf("--check-first of a cut dump: exit %d, %d keys written:\n%s", code, keys(), out)
	}
	out, code := e2e.Sh(t, dir, "crsload -u "+dst.URL+" cut.zst")
	if code != 3 || keys() == 0 || !strings.Contains(out, "the target now holds the") || !strings.Contains(out, "--resume cannot mend the file") || strings.Contains(out, "continues this load") {
		t.Errorf("a cut dump: exit %d, %d keys written:\n%s", code, keys(), out)
	}
	if out, code := e2e.Sh(t, dir, "crsload --skip-existing -q -u "+dst.URL+" good.zst"); code != 0 {
		t.Fatalf("the rest, --skip-existing: exit %d:\n%s", code, out)
	}
	e2e.AssertNoDiff(t, src, dst)
}
