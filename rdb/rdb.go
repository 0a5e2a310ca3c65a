// Package rdb decodes Redis and Valkey RDB files (as SAVE, BGSAVE and a
// replication snapshot write them) into crs records, as they stream by:
// it holds at most one part of a value in memory (PartElems elements or
// about PartBytes bytes), whatever the size of a key or of the file, so
// a huge backup converts in bounded memory. It imports no Redis client.
//
// It reads every RDB version that Redis 2.6 and later write (1 to 12) and
// Valkey's VALKEY080; every encoding of every type (strings raw, integer
// and LZF; lists as linked lists, ziplists and quicklists 1 and 2; sets
// as hashtables, intsets and listpacks; sorted sets with text or binary
// scores, as skiplists, ziplists and listpacks; hashes as hashtables,
// zipmaps, ziplists and listpacks, with field expiries (Redis 7.4+); and
// streams 1 to 3 with consumer groups, pending entries and consumers). A
// module type's value (vector sets, RedisJSON, …) becomes a record
// holding the DUMP payload that RESTORE takes on a server with the
// module. Errors name the byte offset: "rdb: offset N: …".
package rdb

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/crs-tool/crs/format"
)

// MaxVersion is the newest Redis RDB version this package reads.
const MaxVersion = 13

// MaxValkeyVersion is the newest Valkey RDB version (magic "VALKEY")
// this package reads.
const MaxValkeyVersion = 80

// Options bound the records a Decoder makes.
type Options struct {
	// PartElems and PartBytes bound one record: a larger value is
	// written as several records (parts), as crsdump does. Zero means
	// crsdump's defaults, 5000 and 1 MiB.
	PartElems int
	PartBytes int
	// NowMs, when above 0, is the time in unix ms before which a key's
	// expiry must fall for the key to be kept: keys already expired are
	// skipped and counted in Stats.Expired, as a server loading the file
	// would drop them; so are hash fields whose expiry has passed
	// (Stats.ExpiredFields).
	NowMs int64
	// DropKeyMeta reads a key that carries module key metadata
	// (RDB_OPCODE_KEY_META, Redis 8.6) without it, counting it; without
	// it, such a key stops the decoder with an error naming it.
	DropKeyMeta bool
	// Skim passes over the values a pre-flight needs no more of than
	// their key and type (see skim.go): the records it makes are for
	// looking at only, and the checksum is not checked.
	Skim bool
	// Payloads, where its RDB version is above 0, is a server that reads
	// this file's encodings (the file's RDB version is not newer than
	// its own): a string, and a value held in one blob (a listpack,
	// ziplist or intset, or a list of one node) of at most PartBytes,
	// is then emitted as a DUMP payload for it (Record.Dump), its bytes
	// copied, not decoded. Other values are decoded as always.
	Payloads PayloadTarget
	// Whole says the input is a file that ends where the RDB data does:
	// bytes after the checksum are an error (an AOF's commands after an
	// RDB preamble, say), never ignored.
	Whole bool
}

// Info is what an RDB file says of itself before its keys.
type Info struct {
	Version       int    // RDB version
	Engine        string // "redis" or "valkey"
	ServerVersion string // the redis-ver (or valkey-ver) aux field
	CreatedMs     int64  // the ctime aux field, in unix ms, or 0
	UsedMem       int64  // the used-mem aux field, or 0
	Aux           map[string]string
}

// Stats counts what a Decoder skipped or could not carry.
type Stats struct {
	Expired        int64 // keys skipped because their expiry had passed
	FunctionsPreGA int64 // function libraries of Redis 7.0 release candidates, not carried
	ModuleAux      int64 // module auxiliary data blocks, skipped
	// ModuleAuxNames names the modules whose auxiliary data was skipped.
	ModuleAuxNames []string
	// LengthMismatch counts streams whose recorded length differs from
	// their entries (Redis 5 after XTRIM); LengthMismatchKeys names the
	// first few.
	LengthMismatch     int64
	LengthMismatchKeys []string
	// KeyMeta counts keys whose module key metadata (RDB_OPCODE_KEY_META,
	// Redis 8.6) was dropped (Options.DropKeyMeta); KeyMetaKeys names the
	// first few.
	KeyMeta     int64
	KeyMetaKeys []string
	// ExpiredFields counts hash fields left out because their expiry had
	// passed (Options.NowMs), as a server loading the file drops them.
	ExpiredFields int64
	// EmptyKeys counts keys whose value held no element, which no server
	// holds and Redis 8 skips on loading ("empty keys skipped");
	// EmptyKeyNames names the first few.
	EmptyKeys     int64
	EmptyKeyNames []string
	// OddZipmaps counts zipmaps (hashes of Redis before 2.6) whose count
	// byte is 255: the servers that wrote zipmaps counted the pairs of
	// any count byte from 254, as crs does; Redis 7.0 and later refuse
	// such a file.
	OddZipmaps int64
}

