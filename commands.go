package main

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"
	"golang.org/x/term"

	"github.com/crs-tool/crs/dump"
	"github.com/crs-tool/crs/format"
	"github.com/crs-tool/crs/internal/backoff"
	"github.com/crs-tool/crs/internal/keyset"
	"github.com/crs-tool/crs/internal/keyslot"
	"github.com/crs-tool/crs/internal/memlimit"
	"github.com/crs-tool/crs/internal/progress"
	"github.com/crs-tool/crs/internal/store"
	"github.com/crs-tool/crs/load"
	"github.com/crs-tool/crs/records"
	"github.com/crs-tool/crs/source/pick"
	"github.com/crs-tool/crs/stats"
	"github.com/crs-tool/crs/verify"
)

func newApp() *cli.App {
	// -h is the host, as in redis-cli; help is --help only.
	cli.HelpFlag = &cli.BoolFlag{Name: "help", Usage: "show help"}
	return &cli.App{
		Name:            "crs",
		Usage:           "move Redis data between servers through a lossless JSON-lines dump",
		HideHelpCommand: true,
		OnUsageError:    onUsage,
		// main answers --version before the commands run; this shows it.
		Flags:    []cli.Flag{&cli.BoolFlag{Name: "version", Usage: "print the version and the git revision it was built from (crs, crsdump and crsload alike)"}},
		Commands: logged(dumpCommand(), loadCommand(), statsCommand(), verifyCommand(), syncCommand(), completionCommand(), manCommand()),
	}
}

// logged gives the commands that write to standard error --log-format,
// set before they run.
func logged(cmds ...*cli.Command) []*cli.Command {
	for _, c := range cmds {
		switch c.Name {
		case "dump", "load", "stats", "verify", "sync":
			c.Flags = append(c.Flags, &cli.StringFlag{Name: "log-format", Usage: "the lines on stderr as a log: text (each stamped with its time, RFC 3339 in ms) or json (one object a line: time, level, tool, msg); the default is text where stderr is not a terminal, or --progress plain or --json asks for lines", Destination: &logFormat})
			c.Before = func(c *cli.Context) error {
				return setLog(c.Command.Name, c.String("progress") == progress.Plain || c.Bool("json"))
			}
		}
	}
	return cmds
}

// onUsage marks a mistake in the command line for the exit code.
func onUsage(_ *cli.Context, err error, _ bool) error {
	if strings.Contains(err.Error(), "flag needs an argument: -h") {
		err = fmt.Errorf("%w (-h is the server's host, as in redis-cli: -h HOST; --help shows the help)", err)
	}
	return usageError{err}
}

