package format

import (
	"fmt"
	"math"
	"strconv"
	"unsafe"
)

// TypeVectorSet is a vector set (Redis 8's "vectorset" type, and the
// vectorset module on Redis 7.x): its value is in Record.VectorSet.
const TypeVectorSet = "vectorset"

// Quantizations of a vector set, as VINFO names them, and the VADD option
// that makes each.
var quantOption = map[string]string{"f32": "NOQUANT", "int8": "Q8", "bin": "BIN"}

// QuantOption returns the VADD option that makes a vector set of
// quantization q ("f32", "int8" or "bin"), and whether q is one of them.
func QuantOption(q string) (string, bool) {
	o, ok := quantOption[q]
	return o, ok
}

// VectorSet is a vector set's value, or one part of it. Quant, Dim and M
// are set in a whole set's record or its first part, and zero in later
// parts.
type VectorSet struct {
	// Quant is how the set stores vectors: "f32" (VADD NOQUANT), "int8"
	// (Q8, the default) or "bin" (BIN).
	Quant string
	// Dim is the number of components of every vector.
	Dim int
	// M is the most links a node of the set's HNSW graph has (VADD M).
	M int
	// Elements are the set's elements, in no particular order.
	Elements []VectorElement
}

// VectorElement is one element of a vector set.
type VectorElement struct {
	Name string
	// Vector is the element's vector as VEMB returns it: de-quantized
	// and de-normalized, as 32-bit floats.
	Vector []float32
	// Attr is the element's JSON attributes (VGETATTR); "" when none.
	Attr string
}

func appendVectorSet(b []byte, r *Record, str appendStr) []byte {
	vs := r.VectorSet
	b = append(b, '{')
	if vs.Quant != "" {
		b = append(b, `"quant":`...)
		b = appendString(b, vs.Quant)
		b = append(b, `,"dim":`...)
		b = strconv.AppendInt(b, int64(vs.Dim), 10)
		b = append(b, `,"m":`...)
		b = strconv.AppendInt(b, int64(vs.M), 10)
		b = append(b, ',')
	}
	b = append(b, `"elements":[`...)
	for i, e := range vs.Elements {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '[')
		b = str(b, e.Name)
		b = append(b, ",["...)
		for j, f := range e.Vector {
			if j > 0 {
				b = append(b, ',')
			}
			b = strconv.AppendFloat(b, float64(f), 'g', -1, 32)
		}
		b = append(b, ']')
		if e.Attr != "" {
			b = append(b, ',')
			b = str(b, e.Attr)
		}
		b = append(b, ']')
	}
	return append(b, "]}"...)
}

// checkVectorSet checks what the writer cannot write or a loader could
// not load.
func checkVectorSet(r *Record) error {
	vs := r.VectorSet
	if vs == nil {
		return fmt.Errorf("vectorset record without a vector set")
	}
	for _, e := range vs.Elements {
		for _, f := range e.Vector {
			if math.IsNaN(float64(f)) || math.IsInf(float64(f), 0) {
				return fmt.Errorf("element %q has a vector component %v", e.Name, f)
			}
		}
	}
	return nil
}

