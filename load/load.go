// Package load replays a crs dump into a Redis (or Valkey) server: each
// record becomes the commands that rebuild its key (SET, RPUSH, SADD, HSET,
// ZADD, XADD and the stream group commands, RESTORE for DUMP payloads) and
// its expiry, sent in pipelines by a bounded set of workers. All records
// of one key go to the same worker, in order, and the expiry of a key in
// parts is set after its last part, so it never expires half-built.
//
// Run is what crsload runs: it opens the input (zstd or plain, detected by
// the zstd magic bytes), loads, and prints a summary. Load is the core,
// reading from a format.Reader.
package load

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"golang.org/x/sync/errgroup"
	"golang.org/x/sync/semaphore"

	"github.com/crs-tool/crs/format"
	"github.com/crs-tool/crs/internal/backoff"
	"github.com/crs-tool/crs/internal/dumppayload"
	"github.com/crs-tool/crs/internal/keyset"
	"github.com/crs-tool/crs/internal/progress"
	"github.com/crs-tool/crs/internal/ratelimit"
	"github.com/crs-tool/crs/internal/redisconn"
	"github.com/crs-tool/crs/records"
	"github.com/crs-tool/crs/target"
)

// TTL policies.
const (
	TTLKeep  = "keep"  // expire at the same instant as the source key
	TTLShift = "shift" // move expiries by the time between dump and load
	TTLNone  = "none"  // load every key without an expiry
)

// Options configure a load. NewOptions holds the defaults.
type Options struct {
	// Summary, if not nil, gets the summary as one JSON object at the
	// end (--summary-json), whatever is printed.
	Summary io.Writer
	Conn    redisconn.Options
	// TTL is TTLKeep, TTLShift or TTLNone. It applies to hash field
	// expiries too.
	TTL string
	// Replace deletes a key that exists in the target before writing it.
	Replace bool
	// SkipExisting leaves a key that exists in the target alone.
	SkipExisting bool
	// DropFieldExpiry loads hashes without their field expiries when the
	// target cannot set them, counting what it drops.
	DropFieldExpiry bool
	// DropStreamCounters loads streams without entries-added,
	// max-deleted-entry-id and their groups' entries-read when the target
	// cannot set them (Redis before 7.0), counting the streams: entries,
	// groups, consumers and pending entries are all loaded.
	DropStreamCounters bool
	// DropStreamIDMP loads streams without their idempotent-producer state
	// (XCFGSET settings and tracked IDs, Redis 8.6) when the target cannot
	// hold it, counting the streams.
	DropStreamIDMP bool
	// Checkpoint, when set, is the file where the load keeps, while it
	// runs, how far each writer got, removed when the load ends well;
	// with Resume, a load continues from it.
	Checkpoint string
	Resume     bool
	// Rate, when above 0, is the most commands a second the load sends,
	// all writers together (--rate), to spare a server in production.
	Rate float64
	// MaxServerCPU, when above 0, holds the writers back while the
	// target uses more than that percent of a core (--max-server-cpu).
	MaxServerCPU float64
	// ProbeKeys are keys the load will write (the selection's probe keys,
	// renamed), asked about before any is: the pre-flight of an ACL
	// user's key rules. Refused, the load is refused; but when ProbeAny
	// (the key is made up: no --match, any key may come) it is said in
	// the pre-flight's report instead.
	ProbeKeys []string
	ProbeAny  bool
	// CheckCollisions reads the whole dump before writing to find two
	// keys that are one on the target (a --rename or --db-map that merges
	// them), refusing the load if there are.
	CheckCollisions bool
	// SkipFunctions loads the keys without the dump's function libraries
	// (for a target before Redis 7.0, which has no FUNCTION LOAD),
	// counting them.
	SkipFunctions bool
	// IgnoreMemory loads even when the target's maxmemory looks too small
	// for the dump.
	IgnoreMemory bool
	// LoadBy is LoadByAuto (the default, ""): a key the target can
	// restore whole goes as one RESTORE of a payload crs encodes; or
	// LoadByCommands: every key by the commands that build it.
	LoadBy string
	// SkipUnsupported skips, and counts, keys whose DUMP payload the
	// target refuses (another RDB version, a missing module).
	SkipUnsupported bool
	// Concurrency is how many workers write at once.
	Concurrency int
	// Pipeline is the most records one worker sends in one round trip.
	Pipeline int
	// MaxInFlight bounds the bytes of records read but not yet written.
	MaxInFlight int64
	// RetryFor is how long a writer keeps reconnecting and resending
	// after its connection fails, before it gives up.
	RetryFor time.Duration
	// Databases is the target's databases setting, when known (Run
	// reads it): a record for a database past it stops the load at once.
	Databases int
	// Check reads and validates the whole dump and prints what it holds,
	// without connecting to any server.
	Check bool
	// DryRun runs the whole pre-flight against the target (every record
	// read for what it needs) and reads the whole dump as Check does,
	// then says what the load would do; it writes nothing.
	DryRun bool
	// CheckFirst reads the whole input (its trailer and checksum) before
	// writing anything, so that a cut or corrupt file writes nothing;
	// standard input is spooled to a private file to be read twice.
	CheckFirst bool
	// Quiet suppresses the summary and the progress display.
	Quiet bool
	// Progress is the progress display's mode on stderr: progress.Auto
	// (a bar on a terminal), Bar, Plain or None.
	Progress string
	// JSON prints the summary as one JSON object.
	JSON bool
	// Counter, if not nil, counts keys as they are finished (written,
	// skipped or found expired), of the total the header gives.
	Counter *progress.Counter
	// Expired, if not nil, is told each key left out because its expiry
	// had passed (its target database and name): crs sync reads it again
	// from the source, which may have kept it alive since its snapshot.
	Expired func(db int, key string)
	// SeenLimit is how many keys the load remembers in memory to catch a
	// key that is in the dump twice; past it, further keys go to a
	// temporary file, checked once the dump is read (a key found twice
	// there fails the load then, after it was written twice).
	// keyset.DefaultLimit if zero.
	SeenLimit int
	// KeysKnown, if not nil, is called once the load knows how many keys
	// it must remember in memory (up to SeenLimit), so that the caller
	// can size process-wide settings such as the memory limit.
	KeysKnown func(keys int64)
	// PartsAtOnce bounds the parts of a dump set loaded side by side
	// (0: as many as there are cores, at most 4).
	PartsAtOnce int

	inSet bool // the load is of one part of a set, checked with the set
}