// dumpCommand is crsdump: a source (a server, or a file) to a dump.
func dumpCommand() *cli.Command {
	opts := dump.NewOptions()
	from := pick.NewSpec()
	from.Stdin = os.Stdin
	from.Scan.KeysKnown = memlimit.Set
	var sel selectFlags
	var maxCPU float64
	var mf metricsFlags
	var summary summaryFlag
	var parts, uploadMiB int
	return &cli.Command{
		Name:         "dump",
		Usage:        "write every key of a server as JSON lines, zstd-compressed, to stdout or -o FILE",
		UsageText:    "crsdump [options] > FILE.jsonl.zst\ncrs dump [options] -o FILE.jsonl.zst|s3://BUCKET/KEY|gs://…|azblob://…\ncrs dump [options] --parts N -o SET/|s3://BUCKET/SET/",
		OnUsageError: onUsage,
		Flags: append(append(append(append(connFlags(&from.Scan.Conn, "dump only this database (a database in the URL does the same)", "every database"), sel.flags()...), mf.flags(false)...), summary.flag()),
			&cli.StringFlag{Name: "input", Aliases: []string{"i", "rdb"}, Usage: "read this `FILE` (- for stdin) instead of a server: an RDB file (a backup, of any Redis or Valkey version) to convert, or a dump to check or recompress", Destination: &from.File},
			&cli.BoolFlag{Name: "drop-key-metadata", Usage: "of an RDB file or snapshot: read keys that carry module key metadata (Redis 8.6) without it, counting them, instead of failing", Destination: &from.RDB.DropKeyMeta},
			&cli.BoolFlag{Name: "skip-functions", Usage: "of a server: dump the keys without its function libraries (for an ACL user without +function|list)", Destination: &from.Scan.SkipFunctions},
			&cli.BoolFlag{Name: "allow-changing", Usage: "write a key read in parts that changed during each of 3 reads as last read (not a value it ever held), counting it, instead of failing", Destination: &from.Scan.AllowChanging},
			&cli.BoolFlag{Name: "from-replicas", Usage: "of a cluster: read each shard from a replica, to spare the masters", Destination: &from.FromReplicas},
			&cli.BoolFlag{Name: "node-only", Usage: "of a cluster: dump only the node given (the slots its shard serves), not every shard", Destination: &from.NodeOnly},
			&cli.BoolFlag{Name: "snapshot", Usage: "read the server through a replication snapshot (REPLCONF, PSYNC): every key from one instant, as the server forks to make it; needs SYNC, which managed services often refuse", Destination: &from.Snapshot},
			&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "write to `FILE` (mode 0600, via FILE.tmp, renamed when complete), or to an object: s3://BUCKET/KEY, gs://…, azblob://… (uploaded as it is written, whole only once complete; credentials from the cloud's standard chain); a directory (DIR/, or a URL ending in /) holds a dump set: --parts N writes its N parts, --part I/N part I alone", Destination: &opts.Output},
			&cli.IntFlag{Name: "upload-part-mib", Value: 8, Usage: "with -o URL: upload in parts of `MIB` MiB, two at a time (the memory it takes); an object holds at most 10,000 parts, 78 GiB at 8 MiB", Destination: &uploadMiB},
			&cli.IntFlag{Name: "parts", Usage: "with -o DIR/: write the dump as a set of `N` parts, one share of the keys each (--part I/N), one after another", Destination: &parts},
			&cli.StringFlag{Name: "compress", Value: opts.Compress, Usage: "zstd or none", Destination: &opts.Compress},
			&cli.IntFlag{Name: "zstd-level", Value: opts.ZstdLevel, Usage: "zstd level, 1 (fastest) to 4 (smallest)", Destination: &opts.ZstdLevel},
			&cli.IntFlag{Name: "scan-count", Value: from.Scan.ScanCount, Usage: "SCAN COUNT hint: about how many keys are read per pipelined batch", Destination: &from.Scan.ScanCount},
			&cli.IntFlag{Name: "keys-in-memory", Value: keyset.DefaultLimit, Usage: "keys of a database remembered in memory to write a key SCAN returns twice once; past this many, further keys go to a temporary file (in TMPDIR) and are read after SCAN", Destination: &from.Scan.SeenLimit},
			&cli.IntFlag{Name: "concurrency", Value: from.Scan.Concurrency, Usage: "batches read at once, each on its own connection", Destination: &from.Scan.Concurrency},
			&cli.IntFlag{Name: "part-elems", Value: from.Scan.PartElems, Usage: "a key with more elements is read in windows and written in parts of this many", Destination: &from.Scan.PartElems},
			&cli.Int64Flag{Name: "part-bytes", Value: from.Scan.PartBytes, Usage: "a key larger than this (estimated) is read in windows and written in parts of about this size", Destination: &from.Scan.PartBytes},
			&cli.Float64Flag{Name: "rate", Usage: "read at most `N` keys a second (0: as fast as it goes), to spare a production server", Destination: &opts.Rate},
			&cli.Float64Flag{Name: "max-server-cpu", Usage: "hold back while the source uses more than `PCT` percent of a core (INFO cpu, every client's load, measured over a second)", Destination: &maxCPU},
			&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "print nothing but errors", Destination: &opts.Quiet},
			progressFlag(&opts.Progress, "5s"),
			&cli.BoolFlag{Name: "json", Usage: "print the summary as one JSON object (on stderr)", Destination: &opts.JSON},
		),
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return usageError{fmt.Errorf("unexpected argument %q (the dump goes to stdout or -o FILE)", c.Args().First())}
			}
			opts.Counter = &progress.Counter{}
			var stop func()
			var err error
			if opts.Summary, stop, err = mf.watch(c.Context, "crsdump", counterEndpoint("dump", opts.Counter), &summary); err != nil {
				return err
			}
			defer stop()
			if err := sel.into(&from); err != nil {
				return err
			}
			if from.File == "" {
				shareCores(from.Scan.Conn)
				busy, err := backoff.Start(c.Context, from.Scan.Conn, maxCPU)
				if err != nil {
					return err
				}
				defer busy.Close()
				opts.Busy = busy
			}
			if opts.Output, err = store.Local(opts.Output); err != nil {
				return usageError{err}
			}
			if uploadMiB < 5 || uploadMiB > 5<<10 {
				return usageError{fmt.Errorf("--upload-part-mib %d: S3 takes parts of 5 MiB to 5 GiB", uploadMiB)}
			}
			opts.PartSize = uploadMiB << 20
			if set, ok, err := dumpSet(opts.Output, parts, from.Select.Part); ok || err != nil {
				if err != nil {
					return err
				}
				open := func(p keyslot.Part) records.Input {
					spec := from
					spec.Select.Part = p
					return pick.Open(c.Context, spec)
				}
				return dump.RunSet(c.Context, open, set, opts, os.Stdout, stderr)
			}
			in := pick.Open(c.Context, from)
			defer in.Close()
			return dump.Run(c.Context, in, opts, os.Stdout, stderr)
		},
	}
}

