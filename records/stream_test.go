package records

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/crs-tool/crs/format"
	"github.com/crs-tool/crs/internal/progress"
)

// source is a Source made of a function, for the seam's own tests.
type source func(ctx context.Context, w Writer) error

func (s source) Dump(ctx context.Context, w Writer, _ *progress.Counter) (Stats, error) {
	st := Stats{From: "test"}
	return st, s(ctx, w)
}

func str(key string, part int, more bool) *format.Record {
	return &format.Record{Key: key, Type: format.TypeString, Str: "v", Part: part, More: more}
}

// writeAll writes a header and recs, then Close.
func writeAll(recs ...*format.Record) source {
	return func(ctx context.Context, w Writer) error {
		if err := w.WriteHeader(format.Header{Source: "t"}); err != nil {
			return err
		}
		for _, r := range recs {
			if err := w.Write(r); err != nil {
				return err
			}
		}
		return w.Close()
	}
}

func readAll(r Reader) ([]string, error) {
	var keys []string
	for {
		rec, err := r.Read()
		if err == io.EOF {
			return keys, nil
		}
		if err != nil {
			return keys, err
		}
		keys = append(keys, fmt.Sprintf("%s/%d", rec.Key, rec.Part))
	}
}

func TestStream(t *testing.T) {
	many := make([]*format.Record, 1000)
	for i := range many {
		many[i] = str(fmt.Sprint(i), 0, false)
	}
	boom := errors.New("boom")
	for _, tt := range []struct {
		name    string
		src     source
		want    int    // records read
		wantErr string // or the error
	}{
		{"records in order, past several batches", writeAll(many...), 1000, ""},
		{"parts in order", writeAll(str("a", 1, true), str("a", 2, true), str("a", 3, false)), 3, ""},
		{"a part out of order is the source's mistake, caught", writeAll(str("a", 1, true), str("b", 2, false)), 1, "expected part 2 of key \"a\""},
		{"a record the format cannot carry is caught", writeAll(&format.Record{Key: "l", Type: format.TypeList}), 0, "an empty list value"},
		{"ended inside a key", writeAll(str("a", 1, true)), 1, "ended inside key \"a\""},
		{"the source's error after its records", func(ctx context.Context, w Writer) error {
			w.WriteHeader(format.Header{})
			w.Write(str("a", 0, false))
			return boom
		}, 0, "boom"},
		{"no Close", func(ctx context.Context, w Writer) error {
			return w.WriteHeader(format.Header{})
		}, 0, ErrNoClose.Error()},
		{"no header", func(ctx context.Context, w Writer) error { return boom }, 0, "boom"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := Open(context.Background(), tt.src, nil)
			keys, err := readAll(s)
			st, cerr := s.Close()
			if tt.wantErr == "" {
				if err != nil || cerr != nil || len(keys) != tt.want || st.From != "test" {
					t.Fatalf("read %d (%v), err %v, close %v, stats %+v", len(keys), keys, err, cerr, st)
				}
				for i := 0; i < len(keys) && tt.want == 1000; i++ {
					if keys[i] != fmt.Sprintf("%d/0", i) {
						t.Fatalf("record %d is %s", i, keys[i])
					}
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(fmt.Sprint(cerr), tt.wantErr) {
				t.Fatalf("err %v, close %v, want %q", err, cerr, tt.wantErr)
			}
			if len(keys) > tt.want {
				t.Errorf("read %d records, want at most %d", len(keys), tt.want)
			}
		})
	}
}

// TestStreamClosedEarly: a reader that stops first stops the source, which
// sees its context end, and Close reports no error.
func TestStreamClosedEarly(t *testing.T) {
	stopped := make(chan error, 1)
	s := Open(context.Background(), source(func(ctx context.Context, w Writer) error {
		w.WriteHeader(format.Header{})
		for i := 0; ; i++ {
			if err := w.Write(str(fmt.Sprint(i), 0, false)); err != nil {
				stopped <- err
				return err
			}
		}
	}), nil)
	if _, err := s.Read(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if err := <-stopped; !errors.Is(err, context.Canceled) {
		t.Errorf("the source stopped with %v", err)
	}
}