// NewOptions returns the default options.
func NewOptions() Options {
	o := Options{
		Conn:        redisconn.NewOptions(),
		TTL:         TTLKeep,
		Concurrency: 8,
		Pipeline:    256,
		MaxInFlight: 1 << 20,
		RetryFor:    30 * time.Second,
		Progress:    progress.Auto,
	}
	o.Conn.Retries = -1 // a retried RPUSH would append twice
	return o
}

// The ways --load-by writes a key.
const (
	LoadByAuto     = "auto"     // RESTORE of a payload crs encodes, where the target takes it
	LoadByCommands = "commands" // the commands that build the value
)

// Stats counts what a load did.
type Stats struct {
	Records          int64            `json:"records"`                        // records read
	Keys             int64            `json:"keys"`                           // keys written
	ByType           map[string]int64 `json:"keys_by_type"`                   // keys written per type
	Expired          int64            `json:"skipped_expired"`                // keys skipped because their expiry had passed
	Existing         int64            `json:"skipped_existing"`               // keys skipped because they existed (--skip-existing)
	Replaced         int64            `json:"replaced"`                       // keys that existed and were replaced (--replace)
	Unsupported      int64            `json:"skipped_unsupported"`            // keys skipped because the target refused their DUMP payload
	Restored         int64            `json:"keys_restored"`                  // keys written as one RESTORE (of a payload crs encoded, or one an RDB file or DUMP held)
	DroppedField     int64            `json:"dropped_field_expiries"`         // field expiries dropped (--drop-field-expiry)
	DroppedCount     int64            `json:"dropped_stream_counters"`        // streams loaded without their counters (--drop-stream-counters)
	DroppedIDMP      int64            `json:"dropped_stream_idmp"`            // streams loaded without their idempotent-producer state (--drop-stream-idmp)
	Resumed          int64            `json:"resumed_skipped,omitempty"`      // records a resumed load skipped: written before it stopped
	Retries          int64            `json:"retries"`                        // batches sent again after a lost connection
	HeldMs           int64            `json:"held_back_ms,omitempty"`         // time held back by --max-server-cpu
	PeakCPU          float64          `json:"server_cpu_peak_pct,omitempty"`  // the target's highest CPU use measured, under --max-server-cpu
	Functions        int64            `json:"function_libraries"`             // function libraries loaded
	SkippedFunctions int64            `json:"skipped_function_libraries"`     // function libraries left out (--skip-functions)
	Redirects        int64            `json:"redirects"`                      // batches sent again to the node a cluster redirected them to
	Bytes            int64            `json:"input_bytes"`                    // bytes of input read (compressed, as given)
	Deferred         int64            `json:"keys_checked_on_disk,omitempty"` // keys past the memory limit, checked for repeats on disk at the end
	DiskBytes        int64            `json:"key_files_bytes,omitempty"`      // bytes those keys took in temporary files
	VectorsApprox    int64            `json:"vectors_approximate,omitempty"`  // vector set elements loaded as dumped: VEMB returns them within a few float ulps, not exactly
	// Applied counts the commands applied after the records (an AOF's),
	// Commands them by name; ChangesNote says what was left out of them.
	Applied     int64            `json:"commands_applied,omitempty"`
	Commands    map[string]int64 `json:"commands,omitempty"`
	ChangesNote string           `json:"commands_note,omitempty"`
	// Unwrapped counts the transactions (MULTI … EXEC) applied to a
	// cluster command by command, as a cluster runs none across masters.
	Unwrapped int64 `json:"transactions_unwrapped,omitempty"`
	// Parts counts the parts of a dump set loaded side by side,
	// PartsAtOnce at a time (0 for a dump read as one stream).
	Parts       int `json:"set_parts,omitempty"`
	PartsAtOnce int `json:"set_parts_at_once,omitempty"`
	// Source is what the source counted (an RDB file's expired keys and
	// fields, what no command carries), for the summary.
	Source  records.Stats `json:"source"`
	Elapsed time.Duration `json:"-"`
}