// dumpSet reads the options of a dump set: -o DIR/ (or an existing
// directory) with --parts N, or --part I/N; ok is false for a dump file.
func dumpSet(output string, parts int, part keyslot.Part) (set dump.SetOptions, ok bool, err error) {
	isDir := output != "" && store.IsDir(output)
	switch {
	case !isDir && parts > 0:
		return set, false, usageError{fmt.Errorf("--parts writes a dump set into a directory: -o DIR/")}
	case !isDir:
		return set, false, nil
	case parts > 0 && part.N > 0:
		return set, true, usageError{fmt.Errorf("--parts %d and --part %s: one or the other (--part writes one part of a set of N)", parts, part)}
	case parts > keyslot.Slots:
		return set, true, usageError{fmt.Errorf("--parts %d: at most %d, the cluster's slots", parts, keyslot.Slots)}
	case parts > 0:
		for i := 0; i < parts; i++ {
			set.Parts = append(set.Parts, keyslot.NewPart(i, parts))
		}
	case part.N > 0: // --part I/N, 0/1 too
		set.Parts = []keyslot.Part{part}
	default:
		return set, true, usageError{fmt.Errorf("-o %s is a directory: a dump set needs --parts N (all of it here) or --part I/N (one part)", store.Redact(output))}
	}
	set.Dir, set.Version = output, version("crs")
	return set, true, nil
}

