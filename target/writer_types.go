package target

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"golang.org/x/sync/semaphore"

	"github.com/crs-tool/crs/format"
	"github.com/crs-tool/crs/internal/dumppayload"
	"github.com/crs-tool/crs/internal/ratelimit"
	"github.com/crs-tool/crs/internal/redisconn"
)

// What a Writer is given (its options, the records as Items), what it
// counts, and the errors it returns.

// Server is what a Writer knows of the server it writes to.
type Server struct {
	redisconn.Server
	redisconn.Caps
}

// WriterOptions say how a Writer writes.
type WriterOptions struct {
	Pipeline int           // records a pipeline holds at most
	RetryFor time.Duration // how long a lost connection is retried
	// Databases is how many databases the server has (0: not known): a
	// record of another fails at once.
	Databases int
	// Replace deletes a key before writing it; SkipExisting leaves a key
	// the server holds alone (and counts it); SkipUnsupported counts a
	// key whose DUMP payload the server refuses and goes on.
	Replace, SkipExisting, SkipUnsupported bool
	// What a server that lacks a command may go without (and each is
	// counted): hash field expiries (before 7.4), a stream's counters
	// (before 7.0), its idempotent-producer state (before 8.6.2).
	DropFieldExpiry, DropStreamCounters, DropStreamIDMP bool
	// Limiter is shared by every writer (--rate); nil: no limit.
	Limiter *ratelimit.Limiter
	// InFlight holds the bytes of the records sent to writers and not
	// yet written; each Item's Size is released once it is.
	InFlight *semaphore.Weighted
	// WaitReplicas is how many replicas must have each batch (WAIT) on a
	// Sentinel-managed master; 0 elsewhere.
	WaitReplicas int
	// Encoder encodes whole keys as payloads to RESTORE; nil: every key
	// goes by commands (--load-by commands, or a server that cannot).
	Encoder *dumppayload.Encoder
	// Written is told how many keys each batch finished; nil: not told.
	Written func(keys int64)
}

// An Item is one record on its way to a Writer.
type Item struct {
	Rec  *format.Record
	DB   int   // the database to write it to
	Exp  int64 // expiry to set after this record, unix ms, or 0
	Last bool  // the record ends its key (a whole key, or its last part)
	Line int   // where it is in the input
	Size int64 // bytes held against InFlight
	Redo bool  // the first record of a resumed writer: it goes from scratch, after a DEL
}

// WriteStats counts what a Writer wrote.
type WriteStats struct {
	Keys          int64            // keys written
	ByType        map[string]int64 // keys written per type
	Existing      int64            // keys left alone (SkipExisting)
	Replaced      int64            // keys that existed and were replaced (Replace)
	Unsupported   int64            // keys whose DUMP payload the server refused (SkipUnsupported)
	Restored      int64            // keys written as one RESTORE
	DroppedField  int64            // field expiries dropped (DropFieldExpiry)
	DroppedCount  int64            // streams written without their counters
	DroppedIDMP   int64            // streams written without their idempotent-producer state
	Retries       int64            // batches sent again after a lost connection
	Redirects     int64            // batches sent again where a cluster redirected them
	VectorsApprox int64            // vector set elements written as dumped
}

// KeyError is a command the target refused while writing one key, or a
// record the target cannot hold.
type KeyError struct {
	Line int
	DB   int
	Key  string
	Cmd  string
	Err  error
}

func (e *KeyError) Error() string {
	if e.Cmd == "" {
		return fmt.Sprintf("line %d: db %d key %q: %v", e.Line, e.DB, e.Key, e.Err)
	}
	return fmt.Sprintf("line %d: db %d key %q: %s: %v", e.Line, e.DB, e.Key, strings.ToUpper(e.Cmd), e.Err)
}

func (e *KeyError) Unwrap() error { return e.Err }

// ErrDuplicateKey is returned when the input holds the same key twice for
// one target database (as when --db merges two source databases).
var ErrDuplicateKey = errors.New("key appears twice in the input")

// ErrTargetLacks is returned when the input holds data the target has no
// command to write, such as hash field expiries before Redis 7.4.
var ErrTargetLacks = errors.New("the target cannot hold this data")

// PastDatabases is the error for writing to database db, which a target
// of n databases does not have.
func PastDatabases(db, n int) error {
	return fmt.Errorf("%w: the load writes to db %d, and the target has %d databases (its databases setting, 0 to %d): raise it, or move the database with --db-map %d=N", ErrTargetLacks, db, n, n-1, db)
}

// elemsPerCommand bounds the elements of one RPUSH, SADD, HSET or ZADD, so
// that a large value is sent as several moderate commands.
const elemsPerCommand = 1024
