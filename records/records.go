// Package records is the one seam between where a dump comes from and
// what takes it. A source (a live server read with SCAN, a cluster's
// shards, a replication snapshot, an RDB file, a dump file) yields a
// header and then records; a consumer (crsdump's writer, crsload, crs
// stats, crs verify, and next crs sync) reads them through Reader, one at
// a time, io.EOF at the clean end, as from csv.Reader. Records are
// serialized to JSON only where a file is written: nothing in one process
// encodes a record and parses it back.
//
// A source is written as the producer it is (its reads run in parallel,
// in windows, in shards) against Writer, which *format.Writer also
// implements; Open runs it in a goroutine of its own and hands its records
// over in order, in bounded batches, each checked by format.Checker, the
// checks a reader of the format makes on a record from a file, so that a
// decoder's mistake stops the read before anything is written.
//
// Where things live:
//
//	records        Reader, Writer, Source, Input, Stats, Open
//	source/…       one package per source: scan, cluster, snapshot, rdbfile, dumpfile
//	source/pick    the one place that chooses a source from the command line
//	target/…       the other seam: where records go (standalone, cluster)
//
// To add a source, write a package with a type that implements Source (or
// Reader) and give it a case in source/pick; no consumer changes.
package records

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/crs-tool/crs/format"
	"github.com/crs-tool/crs/internal/dumppayload"
	"github.com/crs-tool/crs/internal/progress"
)

// Reader yields a dump: Header once, then records, then io.EOF.
// *format.Reader is one; a Stream is another. A record returned is the
// caller's.
type Reader interface {
	Header() (format.Header, error)
	Read() (*format.Record, error)
}

// Writer takes a dump: its header, its records, and Close at the clean
// end (a source does not call Close after a failure). *format.Writer is
// one.
type Writer interface {
	WriteHeader(h format.Header) error
	RecordWriter
	Close() error
}

// RecordWriter takes records. A record given to Write is the writer's
// from then on: the caller neither changes nor reuses it.
type RecordWriter interface {
	Write(rec *format.Record) error
}

// Source produces a dump.
type Source interface {
	// Dump writes a header, every record and, on success, Close to w,
	// counting finished keys on p (which may be nil). It returns what it
	// did even when it fails part way.
	Dump(ctx context.Context, w Writer, p *progress.Counter) (Stats, error)
}

// ReadCloser is a Reader that holds a source open: Close stops it if it
// is still running and returns what it counted and the error that ended
// it, if any (nil after the clean end, and when the reader stopped
// first).
type ReadCloser interface {
	Reader
	Close() (Stats, error)
}

// Input is a dump a consumer reads: a file, standard input or a server,
// chosen in source/pick. A load opens it once, or twice where its
// pre-flight must read every record before it writes one.
type Input interface {
	// Name says what it is, for messages: a file, "stdin", a server.
	Name() string
	// Header returns the dump's header, consuming nothing.
	Header(ctx context.Context) (format.Header, error)
	// Open starts reading the dump from its start.
	Open(ctx context.Context, p *progress.Counter) (ReadCloser, error)
	// Skim reads the dump for a load's pre-flight: every key with its
	// type, and whole the records a target may lack a command for
	// (streams, field expiries, module types); other values may be
	// absent, so skimmed records are for looking at, not for loading.
	Skim(ctx context.Context) (ReadCloser, error)
	// Replayable makes later Opens possible where the input could be
	// read once only (standard input is spooled to a private file).
	Replayable() error
	// Close releases what the input holds (a spool file).
	Close() error
}

