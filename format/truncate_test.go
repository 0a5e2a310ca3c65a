package format_test

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/crs-tool/crs/format"
)

// memberSeeds are dumps that between them hold every header, record,
// stream-group and trailer member the format has: the golden dump, and
// one from a source without hash field expiry.
func memberSeeds(t testing.TB) [][]byte {
	golden, err := os.ReadFile(filepath.Join("..", "testdata", "golden-v1.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	noFE := encode(t, headerNoFE, records[:1])
	return [][]byte{golden, noFE}
}

// TestEveryTruncation cuts every line of the seed dumps at every byte and
// ends it with a newline (as a header cut after a member name, such as
// `{"format":"crs","version":1,"field_expiry":`): each must give a
// ParseError naming the line, never a panic or a silent success.
func TestEveryTruncation(t *testing.T) {
	for _, seed := range memberSeeds(t) {
		lines := bytes.SplitAfter(seed, []byte("\n"))
		for i, line := range lines {
			line = bytes.TrimSuffix(line, []byte("\n"))
			for cut := 0; cut < len(line); cut++ {
				var in bytes.Buffer
				for _, l := range lines[:i] {
					in.Write(l)
				}
				in.Write(line[:cut])
				in.WriteByte('\n')
				err := readAll(in.Bytes())
				var pe *format.ParseError
				if !errors.As(err, &pe) {
					t.Fatalf("line %d cut at byte %d (%q): got %v, want a ParseError", i+1, cut, line[:cut], err)
				}
				if pe.Line < 1 || pe.Line > i+2 {
					t.Fatalf("line %d cut at byte %d: error names line %d: %v", i+1, cut, pe.Line, err)
				}
			}
		}
	}
}

func TestHeaderCutAfterMemberName(t *testing.T) {
	err := readAll([]byte(`{"format":"crs","version":1,"field_expiry":` + "\n"))
	var pe *format.ParseError
	if !errors.As(err, &pe) || pe.Line != 1 {
		t.Fatalf("got %v, want a ParseError on line 1", err)
	}
}

// readAll reads a whole dump and returns the error that ended it (nil for
// a complete, valid dump).
func readAll(b []byte) error {
	r := format.NewReader(bytes.NewReader(b))
	if _, err := r.Header(); err != nil {
		return err
	}
	for {
		if _, err := r.Read(); err != nil {
			if err == io.EOF {
				return nil
			}
			return err
		}
	}
}