func (s *Stats) add(o *Stats) {
	s.addWritten(&target.WriteStats{Keys: o.Keys, ByType: o.ByType, Existing: o.Existing, Replaced: o.Replaced,
		Unsupported: o.Unsupported, Restored: o.Restored, DroppedField: o.DroppedField, DroppedCount: o.DroppedCount,
		DroppedIDMP: o.DroppedIDMP, Retries: o.Retries, Redirects: o.Redirects, VectorsApprox: o.VectorsApprox})
	s.Resumed += o.Resumed
}

// addWritten adds what a writer counted.
func (s *Stats) addWritten(o *target.WriteStats) {
	s.Keys += o.Keys
	s.Existing += o.Existing
	s.Replaced += o.Replaced
	s.Unsupported += o.Unsupported
	s.Restored += o.Restored
	s.DroppedField += o.DroppedField
	s.DroppedCount += o.DroppedCount
	s.DroppedIDMP += o.DroppedIDMP
	s.Retries += o.Retries
	s.Redirects += o.Redirects
	s.VectorsApprox += o.VectorsApprox
	for t, n := range o.ByType {
		s.ByType[t] += n
	}
}

// ErrOptions is wrapped by errors about option values.
var ErrOptions = errors.New("bad option")

// ErrTargetNotEmpty is returned when a target database already holds keys
// and neither --replace nor --skip-existing was given.
var ErrTargetNotEmpty = errors.New("the target database is not empty")

// ErrDuplicateKey is returned when the input holds the same key twice for
// one target database (as when --db merges two source databases).
var ErrDuplicateKey = target.ErrDuplicateKey

// ErrSlotMoved is wrapped when a rename would take keys with a hash tag
// out of their tag's slot on a cluster target.
var ErrSlotMoved = errors.New("a rename moves keys out of their hash tag's slot")

// ErrTargetLacks is returned when the dump holds data the target has no
// command to write, such as hash field expiries before Redis 7.4.
var ErrTargetLacks = target.ErrTargetLacks

// item is one record on its way to a writer.
type item = target.Item

// serverInfo is what the loader knows of a server it writes to.
type serverInfo struct {
	redisconn.Server
	redisconn.Caps
	restore target.RestoreInfo
}

