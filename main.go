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
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strings"
	"syscall"

	"github.com/redis/go-redis/v9"
	"github.com/urfave/cli/v2"
	"golang.org/x/term"

	"github.com/crs-tool/crs/dump"
	"github.com/crs-tool/crs/format"
	"github.com/crs-tool/crs/internal/keyslot"
	"github.com/crs-tool/crs/internal/logline"
	"github.com/crs-tool/crs/internal/memlimit"
	"github.com/crs-tool/crs/internal/redisconn"
	"github.com/crs-tool/crs/internal/store"
	_ "github.com/crs-tool/crs/internal/store/clouds" // s3://, gs://, azblob://
	"github.com/crs-tool/crs/livesync"
	"github.com/crs-tool/crs/load"
	"github.com/crs-tool/crs/rdb"
	"github.com/crs-tool/crs/records"
	"github.com/crs-tool/crs/source/aof"
	"github.com/crs-tool/crs/source/pick"
	"github.com/crs-tool/crs/source/repl"
	"github.com/crs-tool/crs/source/snapshot"
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
	// crs --version, crsdump --version, crs load --version.
	if n := len(args); n >= 2 && n <= 3 && args[n-1] == "--version" {
		fmt.Println(version(name))
		os.Exit(0)
	}
	stopProfile := cpuProfile(name)
	app := newApp()
	args, err := helpAndCommand(app, name, args)
	if err == nil {
		err = app.RunContext(ctx, flagsFirst(app, args))
	}
	stopProfile()
	switch {
	case err != nil && ctx.Err() != nil:
		logError(fmt.Sprintf("%s: interrupted", name))
	case err != nil:
		logError(fmt.Sprintf("%s: %v%s", name, err, redisconn.ACLHint(err)))
	}
	if lw, ok := stderr.(*logline.Writer); ok {
		lw.Flush()
	}
	os.Exit(exitCode(ctx, err))
}

// stderr is where the commands write their progress, warnings and
// summaries: standard error, or a log of it (setLog).
var (
	stderr    io.Writer = os.Stderr
	logFormat string
)

// setLog makes stderr a log as --log-format says: text or json; by
// default text where standard error is not a terminal (a file, a pipe, a
// container's log), where a person does not watch a bar, and where lines
// are asked for (plain progress, --json: lines, not a bar).
func setLog(cmd string, lines bool) error {
	tool := "crs " + cmd
	if n := filepath.Base(os.Args[0]); n == "crsdump" || n == "crsload" {
		tool = n
	}
	switch logFormat {
	case "":
		if term.IsTerminal(int(os.Stderr.Fd())) && !lines {
			return nil
		}
		stderr = logline.New(os.Stderr, logline.Text, tool)
	case logline.Text, logline.JSON:
		stderr = logline.New(os.Stderr, logFormat, tool)
	default:
		return usageError{fmt.Errorf("--log-format must be text or json, not %q", logFormat)}
	}
	return nil
}

// logError writes the line that ends a failed run, as an error of the log.
func logError(line string) {
	if lw, ok := stderr.(*logline.Writer); ok {
		lw.Log(slog.LevelError, line)
		return
	}
	fmt.Fprintln(stderr, line)
}

// helpAndCommand reads what comes before a command: crs help [COMMAND]
// and crs -h are --help; a word that names no command is a usage error
// naming the commands there are.
func helpAndCommand(app *cli.App, name string, args []string) ([]string, error) {
	if len(args) < 2 {
		return args, nil
	}
	switch first := args[1]; {
	case first == "-h":
		return []string{args[0], "--help"}, nil
	case first == "help" && len(args) > 2 && app.Command(args[2]) != nil:
		return []string{args[0], args[2], "--help"}, nil
	case first == "help":
		return []string{args[0], "--help"}, nil
	case !strings.HasPrefix(first, "-") && app.Command(first) == nil:
		var names []string
		for _, c := range app.Commands {
			names = append(names, c.Name)
		}
		return nil, usageError{fmt.Errorf("no command %q: the commands are %s (%s --help)", first, strings.Join(names, ", "), name)}
	}
	return args, nil
}

