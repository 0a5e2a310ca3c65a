// Command crs moves Redis data between servers through a newline-delimited
// JSON dump, compressed with zstd, that loses nothing: every byte of every
// key and value, exact sorted-set scores, millisecond expiries, every
// database.
//
//	crsdump -u redis://old-host:6380 > crs.jsonl.zst
//	crsload -u redis://new-host:6380 < crs.jsonl.zst
//	zstd -dc crs.jsonl.zst | jq -r 'select(.type=="hash") | .key'
//
// The one binary answers as crsdump and crsload (by the name it is run
// under) and as "crs dump" and "crs load". Exit codes: 0 success, 1 failure,
// 2 bad usage, 3 bad input (the dump is malformed, truncated or corrupt),
// 4 refused (the target holds keys, or data this crs cannot carry),
// 5 cannot connect or authenticate, 6 verify found differences,
// 130 interrupted.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"

	"github.com/redis/go-redis/v9"
	"github.com/urfave/cli/v2"

	"github.com/crs-tool/crs/dump"
	"github.com/crs-tool/crs/format"
	"github.com/crs-tool/crs/internal/memlimit"
	"github.com/crs-tool/crs/internal/progress"
	"github.com/crs-tool/crs/internal/redisconn"
	"github.com/crs-tool/crs/load"
	"github.com/crs-tool/crs/stats"
	"github.com/crs-tool/crs/verify"
)

