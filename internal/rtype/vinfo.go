package rtype

import (
	"fmt"
	"strconv"

	"github.com/crs-tool/crs/format"
)

// VectorSetInfo reads VINFO's reply: the set's parameters, its size, and
// whether it was made with a projection (VADD REDUCE).
func VectorSetInfo(info []interface{}) (vs format.VectorSet, size int64, projected bool, err error) {
	num := func(v interface{}) int64 {
		switch v := v.(type) {
		case int64:
			return v
		case string:
			n, _ := strconv.ParseInt(v, 10, 64)
			return n
		}
		return 0
	}
	for i := 0; i+1 < len(info); i += 2 {
		name, _ := info[i].(string)
		switch name {
		case "quant-type":
			vs.Quant, _ = info[i+1].(string)
		case "vector-dim":
			vs.Dim = int(num(info[i+1]))
		case "hnsw-m":
			vs.M = int(num(info[i+1]))
		case "size":
			size = num(info[i+1])
		case "projection-input-dim":
			projected = num(info[i+1]) > 0
		}
	}
	if _, ok := format.QuantOption(vs.Quant); !ok || vs.Dim <= 0 || vs.M <= 0 {
		return vs, 0, false, fmt.Errorf("VINFO: quantization %q, dim %d, M %d: not a vector set crs can carry", vs.Quant, vs.Dim, vs.M)
	}
	return vs, size, projected, nil
}
