package stats

import (
	"bytes"
	"context"
	"fmt"
	"reflect"
	"testing"

	"github.com/crs-tool/crs/format"
	"github.com/crs-tool/crs/records"
)

func TestMatch(t *testing.T) {
	for _, tt := range []struct {
		pattern, key string
		want         bool
	}{
		{"*", "", true}, {"*", "a/b:c", true}, {"client_keys:*", "client_keys:sk-1", true},
		{"client_keys:*", "client_key:sk-1", false}, {"*_pool:*", "high_pool:slots:a", true},
		{"h?llo", "hello", true}, {"h?llo", "hllo", false}, {"h[ae]llo", "hallo", true},
		{"h[^e]llo", "hello", false}, {"h[a-c]llo", "hbllo", true}, {"h[a-c]llo", "hdllo", false},
		{`a\*b`, "a*b", true}, {`a\*b`, "axb", false}, {"**x", "abx", true}, {"a*", "b", false},
	} {
		if got := records.Glob(tt.pattern, tt.key); got != tt.want {
			t.Errorf("Match(%q, %q) = %v, want %v", tt.pattern, tt.key, got, tt.want)
		}
	}
}

// TestPatternsStayBounded feeds keys that are ids (no ':'), prefixed ids,
// and keys of many segments, and checks the patterns found and that the
// shapes remembered stay few.
func TestPatternsStayBounded(t *testing.T) {
	var buf bytes.Buffer
	w := format.NewWriter(&buf)
	if err := w.WriteHeader(format.Header{}); err != nil {
		t.Fatal(err)
	}
	add := func(key string) {
		if err := w.Write(&format.Record{Key: key, Type: format.TypeString, Str: "v"}); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 5000; i++ {
		add(fmt.Sprintf("%08x", i*7919))
		if i < 3000 {
			add(fmt.Sprintf("client_keys:sk-%d", i))
		}
		if i < 100 {
			add(fmt.Sprintf("a:b:c:d:e:f:g:h:i:j:k:l:m:n:o:p:q:r:s:%d", i))
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	dbs, err := Collect(context.Background(), format.NewReader(&buf), NewOptions())
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int64{}
	for _, p := range dbs[0].Patterns {
		got[p.Pattern] = p.Keys
	}
	want := map[string]int64{"*": 5000, "client_keys:*": 3000, "a:b:c:d:e:f:g:h:i:j:k:l:m:n:o:p:*": 100}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("patterns %v, want %v", got, want)
	}
	if n := len(dbs[0].shapes); n > 3 {
		t.Errorf("%d shapes remembered", n)
	}
}
