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
