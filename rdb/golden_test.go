package rdb

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/crs-tool/crs/format"
)

var update = flag.Bool("update", false, "write the golden .jsonl of testdata/*.rdb anew")

// goldenFiles are the RDB files real servers wrote (testdata/make.sh).
func goldenFiles(t testing.TB) []string {
	files, err := filepath.Glob(filepath.Join("testdata", "*.rdb"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no testdata/*.rdb: %v", err)
	}
	return files
}

// decodeToJSON decodes an RDB file into the dump format's plain lines, in
// parts of at most 2 elements so that every encoding is cut somewhere.
func decodeToJSON(in []byte, opts Options) ([]byte, error) {
	var out bytes.Buffer
	fw := format.NewWriter(&out)
	if err := fw.WriteHeader(format.Header{}); err != nil {
		return nil, err
	}
	d := NewDecoder(bytes.NewReader(in), opts)
	if err := d.Decode(context.Background(), fw.Write); err != nil {
		return nil, err
	}
	if err := fw.Close(); err != nil {
		return nil, err
	}
	// Only the records: the header and trailer hold times and checksums.
	lines := strings.SplitAfter(strings.TrimSuffix(out.String(), "\n"), "\n")
	return []byte(strings.Join(lines[1:len(lines)-1], "")), nil
}

// TestGoldenFiles decodes the RDB file of every server version (Redis 6.0
// to 8.6, Valkey 8.1 and 9.1: RDB 9 to 13 and 80) and compares the records
// with the golden .jsonl beside it.
func TestGoldenFiles(t *testing.T) {
	for _, f := range goldenFiles(t) {
		t.Run(filepath.Base(f), func(t *testing.T) {
			in, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			got, err := decodeToJSON(in, Options{PartElems: 2})
			if err != nil {
				t.Fatal(err)
			}
			golden := strings.TrimSuffix(f, ".rdb") + ".jsonl"
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("records differ from %s:\ngot\n%s\nwant\n%s", golden, got, want)
			}
		})
	}
}

// TestGoldenTruncations cuts every golden file at every byte: each cut
// gives an *Error at an offset within the input, never a panic or a
// success.
func TestGoldenTruncations(t *testing.T) {
	for _, f := range goldenFiles(t) {
		in, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for cut := 0; cut < len(in); cut++ {
			_, err := decodeToJSON(in[:cut], Options{PartElems: 2})
			var e *Error
			if !errors.As(err, &e) || e.Offset < 0 || e.Offset > int64(cut) {
				t.Fatalf("%s cut at %d of %d: %v", f, cut, len(in), err)
			}
		}
	}
}

// TestSkim: a skim of each golden file names every key with its type, as
// the full read does, and reads its streams whole.
func TestSkim(t *testing.T) {
	for _, f := range goldenFiles(t) {
		in, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		full, _, err := decodeAll(t, in, Options{})
		if err != nil {
			t.Fatal(err)
		}
		skim, _, err := decodeAll(t, in, Options{Skim: true})
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if len(full) != len(skim) {
			t.Fatalf("%s: %d records, skimmed %d", f, len(full), len(skim))
		}
		for i := range full {
			a, b := full[i], skim[i]
			if a.DB != b.DB || a.Key != b.Key || a.Type != b.Type || a.ExpireAtMs != b.ExpireAtMs {
				t.Errorf("%s: record %d %d %q %s, skimmed %d %q %s", f, i, a.DB, a.Key, a.Type, b.DB, b.Key, b.Type)
			}
			if a.Type == format.TypeStream && describe([]*format.Record{a}) != describe([]*format.Record{b}) || (a.Stream != nil) != (b.Stream != nil) || len(a.FieldExpire) != len(b.FieldExpire) {
				t.Errorf("%s: %q not read whole by the skim", f, a.Key)
			}
		}
	}
}

// TestPayloads reads every server's RDB file with its values handed over
// as DUMP payloads for a server that reads the file: each payload decodes
// (checksum and all) to the value the file decodes to, and values that
// are not one blob, or that the server would not read, are decoded.
func TestPayloads(t *testing.T) {
	for _, f := range goldenFiles(t) {
		in, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		full, d, err := decodeAll(t, in, Options{})
		if err != nil {
			t.Fatal(err)
		}
		info, _ := d.Info()
		for _, tgt := range []PayloadTarget{{Engine: info.Engine, RDB: info.Version}, {Engine: "redis", RDB: info.Version - 1}} {
			passed, _, err := decodeAll(t, in, Options{Payloads: tgt})
			if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			var payloads int
			var got []*format.Record
			for _, r := range passed {
				if r.Dump == "" || r.Type == "" || !types(r.Type) {
					got = append(got, r)
					continue
				}
				payloads++
				if r.RDBVersion != tgt.RDB {
					t.Errorf("%s: %q stamped %d, want %d", f, r.Key, r.RDBVersion, tgt.RDB)
				}
				err := DecodePayload([]byte(r.Dump), r.DB, r.Key, Options{}, func(v *format.Record) error {
					v.ExpireAtMs = r.ExpireAtMs
					got = append(got, v)
					return nil
				})
				if err != nil {
					t.Errorf("%s: payload of %q: %v", f, r.Key, err)
				}
			}
			if want := describe(full); describe(got) != want {
				t.Errorf("%s: read through payloads for %v:\n%s\nwant:\n%s", f, tgt, describe(got), want)
			}
			switch reads := tgt.reads(info.Engine, info.Version); {
			case reads && payloads == 0:
				t.Errorf("%s: no value went as a payload for %v", f, tgt)
			case !reads && payloads > 0:
				t.Errorf("%s: %d values went as payloads for %v, which does not read the file", f, payloads, tgt)
			}
		}
	}
}

// types reports whether t is a type the format carries natively.
func types(t string) bool {
	switch t {
	case format.TypeString, format.TypeList, format.TypeSet, format.TypeHash, format.TypeZSet:
		return true
	}
	return false
}
