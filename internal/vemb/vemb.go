// Package vemb finds the vector to give VADD so that the server's VEMB
// returns given values exactly. VADD normalizes the vector it is given
// and keeps its norm, and an int8 set quantizes it and keeps its range;
// VEMB multiplies them back. Giving VADD what VEMB returned recomputes
// norm and range from an approximation, and moves the last bit or two of
// each component. This package mirrors, in 32-bit floats, what Redis's
// vector sets (modules/vector-sets/hnsw.c: hnsw_normalize_vector,
// quantize_to_q8, hnsw_get_node_vector) compute, and searches for an
// input that comes back exactly.
package vemb

import (
	"encoding/binary"
	"fmt"
	"math"
	"sort"
)

// Input returns the vector to give VADD, in a set of quantization quant
// ("f32", "int8" or "bin"), for VEMB to return e exactly, and whether it
// found one; when it did not, it returns e, which VEMB returns within a
// few units in the last place.
func Input(quant string, e []float32) ([]float32, bool) {
	switch quant {
	case "f32":
		if w, ok := f32Input(e); ok {
			return w, true
		}
	case "int8":
		if w, ok := q8Input(e); ok {
			return w, true
		}
	case "bin":
		return e, true // VEMB returns ±1, which VADD keeps as signs
	}
	return e, false
}

// normalize is hnsw_normalize_vector: the sum of squares taken four
// components at a time, its square root, and each component divided.
func normalize(x []float32) (v []float32, l2 float32) {
	s := sumSquares(x)
	v = make([]float32, len(x))
	copy(v, x)
	if s == 0 {
		return v, 0
	}
	l2 = sqrt32(s)
	for j := range v {
		v[j] = x[j] / l2
	}
	return v, l2
}

func sumSquares(x []float32) float32 {
	var s float32
	i := 0
	for ; i+3 < len(x); i += 4 {
		// Each product is rounded on its own (a conversion stops the
		// compiler fusing it into the sum), as C computes it.
		a, b, c, d := float32(x[i]*x[i]), float32(x[i+1]*x[i+1]), float32(x[i+2]*x[i+2]), float32(x[i+3]*x[i+3])
		s = float32(s + float32(float32(float32(a+b)+c)+d))
	}
	for ; i < len(x); i++ {
		s = float32(s + float32(x[i]*x[i]))
	}
	return s
}

// sqrt32 is sqrtf: the square root of a float32 rounded once to float32
// (a float64 square root rounded to float32 is the same).
func sqrt32(f float32) float32 { return float32(math.Sqrt(float64(f))) }

// Returned is what VEMB returns for an element VADD was given x for.
func Returned(quant string, x []float32) []float32 {
	v, l2 := normalize(x)
	out := make([]float32, len(x))
	switch quant {
	case "int8":
		q, r := quantize(v)
		for j := range q {
			out[j] = dequantize(q[j], r, l2)
		}
		return out
	case "bin":
		for j := range v {
			out[j] = -1
			if v[j] > 0 {
				out[j] = 1
			}
		}
		return out
	}
	for j := range v {
		out[j] = v[j] * l2
	}
	return out
}

// quantize is quantize_to_q8.
func quantize(v []float32) ([]int8, float32) {
	var m float32
	for _, x := range v {
		m = max(m, abs32(x))
	}
	q := make([]int8, len(v))
	if m == 0 {
		return q, 0
	}
	scale := float32(127) / m
	for j, x := range v {
		q[j] = int8(math.Round(float64(x * scale)))
	}
	return q, m
}

// dequantize is one component of hnsw_get_node_vector for an int8 set.
func dequantize(q int8, r, l2 float32) float32 {
	t := float32(float32(q) * r)
	t = float32(t / 127)
	return float32(t * l2)
}

func abs32(f float32) float32 { return math.Float32frombits(math.Float32bits(f) &^ (1 << 31)) }

// step returns f moved k floats up (k > 0) or down.
func step(f float32, k int) float32 {
	for ; k > 0; k-- {
		f = math.Nextafter32(f, float32(math.Inf(1)))
	}
	for ; k < 0; k++ {
		f = math.Nextafter32(f, float32(math.Inf(-1)))
	}
	return f
}

func equal(a, b []float32) bool {
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return len(a) == len(b)
}

// byMagnitude returns the indexes of x but skip, largest |x| first.
func byMagnitude(x []float32, skip int) []int {
	order := make([]int, 0, len(x))
	for j := range x {
		if j != skip {
			order = append(order, j)
		}
	}
	sort.Slice(order, func(a, b int) bool { return abs32(x[order[a]]) > abs32(x[order[b]]) })
	return order
}

// settle moves components of w, one float at a time, each only to values
// ok allows, until the norm of w is exactly l2: the largest components
// first, and smaller ones once a step overshoots.
func settle(w []float32, l2 float32, order []int, ok func(j int, c float32) bool) bool {
	g, lastBelow := 0, false
	for i := 0; i < 4096; i++ {
		got := sqrt32(sumSquares(w))
		if got == l2 {
			return true
		}
		below := got < l2
		if i > 0 && below != lastBelow {
			g++ // overshot: finer steps, on a smaller component
		}
		lastBelow = below
		moved := false
		for _, j := range order[min(g, max(len(order)-1, 0)):] {
			if w[j] == 0 {
				continue
			}
			dir := 1
			if below != (w[j] > 0) {
				dir = -1
			}
			if c := step(w[j], dir); ok(j, c) {
				w[j], moved = c, true
				break
			}
		}
		if !moved {
			return false
		}
	}
	return false
}

// FromStored returns what VEMB returns for an element stored as an RDB
// file (and VEMB RAW) holds it: the vector of a set of quantization
// quant with dim components (float32s of the normalized vector, int8
// codes, or bits), its norm l2 and, for int8, its range.
func FromStored(quant string, dim int, stored []byte, l2, rng float32) ([]float32, error) {
	out := make([]float32, dim)
	switch quant {
	case "f32":
		if len(stored) != 4*dim {
			return nil, fmt.Errorf("a vector of %d bytes for %d float32 components", len(stored), dim)
		}
		for j := range out {
			out[j] = float32(math.Float32frombits(binary.LittleEndian.Uint32(stored[4*j:])) * l2)
		}
	case "int8":
		if len(stored) != dim {
			return nil, fmt.Errorf("a vector of %d bytes for %d int8 components", len(stored), dim)
		}
		for j := range out {
			out[j] = dequantize(int8(stored[j]), rng, l2)
		}
	case "bin":
		if len(stored) != (dim+63)/64*8 {
			return nil, fmt.Errorf("a vector of %d bytes for %d bits", len(stored), dim)
		}
		for j := range out {
			out[j] = -1
			if binary.LittleEndian.Uint64(stored[j/64*8:])&(1<<(j%64)) != 0 {
				out[j] = 1
			}
		}
	default:
		return nil, fmt.Errorf("quantization %q", quant)
	}
	return out, nil
}
