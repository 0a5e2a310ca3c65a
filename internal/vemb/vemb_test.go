package vemb

import (
	"fmt"
	"math/rand"
	"testing"
)

// TestInput gives Input what VEMB returns for random vectors of each
// quantization and dimension, and checks that the input it finds comes
// back exactly, for nearly all of them.
func TestInput(t *testing.T) {
	rnd := rand.New(rand.NewSource(7))
	for _, quant := range []string{"f32", "int8", "bin"} {
		for _, dim := range []int{1, 3, 16, 128, 768} {
			t.Run(fmt.Sprintf("%s/%d", quant, dim), func(t *testing.T) {
				const n = 200
				found := 0
				for i := 0; i < n; i++ {
					x := make([]float32, dim)
					for j := range x {
						x[j] = float32(rnd.NormFloat64() * 3)
					}
					e := Returned(quant, x)
					w, ok := Input(quant, e)
					if !ok {
						continue
					}
					found++
					if got := Returned(quant, w); !equal(got, e) {
						t.Fatalf("vector %d: Input said found, and VEMB would return %v, want %v", i, got, e)
					}
				}
				if found < n*97/100 {
					t.Errorf("found an exact input for %d of %d vectors", found, n)
				}
				t.Logf("%d of %d exact", found, n)
			})
		}
	}
}

// TestReturnedIsAFixedPoint: what VEMB returns for VEMB's own output of
// a bin set is the same, and Returned matches hand-computed values.
func TestReturned(t *testing.T) {
	tests := []struct {
		quant string
		x     []float32
		want  []float32
	}{
		{"f32", []float32{3, 4}, []float32{3, 4}},
		{"bin", []float32{0.5, -2, 0}, []float32{1, -1, -1}},
		{"int8", []float32{0, 2}, []float32{0, 2}},
	}
	for _, tt := range tests {
		if got := Returned(tt.quant, tt.x); !equal(got, tt.want) {
			t.Errorf("Returned(%s, %v) = %v, want %v", tt.quant, tt.x, got, tt.want)
		}
	}
}

func BenchmarkInputInt8(b *testing.B) {
	rnd := rand.New(rand.NewSource(1))
	x := make([]float32, 128)
	for j := range x {
		x[j] = float32(rnd.NormFloat64())
	}
	e := Returned("int8", x)
	for b.Loop() {
		Input("int8", e)
	}
}
