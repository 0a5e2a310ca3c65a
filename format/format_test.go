package format_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/crs-tool/crs/format"
)

var update = flag.Bool("update", false, "rewrite the golden files in ../testdata")

var allBytes = func() string {
	b := make([]byte, 256)
	for i := range b {
		b[i] = byte(i)
	}
	return string(b)
}()

var header = format.Header{
	Version:       1,
	CreatedMs:     1764000000123,
	Source:        "127.0.0.1:6380",
	ServerVersion: "7.0.15",
	Engine:        "redis",
	Databases:     []format.Database{{DB: 0, Keys: 10}, {DB: 15, Keys: 1}},
	MemoryBytes:   1 << 20,
}

// headerNoFE is a header from a source without hash field expiry.
var headerNoFE = format.Header{Version: 1, CreatedMs: 5, Source: "h:1", Engine: "redis", Databases: []format.Database{}, NoFieldExpiry: true}

// records covers every value shape and the byte strings JSON tools lose.
var records = []*format.Record{
	{DB: 0, Key: "client_keys:sk-cli-v1-8d56", Type: format.TypeHash, Hash: []format.Field{{"tier", "high"}, {"created", "1764000000"}, {"", ""}}},
	{DB: 0, Key: "high_pool:slots:acct1", Type: format.TypeString, Str: "3"},
	{DB: 0, Key: "high_rate_limit:k:m:window", Type: format.TypeString, Str: "007", ExpireAtMs: 1764000060123},
	{DB: 0, Key: "", Type: format.TypeString, Str: ""},
	{DB: 0, Key: "minus-zero", Type: format.TypeString, Str: "-0"},
	{DB: 0, Key: "unicode:ключ:😀", Type: format.TypeString, Str: "line\u2028sep\u2029 \"q\" \\ \n\r\t\x00\x1f\x7f é"},
	{DB: 0, Key: "bytes", Type: format.TypeString, Str: allBytes},
	{DB: 0, Key: "invalid\xffkey", Type: format.TypeList, Elems: []string{"a", "", "a"}},
	{DB: 0, Key: "set", Type: format.TypeSet, Elems: []string{"1", "2", "three"}},
	{DB: 0, Key: "binary-hash", Type: format.TypeHash, Hash: []format.Field{{"\xfe", "\xff"}, {"ok", "fine"}}},
	{DB: 0, Key: "scores", Type: format.TypeZSet, ZSet: []format.Member{
		{"-inf", math.Inf(-1)}, {"neg", -2.5e-10}, {"zero", 0}, {"subnormal", 5e-324}, {"tenth", 0.1},
		{"third", 1.0 / 3}, {"tie-a", 1}, {"tie-b", 1}, {"ts", 1764000000123}, {"2^53+1", 9007199254740993},
		{"e21", 1e21}, {"max", math.MaxFloat64}, {"inf", math.Inf(1)},
	}},
	{DB: 15, Key: "db15", Type: format.TypeZSet, ExpireAtMs: 1, ZSet: []format.Member{{"\x00", 1}}},
	{DB: 0, Key: "session", Type: format.TypeHash, Hash: []format.Field{{"token", "t"}, {"user", "u"}},
		FieldExpire: []format.FieldExpiry{{Field: "token", AtMs: 1764000099000}}},
	{DB: 0, Key: "doc:1", Type: "ReJSON-RL", RDBVersion: 10, Dump: "\x07\x81\x00payload\x0a\x00crc64...", ExpireAtMs: 1764000060123},
	{DB: 0, Key: "events", Type: format.TypeStream, Stream: &format.Stream{
		Entries: []format.StreamEntry{
			{ID: "1764000000000-0", Fields: []string{"user", "u1", "action", "login"}},
			{ID: "1764000000000-1", Deleted: true},
			{ID: "1764000000000-2", Fields: []string{"f", "v", "f", "repeated"}},
		},
		LastID: "1764000000000-5", EntriesAdded: 6, MaxDeletedID: "1764000000000-4",
		Groups: []format.Group{
			{Name: "workers", LastDeliveredID: "1764000000000-1", EntriesRead: 2,
				Consumers: []format.Consumer{{Name: "w1", SeenTimeMs: 1764000000500, ActiveTimeMs: 1764000000400}, {Name: "idle", SeenTimeMs: 1764000000100}},
				Pending:   []format.Pending{{ID: "1764000000000-0", Consumer: "w1", DeliveryTimeMs: 1764000000400, DeliveryCount: 3}, {ID: "1764000000000-1", Consumer: "w1", DeliveryTimeMs: 1764000000401, DeliveryCount: 1}}},
			{Name: "new", LastDeliveredID: "0-0", EntriesRead: -1, Consumers: []format.Consumer{}, Pending: []format.Pending{}},
		},
	}},
	{DB: 0, Key: "emptied", Type: format.TypeStream, Stream: &format.Stream{
		LastID: "5-0", EntriesAdded: 5, MaxDeletedID: "5-0",
		Groups: []format.Group{{Name: "g\xff", LastDeliveredID: "5-0", EntriesRead: 5, Consumers: []format.Consumer{}, Pending: []format.Pending{}}},
	}},
	{DB: 0, Key: "idempotent", Type: format.TypeStream, Stream: &format.Stream{
		Entries: []format.StreamEntry{{ID: "7-0", Deleted: true}, {ID: "7-1", Fields: []string{"n", "1"}}},
		LastID:  "7-1", EntriesAdded: 2, MaxDeletedID: "7-0",
		IDMP: &format.IDMP{Duration: 600, MaxSize: 50, Tracked: 2, Added: 3, Duplicates: 1, Producers: []format.Producer{
			{PID: "p1", IIDs: []format.TrackedID{{IID: "i1", ID: "7-0"}, {IID: "i2", ID: "7-1"}}}}},
	}},
	{DB: 0, Key: "idempotent-binary", Type: format.TypeStream, Stream: &format.Stream{
		Entries: []format.StreamEntry{{ID: "8-1", Fields: []string{"n", "1"}}},
		LastID:  "8-1", EntriesAdded: -1,
		IDMP: &format.IDMP{Duration: 100, MaxSize: 100, Tracked: 1, Added: -1, Duplicates: -1, Producers: []format.Producer{
			{PID: "p\xff", IIDs: []format.TrackedID{{IID: "\x00i", ID: "8-1"}}}}},
	}},
	{DB: 0, Key: "idempotent-unread", Type: format.TypeStream, Stream: &format.Stream{
		Entries: []format.StreamEntry{{ID: "9-1", Fields: []string{"n", "1"}}},
		LastID:  "9-1", EntriesAdded: 1,
		IDMP: &format.IDMP{Duration: 100, MaxSize: 100, Tracked: 4, Added: 4, Duplicates: 0},
	}},
	{DB: 0, Key: "vectors", Type: format.TypeVectorSet, VectorSet: &format.VectorSet{Quant: "int8", Dim: 3, M: 16, Elements: []format.VectorElement{
		{Name: "a", Vector: []float32{0.10393701, 1.2, -0.5007874}},
		{Name: "b", Vector: []float32{1e-30, 3.4028235e38, -0}, Attr: `{"genre":"jazz","year":1959}`},
	}}},
	{DB: 0, Key: "vectors\xff", Type: format.TypeVectorSet, Part: 1, More: true, VectorSet: &format.VectorSet{Quant: "bin", Dim: 2, M: 8, Elements: []format.VectorElement{
		{Name: "\xfe", Vector: []float32{1, -1}},
	}}},
	{DB: 0, Key: "vectors\xff", Type: format.TypeVectorSet, Part: 2, VectorSet: &format.VectorSet{Elements: []format.VectorElement{
		{Name: "c", Vector: []float32{-1, 1}, Attr: "{}"},
	}}},
	{DB: 0, Key: "big-list", Type: format.TypeList, Part: 1, More: true, ExpireAtMs: 1764000060123, Elems: []string{"a", "b"}},
	{DB: 0, Key: "big-list", Type: format.TypeList, Part: 2, More: true, Elems: []string{"c"}},
	{DB: 0, Key: "big-list", Type: format.TypeList, Part: 3, Elems: []string{"d", "\xff"}},
	{DB: 0, Key: "big-stream", Type: format.TypeStream, Part: 1, More: true, Stream: &format.Stream{EntriesAdded: -1,
		Entries: []format.StreamEntry{{ID: "1-0", Fields: []string{"a", "1"}}}}},
	{DB: 0, Key: "big-stream", Type: format.TypeStream, Part: 2, Stream: &format.Stream{LastID: "2-0", EntriesAdded: 2,
		Entries: []format.StreamEntry{{ID: "2-0", Fields: []string{"b", "2"}}},
		Groups:  []format.Group{{Name: "g", LastDeliveredID: "2-0", EntriesRead: 2, Consumers: []format.Consumer{{Name: "c", SeenTimeMs: 7}}, Pending: []format.Pending{{ID: "2-0", Consumer: "c", DeliveryTimeMs: 7, DeliveryCount: 1}}}}}},
}

