package vemb

import "math"

// f32Input finds w for a set without quantization: VEMB returns
// fl(fl(w_j/L)*L) with L the norm of w, so w must have a norm L for which
// every e_j is such a product, and components that divide to the right
// quotients. L is searched near the norm of e; each component may take
// the few floats near e_j that come back as e_j; settle picks among them
// to make the norm exactly L.
func f32Input(e []float32) ([]float32, bool) {
	if equal(Returned("f32", e), e) {
		return e, true
	}
	_, l0 := normalize(e)
	for _, dl := range []int{0, 1, -1, 2, -2, 3, -3} {
		l2 := step(l0, dl)
		allowed := make([][]float32, len(e))
		w := make([]float32, len(e))
		ok := true
		for j := range e {
			for k := -6; k <= 6; k++ {
				if c := step(e[j], k); (c/l2)*l2 == e[j] {
					allowed[j] = append(allowed[j], c)
				}
			}
			if len(allowed[j]) == 0 {
				ok = false
				break
			}
			w[j] = allowed[j][len(allowed[j])/2]
		}
		if !ok {
			continue
		}
		fits := func(j int, c float32) bool { return (c/l2)*l2 == e[j] }
		if settle(w, l2, byMagnitude(e, -1), fits) && equal(Returned("f32", w), e) {
			return w, true
		}
	}
	return nil, false
}

// q8Input finds w for an int8 set. VEMB returns
// fl(fl(fl(q_j*R)/127)*L): the codes q are e's, in proportion to its
// largest component; R (the range) and L (the norm) are searched, L
// outward from the norm of e and R from the largest component, until a
// pair gives back every e_j and an input with that norm, range and codes
// exists (q8Build).
func q8Input(e []float32) ([]float32, bool) {
	m := 0
	for j := range e {
		if abs32(e[j]) > abs32(e[m]) {
			m = j
		}
	}
	top := abs32(e[m])
	if top == 0 {
		return nil, false
	}
	q := make([]int8, len(e))
	for j := range e {
		q[j] = int8(math.Round(float64(127 * e[j] / top)))
	}
	norm := sqrt32(sumSquares(e))
	lo, hi := norm*0.99, norm*1.01
	up, down := norm, step(norm, -1)
	for tries := 0; (up <= hi || down >= lo) && tries < 1<<18; tries++ {
		for _, l2 := range [2]float32{up, down} {
			if l2 < lo || l2 > hi {
				continue
			}
			r0 := top / l2
			for k := -2; k <= 2; k++ {
				r := step(r0, k)
				if dequantize(q[m], r, l2) != e[m] || !dequantizesTo(q, r, l2, e) {
					continue
				}
				if w, ok := q8Build(q, m, r, l2); ok && equal(Returned("int8", w), e) {
					return w, true
				}
			}
		}
		up, down = step(up, 1), step(down, -1)
	}
	return nil, false
}

func dequantizesTo(q []int8, r, l2 float32, e []float32) bool {
	for j := range q {
		if dequantize(q[j], r, l2) != e[j] {
			return false
		}
	}
	return true
}

// q8Build finds w whose normalization has norm l2 and range r, and whose
// quantization is q (m the index of a largest code): the largest
// component divides to exactly ±r, the others start at their codes'
// centres scaled to a unit vector, and settle makes the norm exact.
func q8Build(q []int8, m int, r, l2 float32) ([]float32, bool) {
	w := make([]float32, len(q))
	sign := float32(1)
	if q[m] < 0 {
		sign = -1
	}
	found := false
	for _, k := range []int{0, 1, -1, 2, -2, 3, -3, 4, -4} {
		if c := step(sign*r*l2, k); c/l2 == sign*r {
			w[m], found = c, true
			break
		}
	}
	if !found {
		return nil, false
	}
	var rest float64
	for j := range q {
		if j != m {
			c := float64(q[j]) * float64(r) / 127
			rest += c * c
		}
	}
	s := 1.0
	if rest > 0 && float64(r) < 1 {
		s = math.Sqrt((1 - float64(r)*float64(r)) / rest)
	}
	fits := func(j int, c float32) bool {
		v := c / l2
		return abs32(v) <= r && int8(math.Round(float64(v*(float32(127)/r)))) == q[j]
	}
	for j := range q {
		if j == m {
			continue
		}
		w[j] = float32(float64(q[j]) * float64(r) / 127 * s * float64(l2))
		if !fits(j, w[j]) {
			w[j] = float32(float64(q[j]) * float64(r) / 127 * float64(l2))
		}
	}
	return w, settle(w, l2, byMagnitude(w, m), fits)
}
