package rdb

import (
	"fmt"
	"math"

	"github.com/crs-tool/crs/format"
	"github.com/crs-tool/crs/internal/vemb"
)

// The vector-set module's serialization (modules/vector-sets/vset.c,
// VectorSetRdbSave, encoding version 0), all in module opcodes: the
// dimension, the element count, hnsw_config (quantization in the low 8
// bits, M in the next 16; 0 meaning 16), save flags (1: a projection
// matrix follows, input dimension and matrix; 2: every element has an
// attributes string, empty for none); then per element its name,
// [attributes], the stored vector (normalized float32s, int8 codes or
// bits) and the HNSW node's parameters, the last of which packs the norm
// (low 32 bits) and the int8 range (high 32 bits) as float32 bits.
const (
	vsetFlagProjection = 1 << 0
	vsetFlagAttributes = 1 << 1
)

// vsetQuant names the module's quantization numbers as VINFO does.
var vsetQuant = map[uint64]string{0: "f32", 1: "int8", 2: "bin"}

// vectorSet reads a vector set into vectorset records, element by
// element, as parts when it is large. The first fields are read while
// they are still copied into buf: a set with a projection matrix, which
// no record can carry, goes on as a DUMP payload (done is false, and
// module passes over the rest).
func (d *Decoder) vectorSet(b *builder) (done bool, err error) {
	var head [4]uint64 // dim, count, config, flags
	for i := range head {
		if head[i], err = d.moduleUint(); err != nil {
			return false, err
		}
	}
	dim, count, config, flags := head[0], head[1], head[2], head[3]
	quant, ok := vsetQuant[config&0xff]
	switch {
	case !ok:
		return false, fmt.Errorf("vector set: unknown quantization %d", config&0xff)
	case dim == 0 || dim > 1<<16:
		return false, fmt.Errorf("vector set: dimension %d", dim)
	case flags&vsetFlagProjection != 0:
		return false, nil
	}
	m := int(config >> 8 & 0xffff)
	if m == 0 {
		m = 16
	}
	d.in.copy = nil // records from here on, not a payload
	b.typ = format.TypeVectorSet
	b.start()
	b.rec.VectorSet.Quant, b.rec.VectorSet.Dim, b.rec.VectorSet.M = quant, int(dim), m
	for i := uint64(0); i < count; i++ {
		if err := d.vectorElement(b, quant, int(dim), flags&vsetFlagAttributes != 0); err != nil {
			return false, fmt.Errorf("vector set element %d: %w", i, err)
		}
	}
	if op, err := d.in.count(); err != nil || op != moduleEOF {
		if err == nil {
			err = fmt.Errorf("vector set: %d elements, then opcode %d where the value ends", count, op)
		}
		return false, err
	}
	return true, b.finish()
}

func (d *Decoder) vectorElement(b *builder, quant string, dim int, attrs bool) error {
	name, err := d.moduleString()
	if err != nil {
		return err
	}
	var attr []byte
	if attrs {
		if attr, err = d.moduleString(); err != nil {
			return err
		}
	}
	stored, err := d.moduleString()
	if err != nil {
		return err
	}
	n, err := d.moduleUint()
	if err != nil {
		return err
	}
	var last uint64
	for j := uint64(0); j < n; j++ {
		if last, err = d.moduleUint(); err != nil {
			return err
		}
	}
	if n < 3 {
		return fmt.Errorf("%d node parameters", n)
	}
	l2, rng := math.Float32frombits(uint32(last)), math.Float32frombits(uint32(last>>32))
	vec, err := vemb.FromStored(quant, dim, stored, l2, rng)
	if err != nil {
		return err
	}
	for _, f := range vec {
		if math.IsNaN(float64(f)) || math.IsInf(float64(f), 0) {
			return fmt.Errorf("element %q: a vector component %v (norm %v, range %v)", name, f, l2, rng)
		}
	}
	if err := b.next(); err != nil {
		return err
	}
	b.rec.VectorSet.Elements = append(b.rec.VectorSet.Elements, format.VectorElement{Name: string(name), Vector: vec, Attr: string(attr)})
	return b.grew(len(name) + len(attr) + 12*dim)
}

// moduleUint reads an unsigned integer of module data.
func (d *Decoder) moduleUint() (uint64, error) {
	op, err := d.in.count()
	if err == nil && op != moduleUInt {
		err = fmt.Errorf("module data opcode %d where an unsigned integer belongs", op)
	}
	if err != nil {
		return 0, err
	}
	return d.in.count()
}

// moduleString reads a string of module data.
func (d *Decoder) moduleString() ([]byte, error) {
	op, err := d.in.count()
	if err == nil && op != moduleString {
		err = fmt.Errorf("module data opcode %d where a string belongs", op)
	}
	if err != nil {
		return nil, err
	}
	return d.in.str()
}