// Load reads records from fr and writes them to the server. It returns
// what it did even when it fails part way.
func Load(ctx context.Context, fr records.Reader, opts Options) (st Stats, err error) {
	st = Stats{ByType: make(map[string]int64)}
	start := time.Now()
	defer func() { st.Elapsed = time.Since(start) }()
	if err := checkOptions(opts); err != nil {
		return st, err
	}
	hdr, err := fr.Header()
	if err != nil {
		return st, err
	}
	targetDB, err := opts.Conn.SelectedDB()
	if err != nil {
		return st, err
	}
	var keys int64
	for _, d := range hdr.Databases {
		keys += d.Keys
	}
	seen := keyset.NewSeen(opts.SeenLimit, keys)
	defer seen.Close()
	if opts.KeysKnown != nil && !opts.inSet {
		opts.KeysKnown(min(keys, int64(keyset.Limit(opts.SeenLimit))))
	}
	if !opts.inSet {
		opts.Counter.SetTotal(keys)
	}
	tgt, err := target.Open(ctx, opts.Conn)
	if err != nil {
		return st, err
	}
	defer tgt.Close()
	bases, infos, err := nodeClients(ctx, tgt)
	if err != nil {
		return st, err
	}
	defer closeAll(bases)
	clock, err := serverClock(ctx, bases[0])
	if err != nil {
		return st, err
	}
	f := feeder{hdr: hdr, opts: opts, targetDB: targetDB, tgt: tgt, bases: bases, clock: clock, seen: seen}
	if opts.TTL == TTLShift && hdr.CreatedMs > 0 {
		f.shift = clock() - hdr.CreatedMs
	}
	// Refuse to mix into databases that already hold keys (a resumed load
	// continues into its own; a part of a set was checked with the set).
	if !opts.Replace && !opts.SkipExisting && !opts.Resume && !opts.inSet {
		if f.checked, err = emptyCheck(ctx, bases, hdr, targetDB); err != nil {
			return st, err
		}
	}

	g, gctx := errgroup.WithContext(ctx)
	f.inFlight = semaphore.NewWeighted(max(opts.MaxInFlight, 1))
	limiter := ratelimit.New(opts.Rate)
	busy, err := backoff.Start(ctx, tgt.Nodes()[0], opts.MaxServerCPU)
	if err != nil {
		return st, err
	}
	if busy != nil {
		defer func() { st.HeldMs, st.PeakCPU = busy.Held().Milliseconds(), busy.Peak() }()
		defer busy.Close()
		limiter = ratelimit.WithGate(limiter, busy)
	}
	waitReplicas, err := sentinelReplicas(ctx, opts, bases)
	if err != nil {
		return st, err
	}
	nodes := tgt.Nodes()
	f.perNode = max(opts.Concurrency/len(nodes), 2)
	f.workers = make([]chan item, f.perNode*len(nodes))
	results := make([]target.WriteStats, len(f.workers))
	writerOpts := target.WriterOptions{
		Pipeline: opts.Pipeline, RetryFor: opts.RetryFor, Databases: opts.Databases,
		Replace: opts.Replace, SkipExisting: opts.SkipExisting, SkipUnsupported: opts.SkipUnsupported,
		DropFieldExpiry: opts.DropFieldExpiry, DropStreamCounters: opts.DropStreamCounters, DropStreamIDMP: opts.DropStreamIDMP,
		Limiter: limiter, InFlight: f.inFlight, WaitReplicas: waitReplicas, Written: opts.Counter.Add,
	}
	lines := make([]*atomic.Int64, len(f.workers))
	if opts.Resume {
		if f.resume, err = readCheckpoint(opts.Checkpoint, len(f.workers)); err != nil {
			return st, err
		}
	}
	for i := range f.workers {
		lines[i] = &atomic.Int64{}
		if f.resume != nil {
			lines[i].Store(f.resume[i])
		}
		f.workers[i] = make(chan item, max(opts.Pipeline, 1))
		n := i / f.perNode
		wo := writerOpts
		if opts.LoadBy != LoadByCommands && infos[n].restore.RDB > 0 {
			wo.Encoder = &dumppayload.Encoder{Version: infos[n].restore.RDB, Limits: infos[n].restore.Limits}
		}
		w := target.NewWriter(tgt, nodes[n], target.Server{Server: infos[n].Server, Caps: infos[n].Caps}, wo, lines[i], &results[i])
		ch := f.workers[i]
		g.Go(func() error { return w.Run(ctx, gctx, ch) })
	}
	g.Go(func() error {
		defer func() {
			for _, ch := range f.workers {
				close(ch)
			}
		}()
		return f.feed(gctx, fr, &st)
	})
	var stopCheckpoint chan struct{}
	var checkpointDone chan error
	if opts.Checkpoint != "" {
		stopCheckpoint, checkpointDone = make(chan struct{}), make(chan error, 1)
		go keepCheckpoint(opts.Checkpoint, lines, stopCheckpoint, checkpointDone)
	}
	err = g.Wait()
	if stopCheckpoint != nil {
		close(stopCheckpoint)
		cerr := <-checkpointDone
		if err == nil || cerr != nil {
			os.Remove(opts.Checkpoint) // done, or no checkpoint to trust
		}
	}
	for i := range results {
		st.addWritten(&results[i])
	}
	st.Deferred, st.DiskBytes = seen.Deferred()
	return st, err
}