func encode(t testing.TB, h format.Header, recs []*format.Record) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := format.NewWriter(&buf)
	if err := w.WriteHeader(h); err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		if err := w.Write(r); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func decode(t testing.TB, b []byte) (format.Header, []*format.Record, error) {
	t.Helper()
	r := format.NewReader(bytes.NewReader(b))
	h, err := r.Header()
	if err != nil {
		return h, nil, err
	}
	var recs []*format.Record
	for {
		rec, err := r.Read()
		if err == io.EOF {
			return h, recs, nil
		}
		if err != nil {
			return h, recs, err
		}
		recs = append(recs, rec)
	}
}

func TestRoundTrip(t *testing.T) {
	b := encode(t, header, records)
	h, got, err := decode(t, b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(h, header) {
		t.Errorf("header %+v, want %+v", h, header)
	}
	if len(got) != len(records) {
		t.Fatalf("%d records, want %d", len(got), len(records))
	}
	for i := range records {
		if !reflect.DeepEqual(got[i], records[i]) {
			t.Errorf("record %d:\n got %+v\nwant %+v", i, got[i], records[i])
		}
		// The sign of zero survives too.
		for j, m := range got[i].ZSet {
			if math.Signbit(m.Score) != math.Signbit(records[i].ZSet[j].Score) {
				t.Errorf("record %d member %d: sign of %v lost", i, j, m.Score)
			}
		}
	}
}

func TestGolden(t *testing.T) {
	golden := filepath.Join("..", "testdata", "golden-v1.jsonl")
	b := encode(t, header, records)
	if *update {
		if err := os.WriteFile(golden, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, want) {
		t.Errorf("encoding differs from %s (run go test ./format -update if the change is intended):\n%s", golden, b)
	}
	// Every line is valid JSON that encoding/json also reads, and only the
	// records holding invalid UTF-8 use base64.
	for i, line := range bytes.Split(bytes.TrimSpace(want), []byte("\n")) {
		if !jsonValid(line) {
			t.Errorf("line %d is not valid JSON: %s", i+1, line)
		}
		isB64 := bytes.Contains(line, []byte(`"enc":"base64"`))
		wantB64 := i >= 1 && i <= len(records) && !validUTF8(records[i-1])
		if isB64 != wantB64 {
			t.Errorf("line %d: base64 %v, want %v: %s", i+1, isB64, wantB64, line)
		}
	}
}

func TestHeaderFieldExpiry(t *testing.T) {
	b := encode(t, headerNoFE, records[:1])
	if !bytes.Contains(b, []byte(`,"field_expiry":false}`)) {
		t.Errorf("header: %s", b)
	}
	h, _, err := decode(t, b)
	if err != nil || !reflect.DeepEqual(h, headerNoFE) {
		t.Errorf("header %+v (%v), want %+v", h, err, headerNoFE)
	}
}

func TestScoreText(t *testing.T) {
	for _, tt := range []struct {
		score float64
		want  string
	}{
		{0.1, `0.1`}, {1.0 / 3, `0.3333333333333333`}, {5e-324, `5e-324`}, {math.MaxFloat64, `1.7976931348623157e+308`},
		{9007199254740993, `9007199254740992`}, {1e21, `1e+21`}, {1e-7, `1e-7`}, {0.000001, `0.000001`},
		{math.Copysign(0, -1), `-0`}, {math.Inf(1), `"inf"`}, {math.Inf(-1), `"-inf"`}, {-12.5, `-12.5`},
	} {
		b := encode(t, header, []*format.Record{{Key: "z", Type: format.TypeZSet, ZSet: []format.Member{{"m", tt.score}}}})
		want := fmt.Sprintf(`"value":[["m",%s]]}`, tt.want)
		if !bytes.Contains(b, []byte(want)) {
			t.Errorf("score %v: want %s in\n%s", tt.score, want, b)
		}
	}
}

func TestWriterRejects(t *testing.T) {
	for _, rec := range []*format.Record{
		{Key: "k", Type: "stream"},
		{Key: "k", Type: "nope"},
		{Key: "k", Type: format.TypeZSet, ZSet: []format.Member{{"m", math.NaN()}}},
		{Key: "k", DB: -1, Type: format.TypeString},
	} {
		w := format.NewWriter(io.Discard)
		w.WriteHeader(header)
		if err := w.Write(rec); err == nil {
			t.Errorf("Write(%+v) succeeded", rec)
		}
	}
}

// line builds a dump from a header line and record lines, with a correct
// trailer, so that each bad-input case tests only what it means to.
func dumpOf(lines ...string) string {
	return strings.Join(lines, "\n") + "\n"
}

const hdr = `{"format":"crs","version":1,"created_ms":1}`

func TestReaderErrors(t *testing.T) {
	good := string(encode(t, header, records[:2]))
	goodLines := strings.SplitAfter(good, "\n")
	tests := []struct {
		name  string
		input string
		line  int
		err   error
		text  string
	}{
		{"empty input", "", 1, format.ErrNotDump, "empty"},
		{"random bytes", "\x89PNG\r\n\x1a\n\x00\x00", 1, format.ErrNotDump, ""},
		{"plain JSON file", `{"users":[1,2,3]}` + "\n", 1, format.ErrNotDump, `format is ""`},
		{"JSON array", "[1,2]\n", 1, format.ErrNotDump, "not a JSON object"},
		{"newer version", `{"format":"crs","version":2}` + "\n", 1, format.ErrVersion, "version 2"},
		{"header without newline", hdr, 1, format.ErrNotDump, "no newline"},
		{"truncated: no trailer", goodLines[0] + goodLines[1], 3, format.ErrTruncated, "after 1 records"},
		{"truncated mid-line", goodLines[0] + goodLines[1][:20], 2, format.ErrTruncated, "no newline"},
		{"not JSON", dumpOf(hdr, `this is not json`), 2, format.ErrRecord, "not a JSON object"},
		{"broken JSON", dumpOf(hdr, `{"db":0,"key":"k",`), 2, format.ErrSyntax, ""},
		{"missing key", dumpOf(hdr, `{"db":0,"type":"string","value":"v"}`), 2, format.ErrRecord, `missing field "key"`},
		{"missing db", dumpOf(hdr, `{"key":"k","type":"string","value":"v"}`), 2, format.ErrRecord, `missing field "db"`},
		{"db is a string", dumpOf(hdr, `{"db":"0","key":"k","type":"string","value":"v"}`), 2, format.ErrRecord, `"db" must be`},
		{"key is a number", dumpOf(hdr, `{"db":0,"key":7,"type":"string","value":"v"}`), 2, format.ErrRecord, `"key" must be a string`},
		{"unknown type", dumpOf(hdr, `{"db":0,"key":"k","type":"bitmap","value":"v"}`), 2, format.ErrRecord, `unknown type "bitmap"`},
		{"unknown field", dumpOf(hdr, `{"db":0,"key":"k","type":"string","value":"v","ttl":5}`), 2, format.ErrRecord, `unknown field "ttl"`},
		{"part 2 first", dumpOf(hdr, `{"db":0,"key":"k","type":"list","part":2,"value":["a"]}`), 2, format.ErrRecord, "without the parts before it"},
		{"parts interleaved", dumpOf(hdr, `{"db":0,"key":"k","type":"list","part":1,"more":true,"value":["a"]}`, `{"db":0,"key":"x","type":"list","value":["a"]}`), 3, format.ErrRecord, `expected part 2 of key "k"`},
		{"ends inside a key", dumpOf(hdr, `{"db":0,"key":"k","type":"list","part":1,"more":true,"value":["a"]}`), 3, format.ErrTruncated, `inside key "k"`},
		{"trailer inside a key", dumpOf(hdr, `{"db":0,"key":"k","type":"list","part":1,"more":true,"value":["a"]}`, `{"end":true,"records":1,"keys":1,"crc32c":"00000000"}`), 3, format.ErrTruncated, `last part of key "k"`},
		{"more without part", dumpOf(hdr, `{"db":0,"key":"k","type":"list","more":true,"value":["a"]}`), 2, format.ErrRecord, `"more" must be true`},
		{"expiry on part 2", dumpOf(hdr, `{"db":0,"key":"k","type":"list","part":1,"more":true,"value":["a"]}`, `{"db":0,"key":"k","type":"list","part":2,"expire_at_ms":5,"value":["a"]}`), 3, format.ErrRecord, "only the first part"},
		{"dump with value", dumpOf(hdr, `{"db":0,"key":"k","type":"ReJSON-RL","rdb_version":10,"dump":"AAE=","value":"x"}`), 2, format.ErrRecord, `no "value"`},
		{"dump of a native type", dumpOf(hdr, `{"db":0,"key":"k","type":"hash","rdb_version":10,"dump":"AAE="}`), 2, format.ErrRecord, `found "hash"`},
		{"dump without rdb_version", dumpOf(hdr, `{"db":0,"key":"k","type":"ReJSON-RL","dump":"AAE="}`), 2, format.ErrRecord, `missing field "rdb_version"`},
		{"rdb_version without dump", dumpOf(hdr, `{"db":0,"key":"k","type":"string","rdb_version":10,"value":""}`), 2, format.ErrRecord, `without "dump"`},
		{"module type without dump", dumpOf(hdr, `{"db":0,"key":"k","type":"ReJSON-RL","value":""}`), 2, format.ErrRecord, `needs "dump"`},
		{"field expiry of a missing field", dumpOf(hdr, `{"db":0,"key":"k","type":"hash","field_expire_at_ms":{"b":5},"value":{"a":"1"}}`), 2, format.ErrRecord, `field "b" has an expiry but is not in the value`},
		{"field expiry on a list", dumpOf(hdr, `{"db":0,"key":"k","type":"list","field_expire_at_ms":{"b":5},"value":["b"]}`), 2, format.ErrRecord, `on a list`},
		{"group without last_delivered_id", dumpOf(hdr, `{"db":0,"key":"s","type":"stream","value":{"last_id":"1-0","groups":[{"name":"g"}]}}`), 2, format.ErrRecord, "no last_delivered_id"},
		{"dump with an empty type", dumpOf(hdr, `{"db":0,"key":"","type":"","rdb_version":0,"dump":"0000"}`), 2, format.ErrRecord, "type name"},
		{"negative memory_bytes", dumpOf(`{"format":"crs","version":1,"memory_bytes":-1}`), 1, format.ErrNotDump, "negative"},
		{"field expiry despite header", dumpOf(`{"format":"crs","version":1,"field_expiry":false}`, `{"db":0,"key":"k","type":"hash","field_expire_at_ms":{"a":5},"value":{"a":"1"}}`), 2, format.ErrRecord, "says it has none"},
		{"stream bad ID", dumpOf(hdr, `{"db":0,"key":"k","type":"stream","value":{"entries":[["1-x",["f","v"]]]}}`), 2, format.ErrRecord, `"1-x" is not a stream ID`},
		{"stream odd fields", dumpOf(hdr, `{"db":0,"key":"k","type":"stream","value":{"entries":[["1-1",["f"]]]}}`), 2, format.ErrRecord, "at least one pair"},
		{"stream unknown field", dumpOf(hdr, `{"db":0,"key":"k","type":"stream","value":{"length":3}}`), 2, format.ErrRecord, `unknown stream field "length"`},
		{"stream pending short", dumpOf(hdr, `{"db":0,"key":"k","type":"stream","value":{"groups":[{"name":"g","pending":[["1-1","c",5]]}]}}`), 2, format.ErrRecord, "[id, consumer, delivery ms, count]"},
		{"group without name", dumpOf(hdr, `{"db":0,"key":"k","type":"stream","value":{"groups":[{"last_delivered_id":"0-0"}]}}`), 2, format.ErrRecord, "no name"},
		{"wrong shape", dumpOf(hdr, `{"db":0,"key":"k","type":"list","value":"v"}`), 2, format.ErrRecord, "must be an array of strings, found a string"},
		{"hash as array", dumpOf(hdr, `{"db":0,"key":"k","type":"hash","value":["a"]}`), 2, format.ErrRecord, "must be an object"},
		{"duplicate hash field", dumpOf(hdr, `{"db":0,"key":"k","type":"hash","value":{"a":"1","a":"2"}}`), 2, format.ErrRecord, `field "a" appears twice`},
		{"empty list", dumpOf(hdr, `{"db":0,"key":"k","type":"list","value":[]}`), 2, format.ErrRecord, "empty list"},
		{"bad base64", dumpOf(hdr, `{"db":0,"enc":"base64","key":"!!","type":"string","value":""}`), 2, format.ErrRecord, "not valid base64"},
		{"bad enc", dumpOf(hdr, `{"db":0,"enc":"hex","key":"k","type":"string","value":""}`), 2, format.ErrRecord, `"enc" must be`},
		{"score not a number", dumpOf(hdr, `{"db":0,"key":"k","type":"zset","value":[["m","1.5"]]}`), 2, format.ErrRecord, `score "1.5" is not a number`},
		{"score out of range", dumpOf(hdr, `{"db":0,"key":"k","type":"zset","value":[["m",1e999]]}`), 2, format.ErrRecord, "out of range"},
		{"zset pair too short", dumpOf(hdr, `{"db":0,"key":"k","type":"zset","value":[["m"]]}`), 2, format.ErrRecord, "found 1 items"},
		{"duplicate member", dumpOf(hdr, `{"db":0,"key":"k","type":"zset","value":[["m",1],["m",2]]}`), 2, format.ErrRecord, "appears twice"},
		{"vector set quantization", dumpOf(hdr, `{"db":0,"key":"k","type":"vectorset","value":{"quant":"q4","dim":1,"m":16,"elements":[["a",[1]]]}}`), 2, format.ErrRecord, `"q4" is not f32, int8 or bin`},
		{"vector set without m", dumpOf(hdr, `{"db":0,"key":"k","type":"vectorset","value":{"quant":"int8","dim":1,"elements":[["a",[1]]]}}`), 2, format.ErrRecord, `needs "quant", "dim" and "m"`},
		{"vector set parameters in a later part", dumpOf(hdr, `{"db":0,"key":"k","type":"vectorset","part":1,"more":true,"value":{"quant":"int8","dim":1,"m":16,"elements":[["a",[1]]]}}`, `{"db":0,"key":"k","type":"vectorset","part":2,"value":{"quant":"int8","elements":[["b",[1]]]}}`), 3, format.ErrRecord, "only a vector set's first part"},
		{"vector of another dim", dumpOf(hdr, `{"db":0,"key":"k","type":"vectorset","value":{"quant":"f32","dim":2,"m":16,"elements":[["a",[1,2]],["b",[1]]]}}`), 2, format.ErrRecord, "element 1 has 1 components, the set's dim is 2"},
		{"vector component out of range", dumpOf(hdr, `{"db":0,"key":"k","type":"vectorset","value":{"quant":"f32","dim":1,"m":16,"elements":[["a",[1e39]]]}}`), 2, format.ErrRecord, "out of range of a 32-bit float"},
		{"vector set element twice", dumpOf(hdr, `{"db":0,"key":"k","type":"vectorset","value":{"quant":"bin","dim":1,"m":16,"elements":[["a",[1]],["a",[-1]]]}}`), 2, format.ErrRecord, `element "a" appears twice`},
		{"vector set element too long", dumpOf(hdr, `{"db":0,"key":"k","type":"vectorset","value":{"quant":"bin","dim":1,"m":16,"elements":[["a",[1],"{}",1]]}}`), 2, format.ErrRecord, "more than three items"},
		{"empty vector set", dumpOf(hdr, `{"db":0,"key":"k","type":"vectorset","value":{"quant":"bin","dim":1,"m":16,"elements":[]}}`), 2, format.ErrRecord, "empty vectorset"},
		{"expiry not an integer", dumpOf(hdr, `{"db":0,"key":"k","type":"string","value":"v","expire_at_ms":1.5}`), 2, format.ErrRecord, `"expire_at_ms" must be`},
		{"expiry a string", dumpOf(hdr, `{"db":0,"key":"k","type":"string","value":"v","expire_at_ms":"1"}`), 2, format.ErrRecord, `"expire_at_ms" must be`},
		{"lone surrogate", dumpOf(hdr, `{"db":0,"key":"\ud800","type":"string","value":"v"}`), 2, format.ErrSyntax, "surrogate"},
		{"invalid UTF-8 in line", dumpOf(hdr, "{\"db\":0,\"key\":\"\xff\",\"type\":\"string\",\"value\":\"v\"}"), 2, format.ErrSyntax, "UTF-8"},
		{"field twice", dumpOf(hdr, `{"db":0,"db":1,"key":"k","type":"string","value":"v"}`), 2, format.ErrRecord, `"db" appears twice`},
		{"wrong count", dumpOf(hdr, `{"end":true,"records":1,"keys":1,"crc32c":"00000000"}`), 2, format.ErrChecksum, "counts 1 records, read 0"},
		{"wrong checksum", dumpOf(hdr, `{"end":true,"records":0,"keys":0,"crc32c":"00000000"}`), 2, format.ErrChecksum, "checksum"},
		{"data after trailer", good + goodLines[1], 5, format.ErrRecord, "after the trailer"},
		{"flipped byte", strings.Replace(good, "high", "hige", 1), 4, format.ErrChecksum, "checksum"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := decode(t, []byte(tt.input))
			var pe *format.ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("err = %v, want a *ParseError", err)
			}
			if pe.Line != tt.line {
				t.Errorf("line %d, want %d (%v)", pe.Line, tt.line, err)
			}
			if !errors.Is(err, tt.err) {
				t.Errorf("err = %v, want %v", err, tt.err)
			}
			if !strings.Contains(err.Error(), tt.text) {
				t.Errorf("err = %q, want it to mention %q", err, tt.text)
			}
		})
	}
}

