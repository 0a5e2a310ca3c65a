// Package livesync is crs sync: it keeps a target in step with a source
// that is still taking writes, then cuts over with a write pause.
//
// Phase 1 loads the source's snapshot with package load (its pre-flight,
// conflict policy and version checks). Phase 2 applies the command stream
// that follows the snapshot on the same replication link, in order, in
// transactions on the target: each batch of commands goes inside one
// MULTI/EXEC together with the write of the link's position (replication
// ID, offset and selected database) to one hash on the target,
// CheckpointKey, so the position the target records is always that of
// exactly the commands it holds. A sync stopped or killed and run again
// continues from there (PSYNC with that position) with no command applied
// twice and none lost, while the source's backlog holds it. The cutover
// pauses the source's writes, applies what remains up to the offset the
// source had at the pause, compares the target with the source (key
// counts per database and every key written during the sync) and
// removes the checkpoint.
//
// livesync takes the link and the source through the small interfaces
// Link and Source; package repl provides both, and main wires them.
package livesync

import (
	"context"
	"errors"
	"io"
	"time"

	"github.com/crs-tool/crs/internal/progress"
	"github.com/crs-tool/crs/internal/redisconn"
	"github.com/crs-tool/crs/load"
	"github.com/crs-tool/crs/records"
)

// Link is the replication link: the commands that follow the snapshot.
type Link interface {
	// Next returns the next command, waiting for it; End is its
	// replication offset (that of its last byte).
	Next() (*records.Command, error)
	// Pending reports whether more has arrived that Next has not
	// returned.
	Pending() bool
	// Received is the offset of the last byte that has arrived.
	Received() int64
	// Ack tells the source the offset applied (at once when now).
	Ack(offset int64, now bool)
	// Behind is how long ago the oldest byte not yet applied arrived.
	Behind() time.Duration
	// Name says where the link goes.
	Name() string
	// Close ends the link; a Next waiting returns.
	Close() error
}

// Source is the server the link comes from, asked on a connection of its
// own.
type Source interface {
	Describe() string
	// Owner names the master of key ("" for one server), as
	// PauseWrites and DumpsAt name it.
	Owner(key string) string
	// Steady fails once a cluster source's slots have moved (a
	// resharding or failover, which a sync cannot follow).
	Steady(ctx context.Context) error
	// Offsets returns the replication offset of the server ("") or of
	// each master of a cluster (by address).
	Offsets(ctx context.Context) (map[string]int64, error)
	// Demoted fails when the server (a master of a cluster) answers and
	// is no longer a master: a failover demoted it.
	Demoted(ctx context.Context) error
	// PauseWrites pauses the writes of the server or of every master
	// for d at most, and returns each one's offset at the pause.
	PauseWrites(ctx context.Context, d time.Duration) (map[string]int64, error)
	Unpause(ctx context.Context) error
	// RefuseWrites makes the server (every master) refuse every write
	// from now on (after a cutover), and returns how to undo it.
	RefuseWrites(ctx context.Context) (string, error)
	// KeyCounts returns INFO keyspace's counts of each database (summed
	// over a cluster's masters).
	KeyCounts(ctx context.Context) (map[int]redisconn.DBCount, error)
	// CountLater counts the keys of database db whose expiry is later
	// than after (unix ms).
	CountLater(ctx context.Context, db int, after int64) (int64, error)
	// Dumps reads keys of database db with DUMP and PTTL.
	Dumps(ctx context.Context, db int, keys []string) ([]records.Dumped, error)
	// DumpsAt reads keys as Dumps does, on the server ("") or the
	// cluster master named, each in a transaction with its replication
	// offset, which it returns per key.
	DumpsAt(ctx context.Context, name string, db int, keys []string) ([]records.Dumped, []int64, error)
}

// Position is where the target stands in the source's replication
// history: the commands up to Offset are applied, and DB is the database
// the stream had selected there.
type Position struct {
	ReplID string
	Offset int64
	DB     int
}

