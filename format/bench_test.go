package format_test

import (
	"bytes"
	"fmt"
	"io"
	"testing"

	"github.com/crs-tool/crs/format"
)

// guideRecords are shaped like the migration guide's keyspace: client key
// hashes of six fields, and short strings with expiries.
func guideRecords(n int) []*format.Record {
	recs := make([]*format.Record, n)
	for i := range recs {
		if i%3 == 0 {
			recs[i] = &format.Record{Key: fmt.Sprintf("high_rate_limit:sk-cli-v1-%064x:claude:count", i), Type: format.TypeString, Str: "42", ExpireAtMs: 1764000060123}
			continue
		}
		recs[i] = &format.Record{Key: fmt.Sprintf("client_keys:sk-cli-v1-%064x", i), Type: format.TypeHash, Hash: []format.Field{
			{"tier", "high"}, {"created_at", "2026-11-01T10:00:00Z"}, {"expires_at", "2026-12-01T10:00:00Z"},
			{"requests", "12345"}, {"status", "active"}, {"note", "客户 12"},
		}}
	}
	return recs
}

func BenchmarkWrite(b *testing.B) {
	recs := guideRecords(1000)
	size := int64(len(encode(b, header, recs)))
	b.SetBytes(size / int64(len(recs)))
	w := format.NewWriter(io.Discard)
	w.WriteHeader(header)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := w.Write(recs[i%len(recs)]); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
}

func BenchmarkRead(b *testing.B) {
	recs := guideRecords(1000)
	data := encode(b, header, recs)
	b.SetBytes(int64(len(data)) / int64(len(recs)))
	b.ReportAllocs()
	b.ResetTimer()
	read := 0
	for read < b.N {
		r := format.NewReader(bytes.NewReader(data))
		for read < b.N {
			_, err := r.Read()
			if err == io.EOF {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
			read++
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
}
