package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/crs-tool/crs/internal/keyset"
	"github.com/crs-tool/crs/internal/memlimit"
	"github.com/crs-tool/crs/internal/metrics"
	"github.com/crs-tool/crs/internal/redisconn"
	"github.com/crs-tool/crs/internal/report"
	"github.com/crs-tool/crs/livesync"
	"github.com/crs-tool/crs/source/pick"
	"github.com/crs-tool/crs/source/repl"
	"github.com/crs-tool/crs/target"
	"github.com/crs-tool/crs/verify"
)

// syncCommand is crs sync: a live source kept in step with a target over
// replication, then a cutover.
func syncCommand() *cli.Command {
	opts := livesync.NewOptions()
	opts.Load.KeysKnown = memlimit.Set
	from := pick.NewSpec()
	src := redisconn.NewOptions()
	var sel selectFlags
	var replace, verifyAll bool
	var spool string
	mode := "auto"
	var mf metricsFlags
	var summary summaryFlag
	return &cli.Command{
		Name:  "sync",
		Usage: "keep a target in step with a source that takes writes (a replication snapshot, then its write stream), then cut over with a write pause",
		UsageText: "crs sync --source URL --target URL [--cutover]\n" +
			"kill -USR1 <pid of crs sync>   # cut over a running sync once in step\n" +
			"kill -USR2 <pid of crs sync>   # rehearse: pause, check, end the pause, go on",
		OnUsageError: onUsage,
		Flags: append(append(append(append(connFlags(&opts.Load.Conn, "sync every database into this one of the target", "each database its own"), sel.flags()...), sourceConnFlags(&src)...),
			&cli.StringFlag{Name: "target", Usage: "the server to keep in step (the same as -u)", Destination: &opts.Load.Conn.URL},
			&cli.StringFlag{Name: "source", Usage: "the server to copy, which may go on taking writes: `URL` (it must allow PSYNC)", Destination: &src.URL, Required: true},
			&cli.StringFlag{Name: "mode", Value: mode, Usage: "replication (PSYNC: a snapshot, then the write stream; exactly once), notify (SCAN, then every key its keyspace notifications name read again: for sources that refuse replication, such as managed services) or auto (replication where the source allows it)", Destination: &mode},
			&cli.BoolFlag{Name: "cutover", Usage: "once in step, pause the source's writes (CLIENT PAUSE … WRITE), apply the rest, check the target and exit", Destination: &opts.Cutover},
			&cli.DurationFlag{Name: "pause", Value: opts.Pause, Usage: "the longest the cutover pauses the source's writes; the pause ends as soon as the target is checked (the source then refuses writes) and runs out by itself", Destination: &opts.Pause},
			&cli.IntFlag{Name: "cutover-attempts", Value: opts.CutoverAttempts, Usage: "cutovers whose check fails that are tried (the sync goes on between them) before giving up", Destination: &opts.CutoverAttempts},
			&cli.DurationFlag{Name: "cutover-timeout", Value: opts.CutoverTimeout, Usage: "how long a cutover asked for waits for the target to get in step before giving up (0: for ever)", Destination: &opts.CutoverTimeout},
			&cli.BoolFlag{Name: "verify", Usage: "at the cutover, compare every key (crs verify of the whole source), not only those written during the sync", Destination: &verifyAll},
			&cli.BoolFlag{Name: "replace", Usage: "empty the target first (FLUSHALL) and copy anew: for a target that holds keys, or a sync whose position the source no longer holds", Destination: &replace},
			&cli.BoolFlag{Name: "skip-unsupported", Usage: "skip, and count, commands the target lacks (and keys whose DUMP payload it refuses) instead of stopping", Destination: &opts.SkipUnsupported},
			&cli.BoolFlag{Name: "drop-stream-counters", Usage: "load the snapshot's streams into a server before 7.0 without their counters, counting them", Destination: &opts.Load.DropStreamCounters},
			&cli.BoolFlag{Name: "drop-field-expiry", Usage: "load the snapshot's hashes without field expiries when the target cannot set them, counting them", Destination: &opts.Load.DropFieldExpiry},
			&cli.BoolFlag{Name: "drop-stream-idmp", Usage: "load the snapshot's streams into a server before 8.6 without their idempotent-producer state, counting them", Destination: &opts.Load.DropStreamIDMP},
			&cli.BoolFlag{Name: "skip-functions", Usage: "load the snapshot without its function libraries, counting them", Destination: &opts.Load.SkipFunctions},
			&cli.StringFlag{Name: "spool-dir", Usage: "keep the snapshot and the stream that arrives while it loads in a new directory in `DIR` (default TMPDIR)", Destination: &spool},
			&cli.IntFlag{Name: "keys-in-memory", Value: keyset.DefaultLimit, Usage: "keys of the snapshot remembered in memory to catch one twice", Destination: &opts.Load.SeenLimit},
			&cli.IntFlag{Name: "concurrency", Value: opts.Load.Concurrency, Usage: "writers of the snapshot at once", Destination: &opts.Load.Concurrency},
			&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "print nothing but errors", Destination: &opts.Quiet},
			progressFlag(&opts.Progress, "second"),
			&cli.BoolFlag{Name: "json", Usage: "print progress and the summary as JSON lines (on stderr)", Destination: &opts.JSON},
		), append(mf.flags(true), summary.flag())...),
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return usageError{fmt.Errorf("crs sync takes no file (found %q): --source names the server", c.Args().First())}
			}
			board := livesync.NewBoard()
			opts.Board = board
			var stop func()
			var err error
			opts.Summary, stop, err = mf.watch(c.Context, "crs sync", metrics.Endpoint{
				Collectors: []metrics.Collector{board.Collector()},
				Status:     func() any { return board.Status() },
				Health:     func() error { return board.Healthy(mf.maxLag, 3*opts.Every+10*time.Second) },
			}, &summary)
			if err != nil {
				return err
			}
			defer stop()
			if err := sel.into(&from); err != nil {
				return err
			}
			src.Timeout = opts.Load.Conn.Timeout
			if db, _ := opts.Load.Conn.SelectedDB(); db >= 0 && len(from.Reshape.DBMap) > 0 {
				return usageError{errors.New("-n (every database into one) and --db-map (each database to its own) do not go together")}
			}
			opts.Select, opts.Reshape = from.Select, from.Reshape
			opts.Load.CheckCollisions = !from.Reshape.Empty()
			opts.Load.ProbeKeys, opts.Load.ProbeAny = from.Select.ProbeKeysAs(from.Reshape)
			opts.Load.SkipUnsupported = opts.SkipUnsupported
			opts.Load.Replace = replace
			var stopSignals func()
			opts.CutoverNow, opts.Rehearse, stopSignals = syncSignals()
			defer stopSignals()
			if verifyAll {
				opts.VerifyAll = func(ctx context.Context) error {
					spec := pick.NewSpec()
					spec.Scan.Conn = src
					spec.Select, spec.Reshape = from.Select, from.Reshape
					in := pick.Open(c.Context, spec)
					defer in.Close()
					vo := verify.NewOptions()
					vo.Target, vo.Quiet, vo.Progress = opts.Load.Conn, opts.Quiet, opts.Progress
					return verify.Run(ctx, vo, in, stderr)
				}
			}
			shareCores(opts.Load.Conn)
			switch mode {
			case "auto", "replication", "notify":
			default:
				return usageError{fmt.Errorf("--mode must be auto, replication or notify, not %q", mode)}
			}
			return runSync(c.Context, opts, src, from, replace, spool, mode)
		},
	}
}

