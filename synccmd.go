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
	"github.com/crs-tool/crs/records"
	"github.com/crs-tool/crs/source/pick"
	"github.com/crs-tool/crs/source/repl"
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
			&cli.StringFlag{Name: "mode", Value: opts.Mode, Usage: "replication (PSYNC: a snapshot, then the write stream; exactly once), notify (SCAN, then every key its keyspace notifications name read again: for sources that refuse replication, such as managed services) or auto (replication where the source allows it)", Destination: &opts.Mode},
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
			switch opts.Mode {
			case livesync.ModeAuto, livesync.ModeReplication, livesync.ModeNotify:
			default:
				return usageError{fmt.Errorf("--mode must be auto, replication or notify, not %q", opts.Mode)}
			}
			server, err := repl.OpenServer(c.Context, src)
			if err != nil {
				return fmt.Errorf("the source: %w", err)
			}
			defer server.Close()
			return livesync.Start(c.Context, opts, origin{Server: server, conn: src, from: from, spool: spool, idle: linkIdle(opts.Load.Conn.Timeout)}, stderr)
		},
	}
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

// notifications gives a repl.Subscription to livesync.
type notifications struct{ *repl.Subscription }

func (n notifications) Next() (int, string, bool, error) {
	e, err := n.Subscription.Next()
	return e.DB, e.Key, e.Barrier, err
}

// origin is the source of crs sync over package repl: its server, its
// replication links (their snapshots read as records) and its keyspace
// notifications (with a SCAN of its keys).
type origin struct {
	*repl.Server
	conn  redisconn.Options
	from  pick.Spec
	spool string
	idle  time.Duration
}

func (o origin) Address() string { return o.conn.Address() }

func (o origin) Links() ([]string, bool) {
	if masters, ok := o.Cluster(); ok {
		return masters, true
	}
	return []string{""}, false
}

func (o origin) Holds(ctx context.Context, name string, pos livesync.Position) error {
	return o.Server.Holds(ctx, name, repl.Position{ReplID: pos.ReplID, Offset: pos.Offset})
}

// SpoolSpace says how much disk the snapshot takes in the spool before
// it is asked for, and refuses a spool that cannot hold it.
func (o origin) SpoolSpace(ctx context.Context) (string, error) {
	need, err := o.SnapshotBytes(ctx)
	if err != nil {
		return "", err
	}
	dir := repl.SpoolDir(o.spool)
	free, err := repl.FreeBytes(dir)
	if err != nil {
		return "", nil // a file system that will not say: the download says if it fills
	}
	if need > free {
		return "", fmt.Errorf("%w: the snapshot spools to %s first, about %s (the source's dataset, which its RDB rarely exceeds), and %s is free there: give --spool-dir on a larger disk", livesync.ErrStopped, dir, report.Bytes(need), report.Bytes(free))
	}
	return fmt.Sprintf("crs sync: the snapshot spools to %s: about %s, then the stream that arrives while it loads; %s free there", dir, report.Bytes(need), report.Bytes(free)), nil
}

func (o origin) Dial(ctx context.Context, name string, resume *livesync.Position) (livesync.Shard, error) {
	conn := o.conn
	if name != "" {
		conn = o.conn.At(name)
	}
	var from *repl.Position
	if resume != nil {
		from = &repl.Position{ReplID: resume.ReplID, Offset: resume.Offset, DB: resume.DB}
	}
	link, err := repl.Dial(ctx, repl.Options{Conn: conn, Dir: o.spool, Idle: o.idle}, from)
	if err != nil {
		return livesync.Shard{}, err
	}
	rep := link.Reply()
	sh := livesync.Shard{Link: link, Start: livesync.Position{ReplID: rep.Position.ReplID, Offset: rep.Position.Offset}}
	if rep.Full {
		spec := o.from
		spec.File = link.Snapshot()
		// A key whose expiry passes between the snapshot and its load is
		// left out by the load, which names it to the sync to read again
		// from the source (the source may have renewed it since): the
		// decoder must not drop it first, unnamed.
		spec.RDB.KeepExpired = true
		sh.Snapshot = pick.Open(ctx, spec)
	} else if resume != nil {
		sh.Start.DB = resume.DB
	}
	return sh, nil
}

func (o origin) Refused(err error) bool { return errors.Is(err, repl.ErrRefused) }

func (o origin) Notifications(ctx context.Context) (livesync.Notifications, records.Input, string, func(), error) {
	restore, said, err := o.EnsureNotifications(ctx)
	probe := errors.Is(err, repl.ErrNoConfig)
	if probe {
		said = "CONFIG is refused, so crs writes probe keys to see that the source publishes every keyspace notification it needs"
	} else if err != nil {
		return nil, nil, "", nil, err
	}
	done := func() {}
	if restore != nil {
		done = func() { o.RestoreNotifications(context.WithoutCancel(ctx), *restore) }
	}
	nodes := []redisconn.Options{o.conn}
	if masters, ok := o.Cluster(); ok {
		nodes = nil
		for _, m := range masters {
			nodes = append(nodes, o.conn.At(m))
		}
	}
	sub, err := repl.Subscribe(ctx, nodes...)
	if err != nil {
		done()
		return nil, nil, "", nil, err
	}
	if probe {
		if err := o.ProbeNotifications(ctx, sub, 10*time.Second); err != nil {
			sub.Close()
			done()
			return nil, nil, "", nil, err
		}
	}
	// A key that changes while SCAN reads it in parts is notified, and
	// read again after the copy.
	from := o.from
	from.File, from.Scan.Conn, from.Scan.AllowChanging = "", o.conn, true
	return notifications{sub}, pick.Open(ctx, from), said, done, nil
}
