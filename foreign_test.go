package main_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/crs-tool/crs/internal/e2e"
	"github.com/crs-tool/crs/internal/redistest"
)

// TestFilesOfOtherTools loads the files the tools crs replaces wrote
// (testdata/foreign, with how they were made) into a server and compares
// it, key by key and byte by byte, with a server given the keyspace they
// were made from: the Ruby redis-dump gem's JSON, with and without -b
// (base64), and redis-dump-go's RESP commands. Each load names what its
// format could not carry. Before, crsload refused the gem's files ("not a
// crs dump: the header's format is \"\"").
func TestFilesOfOtherTools(t *testing.T) {
	ctx := context.Background()
	fixtures, err := filepath.Abs("testdata/foreign")
	if err != nil {
		t.Fatal(err)
	}
	want := redistest.Start(t)
	if out, code := e2e.Sh(t, t.TempDir(), "sh "+filepath.Join(fixtures, "fill.sh")+" "+strings.TrimPrefix(want.Addr, "127.0.0.1:")); code != 0 {
		t.Fatalf("fill: %s", out)
	}
	// A stream is what neither tool wrote: the fixtures were made without.
	redistest.Client(t, want, 0).Del(ctx, "stream:1")
	tests := []struct {
		file, says string
	}{
		{"redis-dump.json", "1 EXPIRIES ARE WHOLE SECONDS RELATIVE TO WHEN THE FILE WAS WRITTEN"},
		{"redis-dump-b64.json", "4 strings read from base64"},
		{"redis-dump-go.resp", "1 EXPIRIES CAME IN WHOLE SECONDS"},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			dst := redistest.Start(t)
			out, code := e2e.Sh(t, fixtures, "crsload -u "+dst.URL+" "+tt.file)
			if code != 0 || !strings.Contains(out, tt.says) {
				t.Fatalf("exit %d, want 0 and %q:\n%s", code, tt.says, out)
			}
			// The expiry was made relative (or whole seconds) by the tool:
			// within a day of the source's is what the file can say.
			diffs, err := redistest.Diff(ctx, want, dst, 24*3600*1000)
			if err != nil {
				t.Fatal(err)
			}
			for _, d := range diffs {
				t.Error(d)
			}
			if v, _ := redistest.Client(t, dst, 0).Get(ctx, "bin:1").Result(); v != "\xff\xfe\x00raw" {
				t.Errorf("bin:1 = %q", v)
			}
			if out, code := e2e.Sh(t, fixtures, "crs stats "+tt.file); code != 0 || !strings.Contains(out, "(redis-dump JSON)") && !strings.Contains(out, "redis-dump-go") {
				t.Errorf("stats: exit %d, does not say what the file is:\n%s", code, out)
			}
		})
	}
}