// Error is a failure to decode, at a byte offset of the input.
type Error struct {
	Offset int64
	Err    error
}

func (e *Error) Error() string { return fmt.Sprintf("rdb: offset %d: %v", e.Offset, e.Err) }
func (e *Error) Unwrap() error { return e.Err }

// ErrVersion is wrapped when the file is newer than this package reads.
var ErrVersion = errors.New("unsupported RDB version")

// ErrNotRDB is wrapped when the input does not start with an RDB magic.
var ErrNotRDB = errors.New("not an RDB file")

// Decoder reads one RDB stream.
type Decoder struct {
	// passable says the values may go as payloads (Options.Payloads
	// reads this file); payload is the buffer they are copied into.
	passable bool
	payload  bytes.Buffer
	in       input
	opts     Options
	info     Info
	head     bool // Info has been read
	next     int  // an opcode read past the aux fields, or -1
	db       int
	Stats    Stats
}

// NewDecoder returns a decoder reading r.
func NewDecoder(r io.Reader, opts Options) *Decoder {
	if opts.PartElems <= 0 {
		opts.PartElems = 5000
	}
	if opts.PartBytes <= 0 {
		opts.PartBytes = 1 << 20
	}
	return &Decoder{in: input{r: newBuffered(r, 64<<10, opts.Skim)}, opts: opts, next: -1}
}

// IsRDB reports whether b (the first bytes of an input) starts with an
// RDB magic: "REDIS" or "VALKEY" and a version number.
func IsRDB(b []byte) bool {
	s := string(b)
	return (strings.HasPrefix(s, "REDIS") && len(s) >= 9) || (strings.HasPrefix(s, "VALKEY") && len(s) >= 9)
}

func (d *Decoder) fail(err error) error {
	var e *Error
	if errors.As(err, &e) {
		return err
	}
	return &Error{Offset: d.in.off, Err: err}
}

// Info reads the magic, the version and the aux fields that precede the
// keys, once, and returns them.
func (d *Decoder) Info() (Info, error) {
	if d.head {
		return d.info, nil
	}
	if err := d.readMagic(); err != nil {
		return d.info, d.fail(err)
	}
	d.info.Aux = map[string]string{}
	for {
		op, err := d.in.byte()
		if err != nil {
			if verr := d.checkVersion(); verr != nil {
				return d.info, verr
			}
			return d.info, d.fail(err)
		}
		if op != opAux {
			d.next = int(op)
			break
		}
		if err := d.aux(); err != nil {
			return d.info, d.fail(err)
		}
	}
	if err := d.checkVersion(); err != nil {
		return d.info, err
	}
	d.head = true
	return d.info, nil
}

func (d *Decoder) readMagic() error {
	b, err := d.in.r.Peek(9)
	if err != nil || !IsRDB(b) {
		return fmt.Errorf("%w: it does not start with REDIS or VALKEY and a version", ErrNotRDB)
	}
	digits := 4
	d.info.Engine = "redis"
	if strings.HasPrefix(string(b), "VALKEY") {
		digits, d.info.Engine = 3, "valkey"
	}
	magic, _ := d.in.fixed(len(b) - digits)
	_ = magic
	vb, err := d.in.fixed(digits)
	if err != nil {
		return err
	}
	v, err := strconv.Atoi(string(vb))
	if err != nil || v < 1 {
		return fmt.Errorf("%w: bad version %q", ErrNotRDB, vb)
	}
	d.info.Version = v
	return nil
}

// checkVersion refuses a file newer than this package reads, once the aux
// fields have said which server wrote it.
func (d *Decoder) checkVersion() error {
	v := d.info.Version
	d.passable = !d.opts.Skim && d.opts.Payloads.reads(d.info.Engine, v)
	if d.info.Engine == "redis" && v <= MaxVersion || d.info.Engine == "valkey" && v <= MaxValkeyVersion {
		return nil
	}
	by := "a server that does not say its version"
	if d.info.ServerVersion != "" {
		by = d.info.Engine + " " + d.info.ServerVersion
	}
	return &Error{Offset: 0, Err: fmt.Errorf("%w: the file is %s RDB version %d, written by %s, which crs does not read yet (it reads Redis RDB versions up to %d and Valkey's up to %d)", ErrVersion, d.info.Engine, v, by, MaxVersion, MaxValkeyVersion)}
}

