package redisdump

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
	"github.com/crs-tool/crs/records"
)

var update = flag.Bool("update", false, "rewrite the golden files")

const nowMs = 1764000000000

// convert reads a redis-dump file into a crs dump.
func convert(t testing.TB, in []byte) ([]byte, records.Stats, error) {
	t.Helper()
	var out bytes.Buffer
	st, err := New(bytes.NewReader(in), "f.json", nowMs).Dump(context.Background(), format.NewWriter(&out), nil)
	return out.Bytes(), st, err
}

// TestGolden converts the files the gem wrote (testdata/foreign at the
// root, with how they were made) and compares them with the crs dumps
// they must become: the same keys, values and scores, the base64 of -b
// decoded, raw bytes that are not UTF-8 kept.
func TestGolden(t *testing.T) {
	for _, name := range []string{"redis-dump.json", "redis-dump-b64.json"} {
		t.Run(name, func(t *testing.T) {
			in, err := os.ReadFile(filepath.Join("..", "..", "testdata", "foreign", name))
			if err != nil {
				t.Fatal(err)
			}
			got, _, err := convert(t, in)
			if err != nil {
				t.Fatal(err)
			}
			golden := filepath.Join("testdata", strings.TrimSuffix(name, ".json")+".golden.jsonl")
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
				t.Errorf("got\n%s\nwant\n%s", got, want)
			}
		})
	}
}

// withoutSource drops the header and trailer, which name the file.
func withoutSource(b []byte) []byte {
	lines := bytes.Split(bytes.TrimSpace(b), []byte("\n"))
	if len(lines) < 2 {
		return nil
	}
	return bytes.Join(lines[1:len(lines)-1], []byte("\n"))
}

func TestRecords(t *testing.T) {
	tests := []struct {
		name, in string
		want     string // the record line, or
		wantErr  string // an error naming this
		check    func(t *testing.T, st records.Stats)
	}{
		{name: "a string, no expiry", in: `{"db":0,"key":"k","ttl":-1,"type":"string","value":"v","size":1}`,
			want: `{"db":0,"key":"k","type":"string","value":"v"}`},
		{name: "a relative ttl counts from when the file is read",
			in:   `{"db":3,"key":"k","ttl":10,"type":"string","value":"v","size":1}`,
			want: `{"db":3,"key":"k","type":"string","expire_at_ms":1764000010000,"value":"v"}`,
			check: func(t *testing.T, st records.Stats) {
				if st.RelativeTTL != 1 {
					t.Errorf("RelativeTTL = %d", st.RelativeTTL)
				}
			}},
		{name: "raw bytes that are not UTF-8 are kept", in: "{\"db\":0,\"key\":\"b\",\"ttl\":-1,\"type\":\"string\",\"value\":\"\xff\\u0000\",\"size\":2}",
			want: `{"db":0,"enc":"base64","key":"Yg==","type":"string","value":"/wA="}`},
		{name: "base64 of -b, of exactly the size recorded", in: `{"db":0,"key":"k","ttl":-1,"type":"string","value":"aGk=\n","size":2}`,
			want: `{"db":0,"key":"k","type":"string","value":"hi"}`},
		{name: "text that looks like base64 but is not of its size stays text", in: `{"db":0,"key":"k","ttl":-1,"type":"string","value":"aGk=\n","size":5}`,
			want: `{"db":0,"key":"k","type":"string","value":"aGk=\n"}`},
		{name: "zset scores exactly", in: `{"db":0,"key":"z","ttl":-1,"type":"zset","value":[["a",0.1],["t",1.0e-300]],"size":3}`,
			want: `{"db":0,"key":"z","type":"zset","value":[["a",0.1],["t",1e-300]]}`},
		{name: "a hash, fields in order", in: `{"db":0,"key":"h","ttl":-1,"type":"hash","value":{"b":"2","a":"1"},"size":4}`,
			want: `{"db":0,"key":"h","type":"hash","value":{"a":"1","b":"2"}}`},
		{name: "a key gone between KEYS and TYPE is counted, not written", in: `{"db":0,"key":"g","ttl":-2,"type":"none","value":"","size":0}`,
			check: func(t *testing.T, st records.Stats) {
				if st.Vanished != 1 {
					t.Errorf("Vanished = %d", st.Vanished)
				}
			}},
		{name: "a type the gem never writes", in: `{"db":0,"key":"s","ttl":-1,"type":"stream","value":[],"size":0}`,
			wantErr: `line 1: key "s": not a redis-dump record: type "stream"`},
		{name: "not JSON", in: `{"db":0,"key":`, wantErr: "line 1: not a redis-dump record"},
		{name: "the second line is cut", in: "{\"db\":0,\"key\":\"k\",\"ttl\":-1,\"type\":\"string\",\"value\":\"v\",\"size\":1}\n{\"db\":0,\"key\":\"x\",\"ttl\":-1,\"type\":\"list\",\"value\":[\"a\"",
			wantErr: "line 2: not a redis-dump record"},
		{name: "a zset member without its score", in: `{"db":0,"key":"z","ttl":-1,"type":"zset","value":[["a"]],"size":1}`,
			wantErr: "not a [member, score] pair"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, st, err := convert(t, []byte(tt.in))
			if tt.wantErr != "" {
				var pe *format.ParseError
				if !errors.As(err, &pe) || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got %v, want a line error with %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := string(withoutSource(out)); got != tt.want {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
			if tt.check != nil {
				tt.check(t, st)
			}
		})
	}
}

// FuzzSource: any input converts or fails with a line error; what it
// converts is a dump that reads back whole.
func FuzzSource(f *testing.F) {
	for _, name := range []string{"redis-dump.json", "redis-dump-b64.json"} {
		if b, err := os.ReadFile(filepath.Join("..", "..", "testdata", "foreign", name)); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte(`{"db":0,"key":"z","ttl":5,"type":"zset","value":[["a","inf"]],"size":1}`))
	f.Fuzz(func(t *testing.T, in []byte) {
		out, _, err := convert(t, in)
		if err != nil {
			var pe *format.ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("not a line error: %v", err)
			}
			return
		}
		r := format.NewReader(bytes.NewReader(out))
		if _, err := r.Header(); err != nil {
			t.Fatal(err)
		}
		for {
			_, err := r.Read()
			if err != nil {
				if err.Error() != "EOF" {
					t.Fatalf("the converted dump does not read back: %v", err)
				}
				return
			}
		}
	})
}