// Stats counts what a source did. Fields a source has no use for stay
// zero.
type Stats struct {
	From       string           `json:"from"`                           // the kind of source: "server", "cluster", "snapshot", "rdb" or "dump"
	Keys       int64            `json:"keys"`                           // keys written
	Records    int64            `json:"records"`                        // records written (a key in parts has several)
	ByType     map[string]int64 `json:"keys_by_type"`                   // keys written per type
	Vanished   int64            `json:"vanished"`                       // keys SCAN returned that were gone when read
	Reread     int64            `json:"reread"`                         // keys read in parts again because they changed meanwhile
	Changing   int64            `json:"carried_changing"`               // keys that kept changing, written as last read (--allow-changing)
	Duplicates int64            `json:"scan_duplicates"`                // keys SCAN returned more than once
	Deferred   int64            `json:"keys_checked_on_disk,omitempty"` // keys past the memory limit, checked for repeats on disk and read after SCAN
	DiskBytes  int64            `json:"key_files_bytes,omitempty"`      // bytes those keys took in temporary files
	Expired    int64            `json:"skipped_expired"`                // keys left out because their expiry had passed
	NotOwned   int64            `json:"skipped_not_owned,omitempty"`    // keys a cluster node held in a slot it did not serve (a resharding under way)
	Functions  int64            `json:"functions_pre_ga,omitempty"`     // function libraries of 7.0 release candidates, converted as Redis 7.0 does (RDB files)
	Libraries  int64            `json:"function_libraries"`             // function libraries written
	Shards     int              `json:"shards,omitempty"`               // cluster shards dumped
	ShardsOf   int              `json:"shards_of,omitempty"`            // shards the cluster has
	Part       string           `json:"part,omitempty"`                 // the share of the keys read (--part I/N)
	Databases  int              `json:"databases"`                      // databases dumped
	InputBytes int64            `json:"input_bytes,omitempty"`          // bytes of the file read, as given (compressed)
	// Unselected counts the keys the selection (--match, --exclude,
	// --type, the databases) left out, UnselectedBy by reason.
	Unselected   int64            `json:"left_out_unselected,omitempty"`
	UnselectedBy map[string]int64 `json:"left_out_by,omitempty"`
	TooBig       []string         `json:"left_out_too_big,omitempty"` // the first keys --max-key-bytes left out
	// What an RDB file held that a server loading it would drop, or that
	// no command can carry.
	ExpiredFields  int64    `json:"skipped_expired_fields,omitempty"`    // hash fields whose expiry had passed
	ModuleAux      []string `json:"skipped_module_aux,omitempty"`        // modules whose auxiliary data (module state, not keys) was skipped
	LengthMismatch []string `json:"stream_length_mismatch,omitempty"`    // streams whose recorded length is not their entries' count (the first few)
	LengthMisses   int64    `json:"stream_length_mismatches,omitempty"`  // how many
	KeyMeta        int64    `json:"dropped_key_metadata,omitempty"`      // keys read without their module key metadata (--drop-key-metadata)
	KeyMetaKeys    []string `json:"dropped_key_metadata_keys,omitempty"` // the first few
	EmptyKeys      int64    `json:"skipped_empty_keys,omitempty"`        // keys whose value held nothing, which no server holds
	EmptyKeyNames  []string `json:"skipped_empty_key_names,omitempty"`   // the first few
	OddZipmaps     int64    `json:"zipmaps_count_255,omitempty"`         // zipmaps whose count byte is 255, read as their servers read them
	// What a file of another tool could not carry.
	RelativeTTL   int64         `json:"expiries_relative_seconds,omitempty"` // expiries in whole seconds relative to when the file was written, set from when it was read
	Base64Strings int64         `json:"strings_from_base64,omitempty"`       // strings the file held as base64 (redis-dump -b)
	Elapsed       time.Duration `json:"-"`
}

// Add adds o's counts to s.
func (s *Stats) Add(o *Stats) {
	if s.ByType == nil {
		s.ByType = make(map[string]int64)
	}
	s.Keys += o.Keys
	s.Records += o.Records
	s.Vanished += o.Vanished
	s.Duplicates += o.Duplicates
	s.Deferred += o.Deferred
	s.DiskBytes += o.DiskBytes
	s.Reread += o.Reread
	s.Changing += o.Changing
	s.Expired += o.Expired
	s.NotOwned += o.NotOwned
	s.Functions += o.Functions
	s.Libraries += o.Libraries
	s.InputBytes += o.InputBytes
	s.Unselected += o.Unselected
	s.TooBig = append(s.TooBig, o.TooBig...)
	s.ExpiredFields += o.ExpiredFields
	s.LengthMisses += o.LengthMisses
	s.KeyMeta += o.KeyMeta
	s.EmptyKeys += o.EmptyKeys
	s.EmptyKeyNames = append(s.EmptyKeyNames, o.EmptyKeyNames...)
	s.OddZipmaps += o.OddZipmaps
	s.RelativeTTL += o.RelativeTTL
	s.Base64Strings += o.Base64Strings
	s.ModuleAux = append(s.ModuleAux, o.ModuleAux...)
	s.LengthMismatch = append(s.LengthMismatch, o.LengthMismatch...)
	s.KeyMetaKeys = append(s.KeyMetaKeys, o.KeyMetaKeys...)
	for t, n := range o.ByType {
		s.ByType[t] += n
	}
	for why, n := range o.UnselectedBy {
		if s.UnselectedBy == nil {
			s.UnselectedBy = make(map[string]int64)
		}
		s.UnselectedBy[why] += n
	}
}

// Count adds a written record to the counts.
func (s *Stats) Count(rec *format.Record) {
	if s.ByType == nil {
		s.ByType = make(map[string]int64)
	}
	s.Records++
	if rec.Type == format.TypeFunction {
		s.Libraries++
		return
	}
	if rec.Part <= 1 {
		s.Keys++
		s.ByType[rec.Type]++
	}
}

