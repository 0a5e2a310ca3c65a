//go:build chaos

package sync_test

import (
	"context"
	"os"
	"regexp"
	"strings"
	"syscall"
	"testing"

	"github.com/crs-tool/crs/internal/e2e"
	"github.com/crs-tool/crs/internal/redisserver"
	"github.com/crs-tool/crs/internal/redistest"
)

// TestChaos is the fault campaign of make chaos: for each case, a sync
// of a source under the mixed writer meets a fault at a phase; the run
// must stop loudly, naming the cause (or ride it out), and the same
// command run again (with --replace only where the stop said so) must
// cut over to a target equal to the source, key by key, with a == b and
// the writer's rounds. Each case logs one row of the campaign's table.
func TestChaos(t *testing.T) {
	cases := []struct {
		name     string
		dstArgs  []string
		cutover  bool   // the first run cuts over (the fault hits its pause)
		wait     string // the first run's line after which the fault comes
		fault    func(t *testing.T, run *chaosRun)
		recovery func(t *testing.T, run *chaosRun)
	}{
		{name: "SIGKILL while the snapshot loads", wait: "phase 1: loading the snapshot",
			fault: func(t *testing.T, r *chaosRun) { r.signal(syscall.SIGKILL) }},
		{name: "SIGKILL while streaming", wait: "crs sync: in sync",
			fault: func(t *testing.T, r *chaosRun) { r.signal(syscall.SIGKILL) }},
		{name: "SIGKILL in the cutover's pause", cutover: true, wait: "the source's writes are paused",
			fault: func(t *testing.T, r *chaosRun) { r.signal(syscall.SIGKILL) }},
		{name: "SIGINT while streaming", wait: "crs sync: in sync",
			fault: func(t *testing.T, r *chaosRun) { r.signal(syscall.SIGINT) }},
		{name: "the target stopped (SIGSTOP) past --timeout", wait: "crs sync: in sync",
			fault:    func(t *testing.T, r *chaosRun) { r.dst.Pause() },
			recovery: func(t *testing.T, r *chaosRun) { r.dst.Resume() }},
		{name: "the source stopped (SIGSTOP) past --timeout", wait: "crs sync: in sync",
			fault:    func(t *testing.T, r *chaosRun) { r.src.Pause() },
			recovery: func(t *testing.T, r *chaosRun) { r.src.Resume() }},
		{name: "the link killed on the source (CLIENT KILL TYPE replica)", wait: "crs sync: in sync",
			fault: func(t *testing.T, r *chaosRun) {
				redistest.Client(t, r.src, 0).Do(context.Background(), "CLIENT", "KILL", "TYPE", "replica")
			}},
		{name: "the target restarted with its AOF", dstArgs: []string{"--appendonly", "yes", "--appendfsync", "always"}, wait: "crs sync: in sync",
			fault: func(t *testing.T, r *chaosRun) { r.restart(t, r.dst, "NOSAVE") }},
		{name: "the target restarted without persistence (empty)", wait: "crs sync: in sync",
			fault: func(t *testing.T, r *chaosRun) { r.restart(t, r.dst, "NOSAVE") }},
		{name: "the source restarted with its data (SHUTDOWN SAVE)", wait: "crs sync: in sync",
			fault: func(t *testing.T, r *chaosRun) {
				r.stopWriter() // its connection ends with the server
				r.restart(t, r.src, "SAVE")
			}},
	}
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			src, dst, w, dir := syncPair(t, 3000, "--save", "", "--repl-backlog-size", "64mb")
			if len(tt.dstArgs) > 0 {
				dst = redistest.Start(t, tt.dstArgs...)
			}
			stopped := false
			stopWriter := func() {
				if !stopped {
					stopped = true
					w.Stop(t, src)
				}
			}
			defer stopWriter()
			args := "crs sync --progress plain --timeout 3s --pause 30s --source " + src.URL + " -u " + dst.URL
			first := args
			if tt.cutover {
				first += " --cutover"
			}
			cmd, output := e2e.Start(t, dir, first)
			r := &chaosRun{proc: cmd.Process, src: src, dst: dst, stopWriter: stopWriter}
			redistest.WaitFor(t, tt.wait, func() bool { return strings.Contains(output(), tt.wait) })
			tt.fault(t, r)
			err := cmd.Wait()
			if tt.recovery != nil {
				tt.recovery(t, r)
			}
			code, cause := e2e.ExitCodeOf(err), lastLine(output())
			if code == 0 {
				t.Fatalf("the first run ended well after the fault:\n%s", output())
			}
			out, again := e2e.Sh(t, dir, args+" --cutover")
			how := "continued from the target's position"
			switch {
			case again == 0 && strings.Contains(out, "phase 1: loading the snapshot"):
				how = "copied anew (the target held no position)"
			case again == 4 && strings.Contains(out, "--replace"):
				t.Logf("the run again: exit 4: %s", lastLine(out))
				if out, again = e2e.Sh(t, dir, args+" --cutover --replace"); again != 0 {
					t.Fatalf("--replace: exit %d:\n%s", again, out)
				}
				how = "refused, naming --replace; --replace copied anew"
			case again != 0:
				t.Fatalf("the run again: exit %d:\n%s", again, out)
			}
			stopWriter()
			assertSynced(t, src, dst, w)
			t.Logf("ROW | %s | first run: exit %d, %q | again: %s | 0 differences, a = b, every round", tt.name, code, cause, how)
		})
	}
}

// chaosRun is a case's first run and its servers.
type chaosRun struct {
	proc       *os.Process
	src, dst   *redisserver.Server
	stopWriter func()
}

func (r *chaosRun) signal(sig syscall.Signal) { r.proc.Signal(sig) }

// restart shuts s down (SHUTDOWN SAVE or NOSAVE; its AOF, where it has
// one, is kept either way) and starts it again with the same command
// line.
func (r *chaosRun) restart(t *testing.T, s *redisserver.Server, save string) {
	t.Helper()
	redistest.Client(t, s, 0).Do(context.Background(), "SHUTDOWN", save)
	if err := s.Restart(context.Background()); err != nil {
		t.Fatal(err)
	}
}

var timestamp = regexp.MustCompile(`^\d{4}-\d\d-\d\dT[0-9:.]+Z `)

// lastLine is the last line of out, without its time.
func lastLine(out string) string {
	lines := strings.Split(strings.TrimSpace(out), "\n")
	return timestamp.ReplaceAllString(lines[len(lines)-1], "")
}