func TestReaderMaxLineSize(t *testing.T) {
	r := format.NewReader(strings.NewReader(hdr + "\n" + strings.Repeat("x", 1000) + "\n"))
	r.MaxLineSize = 100
	_, err := r.Read()
	if !errors.Is(err, format.ErrLineTooLong) {
		t.Fatalf("err = %v", err)
	}
}

func TestReaderAcceptsOtherWriters(t *testing.T) {
	// Field order, white space, escapes and surrogate pairs another JSON
	// writer may produce; unknown header fields are ignored.
	in := dumpOf(
		`{ "version": 1, "format": "crs", "future_field": {"x": [1, 2]} }`,
		`{"value": {"f": "\u00e9\ud83d\ude00\/"}, "type": "hash", "key": "k", "db": 3, "expire_at_ms": 99}`,
		`{"value":["AAE=","/w=="],"type":"set","key":"/w==","enc":"base64","db":0}`,
	)
	b := []byte(in)
	// Append a trailer with the right checksum by computing it through a
	// reader that reports the mismatch.
	_, _, err := decode(t, append(b, `{"end":true,"records":2,"keys":2,"crc32c":"00000000"}`+"\n"...))
	var sum string
	if _, err := fmt.Sscanf(err.Error()[strings.Index(err.Error(), "computed ")+9:], "%8s", &sum); err != nil {
		t.Fatal(err)
	}
	_, recs, err := decode(t, append(b, `{"end":true,"records":2,"keys":2,"crc32c":"`+sum+`"}`+"\n"...))
	if err != nil {
		t.Fatal(err)
	}
	want := []*format.Record{
		{DB: 3, Key: "k", Type: format.TypeHash, ExpireAtMs: 99, Hash: []format.Field{{"f", "é😀/"}}},
		{DB: 0, Key: "\xff", Type: format.TypeSet, Elems: []string{"\x00\x01", "\xff"}},
	}
	if !reflect.DeepEqual(recs, want) {
		t.Errorf("got %+v\nwant %+v", recs, want)
	}
}