// parseVectorSet reads a vector set value: an object with "quant", "dim"
// and "m" (in a whole set or its first part) and "elements", an array of
// [name, vector] or [name, vector, attributes].
func parseVectorSet(s *scanner, rec *Record, bs strDecoder) error {
	vs := &VectorSet{}
	rec.VectorSet = vs
	seen := map[string]bool{}
	err := s.object(func(name string) error {
		if seen[name] {
			return fmt.Errorf("%w: vector set field %q appears twice", ErrRecord, name)
		}
		seen[name] = true
		switch name {
		case "quant":
			if s.peek() != '"' {
				return fmt.Errorf("%w: vector set quantization must be a string, found %s", ErrRecord, s.kind())
			}
			q, err := s.str()
			if _, ok := quantOption[q]; err == nil && !ok {
				return fmt.Errorf("%w: vector set quantization %q is not f32, int8 or bin", ErrRecord, q)
			}
			vs.Quant = q
			return err
		case "dim", "m":
			n, err := nonNegative(s, "vector set "+name)
			if name == "dim" {
				vs.Dim = int(n)
			} else {
				vs.M = int(n)
			}
			return err
		case "elements":
			if s.peek() != '[' {
				return fmt.Errorf("%w: vector set elements must be an array, found %s", ErrRecord, s.kind())
			}
			return s.array(func(i int) error {
				e, err := parseVectorElement(s, bs, i)
				vs.Elements = append(vs.Elements, e)
				return err
			})
		}
		return fmt.Errorf("%w: unknown vector set field %q", ErrRecord, name)
	})
	if err != nil {
		return err
	}
	if !seen["elements"] {
		return fmt.Errorf("%w: a vector set without \"elements\"", ErrRecord)
	}
	for i, e := range vs.Elements {
		if want := len(vs.Elements[0].Vector); vs.Dim > 0 {
			want = vs.Dim
			if len(e.Vector) != want {
				return fmt.Errorf("%w: vector set element %d has %d components, the set's dim is %d", ErrRecord, i, len(e.Vector), want)
			}
		} else if len(e.Vector) != want {
			return fmt.Errorf("%w: vector set element %d has %d components, element 0 has %d", ErrRecord, i, len(e.Vector), want)
		}
	}
	if i, j := findDup(len(vs.Elements), func(i int) string { return vs.Elements[i].Name }); i >= 0 {
		return fmt.Errorf("%w: vector set element %q appears twice (elements %d and %d)", ErrRecord, vs.Elements[i].Name, i, j)
	}
	return nil
}

// checkVectorSetPart checks that the set's parameters are in a whole
// set's record or its first part, and only there; the part number is
// known only once the whole line is read.
func checkVectorSetPart(rec *Record) error {
	vs := rec.VectorSet
	has := vs.Quant != "" || vs.Dim != 0 || vs.M != 0
	switch first := rec.Part <= 1; {
	case first && (vs.Quant == "" || vs.Dim == 0 || vs.M == 0):
		return fmt.Errorf("%w: a vector set (or its first part) needs \"quant\", \"dim\" and \"m\" (dim and m above 0)", ErrRecord)
	case !first && has:
		return fmt.Errorf("%w: only a vector set's first part has \"quant\", \"dim\" and \"m\"", ErrRecord)
	}
	return nil
}

func parseVectorElement(s *scanner, bs strDecoder, i int) (VectorElement, error) {
	var e VectorElement
	if s.peek() != '[' {
		return e, fmt.Errorf("%w: vector set element %d must be [name, vector] or [name, vector, attributes], found %s", ErrRecord, i, s.kind())
	}
	items := 0
	err := s.array(func(j int) error {
		items++
		var err error
		switch j {
		case 0:
			e.Name, err = bs.readAs(s, func() string { return fmt.Sprintf("vector set element %d's name", i) })
			return err
		case 1:
			if s.peek() != '[' {
				return fmt.Errorf("%w: vector set element %d's vector must be an array of numbers, found %s", ErrRecord, i, s.kind())
			}
			e.Vector = []float32{}
			return s.array(func(k int) error {
				t, err := s.number()
				if err != nil {
					return err
				}
				f, err := strconv.ParseFloat(unsafe.String(&t[0], len(t)), 32)
				if err != nil {
					return fmt.Errorf("%w: vector set element %d: component %s is out of range of a 32-bit float", ErrRecord, i, t)
				}
				e.Vector = append(e.Vector, float32(f))
				return nil
			})
		case 2:
			e.Attr, err = bs.readAs(s, func() string { return fmt.Sprintf("vector set element %d's attributes", i) })
			return err
		}
		return fmt.Errorf("%w: vector set element %d has more than three items", ErrRecord, i)
	})
	if err == nil && items < 2 {
		err = fmt.Errorf("%w: vector set element %d must be [name, vector] or [name, vector, attributes]", ErrRecord, i)
	}
	if err == nil && len(e.Vector) == 0 {
		err = fmt.Errorf("%w: vector set element %d has an empty vector", ErrRecord, i)
	}
	return e, err
}