// aux reads one aux field.
func (d *Decoder) aux() error {
	key, val, err := d.in.pair()
	if err != nil {
		return err
	}
	if d.info.Aux != nil {
		d.info.Aux[key] = val
	}
	switch key {
	case "redis-ver":
		if d.info.ServerVersion == "" {
			d.info.ServerVersion = val
		}
	case "valkey-ver":
		d.info.ServerVersion = val
		d.info.Engine = "valkey"
	case "ctime":
		if n, err := strconv.ParseInt(val, 10, 64); err == nil {
			d.info.CreatedMs = n * 1000
		}
	case "used-mem":
		d.info.UsedMem, _ = strconv.ParseInt(val, 10, 64)
	}
	return nil
}

// Opcodes between the keys.
const (
	opKeyMeta     = 243 // before a key's type: module key metadata (Redis 8.6)
	opSlotInfo    = 244
	opFunction2   = 245
	opFunctionPre = 246
	opModuleAux   = 247
	opIdle        = 248
	opFreq        = 249
	opAux         = 250
	opResizeDB    = 251
	opExpireMs    = 252
	opExpire      = 253
	opSelectDB    = 254
	opEOF         = 255
)

// Decode reads every key and calls emit with its records, in file order,
// then checks the end of the file and its checksum. It stops at the first
// error, from the input or from emit, or when ctx is done.
func (d *Decoder) Decode(ctx context.Context, emit func(*format.Record) error) error {
	if _, err := d.Info(); err != nil {
		return err
	}
	var expire int64 // of the next key, unix ms
	for n := 0; ; n++ {
		if n%256 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		var op byte
		if d.next >= 0 {
			op, d.next = byte(d.next), -1
		} else {
			var err error
			if op, err = d.in.byte(); err != nil {
				return d.fail(err)
			}
		}
		var err error
		switch op {
		case opEOF:
			return d.end()
		case opSelectDB:
			var db uint64
			if db, err = d.in.count(); err == nil && db > 1<<31 {
				err = fmt.Errorf("database %d", db)
			}
			d.db = int(db)
		case opResizeDB:
			if _, err = d.in.count(); err == nil {
				_, err = d.in.count()
			}
		case opSlotInfo:
			for i := 0; i < 3 && err == nil; i++ {
				_, err = d.in.count()
			}
		case opExpireMs:
			var v uint64
			v, err = d.in.uint64LE()
			expire = pastOrAt(int64(v))
		case opExpire:
			// Seconds in a signed 32-bit integer, as servers read them
			// (rdbLoadTime): a top bit set is a time before 1970.
			var v uint32
			v, err = d.in.uint32LE()
			expire = pastOrAt(int64(int32(v)) * 1000)
		case opFreq:
			_, err = d.in.byte()
		case opIdle:
			_, err = d.in.count()
		case opAux:
			err = d.aux()
		case opModuleAux:
			d.Stats.ModuleAux++
			err = d.moduleAux()
		case opFunction2:
			err = d.function(emit)
		case opFunctionPre:
			d.Stats.FunctionsPreGA++
			err = d.functionPreGA(emit)
		case opKeyMeta:
			var classes []string
			if classes, err = d.keyMeta(); err == nil {
				if op, err = d.in.byte(); err == nil {
					err = d.key(op, expire, classes, emit)
				}
			}
			expire = 0
		default:
			err = d.key(op, expire, nil, emit)
			expire = 0
		}
		switch {
		case err == nil:
		case isEmitError(err):
			return errors.Unwrap(err)
		default:
			return d.fail(err)
		}
	}
}

// pastOrAt returns an expiry read from the file, or 1 (long past: the key
// has expired) for one at or before the epoch, which a record cannot
// hold and 0 would make "no expiry".
func pastOrAt(ms int64) int64 {
	if ms <= 0 {
		return 1
	}
	return ms
}

// emitError marks an error returned by the caller's emit.
type emitError struct{ error }

func (e emitError) Unwrap() error { return e.error }

func isEmitError(err error) bool {
	var e emitError
	return errors.As(err, &e)
}