// FuzzReader feeds arbitrary input to the Reader: it must never panic,
// and every record it accepts must encode and decode back to itself.
func FuzzReader(f *testing.F) {
	f.Add(encode(f, header, records))
	f.Add([]byte(dumpOf(hdr, `{"db":0,"key":"k","type":"zset","value":[["m","inf"]]}`)))
	f.Add([]byte(dumpOf(hdr, `{"db":0,"enc":"base64","key":"/w==","type":"hash","value":{"AA==":""}}`)))
	f.Add([]byte(""))
	// Every header, record, stream-group and trailer member, whole and
	// cut at each line's middle, so that the fuzzer starts inside them.
	for _, seed := range memberSeeds(f) {
		f.Add(seed)
		for _, line := range bytes.SplitAfter(seed, []byte("\n")) {
			f.Add(line[:len(line)/2])
			if i := bytes.IndexByte(line, ':'); i > 0 {
				f.Add(line[:i+1])
			}
		}
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		r := format.NewReader(bytes.NewReader(in))
		r.MaxLineSize = 1 << 20
		var recs []*format.Record
		for {
			rec, err := r.Read()
			if err != nil {
				break
			}
			recs = append(recs, rec)
		}
		// A read that stopped inside a key in parts leaves that key
		// incomplete; re-encode only the complete keys.
		for len(recs) > 0 && recs[len(recs)-1].More {
			recs = recs[:len(recs)-1]
		}
		if len(recs) == 0 {
			return
		}
		_, again, err := decode(t, encode(t, header, recs))
		if err != nil {
			t.Fatalf("re-encoded records do not decode: %v", err)
		}
		for i := range recs {
			if !sameRecord(recs[i], again[i]) {
				t.Fatalf("record %d changed:\n%+v\n%+v", i, recs[i], again[i])
			}
		}
	})
}