// loadCommand is crsload: a dump into a server.
func loadCommand() *cli.Command {
	loadOpts := load.NewOptions()
	loadOpts.KeysKnown = memlimit.Set
	from := pick.NewSpec()
	var sel selectFlags
	var verifyAfterLoad bool
	var mf metricsFlags
	var summary summaryFlag
	return &cli.Command{
		Name:         "load",
		Usage:        "replay a dump (zstd or plain, from FILE or stdin) into a server",
		UsageText:    "crsload [options] < FILE.jsonl.zst\ncrs load [options] FILE.jsonl.zst|SET/|s3://BUCKET/KEY|gs://…|azblob://…",
		OnUsageError: onUsage,
		Flags: append(append(append(append(connFlags(&loadOpts.Conn, "load every record into this database (a database in the URL does the same)", "each record's own"), sel.flags()...), mf.flags(false)...), summary.flag()),
			&cli.StringFlag{Name: "ttl", Value: loadOpts.TTL, Usage: "keep (expire at the same instant), shift (by the time since the dump) or none", Destination: &loadOpts.TTL},
			&cli.BoolFlag{Name: "replace", Usage: "delete a key that exists in the target before writing it", Destination: &loadOpts.Replace},
			&cli.BoolFlag{Name: "skip-existing", Usage: "leave a key that exists in the target as it is", Destination: &loadOpts.SkipExisting},
			&cli.BoolFlag{Name: "verify", Usage: "after loading, check that the target holds every key of the dump (crs verify)", Destination: &verifyAfterLoad},
			&cli.BoolFlag{Name: "check", Usage: "read and validate the whole dump (format, count, checksum) and print what it holds; touch no server", Destination: &loadOpts.Check},
			&cli.BoolFlag{Name: "dry-run", Usage: "run the whole pre-flight against the target (version, empty databases, memory, ACL, commands the records need) and read the whole dump, then say what the load would write; write nothing", Destination: &loadOpts.DryRun},
			&cli.BoolFlag{Name: "check-first", Usage: "read the whole input (to its trailer and checksum) before writing anything, so that a cut or corrupt file writes nothing (standard input is spooled to a private file)", Destination: &loadOpts.CheckFirst},
			&cli.BoolFlag{Name: "drop-stream-counters", Usage: "load streams into a server before 7.0 without entries-added, max-deleted-entry-id and the groups' entries-read (entries, groups, consumers and pending entries all load), counting them", Destination: &loadOpts.DropStreamCounters},
			&cli.BoolFlag{Name: "drop-key-metadata", Usage: "of an RDB file: read keys that carry module key metadata (Redis 8.6) without it, counting them, instead of failing", Destination: &from.RDB.DropKeyMeta},
			&cli.BoolFlag{Name: "allow-truncated", Usage: "of an AOF whose last command was cut short (a crash): load everything before it, saying so, instead of failing", Destination: &from.AllowTruncated},
			&cli.BoolFlag{Name: "skip-functions", Usage: "load the keys without the dump's function libraries (for a server before 7.0, which has no FUNCTION LOAD), counting them", Destination: &loadOpts.SkipFunctions},
			&cli.BoolFlag{Name: "drop-stream-idmp", Usage: "load streams into a server before 8.6 without their idempotent-producer state (XCFGSET settings and tracked producer IDs), counting them", Destination: &loadOpts.DropStreamIDMP},
			&cli.BoolFlag{Name: "drop-field-expiry", Usage: "load hashes without their field expiries when the target cannot set them (Redis before 7.4), counting them", Destination: &loadOpts.DropFieldExpiry},
			&cli.BoolFlag{Name: "skip-unsupported", Usage: "skip, and count, keys whose DUMP payload the target refuses (another RDB version, a missing module)", Destination: &loadOpts.SkipUnsupported},
			&cli.StringFlag{Name: "load-by", Value: load.LoadByAuto, Usage: "auto: write a whole string, list, set, hash or sorted set as one RESTORE of a payload crs encodes in the target's own RDB version (Redis 5.0+, where RESTORE is allowed), the rest by commands; commands: every key by the commands that build it", Destination: &loadOpts.LoadBy},
			&cli.IntFlag{Name: "keys-in-memory", Value: keyset.DefaultLimit, Usage: "keys remembered in memory to catch a key in the dump twice; past this many, further keys go to a temporary file (in TMPDIR), checked at the end", Destination: &loadOpts.SeenLimit},
			&cli.IntFlag{Name: "concurrency", Value: loadOpts.Concurrency, Usage: "writers at once, each with its own connection", Destination: &loadOpts.Concurrency},
			&cli.IntFlag{Name: "parts-at-once", Usage: "of a dump set: load this many of its parts side by side, each read by its own reader, the writers shared out between them (default: as many as there are cores, at most 4; 1 reads the parts one after another)", Destination: &loadOpts.PartsAtOnce},
			&cli.IntFlag{Name: "pipeline", Value: loadOpts.Pipeline, Usage: "most keys one writer sends per round trip", Destination: &loadOpts.Pipeline},
			&cli.Int64Flag{Name: "max-in-flight", Value: loadOpts.MaxInFlight, Usage: "most bytes of records read and not yet written, across all writers", Destination: &loadOpts.MaxInFlight},
			&cli.DurationFlag{Name: "retry-for", Value: loadOpts.RetryFor, Usage: "keep reconnecting and resending this long after a lost connection", Destination: &loadOpts.RetryFor},
			&cli.BoolFlag{Name: "resume", Usage: "continue a load of this file into this target that stopped (a lost target, ^C, OOM) from its checkpoint, skipping what it wrote", Destination: &loadOpts.Resume},
			&cli.Float64Flag{Name: "rate", Usage: "send at most `N` commands a second, all writers together (0: as fast as it goes), to spare a production server", Destination: &loadOpts.Rate},
			&cli.Float64Flag{Name: "max-server-cpu", Usage: "hold the writers back while the target uses more than `PCT` percent of a core (INFO cpu, every client's load, measured over a second)", Destination: &loadOpts.MaxServerCPU},
			&cli.BoolFlag{Name: "ignore-memory", Usage: "load even when the target's maxmemory looks too small for the dump", Destination: &loadOpts.IgnoreMemory},
			&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "print nothing but errors", Destination: &loadOpts.Quiet},
			progressFlag(&loadOpts.Progress, "5s"),
			&cli.BoolFlag{Name: "json", Usage: "print the summary as one JSON object (on stderr)", Destination: &loadOpts.JSON},
		),
		Action: func(c *cli.Context) error {
			if err := atMostOneFile(c); err != nil {
				return err
			}
			from.File, from.Stdin = c.Args().First(), os.Stdin
			if err := sel.into(&from); err != nil {
				return err
			}
			loadOpts.ProbeKeys, loadOpts.ProbeAny = from.Select.ProbeKeysAs(from.Reshape)
			if !from.Reshape.Empty() {
				if db, _ := loadOpts.Conn.SelectedDB(); db >= 0 && len(from.Reshape.DBMap) > 0 {
					return usageError{errors.New("-n (every key into one database) and --db-map (each database to its own) do not go together")}
				}
				loadOpts.CheckCollisions = true
			}
			if from.File == "" || from.File == "-" {
				if verifyAfterLoad {
					return usageError{errors.New("--verify needs the dump as a file argument, to read it again")}
				}
				if term.IsTerminal(int(os.Stdin.Fd())) {
					return load.ErrNoInput
				}
				from.File = "-"
			}
			checkpoint, err := checkpointPath(from.File, fmt.Sprint(from.Select.Part, from.SetParts), loadOpts)
			if err != nil {
				return err
			}
			loadOpts.Checkpoint = checkpoint
			loadOpts.Counter = &progress.Counter{}
			var stop func()
			if loadOpts.Summary, stop, err = mf.watch(c.Context, "crsload", counterEndpoint("load", loadOpts.Counter), &summary); err != nil {
				return err
			}
			defer stop()
			shareCores(loadOpts.Conn)
			in := pick.Open(c.Context, from)
			defer in.Close()
			if err := load.Run(c.Context, loadOpts, in, stderr); err != nil || !verifyAfterLoad {
				return err
			}
			vo := verify.NewOptions()
			vo.Target = loadOpts.Conn
			vo.Progress, vo.Quiet = loadOpts.Progress, loadOpts.Quiet
			return verify.Run(c.Context, vo, in, stderr)
		},
	}
}

