package sync_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/crs-tool/crs/internal/e2e"

	"github.com/redis/go-redis/v9"

	"github.com/crs-tool/crs/internal/keyspace"
	"github.com/crs-tool/crs/internal/redisserver"
	"github.com/crs-tool/crs/internal/redistest"
)

// sessions is how many session keys the guide writer keeps alive by
// renewing their expiry, which lasts sessionTTL after each renewal.
const (
	sessions   = 50
	sessionTTL = 300 * time.Millisecond
)

// startGuideWriter writes what the guide's service writes, the whole
// time a sync runs: rate-limit windows and counts with expiries of 1 to
// 60 s, renewed; locks of 0.1 to 5 s taken with SET NX PX and released;
// refresh cooldowns; sessions kept alive only by renewing their expiry
// (PEXPIRE, 300 ms) every round; and the mix writer's a and b in one
// transaction and a round counter. It stops by itself when the source
// refuses writes (after a cutover).
func startGuideWriter(t *testing.T, s *redisserver.Server) *writer {
	t.Helper()
	ctx := context.Background()
	c := redistest.Client(t, s, 0)
	for i := range sessions {
		c.Set(ctx, fmt.Sprintf("session:%d", i), "user", sessionTTL)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	ms := func(lo, hi int) time.Duration { return time.Duration(lo+rng.IntN(hi-lo)) * time.Millisecond }
	// At most 500 rounds a second (some 8,000 commands): a busy service,
	// which a sync keeps up with on a shared 2-core machine that runs
	// other tests and a CPU hog beside it. Each session is renewed every
	// 5 rounds, 10 ms apart, well within its 300 ms.
	return startWriterLoop(c, 2*time.Millisecond, func(p redis.Pipeliner, i int) {
		for j := i % 5; j < sessions; j += 5 {
			p.PExpire(ctx, fmt.Sprintf("session:%d", j), sessionTTL)
		}
		win := fmt.Sprintf("high_rate_limit:w%d:claude-opus-4:", rng.IntN(200))
		p.Set(ctx, win+"window", time.Now().UnixMilli(), ms(1000, 60000))
		p.Incr(ctx, win+"count")
		p.PExpire(ctx, win+"count", ms(1000, 60000))
		p.SetNX(ctx, fmt.Sprintf("lock:%d", rng.IntN(50)), i, ms(100, 5000))
		if i%3 == 0 {
			p.Del(ctx, fmt.Sprintf("lock:%d", rng.IntN(50)))
		}
		p.Set(ctx, fmt.Sprintf("refresh_cooldown:w%d", rng.IntN(100)), "1", ms(500, 10000))
		p.HIncrBy(ctx, "client_keys:w", "requests", 1)
	})
}

// TestSyncGuideKeyspace syncs the guide-shaped keyspace, unstretched (its
// rate-limit windows expire within the minute), while the guide writer
// runs: 20 rehearsed cutovers of one sync (each a pause, the whole check
// and the end of the pause) must pass, then the cutover. Writes held by
// the cutover's pause are refused by the old source (NOREPLICAS) as soon
// as the target is ready, long before the pause would run out, so none is
// taken there and left behind: the target's round counter equals the
// writer's rounds. The target then equals the source as of one instant,
// expiries to the millisecond.
func TestSyncGuideKeyspace(t *testing.T) {
	ctx := context.Background()
	src := redistest.Start(t)
	if _, err := keyspace.Fill(ctx, redistest.Client(t, src, 0), 5000); err != nil {
		t.Fatal(err)
	}
	dst := redistest.Start(t)
	w := startGuideWriter(t, src)
	defer w.Stop(t, src)
	dir := t.TempDir()
	cmd, output := e2e.Start(t, dir, "crs sync --progress plain --pause 10m --source "+src.URL+" -u "+dst.URL)
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	running := func() {
		select {
		case err := <-exited:
			exited <- err
			t.Fatalf("crs sync ended: exit %d\n%s", e2e.ExitCodeOf(err), output())
		default:
		}
		if strings.Contains(output(), "rehearsal FAILED") {
			t.Fatalf("a rehearsal failed:\n%s", output())
		}
	}
	redistest.WaitWithin(t, 5*time.Minute, "in sync", func() bool { running(); return strings.Contains(output(), "crs sync: in sync") })
	const rehearsals = 20
	for i := 1; i <= rehearsals; i++ {
		cmd.Process.Signal(syscall.SIGUSR2)
		redistest.WaitWithin(t, 5*time.Minute, fmt.Sprintf("rehearsal %d", i), func() bool {
			running()
			return strings.Count(output(), "rehearsal passed") >= i
		})
	}
	t.Log(e2e.LineWith(output(), "rehearsal passed"))
	cmd.Process.Signal(syscall.SIGUSR1)
	err := <-exited
	out := output()
	if e2e.ExitCodeOf(err) != 0 || !strings.Contains(out, "cutover done") || !strings.Contains(out, "refuses every write") {
		t.Fatalf("the cutover: exit %d\n%s", e2e.ExitCodeOf(err), out)
	}
	// The writer, held by the pause, is refused once the target is ready.
	redistest.WaitFor(t, "the writer refused by the old source", func() bool { return w.refused.Load() || w.err != nil })
	if w.err != nil {
		t.Fatalf("the writer: %v", w.err)
	}
	assertCounters(t, redistest.Client(t, dst, 0), w)
	diffs, err := redistest.DiffLive(ctx, src, dst)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range diffs {
		t.Error(d)
	}
	// The guide's last step: crs verify of the two servers.
	vout, code := e2e.Sh(t, dir, "crs verify --source "+src.URL+" --target "+dst.URL)
	if code != 0 || !strings.Contains(vout, " 0 differences") {
		t.Errorf("crs verify: exit %d\n%s", code, vout)
	}
	t.Log(e2e.LineWith(vout, "checked"))
	t.Log(e2e.LineWith(out, "cutover done"))
	t.Log(e2e.LineWith(out, "were held"))
	t.Log(e2e.LineWith(out, "crs sync: done"))
}