func main() {
	// Process-wide settings are main's: the libraries take options.
	memlimit.Set(0) // raised through KeysKnown once a run knows its key count
	redis.SetLogger(redisconn.QuietLogger{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	interrupts(cancel)
	args := os.Args
	name := "crs"
	switch base := filepath.Base(args[0]); base {
	case "crsdump", "crsload":
		name = base
		args = append([]string{"crs", strings.TrimPrefix(base, "crs")}, args[1:]...)
	}
	app := newApp()
	err := app.RunContext(ctx, flagsFirst(app, args))
	switch {
	case err != nil && ctx.Err() != nil:
		fmt.Fprintf(os.Stderr, "%s: interrupted\n", name)
	case err != nil:
		fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
	}
	os.Exit(exitCode(ctx, err))
}

// interrupts cancels the run at the first SIGINT or SIGTERM, so that it
// stops, cleans up and reports within about a second; a second signal
// ends the process at once.
func interrupts(cancel context.CancelFunc) {
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-sigs
		cancel()
		<-sigs
		fmt.Fprintln(os.Stderr, "crs: interrupted twice; exiting at once")
		os.Exit(130)
	}()
}

// shareCores leaves a core to a server on this machine; GOMAXPROCS, when
// set, wins.
func shareCores(o redisconn.Options) {
	if os.Getenv("GOMAXPROCS") == "" {
		runtime.GOMAXPROCS(redisconn.Cores(o))
	}
}

// usageError marks a mistake in the command line.
type usageError struct{ error }

func (e usageError) Unwrap() error { return e.error }

func exitCode(ctx context.Context, err error) int {
	var (
		parseErr *format.ParseError
		connErr  *redisconn.Error
		usage    usageError
	)
	switch {
	case err == nil:
		return 0
	case ctx.Err() != nil || errors.Is(err, context.Canceled):
		return 130
	case errors.As(err, &usage), errors.Is(err, dump.ErrOptions), errors.Is(err, load.ErrOptions):
		return 2
	case errors.As(err, &parseErr), errors.Is(err, load.ErrNoInput):
		return 3
	case errors.Is(err, load.ErrTargetNotEmpty), errors.Is(err, load.ErrTargetLacks), errors.Is(err, load.ErrTargetMemory), errors.Is(err, dump.ErrTerminal):
		return 4
	case errors.As(err, &connErr):
		return 5
	case errors.Is(err, verify.ErrDifferent):
		return 6
	}
	return 1
}

func newApp() *cli.App {
	// -h is the host, as in redis-cli; help is --help only.
	cli.HelpFlag = &cli.BoolFlag{Name: "help", Usage: "show help"}
	onUsage := func(_ *cli.Context, err error, _ bool) error { return usageError{err} }
	dumpOpts := dump.NewOptions()
	loadOpts := load.NewOptions()
	dumpOpts.KeysKnown, loadOpts.KeysKnown = memlimit.Set, memlimit.Set
	verifyOpts := verify.NewOptions()
	statsOpts := stats.NewOptions()
	var statsPatterns cli.StringSlice
	var verifyAfterLoad bool
	return &cli.App{
		Name:            "crs",
		Usage:           "move Redis data between servers through a lossless JSON-lines dump",
		HideHelpCommand: true,
		OnUsageError:    onUsage,
		Commands: []*cli.Command{
			{
				Name:         "dump",
				Usage:        "write every key of a server as JSON lines, zstd-compressed, to stdout or -o FILE",
				UsageText:    "crsdump [options] > FILE.jsonl.zst\ncrs dump [options] -o FILE.jsonl.zst",
				OnUsageError: onUsage,
				Flags: append(connFlags(&dumpOpts.Conn, "dump only this database (a database in the URL does the same)", "every database"),
					&cli.StringFlag{Name: "match", Usage: "dump only keys matching this SCAN `PATTERN`", Destination: &dumpOpts.Match},
					&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "write to `FILE` (mode 0600, via FILE.tmp, renamed when complete)", Destination: &dumpOpts.Output},
					&cli.StringFlag{Name: "compress", Value: dumpOpts.Compress, Usage: "zstd or none", Destination: &dumpOpts.Compress},
					&cli.IntFlag{Name: "zstd-level", Value: dumpOpts.ZstdLevel, Usage: "zstd level, 1 (fastest) to 4 (smallest)", Destination: &dumpOpts.ZstdLevel},
					&cli.IntFlag{Name: "scan-count", Value: dumpOpts.ScanCount, Usage: "SCAN COUNT hint: about how many keys are read per pipelined batch", Destination: &dumpOpts.ScanCount},
					&cli.IntFlag{Name: "concurrency", Value: dumpOpts.Concurrency, Usage: "batches read at once, each on its own connection", Destination: &dumpOpts.Concurrency},
					&cli.IntFlag{Name: "part-elems", Value: dumpOpts.PartElems, Usage: "a key with more elements is read in windows and written in parts of this many", Destination: &dumpOpts.PartElems},
					&cli.Int64Flag{Name: "part-bytes", Value: dumpOpts.PartBytes, Usage: "a key larger than this (estimated) is read in windows and written in parts of about this size", Destination: &dumpOpts.PartBytes},
					&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "print nothing but errors", Destination: &dumpOpts.Quiet},
					progressFlag(&dumpOpts.Progress),
					&cli.BoolFlag{Name: "json", Usage: "print the summary as one JSON object (on stderr)", Destination: &dumpOpts.JSON},
				),
				Action: func(c *cli.Context) error {
					if c.NArg() > 0 {
						return usageError{fmt.Errorf("unexpected argument %q (the dump goes to stdout or -o FILE)", c.Args().First())}
					}
					shareCores(dumpOpts.Conn)
					return dump.Run(c.Context, dumpOpts, os.Stdout, os.Stderr)
				},
			},
			{
				Name:         "load",
				Usage:        "replay a dump (zstd or plain, from FILE or stdin) into a server",
				UsageText:    "crsload [options] < FILE.jsonl.zst\ncrs load [options] FILE.jsonl.zst",
				OnUsageError: onUsage,
				Flags: append(connFlags(&loadOpts.Conn, "load every record into this database (a database in the URL does the same)", "each record's own"),
					&cli.StringFlag{Name: "ttl", Value: loadOpts.TTL, Usage: "keep (expire at the same instant), shift (by the time since the dump) or none", Destination: &loadOpts.TTL},
					&cli.BoolFlag{Name: "replace", Usage: "delete a key that exists in the target before writing it", Destination: &loadOpts.Replace},
					&cli.BoolFlag{Name: "skip-existing", Usage: "leave a key that exists in the target as it is", Destination: &loadOpts.SkipExisting},
					&cli.BoolFlag{Name: "verify", Usage: "after loading, check that the target holds every key of the dump (crs verify)", Destination: &verifyAfterLoad},
					&cli.BoolFlag{Name: "check", Aliases: []string{"dry-run"}, Usage: "read and validate the whole dump (format, count, checksum) and print what it holds; touch no server", Destination: &loadOpts.Check},
					&cli.BoolFlag{Name: "drop-field-expiry", Usage: "load hashes without their field expiries when the target cannot set them (Redis before 7.4), counting them", Destination: &loadOpts.DropFieldExpiry},
					&cli.BoolFlag{Name: "skip-unsupported", Usage: "skip, and count, keys whose DUMP payload the target refuses (another RDB version, a missing module)", Destination: &loadOpts.SkipUnsupported},
					&cli.IntFlag{Name: "concurrency", Value: loadOpts.Concurrency, Usage: "writers at once, each with its own connection", Destination: &loadOpts.Concurrency},
					&cli.IntFlag{Name: "pipeline", Value: loadOpts.Pipeline, Usage: "most keys one writer sends per round trip", Destination: &loadOpts.Pipeline},
					&cli.Int64Flag{Name: "max-in-flight", Value: loadOpts.MaxInFlight, Usage: "most bytes of records read and not yet written, across all writers", Destination: &loadOpts.MaxInFlight},
					&cli.DurationFlag{Name: "retry-for", Value: loadOpts.RetryFor, Usage: "keep reconnecting and resending this long after a lost connection", Destination: &loadOpts.RetryFor},
					&cli.BoolFlag{Name: "ignore-memory", Usage: "load even when the target's maxmemory looks too small for the dump", Destination: &loadOpts.IgnoreMemory},
					&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "print nothing but errors", Destination: &loadOpts.Quiet},
					progressFlag(&loadOpts.Progress),
					&cli.BoolFlag{Name: "json", Usage: "print the summary as one JSON object (on stderr)", Destination: &loadOpts.JSON},
				),
				Action: func(c *cli.Context) error {
					if err := atMostOneFile(c); err != nil {
						return err
					}
					loadOpts.Input = c.Args().First()
					if verifyAfterLoad && (loadOpts.Input == "" || loadOpts.Input == "-") {
						return usageError{errors.New("--verify needs the dump as a file argument, to read it again")}
					}
					shareCores(loadOpts.Conn)
					if err := load.Run(c.Context, loadOpts, os.Stdin, os.Stderr); err != nil || !verifyAfterLoad {
						return err
					}
					vo := verify.NewOptions()
					vo.Target, vo.Input = loadOpts.Conn, loadOpts.Input
					vo.Progress, vo.Quiet = loadOpts.Progress, loadOpts.Quiet
					return verify.Run(c.Context, vo, os.Stderr)
				},
			},
			{
				Name:         "stats",
				Usage:        "count keys per database, type, expiry and pattern, and list the biggest, from a dump FILE or a server",
				UsageText:    "crs stats [options] FILE\ncrs stats [options] -u URL",
				OnUsageError: onUsage,
				Flags: append(connFlags(&statsOpts.Conn, "only this database, from a server", "every database"),
					&cli.StringSliceFlag{Name: "pattern", Usage: "count the keys matching this SCAN MATCH `PATTERN` (repeatable) instead of the patterns found", Destination: &statsPatterns},
					&cli.IntFlag{Name: "top", Value: statsOpts.Top, Usage: "list this many of the biggest keys", Destination: &statsOpts.Top},
					&cli.BoolFlag{Name: "json", Usage: "print one JSON object", Destination: &statsOpts.JSON},
				),
				Action: func(c *cli.Context) error {
					if err := atMostOneFile(c); err != nil {
						return err
					}
					statsOpts.Input = c.Args().First()
					statsOpts.Patterns = statsPatterns.Value()
					return stats.Run(c.Context, statsOpts, os.Stdout)
				},
			},
			{
				Name:         "verify",
				Usage:        "check that a server holds every key of a dump (or of another server) with the same type, value and expiry",
				UsageText:    "crs verify [options] -u TARGET_URL FILE\ncrs verify --source URL --target URL",
				OnUsageError: onUsage,
				Flags: append(connFlags(&verifyOpts.Target, "the target database to check every record against", "each record's own"),
					&cli.StringFlag{Name: "target", Usage: "the server to check (the same as -u)", Destination: &verifyOpts.Target.URL},
					&cli.StringFlag{Name: "source", Usage: "compare against this server's keys instead of a dump file", Destination: &verifyOpts.Source.URL},
					&cli.DurationFlag{Name: "tolerance", Value: verifyOpts.Tolerance, Usage: "how far apart two expiries may be and still match", Destination: &verifyOpts.Tolerance},
					&cli.IntFlag{Name: "show", Value: verifyOpts.Show, Usage: "list this many differences, count the rest", Destination: &verifyOpts.Show},
					&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "print only the summary", Destination: &verifyOpts.Quiet},
					progressFlag(&verifyOpts.Progress),
				),
				Action: func(c *cli.Context) error {
					if err := atMostOneFile(c); err != nil {
						return err
					}
					verifyOpts.Input = c.Args().First()
					if (verifyOpts.Input == "") == (verifyOpts.Source.URL == "") {
						return usageError{errors.New("give either a dump FILE or --source URL")}
					}
					if err := progress.CheckMode(verifyOpts.Progress); err != nil {
						return usageError{err}
					}
					return verify.Run(c.Context, verifyOpts, os.Stderr)
				},
			},
		},
	}
}

