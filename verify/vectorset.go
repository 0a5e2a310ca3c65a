package verify

import (
	"context"
	"strconv"

	"github.com/redis/go-redis/v9"

	"github.com/crs-tool/crs/format"
	"github.com/crs-tool/crs/internal/rtype"
)

// queueVectorSet queues VINFO (for a set's first record) and VEMB and
// VGETATTR for each element of rec.
func queueVectorSet(ctx context.Context, p redis.Pipeliner, q *pending, rec *format.Record) {
	if rec.Part <= 1 {
		q.xinfo = p.Do(ctx, "VINFO", rec.Key)
	}
	for _, e := range rec.VectorSet.Elements {
		q.values = append(q.values, p.Do(ctx, "VEMB", rec.Key, e.Name), p.Do(ctx, "VGETATTR", rec.Key, e.Name))
	}
}

// vectorSetValues judges the replies queueVectorSet queued.
func (v *verifier) vectorSetValues(rec *format.Record, q *pending) {
	vs := rec.VectorSet
	if q.xinfo != nil {
		info, err := q.xinfo.Slice()
		var got format.VectorSet
		if err == nil {
			got, _, _, err = rtype.VectorSetInfo(info)
		}
		switch {
		case err != nil:
			v.differ(rec.DB, rec.Key, "quant %s dim %d m %d, target: %v", vs.Quant, vs.Dim, vs.M, err)
			return
		case got.Quant != vs.Quant || got.Dim != vs.Dim || got.M != vs.M:
			v.differ(rec.DB, rec.Key, "quant %s dim %d m %d, target quant %s dim %d m %d", vs.Quant, vs.Dim, vs.M, got.Quant, got.Dim, got.M)
			return
		}
	}
	for i, e := range vs.Elements {
		emb, err := q.values[2*i].(*redis.Cmd).Float64Slice()
		if err != nil {
			v.differ(rec.DB, rec.Key, "element %q missing", e.Name)
			return
		}
		if j := vectorDiff(e.Vector, emb); j >= 0 {
			got := "none"
			if j < len(emb) {
				got = strconv.FormatFloat(emb[j], 'g', -1, 32)
			}
			v.differ(rec.DB, rec.Key, "element %q: vector component %d is %v, target %s (%d components, target %d)", e.Name, j, e.Vector[min(j, len(e.Vector)-1)], got, len(e.Vector), len(emb))
			return
		}
		attr, err := q.values[2*i+1].(*redis.Cmd).Text()
		if err == redis.Nil {
			attr = ""
		}
		if attr != e.Attr {
			v.differ(rec.DB, rec.Key, "element %q: attributes %q, target %q", e.Name, e.Attr, attr)
			return
		}
	}
	v.count += int64(len(vs.Elements))
}

// vectorDiff returns the first component where got is not want, as a
// 32-bit float, or -1. The loader gives VADD the vector that VEMB returns
// exactly (internal/vemb); one it could not find, it counts.
func vectorDiff(want []float32, got []float64) int {
	for j := range max(len(want), len(got)) {
		if j >= len(want) || j >= len(got) || want[j] != float32(got[j]) {
			return j
		}
	}
	return -1
}
