package rdb

import (
	"encoding/binary"
	"errors"
	"strings"
	"testing"

	"github.com/crs-tool/crs/format"
)

// streamFile is an RDB 9 file of one stream (type 15, as Redis 5 and 6
// write it) whose node listpack is lp and whose recorded length is length.
func streamFile(lp []byte, length uint64) []byte {
	key := make([]byte, 16)
	binary.BigEndian.PutUint64(key, 100)
	w := &buf{}
	w.byte(typeStreamListpacks).str("st").len(1).str(string(key)).str(string(lp))
	w.len(length).len(100).len(2) // length, last ID 100-2
	w.len(0)                      // groups
	return rdbFile("REDIS", 9, w.b)
}

// twoEntries is a node of entries 100-1 and 100-2 with the master's field.
func twoEntries(masterFields int64) []byte {
	return listpack(int64(2), int64(0), masterFields, "f", int64(0),
		int64(entrySameFields), int64(0), int64(1), "v1", int64(3),
		int64(entrySameFields), int64(0), int64(2), "v2", int64(3))
}

// TestDefects covers what RDB files of other projects' test suites found:
// each case failed (a panic, a wrong read, a silent drop) before its fix.
func TestDefects(t *testing.T) {
	id := vectorsetID()
	spec := uint32(0)
	for _, c := range "KMT1" { // a key metadata class, version 1, no flags
		spec = spec<<6 | uint32(strings.IndexRune("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-", c))
	}
	spec = spec<<8 | 1<<3
	keyMeta := func(w *buf) *buf {
		w.byte(opKeyMeta).len(1)
		w.b = binary.LittleEndian.AppendUint32(w.b, spec)
		return w.len(moduleUInt).len(5).len(moduleEOF)
	}
	badZipmap := zipmap("a", "1")
	badZipmap[0] = 0xff
	tests := []struct {
		name    string
		file    []byte
		opts    Options
		want    string // records, as describe renders them
		wantErr string // or an error naming this
		check   func(t *testing.T, d *Decoder)
	}{
		{name: "a negative master field count is an error, not a panic",
			file: streamFile(twoEntries(-1), 2), wantErr: "offset "},
		{name: "a negative entry field count is an error, not a panic",
			file: streamFile(listpack(int64(1), int64(0), int64(1), "f", int64(0), int64(0), int64(0), int64(1), int64(-3), "x", int64(3)), 1), wantErr: "offset "},
		{name: "a stream whose recorded length is not its entries' count is counted",
			file: streamFile(twoEntries(1), 3), want: "0 \"st\" stream\n",
			check: func(t *testing.T, d *Decoder) {
				if d.Stats.LengthMismatch != 1 || !strings.Contains(strings.Join(d.Stats.LengthMismatchKeys, ""), `"st" (db 0): length 3, 2 entries`) {
					t.Errorf("length mismatch: %d %q", d.Stats.LengthMismatch, d.Stats.LengthMismatchKeys)
				}
			}},
		{name: "a function library of a 7.0 release candidate, with a description",
			file: rdbFile("REDIS", 10, (&buf{}).byte(opFunctionPre).str("mylib").str("LUA").len(1).str("what it does").str("redis.register_function('f', function() return 1 end)").b),
			want: "0 \"mylib\" function\n",
			check: func(t *testing.T, d *Decoder) {
				if d.Stats.FunctionsPreGA != 1 {
					t.Errorf("FunctionsPreGA = %d", d.Stats.FunctionsPreGA)
				}
			}},
		{name: "a function library of a 7.0 release candidate, without a description",
			file: rdbFile("REDIS", 10, (&buf{}).byte(opFunctionPre).str("mylib").str("LUA").len(0).str("redis.register_function('f', function() return 1 end)").byte(typeString).str("k").str("v").b),
			want: "0 \"mylib\" function\n0 \"k\" string \"v\"\n"},
		{name: "hash fields whose expiry has passed are dropped, as a server drops them",
			file: rdbFile("REDIS", 12, (&buf{}).byte(typeHashLpEx).str("h").u64(1000).str(string(listpack("old", "1", int64(1000), "new", "2", int64(5000), "keep", "3", int64(0)))).b),
			opts: Options{NowMs: 2000}, want: "0 \"h\" hash new=2 keep=3 new@5000\n",
			check: func(t *testing.T, d *Decoder) {
				if d.Stats.ExpiredFields != 1 {
					t.Errorf("ExpiredFields = %d", d.Stats.ExpiredFields)
				}
			}},
		{name: "module auxiliary data is named",
			file: rdbFile("REDIS", 11, (&buf{}).byte(opModuleAux).len(id<<10).len(moduleUInt).len(2).len(moduleUInt).len(7).len(moduleEOF).b),
			check: func(t *testing.T, d *Decoder) {
				if d.Stats.ModuleAux != 1 || strings.Join(d.Stats.ModuleAuxNames, ",") != "vectorset" {
					t.Errorf("module aux %d %q", d.Stats.ModuleAux, d.Stats.ModuleAuxNames)
				}
			}},
		{name: "a zipmap whose count byte is 255 is read as the servers that wrote zipmaps read it, and counted",
			file: rdbFile("REDIS", 3, (&buf{}).byte(typeHashZipmap).str("zm").str(string(badZipmap)).b),
			want: "0 \"zm\" hash a=1\n",
			check: func(t *testing.T, d *Decoder) {
				if d.Stats.OddZipmaps != 1 {
					t.Errorf("OddZipmaps = %d", d.Stats.OddZipmaps)
				}
			}},
		{name: "a zipmap whose count byte is neither its count nor 254 or more is refused",
			file:    rdbFile("REDIS", 3, (&buf{}).byte(typeHashZipmap).str("zm").str(string(append([]byte{7}, zipmap("a", "1")[1:]...))).b),
			wantErr: "zipmap count byte 7, and it holds 1 pairs"},
		{name: "an expiry in seconds is signed, as servers read it: a top bit set is before 1970",
			file: rdbFile("REDIS", 6, (&buf{}).byte(opExpire).byte(0x10, 0x32, 0x54, 0xb4).byte(typeString).str("old").str("v").
				byte(opExpire).byte(0x00, 0xe1, 0xf5, 0x75).byte(typeString).str("new").str("v").b),
			want: "0 \"old\" string exp1 \"v\"\n0 \"new\" string exp1979048192000 \"v\"\n"},
		{name: "an expiry in seconds before 1970 has passed, for a decoder given the time",
			file: rdbFile("REDIS", 6, (&buf{}).byte(opExpire).byte(0x10, 0x32, 0x54, 0xb4).byte(typeString).str("old").str("v").b),
			opts: Options{NowMs: 1764000000000},
			check: func(t *testing.T, d *Decoder) {
				if d.Stats.Expired != 1 {
					t.Errorf("Expired = %d", d.Stats.Expired)
				}
			}},
		{name: "a value type newer than the file's version is refused, as the servers of that version refuse it",
			file:    rdbFile("REDIS", 3, (&buf{}).byte(typeHashMeta).str("h").u64(0).len(0).b),
			wantErr: `db 0 key "h": value type 24 first appears in RDB version 12, and the file says it is version 3`},
		{name: "an empty value is skipped, counted and named, as Redis 8 skips it",
			file: rdbFile("REDIS", 9, (&buf{}).byte(typeSet).str("e").len(0).byte(typeString).str("k").str("v").b),
			want: "0 \"k\" string \"v\"\n",
			check: func(t *testing.T, d *Decoder) {
				if d.Stats.EmptyKeys != 1 || strings.Join(d.Stats.EmptyKeyNames, ",") != `"e" (db 0)` {
					t.Errorf("empty keys %d %q", d.Stats.EmptyKeys, d.Stats.EmptyKeyNames)
				}
			}},
		{name: "bytes after the end of a whole file are refused at any version",
			file:    append(rdbFile("REDIS", 3, (&buf{}).byte(typeString).str("k").str("v").b), "junk"...),
			opts:    Options{Whole: true},
			wantErr: "the RDB data ends here and more bytes follow"},
		{name: "a zipmap whose count byte is 254 counts itself",
			file: rdbFile("REDIS", 6, (&buf{}).byte(typeHashZipmap).str("zm").str(string(append([]byte{254}, zipmap("a", "1")[1:]...))).b),
			want: "0 \"zm\" hash a=1\n"},
		{name: "key metadata stops the decoder, naming the key",
			file:    rdbFile("REDIS", 13, keyMeta(&buf{}).byte(typeString).str("k").str("v").b),
			wantErr: `db 0 key "k" carries module key metadata (KMT1 (version 1)), which crs cannot carry: --drop-key-metadata`},
		{name: "key metadata dropped under its flag, counted",
			file: rdbFile("REDIS", 13, keyMeta(&buf{}).byte(typeString).str("k").str("v").b),
			opts: Options{DropKeyMeta: true}, want: "0 \"k\" string \"v\"\n",
			check: func(t *testing.T, d *Decoder) {
				if d.Stats.KeyMeta != 1 {
					t.Errorf("KeyMeta = %d", d.Stats.KeyMeta)
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			recs, d, err := decodeAll(t, tt.file, tt.opts)
			if tt.wantErr != "" {
				var e *Error
				if !errors.As(err, &e) || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got %v, want an rdb error with %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := describe(recs); got != tt.want {
				t.Errorf("got\n%s\nwant\n%s", got, tt.want)
			}
			if tt.check != nil {
				tt.check(t, d)
			}
		})
	}
}

// TestStreamSequenceDelta: an entry of a later millisecond than its node's
// master ID often has a smaller sequence number, a negative delta that
// Redis adds in wrapping arithmetic (every stream written faster than one
// entry a millisecond has such entries; crs refused them for a round).
func TestStreamSequenceDelta(t *testing.T) {
	key := make([]byte, 16)
	binary.BigEndian.PutUint64(key, 100)
	binary.BigEndian.PutUint64(key[8:], 5)
	lp := listpack(int64(2), int64(0), int64(1), "f", int64(0),
		int64(entrySameFields), int64(0), int64(0), "v1", int64(3),
		int64(entrySameFields), int64(1), int64(-5), "v2", int64(3))
	w := &buf{}
	w.byte(typeStreamListpacks).str("st").len(1).str(string(key)).str(string(lp))
	w.len(2).len(101).len(0).len(0) // length 2, last ID 101-0, no groups
	recs, _, err := decodeAll(t, rdbFile("REDIS", 9, w.b), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 1 || len(recs[0].Stream.Entries) != 2 || recs[0].Stream.Entries[0].ID != "100-5" || recs[0].Stream.Entries[1].ID != "101-0" {
		t.Fatalf("records %+v", recs)
	}
}

// TestIDMPDeletedEntry: a tracked idempotent ID whose entry was deleted is
// carried with a deleted entry, so that a load can record it.
func TestIDMPDeletedEntry(t *testing.T) {
	st := &format.Stream{Entries: []format.StreamEntry{{ID: "5-1", Fields: []string{"a", "1"}}},
		IDMP: &format.IDMP{Producers: []format.Producer{{PID: "p", IIDs: []format.TrackedID{{IID: "i", ID: "4-1"}, {IID: "j", ID: "5-1"}}}}}}
	ids := &idLog{}
	ids.add(5, 1)
	if err := placeholders(st, true, ids); err != nil {
		t.Fatal(err)
	}
	if len(st.Entries) != 2 || st.Entries[0].ID != "4-1" || !st.Entries[0].Deleted {
		t.Errorf("entries %+v", st.Entries)
	}
}