// spoolSpace says how much disk the snapshot takes in the spool before
// it is asked for, and refuses a spool that cannot hold it.
func spoolSpace(ctx context.Context, opts livesync.Options, server *repl.Server, spool string) error {
	need, err := server.SnapshotBytes(ctx)
	if err != nil {
		return err
	}
	dir := repl.SpoolDir(spool)
	free, err := repl.FreeBytes(dir)
	if err != nil {
		return nil // a file system that will not say: the download says if it fills
	}
	if need > free {
		return fmt.Errorf("%w: the snapshot spools to %s first, about %s (the source's dataset, which its RDB rarely exceeds), and %s is free there: give --spool-dir on a larger disk", livesync.ErrStopped, dir, report.Bytes(need), report.Bytes(free))
	}
	say(opts, fmt.Sprintf("crs sync: the snapshot spools to %s: about %s, then the stream that arrives while it loads; %s free there", dir, report.Bytes(need), report.Bytes(free)))
	return nil
}

// linkIdle is how long a replication link may stay silent before it
// counts as lost: --timeout, but never under 15 s (a source pings its
// replicas every 10 s).
func linkIdle(timeout time.Duration) time.Duration {
	if timeout <= 0 {
		return time.Minute
	}
	return max(timeout, 15*time.Second)
}

