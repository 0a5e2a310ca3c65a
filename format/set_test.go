package format

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestReadSet checks what makes a dump set whole, and that each fault is
// named.
func TestReadSet(t *testing.T) {
	write := func(dir string, i, n int, size int64) {
		name := PartName(i, n) + ".jsonl.zst"
		if err := os.WriteFile(filepath.Join(dir, name), make([]byte, 10), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := WriteEntry(dir, PartEntry{Format: SetFormat, Version: 1, Part: i, Parts: n, File: name, Bytes: size}); err != nil {
			t.Fatal(err)
		}
	}
	for _, tt := range []struct {
		name      string
		make      func(dir string)
		only, of  int
		want, err string
	}{
		{"whole", func(d string) { write(d, 0, 2, 10); write(d, 1, 2, 10) }, 0, 0, "0 1", ""},
		{"a part missing", func(d string) { write(d, 1, 2, 10) }, 0, 0, "", "part 0 of 2 is missing"},
		{"that part alone", func(d string) { write(d, 1, 2, 10) }, 1, 2, "1", ""},
		{"another N reads it whole", func(d string) { write(d, 1, 2, 10) }, 1, 3, "", "part 0 of 2 is missing"},
		{"cut short", func(d string) { write(d, 0, 1, 11) }, 0, 0, "", "holds 10 bytes where its entry says 11"},
		{"two sets", func(d string) { write(d, 0, 1, 10); write(d, 0, 2, 10) }, 0, 0, "", "parts of two sets"},
		{"not an entry", func(d string) { os.WriteFile(filepath.Join(d, PartName(0, 1)+".json"), []byte("{}"), 0o600) }, 0, 0, "", "is not a part entry"},
		{"empty", func(string) {}, 0, 0, "", "no part entries"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			tt.make(dir)
			entries, err := ReadSet(dir, tt.only, tt.of)
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