// Notes says, as a summary's clauses ("; …"), what the source held that
// the records do not: what a server loading an RDB file would drop too,
// and what no command can carry.
func (s *Stats) Notes() string {
	var b strings.Builder
	if s.Unselected > 0 {
		var why []string
		for _, k := range []string{"match", "exclude", "type", "database", "max-key-bytes", "part"} {
			if n := s.UnselectedBy[k]; n > 0 {
				why = append(why, fmt.Sprintf("%d by --%s", n, map[string]string{"match": "match", "exclude": "exclude", "type": "type", "database": "from-db", "max-key-bytes": "max-key-bytes", "part": "part"}[k]))
			}
		}
		fmt.Fprintf(&b, "; left out %d keys the selection does not take (%s)", s.Unselected, strings.Join(why, ", "))
		if len(s.TooBig) > 0 {
			fmt.Fprintf(&b, "; LEFT OUT as larger than --max-key-bytes: %s", strings.Join(s.TooBig, ", "))
			if n := s.UnselectedBy["max-key-bytes"]; n > int64(len(s.TooBig)) {
				fmt.Fprintf(&b, " and %d more", n-int64(len(s.TooBig)))
			}
		}
	}
	if s.ExpiredFields > 0 {
		fmt.Fprintf(&b, "; skipped %d hash fields already expired", s.ExpiredFields)
	}
	if s.Functions > 0 {
		fmt.Fprintf(&b, "; %d function libraries of a 7.0 release candidate converted as Redis 7.0 loads them", s.Functions)
	}
	if len(s.ModuleAux) > 0 {
		fmt.Fprintf(&b, "; SKIPPED the auxiliary data of the modules %s (module state, not keys, which no command carries)", strings.Join(s.ModuleAux, ", "))
	}
	if s.LengthMisses > 0 {
		fmt.Fprintf(&b, "; %d STREAMS RECORD A LENGTH OTHER THAN THEIR ENTRIES' COUNT (%s), which a load cannot set: they load with their entries' count", s.LengthMisses, strings.Join(s.LengthMismatch, "; "))
	}
	if s.EmptyKeys > 0 {
		fmt.Fprintf(&b, "; SKIPPED %d keys whose value holds no element, which no server holds (Redis 8 skips them on loading too): %s", s.EmptyKeys, strings.Join(s.EmptyKeyNames, ", "))
	}
	if s.OddZipmaps > 0 {
		fmt.Fprintf(&b, "; read %d zipmaps whose count byte is 255 as the servers that wrote them did (Redis 7.0 and later refuse such a file)", s.OddZipmaps)
	}
	if s.From == "redis-dump" {
		fmt.Fprintf(&b, "; a redis-dump (Ruby gem) file, whose format holds no streams, module types or hash field expiries")
		if s.RelativeTTL > 0 {
			fmt.Fprintf(&b, "; %d EXPIRIES ARE WHOLE SECONDS RELATIVE TO WHEN THE FILE WAS WRITTEN, which it does not record: set from when it was read, as the gem's own loader does, so each key lives that much longer than on its source", s.RelativeTTL)
		}
		if s.Base64Strings > 0 {
			fmt.Fprintf(&b, "; %d strings read from base64 (written with redis-dump -b)", s.Base64Strings)
		}
	}
	if s.KeyMeta > 0 {
		fmt.Fprintf(&b, "; DROPPED the module key metadata of %d keys (--drop-key-metadata): %s", s.KeyMeta, strings.Join(s.KeyMetaKeys, "; "))
	}
	return b.String()
}

// Command is one write command of a stream of changes (an AOF's, and
// next a replication link's), in the database it applies to, with where
// it comes from.
type Command struct {
	DB     int
	Args   []string // the command's name first
	File   string   // the file it was read from, or the link
	Offset int64    // the byte offset where it starts
	End    int64    // the byte offset just after it
}

// Changes yields commands in the order they were made, io.EOF at the end.
type Changes interface {
	Next() (*Command, error)
}

// ChangesInput is an Input whose dump is followed by changes to apply
// after its records (an AOF: its base, then its commands).
type ChangesInput interface {
	Input
	// Changes starts reading the commands that follow the records; Open
	// must have been read to its end first. Close releases them and says
	// what was left out (a command cut short, under AllowTruncated).
	Changes(ctx context.Context) (Changes, func() (note string, err error), error)
}

// PartsInput is an input made of parts that each read on their own, with
// the whole's selection and reshaping (a dump set's): a consumer may read
// them side by side instead of one after another. No two parts hold the
// same key.
type PartsInput interface {
	Input
	// Parts returns the parts, in order; each is named as a part of the
	// whole in messages.
	Parts() []Input
}

// Dumped is a key as DUMP gives it, with its expiry (see
// dumppayload.Dumped).
type Dumped = dumppayload.Dumped