// cpuProfile writes a CPU profile of the run to the file CRS_CPUPROFILE
// names, if any (for the benchmark's profiles: go tool pprof FILE); it
// returns what stops it.
func cpuProfile(name string) func() {
	path := os.Getenv("CRS_CPUPROFILE")
	if path == "" {
		return func() {}
	}
	f, err := os.Create(path)
	if err == nil {
		err = pprof.StartCPUProfile(f)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: CRS_CPUPROFILE: %v\n", name, err)
		return func() {}
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}
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

// exitCodes says what each code exitCode returns means, for the manual
// pages; the README's table says the same at length.
var exitCodes = []struct {
	code    int
	meaning string
}{
	{0, "success"},
	{1, "a failure not listed below (a command the server refused, an I/O error)"},
	{2, "bad usage: an unknown flag, a bad option value, a URL that does not parse"},
	{3, "bad input: not a dump, corrupt zstd, a malformed, truncated or altered dump (the line is named), a corrupt RDB file (its offset is named), a malformed AOF, a dump set with a part missing or cut short (the part is named)"},
	{4, "refused: the pre-flight found problems (the target holds keys, lacks a command or a database the data needs, has too little memory), or crs sync cannot go on (no backlog for its position, another sync writes to the target, a demoted source, no cutover within --cutover-timeout)"},
	{5, "cannot connect or authenticate; the server refuses replication"},
	{6, "differences found: crs verify, crsload --verify, or every check of a crs sync cutover"},
	{7, "crs sync lost its replication link; the same command continues where the source's backlog still holds its position"},
	{130, "interrupted (Ctrl-C, SIGTERM)"},
}

func exitCode(ctx context.Context, err error) int {
	var (
		rdbErr    *rdb.Error
		aofErr    *aof.Error
		preflight *load.PreflightError
		parseErr  *format.ParseError
		connErr   *redisconn.Error
		usage     usageError
	)
	switch {
	case err == nil:
		return 0
	case ctx.Err() != nil || errors.Is(err, context.Canceled):
		return 130
	case errors.As(err, &usage), errors.Is(err, dump.ErrOptions), errors.Is(err, load.ErrOptions), errors.Is(err, redisconn.ErrBadURL):
		return 2
	case errors.Is(err, repl.ErrLinkLost):
		return 7
	case errors.As(err, &parseErr), errors.As(err, &rdbErr), errors.As(err, &aofErr), errors.Is(err, load.ErrNoInput), errors.Is(err, format.ErrSet):
		return 3
	case errors.Is(err, livesync.ErrDifferent):
		return 6
	case errors.Is(err, livesync.ErrStopped), errors.Is(err, livesync.ErrBusy), errors.Is(err, repl.ErrNotMaster), errors.Is(err, repl.ErrFailover), errors.Is(err, repl.ErrNoBacklog), errors.Is(err, repl.ErrNotifications), errors.Is(err, livesync.ErrLostNotifications):
		return 4
	case errors.Is(err, load.ErrTargetNotEmpty), errors.Is(err, load.ErrTargetLacks), errors.Is(err, load.ErrTargetMemory), errors.Is(err, dump.ErrTerminal), errors.As(err, &preflight):
		return 4
	case errors.As(err, &connErr), errors.Is(err, snapshot.ErrRefused):
		return 5
	case errors.Is(err, verify.ErrDifferent):
		return 6
	}
	return 1
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
func progressFlag(mode *string, every string) cli.Flag {
	return &cli.StringFlag{Name: "progress", Value: *mode, Usage: "auto (a bar when stderr is a terminal), bar, plain (a line every " + every + ", for logs) or none", Destination: mode}
}

// connFlags are the connection flags both commands take, as redis-cli
// names them.
func connFlags(o *redisconn.Options, dbUsage, dbDefault string) []cli.Flag {
	return append([]cli.Flag{
		&cli.StringFlag{Name: "url", Aliases: []string{"u"}, Usage: "server `URL`: redis://[user:password@]host:port[/db], rediss://… or unix:///path.sock", Destination: &o.URL},
		&cli.StringFlag{Name: "host", Aliases: []string{"h"}, DefaultText: "127.0.0.1", Usage: "server host", Destination: &o.Host},
		&cli.IntFlag{Name: "port", Aliases: []string{"p"}, DefaultText: "6379", Usage: "server port", Destination: &o.Port},
	}, append(authFlags(o, "", "REDISCLI_AUTH", "the "),
		&cli.IntFlag{Name: "db", Aliases: []string{"n"}, Value: -1, DefaultText: dbDefault, Usage: dbUsage, Destination: &o.DB},
		&cli.DurationFlag{Name: "timeout", DefaultText: "60s", Usage: "how long an answer the server owes may take before the connection counts as lost (a stopped or partitioned server is found after it)", Destination: &o.Timeout},
		&cli.StringFlag{Name: "sentinel-master", Usage: "the server is the master Sentinel monitors as `NAME`: -u (or -h -p) and --sentinel name sentinels, asked where it is now, and again after a failover", Destination: &o.SentinelMaster},
		&cli.StringFlag{Name: "sentinel", Usage: "sentinels to ask, `HOST:PORT[,HOST:PORT…]` (default: the -u or -h -p address)", Destination: &o.SentinelAddrs},
		&cli.StringFlag{Name: "sentinel-user", Usage: "ACL user name on the sentinels", Destination: &o.SentinelUser},
		&cli.StringFlag{Name: "sentinel-pass", EnvVars: []string{"CRS_SENTINEL_AUTH"}, Usage: "password on the sentinels (better: the CRS_SENTINEL_AUTH environment variable)", Destination: &o.SentinelPassword},
	)...)
}

// authFlags are a server's user, password and TLS flags, their names
// begun with prefix ("source-" for --source's, which never takes the
// target's: so none of them need go in the URL, which ps shows), the
// password also from the environment variable env; whose begins their
// help ("the source's ").
func authFlags(o *redisconn.Options, prefix, env, whose string) []cli.Flag {
	pass := &cli.StringFlag{Name: prefix + "pass", EnvVars: []string{env}, Usage: whose + "password (better: the " + env + " environment variable, which stays out of the process list)", Destination: &o.Password}
	if prefix == "" {
		pass.Aliases = []string{"a"}
	}
	return []cli.Flag{
		pass,
		&cli.StringFlag{Name: prefix + "password-file", Usage: "read " + whose + "password from the first line of `FILE`", Destination: &o.PasswordFile},
		&cli.StringFlag{Name: prefix + "user", Usage: whose + "ACL user name", Destination: &o.User},
		&cli.BoolFlag{Name: prefix + "tls", Usage: "use TLS (rediss:// URLs do too); the server certificate is verified", Destination: &o.TLS},
		&cli.StringFlag{Name: prefix + "cacert", Usage: "trust the CA certificate(s) in this PEM `FILE`", Destination: &o.CACert},
		&cli.StringFlag{Name: prefix + "cert", Usage: whose + "client certificate PEM `FILE`, for servers that ask for one", Destination: &o.Cert},
		&cli.StringFlag{Name: prefix + "key", Usage: whose + "client key PEM `FILE`", Destination: &o.Key},
		&cli.StringFlag{Name: prefix + "sni", Usage: "server `NAME` to send and verify, when not the host", Destination: &o.SNI},
		&cli.BoolFlag{Name: prefix + "insecure", Usage: "do not verify the server certificate (not for production)", Destination: &o.Insecure},
	}
}

// sourceConnFlags are --source's user, password and TLS flags
// (--source-user, CRS_SOURCE_AUTH, --source-tls, …).
func sourceConnFlags(o *redisconn.Options) []cli.Flag {
	return append(authFlags(o, "source-", "CRS_SOURCE_AUTH", "the source's "),
		&cli.StringFlag{Name: "source-sentinel-master", Usage: "the source is the master Sentinel monitors as `NAME`: --source names a sentinel (or --source-sentinel several), asked where it is; crs sync stops (exit 4) when they name another master", Destination: &o.SentinelMaster},
		&cli.StringFlag{Name: "source-sentinel", Usage: "the source's sentinels, `HOST:PORT[,HOST:PORT…]` (default: --source's address)", Destination: &o.SentinelAddrs},
	)
}

// version is the program's name, its module version and the VCS revision
// it was built from, from the build information Go records.
func version(name string) string {
	v, rev, dirty, when := "(devel)", "unknown revision", "", ""
	if bi, ok := debug.ReadBuildInfo(); ok {
		if bi.Main.Version != "" {
			v = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.time":
				when = ", " + s.Value
			case "vcs.modified":
				if s.Value == "true" {
					dirty = " with local changes"
				}
			}
		}
	}
	return fmt.Sprintf("%s %s (%s%s%s, %s)", name, v, rev, dirty, when, runtime.Version())
}

// selectFlags are the flags that choose keys, the same on every command;
// apply copies them into a selection once the command line is parsed.
type selectFlags struct {
	match, exclude, types, renames cli.StringSlice
	dbs                            cli.IntSlice
	dbMap, prefix, part, partsFile string
	maxKeyBytes                    int64
}

func (s *selectFlags) flags() []cli.Flag {
	return []cli.Flag{
		&cli.StringSliceFlag{Name: "match", Usage: "only keys matching this glob `PATTERN` (SCAN MATCH syntax; repeatable: any of them)", Destination: &s.match},
		&cli.StringSliceFlag{Name: "exclude", Usage: "leave out keys matching this glob `PATTERN` (repeatable)", Destination: &s.exclude},
		&cli.StringSliceFlag{Name: "type", Usage: "only keys of this `TYPE` (string, list, set, zset, hash, stream, vectorset…; repeatable)", Destination: &s.types},
		&cli.IntSliceFlag{Name: "from-db", Usage: "only keys of this source database `N` (repeatable)", Destination: &s.dbs},
		&cli.StringFlag{Name: "parts-file", Usage: "of a dump set: only the parts `FILE` lists, a line each as crs stats --list prints them (I/N first; lines starting with ; and lines removed leave parts out), as pg_restore -L takes a list", Destination: &s.partsFile},
		&cli.StringFlag{Name: "part", Usage: "only share `I/N` of the keys: those whose cluster hash slots fall in the I-th of N even slot ranges (function libraries in part 0), so that N processes share the work; auto/N takes I from JOB_COMPLETION_INDEX (a Kubernetes Indexed Job's pod index)", Destination: &s.part},
		&cli.Int64Flag{Name: "max-key-bytes", Usage: "leave out (naming and counting them) keys whose values take more than `N` bytes; a key read in parts is held until its size is known", Destination: &s.maxKeyBytes},
		&cli.StringSliceFlag{Name: "rename", Usage: "rename keys: `FROM=TO`, a name or a glob with one '*' kept ('trial_*=free_*'); repeatable, the first match wins", Destination: &s.renames},
		&cli.StringFlag{Name: "key-prefix", Usage: "put `PREFIX` before every key (after --rename)", Destination: &s.prefix},
		&cli.StringFlag{Name: "db-map", Usage: "move source databases to others: `MAP` such as 1=0,2=3", Destination: &s.dbMap},
	}
}

// reshape returns the reshape the flags make.
func (s *selectFlags) reshape() (records.Reshape, error) {
	r := records.Reshape{Prefix: s.prefix}
	for _, v := range s.renames.Value() {
		rn, err := records.ParseRename(v)
		if err != nil {
			return r, usageError{err}
		}
		r.Renames = append(r.Renames, rn)
	}
	if s.dbMap != "" {
		m, err := records.ParseDBMap(s.dbMap)
		if err != nil {
			return r, usageError{err}
		}
		r.DBMap = m
	}
	return r, nil
}

// apply returns the selection the flags make, checked.
func (s *selectFlags) apply() (records.Selection, error) {
	sel := records.Selection{Match: s.match.Value(), Exclude: s.exclude.Value(), Types: s.types.Value(), DBs: s.dbs.Value(), MaxKeyBytes: s.maxKeyBytes}
	if err := sel.Check(); err != nil {
		return sel, usageError{err}
	}
	if s.part != "" {
		p, err := keyslot.ParsePart(s.part, os.Getenv)
		if err != nil {
			return sel, usageError{err}
		}
		sel.Part = p
	}
	return sel, nil
}

// into sets spec's selection and reshape from the flags.
func (s *selectFlags) into(spec *pick.Spec) (err error) {
	if spec.File, err = store.Local(spec.File); err != nil {
		return usageError{err}
	}
	if spec.Select, err = s.apply(); err != nil {
		return err
	}
	if s.partsFile != "" {
		if spec.SetParts, err = format.ReadPartsList(s.partsFile); err != nil {
			return usageError{err}
		}
	}
	spec.Reshape, err = s.reshape()
	return err
}
