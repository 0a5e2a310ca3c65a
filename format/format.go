// Package format reads and writes crs dump files: newline-delimited JSON,
// one header line, one line per key record, and a trailer line that carries
// the record count and a CRC-32C of everything before it.
//
// The package knows nothing of Redis and nothing of compression: a Writer
// writes lines to an io.Writer and a Reader reads them from an io.Reader,
// in the manner of encoding/csv. FORMAT.md at the root of the repository is
// the specification; this package is one implementation of it.
//
// Byte strings (keys, values, fields, members) are Go strings holding
// arbitrary bytes. A record whose byte strings are all valid UTF-8 is written
// as plain JSON; any other record is written with "enc":"base64" and every
// byte string in it base64-encoded, so no byte is ever replaced or lost.
package format

import (
	"errors"
	"fmt"
)

// Name is the value of the header's "format" field.
const Name = "crs"

// Version is the format version this package writes and the newest it reads.
const Version = 1

// Value types carried by a record's "type" field.
const (
	TypeString = "string"
	TypeList   = "list"
	TypeSet    = "set"
	TypeHash   = "hash"
	TypeZSet   = "zset"
	TypeStream = "stream"
	// TypeFunction is not a key: a function library (Redis 7.0+), its
	// name in Key and its code in Str. Such records come before the keys.
	TypeFunction = "function"
)

// DumpAllowed reports whether a record of type t may carry a DUMP
// payload: a type the format does not carry, or a vector set it cannot
// express as elements (one made with VADD REDUCE, whose projection
// cannot be read back).
func DumpAllowed(t string) bool { return t != "" && (!IsNative(t) || t == TypeVectorSet) }

// Header is the first line of a dump.
type Header struct {
	// Version is the format version; Writer always writes Version.
	Version int
	// CreatedMs is when the dump started, in unix milliseconds.
	CreatedMs int64
	// Source is the address of the server dumped, without credentials.
	Source string
	// ServerVersion is the source's version string, such as "7.0.15".
	ServerVersion string
	// Engine is "redis" or "valkey" (or another engine's name).
	Engine string
	// Databases lists the databases the dump covers, in the order they
	// are written, with their key counts when the dump started. The counts
	// are estimates: keys may come and go while a dump runs.
	Databases []Database
	// NoFieldExpiry says that the source cannot hold hash field expiries
	// (it has no HPEXPIRETIME), so no record carries them. A loader need
	// not look for them before writing.
	NoFieldExpiry bool
	// MemoryBytes estimates the memory the dumped keys took on the
	// source, in bytes; 0 means unknown. A loader may compare it with the
	// target's free memory before writing.
	MemoryBytes int64
	// Modules names the modules the source had loaded (MODULE LIST;
	// Redis 8 lists its built-in vectorset), so that a loader can tell
	// before reading the records whether the dump may hold a type the
	// target lacks. nil means not known (an RDB file, a source that would
	// not say); empty means none.
	Modules []string
	// Cluster describes a Redis Cluster source; nil for one server.
	Cluster *Cluster
}

// Cluster says which nodes of a Redis Cluster a dump was read from.
type Cluster struct {
	// Shards lists each shard dumped: the node read (its master, or a
	// replica) and the slots it served when the dump began.
	Shards []Shard
	// NodeOnly says only the node given was dumped, not the whole
	// cluster; Shards then lists every shard, and Of how many there are.
	NodeOnly bool
}

// Shard is one shard of a cluster source.
type Shard struct {
	Node  string // host:port of the node read
	Slots string // slot ranges, such as "0-5460,10923"
}

// Database is one database named in the header.
type Database struct {
	DB   int
	Keys int64
}

// Record is one key, or one part of a key written in several parts.
//
// Exactly one of the value fields is used, as Type says: Str for string,
// Elems for list (in order) and set, Hash for hash, ZSet for zset (in rank
// order).
type Record struct {
	DB  int
	Key string
	// Type is one of the Type constants.
	Type string
	// ExpireAtMs is the absolute expiry in unix milliseconds, or 0 when the
	// key does not expire.
	ExpireAtMs int64

	Str    string
	Elems  []string
	Hash   []Field
	ZSet   []Member
	Stream *Stream
	// VectorSet is a vector set's value (TypeVectorSet).
	VectorSet *VectorSet

	// FieldExpire holds the expiries of single hash fields (Redis 7.4+),
	// for fields of this record's Hash that have one.
	FieldExpire []FieldExpiry

	// Dump is a DUMP payload, for a key of a type the format cannot
	// express; Type is then the server's type name and no value field is
	// used. RDBVersion is the RDB version the payload carries.
	Dump       string
	RDBVersion int

	// Part numbers the records of a key written in several records: 0 for
	// a key in one record, else 1, 2, 3, ... More is true on every part
	// but the last. Only the first part carries ExpireAtMs.
	Part int
	// From is the key's name in its source, where a reshape (--rename,
	// --key-prefix) gave it another; it is not written to a dump.
	From string
	More bool
}

// FieldExpiry is the absolute expiry of one hash field, in unix ms.
type FieldExpiry struct {
	Field string
	AtMs  int64
}