func checkOptions(opts Options) error {
	if opts.Replace && opts.SkipExisting {
		return fmt.Errorf("%w: --replace and --skip-existing cannot be used together", ErrOptions)
	}
	switch opts.TTL {
	case TTLKeep, TTLShift, TTLNone:
	default:
		return fmt.Errorf("%w: --ttl must be keep, shift or none, not %q", ErrOptions, opts.TTL)
	}
	if err := progress.CheckMode(opts.Progress); err != nil {
		return fmt.Errorf("%w: %v", ErrOptions, err)
	}
	switch opts.LoadBy {
	case "", LoadByAuto, LoadByCommands:
	default:
		return fmt.Errorf("%w: --load-by must be auto or commands, not %q", ErrOptions, opts.LoadBy)
	}
	return nil
}

func applyTTL(policy string, at, shift int64) int64 {
	switch {
	case at <= 0 || policy == TTLNone:
		return 0
	case policy == TTLShift:
		return at + shift
	}
	return at
}

func probeTarget(ctx context.Context, c *redis.Client, srv redisconn.Server) (serverInfo, error) {
	caps, err := redisconn.ProbeCaps(ctx, c)
	if err != nil {
		return serverInfo{}, err
	}
	return serverInfo{Server: srv, Caps: caps, restore: target.ProbeRestore(ctx, c, srv)}, nil
}

func sendItem(ctx context.Context, ch chan<- item, it item) bool {
	select {
	case ch <- it:
		return true
	case <-ctx.Done():
		return false
	}
}

// mustBeEmpty returns the target databases that must hold no keys before
// a load: the one given with --db, else those the dump's header lists, or
// (all) every database when the header does not say.
func mustBeEmpty(hdr format.Header, targetDB int) (dbs []int, all bool) {
	switch {
	case targetDB >= 0:
		return []int{targetDB}, false
	case hdr.Databases == nil:
		return nil, true
	}
	for _, d := range hdr.Databases {
		dbs = append(dbs, d.DB)
	}
	return dbs, false
}

// emptyCheck fails when a database the load of hdr writes to already
// holds keys, and returns the databases it found empty, or nil where it
// checked them all.
func emptyCheck(ctx context.Context, bases []*redis.Client, hdr format.Header, targetDB int) (map[int]bool, error) {
	dbs, all := mustBeEmpty(hdr, targetDB)
	if err := checkEmpty(ctx, bases, dbs, all); err != nil {
		return nil, err
	}
	if all {
		return nil, nil
	}
	checked := make(map[int]bool)
	for _, db := range dbs {
		checked[db] = true
	}
	return checked, nil
}

// checkEmpty fails when any of dbs (or, with all, any database at all)
// holds keys on any of the nodes, naming each one.
func checkEmpty(ctx context.Context, nodes []*redis.Client, dbs []int, all bool) error {
	ks := make(map[int]int64)
	for _, c := range nodes {
		n, err := redisconn.Keyspace(ctx, c)
		if err != nil {
			return err
		}
		for db, k := range n {
			ks[db] += k
		}
	}
	if busy := busyDatabases(ks, dbs, all); len(busy) > 0 {
		return notEmpty(busy)
	}
	return nil
}

// serverClock returns a function that tells the server's time in unix ms,
// from one TIME call and the local monotonic clock since.
func serverClock(ctx context.Context, c *redis.Client) (func() int64, error) {
	t, err := c.Time(ctx).Result()
	if err != nil {
		return nil, fmt.Errorf("time: %w", err)
	}
	local := time.Now()
	base := t.UnixMilli()
	return func() int64 { return base + time.Since(local).Milliseconds() }, nil
}

// readOnly returns o for a client that only reads (INFO, TIME, probes),
// whose commands may be retried after a lost connection, unlike writes.
func readOnly(o redisconn.Options) redisconn.Options {
	o.Retries = 3
	return o
}

// KeyError is a command the target refused while writing one key, or a
// record the target cannot hold.
type KeyError = target.KeyError

// sentinelReplicas is how many replicas each batch must reach before it
// counts: 1 on a Sentinel-managed master that has a replica, else 0.
func sentinelReplicas(ctx context.Context, opts Options, bases []*redis.Client) (int, error) {
	if opts.Conn.SentinelMaster == "" || len(bases) == 0 {
		return 0, nil
	}
	info, err := bases[0].Info(ctx, "replication").Result()
	if err != nil {
		return 0, fmt.Errorf("info replication: %w", err)
	}
	if n, _ := strconv.Atoi(redisconn.InfoFields(info)["connected_slaves"]); n > 0 {
		return 1, nil
	}
	return 0, nil
}