// statsCommand is crs stats: counts of a dump or a server.
func statsCommand() *cli.Command {
	statsOpts := stats.NewOptions()
	from := pick.NewSpec()
	var sel selectFlags
	var statsPatterns cli.StringSlice
	var list bool
	return &cli.Command{
		Name:         "stats",
		Usage:        "count keys per database, type, expiry and pattern, and list the biggest, from a dump FILE or a server",
		UsageText:    "crs stats [options] FILE\ncrs stats [options] -u URL",
		OnUsageError: onUsage,
		Flags: append(append(connFlags(&from.Scan.Conn, "only this database, from a server", "every database"), sel.flags()...),
			&cli.StringSliceFlag{Name: "pattern", Usage: "count the keys matching this SCAN MATCH `PATTERN` (repeatable) instead of the patterns found", Destination: &statsPatterns},
			&cli.BoolFlag{Name: "skip-functions", Usage: "of a server: count the keys without reading its function libraries (for an ACL user without +function|list)", Destination: &from.Scan.SkipFunctions},
			&cli.IntFlag{Name: "top", Value: statsOpts.Top, Usage: "list this many of the biggest keys", Destination: &statsOpts.Top},
			&cli.BoolFlag{Name: "json", Usage: "print one JSON object", Destination: &statsOpts.JSON},
			&cli.BoolFlag{Name: "node-only", Usage: "of a cluster: count only the shard of the node given (a cluster is counted whole otherwise)", Destination: &from.NodeOnly},
			&cli.BoolFlag{Name: "from-replicas", Usage: "of a cluster: read each shard from a replica", Destination: &from.FromReplicas},
			&cli.BoolFlag{Name: "list", Usage: "of a dump set (a directory): list its parts from their entries, reading no dump", Destination: &list},
		),
		Action: func(c *cli.Context) error {
			if err := atMostOneFile(c); err != nil {
				return err
			}
			from.File, from.Stdin = c.Args().First(), os.Stdin
			if err := sel.into(&from); err != nil {
				return err
			}
			statsOpts.Patterns = statsPatterns.Value()
			in := pick.Open(c.Context, from)
			defer in.Close()
			if list {
				return listSet(c.Context, in, statsOpts.JSON, os.Stdout)
			}
			return stats.Run(c.Context, statsOpts, in, os.Stdout)
		},
	}
}