// Options configure a sync.
type Options struct {
	// Summary, if not nil, gets the summary as one JSON object at the
	// end (--summary-json), whatever is printed.
	Summary io.Writer
	// Load is what the snapshot is loaded with, and names the target.
	Load load.Options
	// Select chooses what is synced: its DBs (none: every database), and
	// keys by Match and Exclude (its Types and MaxKeyBytes are not for a
	// command stream). Reshape renames keys (Renames, Prefix) and maps
	// databases (DBMap; the -n of Load.Conn, when set, takes every
	// database into one).
	Select  records.Selection
	Reshape records.Reshape
	// Cutover cuts over once the target is in step; CutoverNow, when a
	// value arrives, cuts over (a signal to a running sync).
	Cutover    bool
	CutoverNow <-chan struct{}
	// Pause is the longest the source's writes are paused for.
	Pause time.Duration
	// CutoverAttempts is how many cutovers whose check fails are tried
	// (the sync goes on streaming between them) before the sync gives
	// up; CutoverTimeout how long a cutover asked for may wait for the
	// target to get in step (0: for ever).
	CutoverAttempts int
	CutoverTimeout  time.Duration
	// Rehearse, when a value arrives, runs a cutover's pause and check
	// and then ends the pause and goes on syncing (a signal to a running
	// sync): what a cutover would find, and how long it would hold the
	// writes.
	Rehearse <-chan struct{}
	// SkipUnsupported skips, and counts, commands the target lacks
	// instead of stopping.
	SkipUnsupported bool
	// Mode is how Start follows the source: ModeAuto, ModeReplication
	// or ModeNotify. Load.Replace empties the target first.
	Mode string
	// VerifyAll, when set, checks every key at the cutover (crs verify
	// of the whole source, while its writes are paused) beside the keys
	// written during the sync.
	VerifyAll func(ctx context.Context) error
	// PartElems and PartBytes bound one record of a key read again or
	// checked (a key with more is loaded in parts), as crsdump's do.
	PartElems, PartBytes int
	// Progress is the display's mode (progress.Auto, Bar, Plain, None);
	// JSON prints progress and summary as JSON lines.
	Progress string
	JSON     bool
	Quiet    bool
	// Board, if not nil, is kept up to date each tick, for metrics and
	// a status page.
	Board *Board
	// Every is how often a progress line is printed.
	Every time.Duration
}

// NewOptions returns the defaults.
func NewOptions() Options {
	return Options{Load: load.NewOptions(), Mode: ModeAuto, Pause: 10 * time.Second, CutoverAttempts: 3, CutoverTimeout: 30 * time.Minute, Every: time.Second, Progress: progress.Auto, PartElems: 5000, PartBytes: 1 << 20}
}

// ErrDifferent is returned when the cutover's check finds the target
// differs from the source.
var ErrDifferent = errors.New("the target differs from the source")

// ErrStopped is wrapped when the stream cannot be applied further: a
// command the target refused or lacks.
var ErrStopped = errors.New("sync stopped")

// Stats counts what a sync did.
type Stats struct {
	Phase       string           `json:"phase"`
	InSync      bool             `json:"in_sync"`
	Loaded      int64            `json:"snapshot_keys"`
	Applied     int64            `json:"commands_applied"`
	ByCommand   map[string]int64 `json:"commands"`
	Skipped     map[string]int64 `json:"skipped_unsupported,omitempty"`
	NotSelected int64            `json:"commands_not_selected,omitempty"`
	// LeftOut counts, under --type or --max-key-bytes, the reads of keys
	// the selection left out (deleted from the target), by reason;
	// TooBig names the first keys left out for their size.
	LeftOut map[string]int64 `json:"keys_left_out,omitempty"`
	TooBig  []string         `json:"too_big,omitempty"`
	// ReadAgain counts, in a sync by replication under --type or
	// --max-key-bytes, the keys read again from the source after the
	// commands that wrote them.
	ReadAgain int64 `json:"keys_read_again,omitempty"`
	// Repaired counts the keys the target had expired on its own clock
	// while the source still held them, read again from the source (see
	// repair); Covered the commands on them their reads made redundant.
	Repaired int64 `json:"keys_repaired,omitempty"`
	// Expired counts the keys the target expired on its own clock that
	// were read again from the source; Unrepaired those that were not,
	// as more than one key of the source takes their name.
	Expired    int64 `json:"keys_expired_on_target,omitempty"`
	Unrepaired int64 `json:"keys_not_repaired,omitempty"`
	Covered    int64 `json:"commands_covered_by_repairs,omitempty"`
	// Redirected counts the commands (transactions) a cluster target
	// sent to another master (MOVED, ASK), sent again there.
	Redirected   int64   `json:"commands_redirected,omitempty"`
	Offset       int64   `json:"offset"`
	SourceOffset int64   `json:"source_offset"`
	LagBytes     int64   `json:"lag_bytes"`
	LagMs        int64   `json:"lag_ms"`
	PerSecond    float64 `json:"commands_per_second"`
	Transactions int64   `json:"transactions"`
	Resumed      bool    `json:"resumed"`
	// PausedMs is how long after the pause began the target was checked
	// and ready; HeldMs how long the source's writes were held (until
	// the source refused them, or the pause ran out).
	PausedMs int64 `json:"paused_ms,omitempty"`
	HeldMs   int64 `json:"writes_held_ms,omitempty"`
	// Cutovers counts the cutovers tried, Rehearsals those rehearsed.
	Cutovers   int64 `json:"cutover_attempts,omitempty"`
	Rehearsals int64 `json:"rehearsals,omitempty"`
	Changed    int64 `json:"keys_changed,omitempty"`
	Verified   int64 `json:"keys_verified,omitempty"`
	// Compared counts the changed keys found equal while streaming (the
	// cutover's check then compares only those changed since).
	Compared int64 `json:"keys_compared_streaming,omitempty"`
	// Expiring counts the keys compared that one side held and the other
	// had deleted on its own clock as their expiry passed.
	Expiring    int64 `json:"keys_expiring,omitempty"`
	Differences int64 `json:"differences,omitempty"`
}