// Stream is a stream's value, or one part of it.
type Stream struct {
	// Entries in ID order.
	Entries []StreamEntry
	// LastID, EntriesAdded and MaxDeletedID are the stream's metadata;
	// they are set in a whole stream's record or its last part. LastID ""
	// means absent; EntriesAdded -1 means absent; MaxDeletedID "" means
	// absent.
	LastID       string
	EntriesAdded int64
	MaxDeletedID string
	Groups       []Group
	// IDMP is the stream's idempotent-producer state (Redis 8.6+), set
	// where the source reported it, in a whole stream's record or its
	// last part; nil otherwise.
	IDMP *IDMP
}

// IDMP is a stream's idempotent-producer state (XADD ... IDMP, Redis 8.6):
// its settings, and the (producer, idempotent ID) → entry ID mappings it
// tracks, by which a producer that retries is not added twice.
type IDMP struct {
	Duration int64 // seconds each tracked ID is kept (idmp-duration)
	MaxSize  int64 // most recent IDs kept per producer (idmp-maxsize)
	// Producers lists every tracked mapping, each producer's in the
	// order they were added; nil when the source could not read them
	// (then Tracked says how many there were).
	Producers []Producer
	// Tracked is the number of tracked IDs the source reported, -1 when
	// it did not; with Producers set it equals the IDs listed.
	Tracked int64
	// Added and Duplicates are the stream's all-time counters
	// (iids-added, iids-duplicates), -1 when absent. No command sets
	// them: a load makes its own.
	Added, Duplicates int64
}

// Redis's own defaults of a stream's IDMP settings (stream-idmp-duration,
// stream-idmp-maxsize).
const (
	DefaultIDMPDuration = 100
	DefaultIDMPMaxSize  = 100
)

// IDMPState reports whether m holds anything a server without idempotent
// producers would lose: tracked IDs, or settings other than the defaults.
func IDMPState(m *IDMP) bool {
	if m == nil {
		return false
	}
	return m.Tracked > 0 || len(m.Producers) > 0 || m.Duration != DefaultIDMPDuration || m.MaxSize != DefaultIDMPMaxSize
}

// Producer is one producer's tracked idempotent IDs.
type Producer struct {
	PID  string
	IIDs []TrackedID
}

// TrackedID maps an idempotent ID to the entry it added.
type TrackedID struct {
	IID string
	ID  string // the entry's ID, ms-seq
}

// StreamEntry is one entry. Fields holds field, value, field, value...
// Deleted marks an entry that is gone from the stream but still pending
// in a group: a loader creates it, claims it and deletes it again.
type StreamEntry struct {
	ID      string
	Fields  []string
	Deleted bool
}

// Group is a consumer group.
type Group struct {
	Name            string
	LastDeliveredID string // "" in a part that continues a group
	EntriesRead     int64  // -1 when unknown
	Consumers       []Consumer
	Pending         []Pending
}

// Consumer is a member of a group.
type Consumer struct {
	Name         string
	SeenTimeMs   int64
	ActiveTimeMs int64 // 0 when the source does not report it
}

// Pending is an entry delivered to a consumer and not yet acknowledged.
type Pending struct {
	ID             string
	Consumer       string
	DeliveryTimeMs int64
	DeliveryCount  int64
}

// Field is one field of a hash.
type Field struct {
	Name, Value string
}

// Member is one member of a sorted set with its score. Score may be
// positive or negative infinity; it is never NaN.
type Member struct {
	Member string
	Score  float64
}

// Trailer is the last line of a dump.
type Trailer struct {
	// Records is the number of record lines between header and trailer.
	Records int64
	// Keys is the number of keys those records carry.
	Keys int64
	// CRC32C is the CRC-32C (Castagnoli) of every byte before the trailer
	// line, header included, newlines included.
	CRC32C uint32
}

// Errors that a ParseError may wrap; test for them with errors.Is.
var (
	// ErrNotDump means the first line is not a crs header.
	ErrNotDump = errors.New("not a crs dump")
	// ErrVersion means the header names a format version this package
	// does not read.
	ErrVersion = errors.New("unsupported format version")
	// ErrTruncated means the input ended before the trailer.
	ErrTruncated = errors.New("dump is truncated: no trailer")
	// ErrChecksum means the trailer's count or checksum does not match
	// what was read.
	ErrChecksum = errors.New("dump does not match its trailer")
	// ErrSyntax means a line is not well-formed JSON.
	ErrSyntax = errors.New("malformed JSON")
	// ErrRecord means a line is JSON but not a valid record.
	ErrRecord = errors.New("invalid record")
	// ErrLineTooLong means a line is longer than Reader.MaxLineSize.
	ErrLineTooLong = errors.New("line too long")
	// ErrRead means the underlying io.Reader failed, for example on a
	// corrupt compressed stream.
	ErrRead = errors.New("cannot read input")
	// ErrUnsupported means the record uses a part of the format that this
	// version of crs does not implement yet.
	ErrUnsupported = errors.New("not supported by this version of crs")
)

// A ParseError is returned for a problem with one line of the input.
type ParseError struct {
	Line int   // 1-based line number
	Err  error // wraps one of the Err values above
}

func (e *ParseError) Error() string {
	return fmt.Sprintf("line %d: %v", e.Line, e.Err)
}

func (e *ParseError) Unwrap() error { return e.Err }