// listSet prints the parts of a dump set, as pg_restore -l lists an
// archive's contents: one line a part, from its entry.
func listSet(ctx context.Context, in records.Input, asJSON bool, w io.Writer) error {
	if _, err := in.Header(ctx); err != nil {
		return err
	}
	set, ok := in.(interface{ Entries() []format.PartEntry })
	if !ok {
		return usageError{fmt.Errorf("--list lists the parts of a dump set (a directory that crsdump -o DIR/ wrote), and %s is not one", in.Name())}
	}
	entries := set.Entries()
	if asJSON {
		return json.NewEncoder(w).Encode(entries)
	}
	var keys int64
	for _, e := range entries {
		keys += e.Keys
	}
	fmt.Fprintf(w, "; dump set %s: %d of %d parts, %d keys, from %s\n", in.Name(), len(entries), entries[0].Parts, keys, entries[0].Source)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "part\tslots\tkeys\trecords\tbytes\tcrc32c\tfinished\tfile")
	for _, e := range entries {
		fmt.Fprintf(tw, "%d/%d\t%d-%d\t%d\t%d\t%d\t%s\t%s\t%s\n", e.Part, e.Parts, e.Slots[0], e.Slots[1], e.Keys, e.Records, e.Bytes, e.CRC32C,
			time.UnixMilli(e.FinishedMs).UTC().Format(time.RFC3339), e.File)
	}
	return tw.Flush()
}

