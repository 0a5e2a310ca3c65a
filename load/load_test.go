package load

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"hash/fnv"
	"io"
	"strconv"
	"strings"
	"testing"

	"github.com/crs-tool/crs/format"
	"github.com/crs-tool/crs/internal/redistest"
	"github.com/crs-tool/crs/records"
	"github.com/crs-tool/crs/source/pick"
)

// handWritten builds a plain dump as another writer might: the header
// and records given, and a correct trailer.
func handWritten(lines ...string) string {
	body := strings.Join(lines, "\n") + "\n"
	sum := crc32.Checksum([]byte(body), crc32.MakeTable(crc32.Castagnoli))
	keys := len(lines) - 1 - strings.Count(body, `"more":true`) // a key in parts counts once
	return body + fmt.Sprintf(`{"end":true,"records":%d,"keys":%d,"crc32c":"%08x"}`, len(lines)-1, keys, sum) + "\n"
}

func TestHeaderWithoutDatabasesChecksEveryDatabase(t *testing.T) {
	s := redistest.Start(t)
	ctx := context.Background()
	redistest.Client(t, s, 5).Set(ctx, "there", "already", 0)
	in := handWritten(`{"format":"crs","version":1}`, `{"db":0,"key":"k","type":"string","value":"v"}`)
	opts := NewOptions()
	opts.Conn.URL = s.URL
	_, err := Load(ctx, format.NewReader(strings.NewReader(in)), opts)
	if !errors.Is(err, ErrTargetNotEmpty) || !strings.Contains(err.Error(), "db 5 has 1 keys") {
		t.Fatalf("err = %v", err)
	}
}

func TestRecordForUnlistedDatabaseIsChecked(t *testing.T) {
	s := redistest.Start(t)
	ctx := context.Background()
	redistest.Client(t, s, 7).Set(ctx, "there", "already", 0)
	in := handWritten(`{"format":"crs","version":1,"databases":[{"db":0,"keys":1}]}`,
		`{"db":0,"key":"k","type":"string","value":"v"}`,
		`{"db":7,"key":"k","type":"string","value":"v"}`)
	opts := NewOptions()
	opts.Conn.URL = s.URL
	_, err := Load(ctx, format.NewReader(strings.NewReader(in)), opts)
	if !errors.Is(err, ErrTargetNotEmpty) || !strings.Contains(err.Error(), "db 7 has 1 keys") {
		t.Fatalf("err = %v", err)
	}
	if v, _ := redistest.Client(t, s, 7).Get(ctx, "there").Result(); v != "already" {
		t.Errorf("db 7 touched: %q", v)
	}
}

func TestTargetRefusalNamesKeyAndLine(t *testing.T) {
	// A target that refuses writes (here: out of memory) gives one error
	// naming the line and key, and the summary counts what was written.
	s := redistest.Start(t, "--maxmemory", "1mb", "--maxmemory-policy", "noeviction")
	big := strings.Repeat("x", 100_000)
	lines := []string{`{"format":"crs","version":1}`}
	for i := 0; i < 40; i++ {
		lines = append(lines, fmt.Sprintf(`{"db":0,"key":"k%02d","type":"string","value":"%s"}`, i, big))
	}
	opts := NewOptions()
	opts.Conn.URL = s.URL
	opts.Concurrency = 1
	var stderr bytes.Buffer
	err := Run(context.Background(), opts, stdinInput(strings.NewReader(handWritten(lines...))), &stderr)
	var ke *KeyError
	if !errors.As(err, &ke) || !strings.Contains(err.Error(), "OOM") {
		t.Fatalf("err = %v", err)
	}
	if ke.Line < 2 || ke.Key != fmt.Sprintf("k%02d", ke.Line-2) {
		t.Errorf("error names line %d key %q", ke.Line, ke.Key)
	}
	if !strings.Contains(stderr.String(), "FAILED after writing") {
		t.Errorf("summary: %s", stderr.String())
	}
}

