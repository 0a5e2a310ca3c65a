package keyset

import (
	"fmt"
	"testing"
)

func TestSet(t *testing.T) {
	s := New()
	for i := 0; i < 100000; i++ {
		if !s.Add(fmt.Sprint(i)) {
			t.Fatalf("key %d reported seen on first add", i)
		}
	}
	for _, k := range []string{"0", "99999", "500"} {
		if s.Add(k) {
			t.Errorf("key %s reported new on second add", k)
		}
	}
	if !s.Add("") || s.Add("") {
		t.Error("empty key")
	}
	if got, want := s.Len(), 100001; got != want {
		t.Errorf("Len() = %d, want %d", got, want)
	}
}

// TestSetGrows adds keys well past the size given, and checks each is
// still found after every growth.
func TestSetGrows(t *testing.T) {
	for _, hint := range []int{0, 1, 1000, 50000} {
		s := NewSize(hint)
		for i := 0; i < 50000; i++ {
			if !s.Add(fmt.Sprintf("k%d", i)) {
				t.Fatalf("hint %d: key %d reported seen on first add", hint, i)
			}
		}
		for i := 0; i < 50000; i += 7 {
			if s.Add(fmt.Sprintf("k%d", i)) {
				t.Fatalf("hint %d: key %d reported new again", hint, i)
			}
		}
		if s.Len() != 50000 {
			t.Errorf("hint %d: Len() = %d", hint, s.Len())
		}
	}
}

func BenchmarkAdd(b *testing.B) {
	keys := make([]string, 500000)
	for i := range keys {
		keys[i] = fmt.Sprintf("client_keys:sk-cli-v1-%064d", i)
	}
	b.ResetTimer()
	for b.Loop() {
		s := NewSize(len(keys))
		for _, k := range keys {
			s.Add(k)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(keys)), "ns/key")
}