// verifyCommand is crs verify: a server against a dump or another server.
func verifyCommand() *cli.Command {
	verifyOpts := verify.NewOptions()
	from := pick.NewSpec()
	var sel selectFlags
	var summary summaryFlag
	return &cli.Command{
		Name:         "verify",
		Usage:        "check that a server holds every key of a dump (or of another server) with the same type, value and expiry",
		UsageText:    "crs verify [options] -u TARGET_URL FILE\ncrs verify --source URL --target URL",
		OnUsageError: onUsage,
		Flags: append(append(append(append(connFlags(&verifyOpts.Target, "the target database to check every record against", "each record's own"), sel.flags()...), sourceConnFlags(&from.Scan.Conn)...), summary.flag()),
			&cli.BoolFlag{Name: "json", Usage: "print the summary (and the differences it lists) as one JSON object (on stderr)", Destination: &verifyOpts.JSON},
			&cli.StringFlag{Name: "target", Usage: "the server to check (the same as -u)", Destination: &verifyOpts.Target.URL},
			&cli.StringFlag{Name: "source", Usage: "compare against this server's keys instead of a dump file", Destination: &from.Scan.Conn.URL},
			&cli.DurationFlag{Name: "tolerance", Value: verifyOpts.Tolerance, Usage: "how far apart two expiries may be and still match", Destination: &verifyOpts.Tolerance},
			&cli.IntFlag{Name: "show", Value: verifyOpts.Show, Usage: "list this many differences, count the rest", Destination: &verifyOpts.Show},
			&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "print only the summary", Destination: &verifyOpts.Quiet},
			progressFlag(&verifyOpts.Progress, "5s"),
		),
		Action: func(c *cli.Context) error {
			if err := atMostOneFile(c); err != nil {
				return err
			}
			from.File, from.Stdin = c.Args().First(), os.Stdin
			if err := sel.into(&from); err != nil {
				return err
			}
			if (from.File == "") == (from.Scan.Conn.URL == "") {
				return usageError{errors.New("give either a dump FILE or --source URL")}
			}
			if t := verifyOpts.Target; t.URL == "" && t.Host == "" && t.Port == 0 && t.SentinelMaster == "" {
				return usageError{errors.New("name the server to check: --target URL (or -u URL, or -h/-p); crs verify does not assume 127.0.0.1:6379")}
			}
			if err := progress.CheckMode(verifyOpts.Progress); err != nil {
				return usageError{err}
			}
			var err error
			if verifyOpts.Summary, err = summary.open(); err != nil {
				return err
			}
			defer summary.close()
			in := pick.Open(c.Context, from)
			defer in.Close()
			return verify.Run(c.Context, verifyOpts, in, stderr)
		},
	}
}

// checkpointPath is where a load of file into opts' target keeps its
// checkpoint: a file in TMPDIR named by a hash of the file's absolute path
// (or its URL), the share of it loaded (parts, of a dump set: two loaders
// of one set on one machine each keep their own), the target and the
// writers, so that crsload --resume with the same arguments finds it.
// Standard input has none; --resume refuses it.
func checkpointPath(file, share string, opts load.Options) (string, error) {
	if file == "" || file == "-" {
		if opts.Resume {
			return "", usageError{errors.New("--resume needs the dump as a file argument, to read it again")}
		}
		return "", nil
	}
	abs, err := filepath.Abs(file)
	if store.IsURL(file) {
		abs, err = file, nil
	}
	if err != nil {
		return "", err
	}
	db, _ := opts.Conn.SelectedDB()
	sum := sha256.Sum256([]byte(fmt.Sprintf("%s\x00%s\x00%d\x00%d\x00%s", abs, opts.Conn.Address(), db, opts.Concurrency, share)))
	return filepath.Join(os.TempDir(), fmt.Sprintf("crsload-%x.checkpoint", sum[:8])), nil
}
