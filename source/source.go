// Package source is where dumps come from. A Source writes a dump (one
// header, then a record per key or part of a key, then the trailer) to a
// format.Writer; crsdump writes it to a file, and stats, verify and load
// read it through Pipe as they would read a dump file.
//
// Each kind of source lives in a package of its own below this one:
//
//	source/scan     a live server, read with SCAN and pipelined reads
//	source/pick     chooses a source from the command line: a URL or a
//	                file, told apart by its first bytes
//
// To add a source, write a package with a type that implements Source and
// give it a case in source/pick.
package source

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/crs-tool/crs/format"
	"github.com/crs-tool/crs/internal/progress"
)

// Source produces a dump.
type Source interface {
	// Dump writes a header, every record and, on success, the trailer
	// (fw.Close) to fw, counting finished keys on p (which may be nil).
	// It returns what it did even when it fails part way.
	Dump(ctx context.Context, fw *format.Writer, p *progress.Counter) (Stats, error)
}

// Stats counts what a source dumped. Fields a source has no use for stay
// zero.
type Stats struct {
	From       string           `json:"from"`                           // the kind of source: "server", "rdb" or "dump"
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
	// What an RDB file held that a server loading it would drop, or that
	// no command can carry.
	ExpiredFields  int64         `json:"skipped_expired_fields,omitempty"`    // hash fields whose expiry had passed
	ModuleAux      []string      `json:"skipped_module_aux,omitempty"`        // modules whose auxiliary data (module state, not keys) was skipped
	LengthMismatch []string      `json:"stream_length_mismatch,omitempty"`    // streams whose recorded length is not their entries' count (the first few)
	LengthMisses   int64         `json:"stream_length_mismatches,omitempty"`  // how many
	KeyMeta        int64         `json:"dropped_key_metadata,omitempty"`      // keys read without their module key metadata (--drop-key-metadata)
	KeyMetaKeys    []string      `json:"dropped_key_metadata_keys,omitempty"` // the first few
	Libraries      int64         `json:"function_libraries"`                  // function libraries written
	Shards         int           `json:"shards,omitempty"`                    // cluster shards dumped
	ShardsOf       int           `json:"shards_of,omitempty"`                 // shards the cluster has
	Databases      int           `json:"databases"`                           // databases dumped
	Elapsed        time.Duration `json:"-"`
}

// RecordWriter takes records; format.Writer is one.
type RecordWriter interface {
	Write(rec *format.Record) error
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
	s.ExpiredFields += o.ExpiredFields
	s.LengthMisses += o.LengthMisses
	s.KeyMeta += o.KeyMeta
	s.ModuleAux = append(s.ModuleAux, o.ModuleAux...)
	s.LengthMismatch = append(s.LengthMismatch, o.LengthMismatch...)
	s.KeyMetaKeys = append(s.KeyMetaKeys, o.KeyMetaKeys...)
	s.Libraries += o.Libraries
	for t, n := range o.ByType {
		s.ByType[t] += n
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

// Pipe dumps src into a pipe and calls read with a Reader of the records
// as they are made: the dump is read as a dump file would be, without a
// file. It returns the first error of the two sides.
func Pipe(ctx context.Context, src Source, p *progress.Counter, read func(ctx context.Context, fr *format.Reader) error) error {
	pr, pw := io.Pipe()
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		_, err := src.Dump(gctx, format.NewWriter(pw), p)
		pw.CloseWithError(err)
		return err
	})
	g.Go(func() error {
		err := read(gctx, format.NewReader(pr))
		pr.CloseWithError(err)
		return err
	})
	return g.Wait()
}

// Notes says, as a summary's clauses ("; …"), what the source held that
// the records do not: what a server loading an RDB file would drop too,
// and what no command can carry.
func (s *Stats) Notes() string {
	var b strings.Builder
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
	if s.KeyMeta > 0 {
		fmt.Fprintf(&b, "; DROPPED the module key metadata of %d keys (--drop-key-metadata): %s", s.KeyMeta, strings.Join(s.KeyMetaKeys, "; "))
	}
	return b.String()
}