// atMostOneFile refuses a second file argument.
func atMostOneFile(c *cli.Context) error {
	if c.NArg() > 1 {
		return usageError{fmt.Errorf("one dump FILE at most (found %q after %q)", c.Args().Get(1), c.Args().First())}
	}
	return nil
}

// flagsFirst moves a command's flags before its other arguments, so that
// "crsload dump.zst -u URL" reads as "crsload -u URL dump.zst", as git,
// kubectl and redis-cli users expect: urfave/cli stops reading flags at
// the first argument that is not one. A flag's value is the next argument
// unless the flag is a boolean or written as --name=value; "--" ends the
// flags, and "-" alone is an argument (standard input).
func flagsFirst(app *cli.App, args []string) []string {
	if len(args) < 2 {
		return args
	}
	cmd := app.Command(args[1])
	if cmd == nil {
		return args
	}
	boolean := map[string]bool{"help": true}
	for _, f := range cmd.Flags {
		if _, ok := f.(*cli.BoolFlag); ok {
			for _, n := range f.Names() {
				boolean[n] = true
			}
		}
	}
	flags := []string{args[0], args[1]}
	var rest []string
	for i := 2; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			rest = append(rest, args[i+1:]...)
			i = len(args)
		case len(a) > 1 && a[0] == '-':
			flags = append(flags, a)
			name := strings.TrimLeft(a, "-")
			if !strings.Contains(name, "=") && !boolean[name] && i+1 < len(args) {
				i++
				flags = append(flags, args[i])
			}
		default:
			rest = append(rest, a)
		}
	}
	if len(rest) == 0 {
		return flags
	}
	return append(append(flags, "--"), rest...)
}