// end checks what follows the EOF opcode: the CRC-64 of everything
// before it (version 5 and later; zero when the server saved without
// one), and, in a whole file of any version, nothing after.
func (d *Decoder) end() error {
	if d.info.Version >= 5 || d.info.Engine != "redis" {
		want := d.in.r.CRC()
		got, err := d.in.uint64LE()
		if err != nil {
			return d.fail(fmt.Errorf("checksum: %w", err))
		}
		if got != 0 && got != want && !d.opts.Skim {
			return &Error{Offset: d.in.off - 8, Err: fmt.Errorf("checksum mismatch: the file says %016x, its bytes give %016x (the file is corrupt)", got, want)}
		}
	}
	if d.opts.Whole {
		if b, err := d.in.r.Peek(1); err == nil {
			what := "data"
			if b[0] == '*' {
				what = "commands (an AOF with an RDB preamble: load it as such, by its .aof name or its appendonlydir)"
			}
			return &Error{Offset: d.in.off, Err: fmt.Errorf("the RDB data ends here and more bytes follow: %s; nothing after an RDB file's end is ignored", what)}
		}
	}
	return nil
}

// End is the offset at which the RDB data ended, once Decode returned nil.
func (d *Decoder) End() int64 { return d.in.off }

// function reads a function library and emits it as a record.
func (d *Decoder) function(emit func(*format.Record) error) error {
	code, err := d.in.str()
	if err != nil {
		return err
	}
	name, err := libraryName(string(code))
	if err != nil {
		return err
	}
	if err := emit(&format.Record{Key: name, Type: format.TypeFunction, Str: string(code)}); err != nil {
		return emitError{err}
	}
	return nil
}

// functionPreGA reads a function library as Redis 7.0 release candidates
// wrote it (opcode 246): its name, engine, a flag saying whether a
// description follows, the description, then the code; and emits it as
// Redis 7.0 loads it, with the first line "#!<engine> name=<name>".
func (d *Decoder) functionPreGA(emit func(*format.Record) error) error {
	name, err := d.in.str()
	if err != nil {
		return err
	}
	engine, err := d.in.str()
	if err != nil {
		return err
	}
	hasDesc, err := d.in.count()
	if err != nil {
		return err
	}
	if hasDesc != 0 {
		if _, err := d.in.str(); err != nil { // the description: 7.0 GA has none
			return err
		}
	}
	code, err := d.in.str()
	if err != nil {
		return err
	}
	full := fmt.Sprintf("#!%s name=%s\n%s", engine, name, code)
	if err := emit(&format.Record{Key: string(name), Type: format.TypeFunction, Str: full}); err != nil {
		return emitError{err}
	}
	return nil
}

// keyMeta reads a key's module metadata (RDB_OPCODE_KEY_META): a count of
// classes, then for each its 32-bit spec (a 4-character name, version
// and flags) and its value in module opcodes up to EOF. It returns the
// classes' names.
func (d *Decoder) keyMeta() ([]string, error) {
	n, err := d.in.count()
	if err != nil {
		return nil, err
	}
	if n > 64 {
		return nil, fmt.Errorf("key metadata of %d classes (the file is corrupt)", n)
	}
	var names []string
	for i := uint64(0); i < n; i++ {
		spec, err := d.in.uint32LE()
		if err != nil {
			return nil, err
		}
		names = append(names, keyMetaClass(spec))
		if err := d.skipModuleData(); err != nil {
			return nil, fmt.Errorf("key metadata class %q: %w", names[len(names)-1], err)
		}
	}
	return names, nil
}

// keyMetaClass names a key metadata class from its 32-bit spec: four
// 6-bit characters above 5 bits of version and 3 of flags.
func keyMetaClass(spec uint32) string {
	const cset = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-"
	ver := (spec >> 3) & 31
	spec >>= 8
	var name [4]byte
	for j := 3; j >= 0; j-- {
		name[j] = cset[spec&63]
		spec >>= 6
	}
	return fmt.Sprintf("%s (version %d)", name[:], ver)
}

// libraryName returns the name a function library's code gives itself in
// its first line, "#!lua name=mylib".
func libraryName(code string) (string, error) {
	line, _, _ := strings.Cut(code, "\n")
	if !strings.HasPrefix(line, "#!") {
		return "", errors.New("function library code lacks its first line, \"#!<engine> name=<library>\"")
	}
	for _, f := range strings.Fields(line) {
		if name, ok := strings.CutPrefix(f, "name="); ok && name != "" {
			return name, nil
		}
	}
	return "", fmt.Errorf("function library code names no library (name=...)")
}