// syncSignals turns SIGUSR1 into a cutover and SIGUSR2 into a rehearsal.
func syncSignals() (cutover, rehearse <-chan struct{}, stop func()) {
	cut, reh := make(chan struct{}, 1), make(chan struct{}, 1)
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGUSR1, syscall.SIGUSR2)
	go func() {
		for sig := range sigs {
			to := cut
			if sig == syscall.SIGUSR2 {
				to = reh
			}
			select {
			case to <- struct{}{}:
			default:
			}
		}
	}()
	return cut, reh, func() { signal.Stop(sigs); close(sigs) }
}

// runSync finds where the target stands, opens the link and syncs.
func runSync(ctx context.Context, opts livesync.Options, src redisconn.Options, from pick.Spec, replace bool, spool, mode string) (err error) {
	release, err := livesync.Claim(ctx, opts, stderr)
	if err != nil {
		return err
	}
	defer release()
	server, err := repl.OpenServer(ctx, src)
	if err != nil {
		return fmt.Errorf("the source: %w", err)
	}
	defer server.Close()
	// The cutover's check (and a sync by notifications) reads the keys
	// changed during the sync as this does: a refusal is found now, not
	// in the cutover's pause.
	if _, err := server.Dumps(ctx, 0, from.Select.ProbeKeys()); redisconn.IsNoPerm(err) {
		return &redisconn.Error{Addr: src.Address(), Err: fmt.Errorf("crs sync reads the keys changed during the sync (DUMP, for the cutover's check), and the ACL user may not (--match chooses keys it may read): %w", err)}
	} else if err != nil {
		return err
	}
	if mode == "notify" {
		return runNotify(ctx, opts, src, server, from, replace)
	}
	// One replication link per server: the source, or each master.
	type node struct {
		name, key string
		conn      redisconn.Options
	}
	nodes := []node{{key: livesync.CheckpointKey, conn: src}}
	if masters, ok := server.Cluster(); ok {
		nodes = nil
		for _, m := range masters {
			nodes = append(nodes, node{name: m, key: livesync.CheckpointKey + ":" + m, conn: src.At(m)})
		}
		// A cluster has database 0 only, which its snapshots do not say.
		if db, _ := opts.Load.Conn.SelectedDB(); db < 0 && len(opts.Reshape.DBMap) == 0 {
			opts.Load.Conn.DB = 0
		}
	}
	positions := make([]*livesync.Position, len(nodes))
	held := 0
	for i, n := range nodes {
		pos, source, err := livesync.ReadCheckpoint(ctx, opts.Load.Conn, n.key)
		if err != nil {
			return err
		}
		if pos != nil && !replace {
			if err := server.Holds(ctx, n.name, repl.Position{ReplID: pos.ReplID, Offset: pos.Offset}); err != nil {
				return fmt.Errorf("the target holds a sync from %s up to offset %d, which cannot continue: %w; crs sync --replace empties the target and starts over", source, pos.Offset, err)
			}
			positions[i] = pos
			held++
		}
	}
	said, err := livesync.Preflight(ctx, opts, held == 0, replace, server.Pausable())
	if err != nil {
		return err
	}
	say(opts, said)
	if held == 0 {
		if err := spoolSpace(ctx, opts, server, spool); err != nil {
			return err
		}
	}
	switch {
	case replace:
		if err := flushTarget(ctx, opts.Load.Conn); err != nil {
			return err
		}
	case held > 0 && held < len(nodes):
		return fmt.Errorf("%w: the target holds the positions of %d of the source's %d masters (its masters changed since): crs sync --replace empties the target and starts over", livesync.ErrStopped, held, len(nodes))
	}
	var shards []livesync.Shard
	defer func() {
		if err != nil {
			for _, sh := range shards {
				sh.Link.Close()
			}
		}
	}()
	for i, n := range nodes {
		var resume *repl.Position
		if p := positions[i]; p != nil {
			resume = &repl.Position{ReplID: p.ReplID, Offset: p.Offset, DB: p.DB}
		}
		link, err := repl.Dial(ctx, repl.Options{Conn: n.conn, Dir: spool, Idle: linkIdle(opts.Load.Conn.Timeout)}, resume)
		if errors.Is(err, repl.ErrRefused) && mode == "auto" && held == 0 && i == 0 {
			if !opts.Quiet && !opts.JSON {
				fmt.Fprintf(stderr, "crs sync: %v\ncrs sync: so it syncs by keyspace notifications (--mode notify: convergence once writes pause, proved at the cutover; --mode replication stops here instead)\n", err)
			}
			return runNotify(ctx, opts, src, server, from, replace)
		}
		if err != nil {
			return err
		}
		rep := link.Reply()
		sh := livesync.Shard{Link: link, Key: n.key, Source: n.name,
			Start: livesync.Position{ReplID: rep.Position.ReplID, Offset: rep.Position.Offset}}
		if rep.Full {
			spec := from
			spec.File = link.Snapshot()
			sh.Snapshot = pick.Open(ctx, spec)
			defer sh.Snapshot.Close()
		} else {
			sh.Start.DB = positions[i].DB
		}
		shards = append(shards, sh)
	}
	return livesync.Run(ctx, opts, shards, server, stderr)
}