// progressFlag is --progress, for both tools.
func progressFlag(mode *string) cli.Flag {
	return &cli.StringFlag{Name: "progress", Value: *mode, Usage: "auto (a bar when stderr is a terminal), bar, plain (a line every 5s, for logs) or none", Destination: mode}
}

// connFlags are the connection flags both commands take, as redis-cli
// names them.
func connFlags(o *redisconn.Options, dbUsage, dbDefault string) []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "url", Aliases: []string{"u"}, Usage: "server `URL`: redis://[user:password@]host:port[/db], rediss://… or unix:///path.sock", Destination: &o.URL},
		&cli.StringFlag{Name: "host", Aliases: []string{"h"}, DefaultText: "127.0.0.1", Usage: "server host", Destination: &o.Host},
		&cli.IntFlag{Name: "port", Aliases: []string{"p"}, DefaultText: "6379", Usage: "server port", Destination: &o.Port},
		&cli.StringFlag{Name: "pass", Aliases: []string{"a"}, EnvVars: []string{"REDISCLI_AUTH"}, Usage: "password (better: the REDISCLI_AUTH environment variable, which stays out of the process list)", Destination: &o.Password},
		&cli.StringFlag{Name: "password-file", Usage: "read the password from the first line of `FILE`", Destination: &o.PasswordFile},
		&cli.StringFlag{Name: "user", Usage: "ACL user name", Destination: &o.User},
		&cli.BoolFlag{Name: "tls", Usage: "use TLS (rediss:// URLs do too); the server certificate is verified", Destination: &o.TLS},
		&cli.StringFlag{Name: "cacert", Usage: "trust the CA certificate(s) in this PEM `FILE`", Destination: &o.CACert},
		&cli.StringFlag{Name: "cert", Usage: "client certificate PEM `FILE`, for servers that ask for one", Destination: &o.Cert},
		&cli.StringFlag{Name: "key", Usage: "client key PEM `FILE`", Destination: &o.Key},
		&cli.StringFlag{Name: "sni", Usage: "server `NAME` to send and verify, when not the host", Destination: &o.SNI},
		&cli.BoolFlag{Name: "insecure", Usage: "do not verify the server certificate (not for production)", Destination: &o.Insecure},
		&cli.IntFlag{Name: "db", Aliases: []string{"n"}, Value: -1, DefaultText: dbDefault, Usage: dbUsage, Destination: &o.DB},
	}
}
