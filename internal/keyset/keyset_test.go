package keyset

import (
	"fmt"
	"os"
	"testing"
)

// add adds keys in order and returns the verdicts, then what Finish said
// of the deferred keys, keyed by tag.
func run(t *testing.T, s *Seen, keys []string, dbs []int) (map[int64]Verdict, map[int64]bool) {
	t.Helper()
	got := make(map[int64]Verdict)
	for i, k := range keys {
		v, err := s.Add(dbs[i%len(dbs)], k, int64(i))
		if err != nil {
			t.Fatal(err)
		}
		got[int64(i)] = v
	}
	fin := make(map[int64]bool)
	err := s.Finish(func(db int, key string, tag int64, dup bool) error {
		if keys[tag] != key || dbs[int(tag)%len(dbs)] != db {
			t.Errorf("Finish: tag %d came back with db %d key %q", tag, db, key)
		}
		if _, ok := fin[tag]; ok {
			t.Errorf("Finish: tag %d twice", tag)
		}
		fin[tag] = dup
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return got, fin
}

// TestSeen adds keys with repeats, below and past the memory limit, and
// checks that exactly the first add of each (db, key) is new, whether
// Add or Finish says so.
func TestSeen(t *testing.T) {
	tests := []struct {
		name  string
		limit int
		hint  int64
		n     int   // distinct keys
		dbs   []int // db of the i-th add, cycling
	}{
		{"in memory", 100000, 0, 50000, []int{0}},
		{"spilled, unknown size", 1000, 0, 50000, []int{0}},
		{"spilled, size known", 1000, 60000, 50000, []int{0}},
		{"spilled, two databases", 5000, 0, 30000, []int{0, 3}},
		{"limit of one", 1, 0, 2000, []int{0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Each key, then every third key again: repeats both among
			// keys held in memory and among keys deferred.
			var keys []string
			for i := 0; i < tt.n; i++ {
				keys = append(keys, fmt.Sprintf("k%d", i))
				if i%3 == 0 {
					keys = append(keys, fmt.Sprintf("k%d", i/2))
				}
			}
			s := NewSeen(tt.limit, tt.hint)
			defer s.Close()
			verdicts, fin := run(t, s, keys, tt.dbs)
			first := make(map[string]bool)
			var deferred int64
			for i, k := range keys {
				id := fmt.Sprint(tt.dbs[i%len(tt.dbs)], "/", k)
				isNew := !first[id]
				first[id] = true
				var saidNew bool
				switch verdicts[int64(i)] {
				case New:
					saidNew = true
				case Twice:
				case Deferred:
					deferred++
					dup, ok := fin[int64(i)]
					if !ok {
						t.Fatalf("add %d (%s) deferred, and Finish did not say", i, id)
					}
					saidNew = !dup
				}
				if saidNew != isNew {
					t.Fatalf("add %d (%s): said new %v, want %v", i, id, saidNew, isNew)
				}
			}
			keysOnDisk, _ := s.Deferred()
			if keysOnDisk != deferred || int64(len(fin)) != deferred {
				t.Errorf("Deferred() = %d keys, Finish gave %d, Add deferred %d", keysOnDisk, len(fin), deferred)
			}
			if (deferred > 0) != (tt.limit < len(keys)) {
				t.Errorf("deferred %d keys with limit %d and %d adds", deferred, tt.limit, len(keys))
			}
		})
	}
}

// TestSeenSameKeyTwoDatabases: one key in two databases is two keys.
func TestSeenSameKeyTwoDatabases(t *testing.T) {
	s := NewSeen(0, 0)
	for _, db := range []int{0, 1, 15} {
		if v, _ := s.Add(db, "k", 0); v != New {
			t.Errorf("db %d: %v, want New", db, v)
		}
	}
	if v, _ := s.Add(1, "k", 0); v != Twice {
		t.Errorf("db 1 again: %v, want Twice", v)
	}
}

// TestSeenCloseRemovesFiles: the spill directory is gone after Close,
// also when Finish was not called.
func TestSeenCloseRemovesFiles(t *testing.T) {
	s := NewSeen(10, 0)
	for i := 0; i < 100; i++ {
		if _, err := s.Add(0, fmt.Sprint(i), 0); err != nil {
			t.Fatal(err)
		}
	}
	if s.sp == nil {
		t.Fatal("did not spill")
	}
	dir := s.sp.dir
	if _, err := os.Stat(dir); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("%s still there after Close: %v", dir, err)
	}
}

func TestPartitions(t *testing.T) {
	for _, tt := range []struct {
		hint  int64
		limit int
		want  int
	}{
		{0, DefaultLimit, 256},
		{1000, DefaultLimit, 16},
		{10_000_000, DefaultLimit, 64},
		{100_000_000, DefaultLimit, 512},
		{1_000_000_000, DefaultLimit, 512},
	} {
		if got := partitions(tt.hint, tt.limit); got != tt.want {
			t.Errorf("partitions(%d, %d) = %d, want %d", tt.hint, tt.limit, got, tt.want)
		}
	}
}

func BenchmarkAdd(b *testing.B) {
	keys := make([]string, 500000)
	for i := range keys {
		keys[i] = fmt.Sprintf("client_keys:sk-cli-v1-%064d", i)
	}
	for _, limit := range []int{len(keys), len(keys) / 10} {
		b.Run(fmt.Sprintf("limit=%d", limit), func(b *testing.B) {
			for b.Loop() {
				s := NewSeen(limit, int64(len(keys)))
				for _, k := range keys {
					s.Add(0, k, 0)
				}
				s.Finish(func(int, string, int64, bool) error { return nil })
				s.Close()
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(keys)), "ns/key")
		})
	}
}
