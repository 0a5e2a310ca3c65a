package format

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
)

// TestReadSet checks what makes a dump set whole, and that each fault is
// named.
func TestReadSet(t *testing.T) {
	write := func(dir fstest.MapFS, i, n int, size int64) {
		name := PartName(i, n) + ".jsonl.zst"
		dir[name] = &fstest.MapFile{Data: make([]byte, 10)}
		b, err := json.Marshal(PartEntry{Format: SetFormat, Version: 1, Part: i, Parts: n, File: name, Bytes: size})
		if err != nil {
			t.Fatal(err)
		}
		dir[EntryName(i, n)] = &fstest.MapFile{Data: b}
	}
	type dir = fstest.MapFS
	for _, tt := range []struct {
		name      string
		make      func(dir)
		only, of  int
		want, err string
	}{
		{"whole", func(d dir) { write(d, 0, 2, 10); write(d, 1, 2, 10) }, 0, 0, "0 1", ""},
		{"a part missing", func(d dir) { write(d, 1, 2, 10) }, 0, 0, "", "part 0 of 2 is missing"},
		{"that part alone", func(d dir) { write(d, 1, 2, 10) }, 1, 2, "1", ""},
		{"another N reads it whole", func(d dir) { write(d, 1, 2, 10) }, 1, 3, "", "part 0 of 2 is missing"},
		{"cut short", func(d dir) { write(d, 0, 1, 11) }, 0, 0, "", "holds 10 bytes where its entry says 11"},
		{"two sets", func(d dir) { write(d, 0, 1, 10); write(d, 0, 2, 10) }, 0, 0, "", "parts of two sets"},
		{"not an entry", func(d dir) { d[EntryName(0, 1)] = &fstest.MapFile{Data: []byte("{}")} }, 0, 0, "", "is not a part entry"},
		{"its file gone", func(d dir) { write(d, 0, 1, 10); delete(d, PartName(0, 1)+".jsonl.zst") }, 0, 0, "", "its file part-0000-of-0001.jsonl.zst is not there"},
		{"empty", func(dir) {}, 0, 0, "", "no part entries"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			fsys := dir{}
			tt.make(fsys)
			entries, err := ReadSet(fsys, "set", tt.only, tt.of)
			if tt.err != "" {
				if err == nil || !errors.Is(err, ErrSet) || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, e := range entries {
				got = append(got, string(rune('0'+e.Part)))
			}
			if strings.Join(got, " ") != tt.want {
				t.Errorf("parts %v, want %s", got, tt.want)
			}
		})
	}
}

func TestReadPartsList(t *testing.T) {
	path := filepath.Join(t.TempDir(), "list")
	os.WriteFile(path, []byte("; dump set x: 3 of 3 parts\npart  slots  keys\n0/3   0-5460  779\n\n2/3   10923-16383  745\n"), 0o600)
	got, err := ReadPartsList(path)
	if err != nil || len(got) != 2 || got[0] != 0 || got[1] != 2 {
		t.Errorf("parts %v, %v; want [0 2]", got, err)
	}
	os.WriteFile(path, []byte("zero/3 0-5460\n"), 0o600)
	if _, err := ReadPartsList(path); err == nil || !strings.Contains(err.Error(), "line 1") {
		t.Errorf("a bad line: %v", err)
	}
}