// runNotify syncs by keyspace notifications: it turns them on where they
// are off (and back at the end), subscribes, and copies with SCAN.
func runNotify(ctx context.Context, opts livesync.Options, src redisconn.Options, server *repl.Server, from pick.Spec, replace bool) error {
	if pos, _, err := livesync.ReadCheckpoint(ctx, opts.Load.Conn, livesync.CheckpointKey); err != nil {
		return err
	} else if pos != nil && !replace {
		return fmt.Errorf("%w: the target holds the position of a sync by replication (%s): a sync by notifications starts from an empty target (--replace empties it)", livesync.ErrStopped, livesync.CheckpointKey)
	}
	checked, err := livesync.Preflight(ctx, opts, true, replace, nil)
	if err != nil {
		return err
	}
	say(opts, checked)
	restore, said, err := server.EnsureNotifications(ctx)
	probe := errors.Is(err, repl.ErrNoConfig)
	if probe {
		said = "CONFIG is refused, so crs writes probe keys to see that the source publishes every keyspace notification it needs"
	} else if err != nil {
		return err
	}
	if restore != nil {
		defer server.RestoreNotifications(context.WithoutCancel(ctx), *restore)
	}
	if !opts.Quiet && !opts.JSON {
		fmt.Fprintf(stderr, "crs sync: %s\n", said)
	}
	if replace {
		if err := flushTarget(ctx, opts.Load.Conn); err != nil {
			return err
		}
	}
	nodes := []redisconn.Options{src}
	if masters, ok := server.Cluster(); ok {
		nodes = nil
		for _, m := range masters {
			nodes = append(nodes, src.At(m))
		}
	}
	sub, err := repl.Subscribe(ctx, nodes...)
	if err != nil {
		return err
	}
	if probe {
		if err := server.ProbeNotifications(ctx, sub, 10*time.Second); err != nil {
			sub.Close()
			return err
		}
	}
	// A key that changes while SCAN reads it in parts is notified, and
	// read again after the copy.
	from.File, from.Scan.Conn, from.Scan.AllowChanging = "", src, true
	in := pick.Open(ctx, from)
	defer in.Close()
	return livesync.RunNotify(ctx, opts, in, server, notifications{sub}, stderr)
}

// say prints a line of crs sync's, where one is said and it may speak.
func say(opts livesync.Options, line string) {
	if line != "" && !opts.Quiet && !opts.JSON {
		fmt.Fprintln(stderr, line)
	}
}

// notifications gives a repl.Subscription to livesync.
type notifications struct{ *repl.Subscription }

func (n notifications) Next() (int, string, bool, error) {
	e, err := n.Subscription.Next()
	return e.DB, e.Key, e.Barrier, err
}

// flushTarget empties the target (every master of a cluster) for
// --replace.
func flushTarget(ctx context.Context, o redisconn.Options) error {
	tgt, err := target.Open(ctx, o)
	if err != nil {
		return err
	}
	defer tgt.Close()
	for _, n := range tgt.Nodes() {
		c, _, err := redisconn.Open(ctx, n, 0, 1)
		if err != nil {
			return err
		}
		err = c.FlushAll(ctx).Err()
		c.Close()
		if err != nil {
			return fmt.Errorf("--replace: flushall on the target: %w", err)
		}
	}
	return nil
}