func sameRecord(a, b *format.Record) bool {
	if len(a.ZSet) != len(b.ZSet) {
		return false
	}
	for i := range a.ZSet {
		if math.Float64bits(a.ZSet[i].Score) != math.Float64bits(b.ZSet[i].Score) {
			return false
		}
	}
	return reflect.DeepEqual(a, b)
}

func Example() {
	var buf bytes.Buffer
	w := format.NewWriter(&buf)
	w.WriteHeader(format.Header{CreatedMs: 1764000000000, Source: "127.0.0.1:6379", ServerVersion: "7.0.15", Engine: "redis"})
	w.Write(&format.Record{DB: 0, Key: "greeting", Type: format.TypeString, Str: "hello", ExpireAtMs: 1764000060000})
	w.Write(&format.Record{DB: 0, Key: "bin\xff", Type: format.TypeList, Elems: []string{"a"}})
	w.Close()
	fmt.Print(buf.String())

	r := format.NewReader(&buf)
	for {
		rec, err := r.Read()
		if err != nil {
			fmt.Println(err)
			break
		}
		fmt.Printf("%q %s\n", rec.Key, rec.Type)
	}
	// Output:
	// {"format":"crs","version":1,"created_ms":1764000000000,"source":"127.0.0.1:6379","server_version":"7.0.15","engine":"redis"}
	// {"db":0,"key":"greeting","type":"string","expire_at_ms":1764000060000,"value":"hello"}
	// {"db":0,"enc":"base64","key":"Ymlu/w==","type":"list","value":["YQ=="]}
	// {"end":true,"records":2,"keys":2,"crc32c":"4718d46a"}
	// "greeting" string
	// "bin\xff" list
	// EOF
}