// TestDuplicateKeyInMemoryAndOnDisk: a key in the dump twice fails the
// load naming the later line, whether the first was remembered in memory
// (then before the second is written) or past the memory limit, on disk
// (then at the end, after both were written).
func TestDuplicateKeyInMemoryAndOnDisk(t *testing.T) {
	for _, tt := range []struct {
		name      string
		limit     int
		dupAt     int // the key repeated (k<dupAt> again after k199)
		onDisk    bool
		wantLines string
	}{
		{"first in memory", 1000, 150, false, "line 202"},
		{"first past the limit", 50, 150, true, "line 202"},
		{"first among the ones in memory, second past it", 50, 10, true, "line 202"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := redistest.Start(t)
			ctx := context.Background()
			lines := []string{`{"format":"crs","version":1,"databases":[{"db":0,"keys":201}]}`}
			for i := 0; i < 200; i++ {
				lines = append(lines, fmt.Sprintf(`{"db":0,"key":"k%d","type":"list","value":["a"]}`, i))
			}
			lines = append(lines, fmt.Sprintf(`{"db":0,"key":"k%d","type":"list","value":["a"]}`, tt.dupAt))
			opts := NewOptions()
			opts.Conn.URL = s.URL
			opts.SeenLimit = tt.limit
			// By commands, the second write of a key succeeds: only the
			// set of keys seen finds it (by RESTORE, the target refuses it
			// first: TestDuplicateKeyRefusedByRestore).
			opts.LoadBy = LoadByCommands
			st, err := Load(ctx, format.NewReader(strings.NewReader(handWritten(lines...))), opts)
			if !errors.Is(err, ErrDuplicateKey) || !strings.Contains(err.Error(), tt.wantLines) || !strings.Contains(err.Error(), fmt.Sprintf(`"k%d"`, tt.dupAt)) {
				t.Fatalf("err = %v", err)
			}
			if onDisk := strings.Contains(err.Error(), "loaded twice"); onDisk != tt.onDisk {
				t.Errorf("found at the end: %v, want %v (%v)", onDisk, tt.onDisk, err)
			}
			if tt.onDisk && st.Deferred != int64(201-tt.limit) {
				t.Errorf("keys checked on disk: %d, want %d", st.Deferred, 201-tt.limit)
			}
		})
	}
}

// TestDuplicateKeyRefusedByRestore: a key repeated past the keys kept in
// memory is refused as a duplicate, named: by the target, whose RESTORE
// finds it there, or by the check at the end of the input, whichever
// comes first.
func TestDuplicateKeyRefusedByRestore(t *testing.T) {
	s := redistest.Start(t)
	lines := []string{`{"format":"crs","version":1,"databases":[{"db":0,"keys":201}]}`}
	for i := 0; i < 200; i++ {
		lines = append(lines, fmt.Sprintf(`{"db":0,"key":"k%d","type":"list","value":["a"]}`, i))
	}
	lines = append(lines, `{"db":0,"key":"k150","type":"list","value":["a"]}`)
	opts := NewOptions()
	opts.Conn.URL = s.URL
	opts.SeenLimit = 50
	_, err := Load(context.Background(), format.NewReader(strings.NewReader(handWritten(lines...))), opts)
	if !errors.Is(err, ErrDuplicateKey) || !strings.Contains(err.Error(), `"k150"`) {
		t.Fatalf("err = %v", err)
	}
}

// stdinInput is r as standard input, as crsload reads it.
func stdinInput(r io.Reader) records.Input {
	spec := pick.NewSpec()
	spec.File, spec.Stdin = "-", r
	return pick.Open(context.Background(), spec)
}

// fileInput is the dump file at path.
func fileInput(path string) records.Input {
	spec := pick.NewSpec()
	spec.File = path
	return pick.Open(context.Background(), spec)
}

// TestRouteHash pins routeHash to FNV-1a of the database, a 0 byte and
// the key: a resumed load must send each key to the writer it went to.
func TestRouteHash(t *testing.T) {
	for _, c := range []struct {
		db  int
		key string
	}{{0, ""}, {0, "k"}, {15, "client_keys:12345"}, {3, "\xff\x00bytes"}} {
		h := fnv.New64a()
		h.Write([]byte(strconv.Itoa(c.db)))
		h.Write([]byte{0})
		h.Write([]byte(c.key))
		if got, want := routeHash(c.db, c.key), h.Sum64(); got != want {
			t.Errorf("db %d key %q: %x, want %x", c.db, c.key, got, want)
		}
	}
}