func jsonValid(b []byte) bool { return json.Valid(b) }

func validUTF8(r *format.Record) bool {
	if r.Key == "emptied" || r.Key == "idempotent-binary" || r.Key == "big-list" && r.Part == 3 {
		return false // binary group name; binary producer ID; binary element
	}
	ss := []string{r.Key, r.Str}
	ss = append(ss, r.Elems...)
	for _, f := range r.Hash {
		ss = append(ss, f.Name, f.Value)
	}
	for _, m := range r.ZSet {
		ss = append(ss, m.Member)
	}
	for _, s := range ss {
		if !utf8.ValidString(s) {
			return false
		}
	}
	return true
}

// TestSpecExample reads the example of FORMAT.md §9, which must be a
// valid dump whose trailer matches.
func TestSpecExample(t *testing.T) {
	spec, err := os.ReadFile(filepath.Join("..", "FORMAT.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, section, _ := strings.Cut(string(spec), "## 9. Example")
	_, block, _ := strings.Cut(section, "```\n")
	block, _, _ = strings.Cut(block, "```")
	h, recs, err := decode(t, []byte(block))
	if err != nil {
		t.Fatalf("the example does not read: %v\n%s", err, block)
	}
	if len(recs) != 2 || recs[1].Key != "bin\xff" || recs[1].Elems[0] != "a" || len(h.Databases) != 1 {
		t.Errorf("the example reads as %+v %+v", h, recs)
	}
}
