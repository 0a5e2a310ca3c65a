package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/crs-tool/crs/internal/e2e"

	"github.com/klauspost/compress/zstd"
	"github.com/redis/go-redis/v9"

	"github.com/crs-tool/crs/internal/redisserver"
	"github.com/crs-tool/crs/internal/redistest"
	"github.com/crs-tool/crs/load"
	"github.com/crs-tool/crs/verify"
)

// vectorSets are the sets TestVectorSetsMove makes: each quantization,
// another M, attributes, a name that is not UTF-8, and one large enough
// to be read in parts.
var vectorSets = []struct {
	key   string
	n     int
	dim   int
	quant string // VADD option
	m     int    // 0: the default
}{
	{"vs:q8", 200, 32, "Q8", 0},
	{"vs:f32", 150, 8, "NOQUANT", 32},
	{"vs:bin", 100, 70, "BIN", 0},
	{"vs:parts", 1200, 4, "Q8", 0},
}

// TestVectorSetsMove moves vector sets from each server with vector sets
// built in (Redis 8.0+) to each of them and to a server that has them from
// the vectorset module (Debian's 7.0 with modules/vectorset.so), through
// records jq can read and through the source's RDB file, and checks that a
// server without them is refused before anything is written.
func TestVectorSetsMove(t *testing.T) {
	bins := redistest.Servers(t)
	var builtIn []redistest.Binary
	var module *redistest.Binary
	for i, b := range bins {
		switch {
		case b.VectorSets:
			builtIn = append(builtIn, b)
		case b.VectorModule != "" && module == nil:
			module = &bins[i]
		}
	}
	if len(builtIn) == 0 || module == nil {
		t.Fatalf("need a server with vector sets built in and one that loads the vectorset module, among:\n%s", redistest.Describe(bins))
	}
	t.Logf("built in: %v; from the module: %s", builtIn, module.Name)
	for i, srcBin := range builtIn {
		t.Run("from "+srcBin.Name, func(t *testing.T) {
			vectorSetsFrom(t, srcBin, builtIn, *module, i == 0)
		})
	}
}

// vectorSetsFrom is TestVectorSetsMove from a server of srcBin; with
// first, it also checks that verify sees changed vectors and that a
// server without vector sets is refused.
func vectorSetsFrom(t *testing.T, srcBin redistest.Binary, builtIn []redistest.Binary, module redistest.Binary, first bool) {
	src := redistest.StartBinary(t, srcBin.Path)
	ctx := context.Background()
	sc := redistest.Client(t, src, 0)
	fillVectorSets(t, ctx, sc)

	// Small parts: the big set is read in many windows, its names past
	// 4 KiB spooled to a file.
	file, stderr := runDump(t, src, func(o *dumpSetup) { o.PartElems, o.PartBytes = 500, 4096 })
	if !strings.Contains(stderr, "vectorset 5") {
		t.Errorf("dump summary does not count 5 vector sets:\n%s", stderr)
	}
	checkJSONLines(t, file)

	for j, dstBin := range builtIn {
		t.Run("to "+dstBin.Name, func(t *testing.T) {
			dst := redistest.StartBinary(t, dstBin.Path)
			loadAndCompare(t, ctx, src, dst, file)
			if first && j == 0 {
				verifySeesChangedVectors(t, ctx, dst, file)
			}
		})
	}
	t.Run("to "+module.Name+" with the module", func(t *testing.T) {
		dst := redistest.StartBinary(t, module.Path, "--loadmodule", module.VectorModule)
		loadAndCompare(t, ctx, src, dst, file)
	})
	t.Run("from its RDB file to "+module.Name+" with the module", func(t *testing.T) {
		// The module's own serialization is decoded into the same records.
		if err := sc.Save(ctx).Err(); err != nil {
			t.Fatal(err)
		}
		rdbFile := filepath.Join(src.Dir, "dump.rdb")
		out, code := e2e.Sh(t, t.TempDir(), "crs verify -u "+src.URL+" "+rdbFile)
		if code != 0 || !strings.Contains(out, " 0 differences") {
			t.Fatalf("verify of the RDB file against its server: exit %d\n%s", code, out)
		}
		converted := filepath.Join(t.TempDir(), "from-rdb.jsonl.zst")
		if out, code := e2e.Sh(t, t.TempDir(), "crsdump --rdb "+rdbFile+" -o "+converted); code != 0 {
			t.Fatalf("crsdump --rdb: exit %d\n%s", code, out)
		}
		checkJSONLines(t, converted)
		dst := redistest.StartBinary(t, module.Path, "--loadmodule", module.VectorModule)
		loadAndCompare(t, ctx, src, dst, converted)
	})
	if !first {
		return
	}
	t.Run("to "+module.Name+" without the module", func(t *testing.T) {
		dst := redistest.StartBinary(t, module.Path)
		out, err := runLoad(t, dst, file, nil)
		var pe *load.PreflightError
		if !errors.As(err, &pe) || !errors.Is(err, load.ErrTargetLacks) {
			t.Fatalf("err = %v, want a pre-flight refusal\n%s", err, out)
		}
		for _, want := range []string{"5 keys have vector sets, which need VADD", `"vs:q8" (db 0)`, `"vs:reduced" (db 0)`} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("refusal does not say %q: %v", want, err)
			}
		}
		if n, _ := redistest.Client(t, dst, 0).DBSize(ctx).Result(); n != 0 {
			t.Errorf("the refused load wrote %d keys", n)
		}
	})
}

// verifySeesChangedVectors changes a vector and an element's attributes
// on dst and checks that crs verify against the dump file names both.
func verifySeesChangedVectors(t *testing.T, ctx context.Context, dst *redisserver.Server, file string) {
	dc := redistest.Client(t, dst, 0)
	emb, _ := dc.Do(ctx, "VEMB", "vs:f32", "e1").Float64Slice()
	moved := make([]byte, 4*len(emb))
	for j, f := range emb {
		binary.LittleEndian.PutUint32(moved[4*j:], math.Float32bits(float32(f)))
	}
	binary.LittleEndian.PutUint32(moved, math.Float32bits(float32(emb[0])*1.01))
	dc.Do(ctx, "VADD", "vs:f32", "FP32", string(moved), "e1", "NOQUANT", "M", 32)
	dc.Do(ctx, "VSETATTR", "vs:bin", "e0", `{"i":-1}`)
	opts := verify.NewOptions()
	opts.Target.URL, opts.Progress = dst.URL, "none"
	var out bytes.Buffer
	err := verify.Run(ctx, opts, fileInput(file), &out)
	if !errors.Is(err, verify.ErrDifferent) || !strings.Contains(out.String(), `"vs:f32": element "e1": vector component 0`) || !strings.Contains(out.String(), `"vs:bin": element "e0": attributes`) {
		t.Errorf("verify of a changed vector and attributes: %v\n%s", err, out.String())
	}
}

// fillVectorSets makes vectorSets, a set made with REDUCE (carried as a
// DUMP payload), and a string, on c.
func fillVectorSets(t *testing.T, ctx context.Context, c *redis.Client) {
	t.Helper()
	rnd := rand.New(rand.NewSource(1))
	for _, s := range vectorSets {
		p := c.Pipeline()
		for i := 0; i < s.n; i++ {
			args := []interface{}{"VADD", s.key, "FP32", blob(rnd, s.dim), fmt.Sprintf("e%d", i), s.quant}
			if s.m > 0 {
				args = append(args, "M", s.m)
			}
			if i%3 == 0 {
				args = append(args, "SETATTR", fmt.Sprintf(`{"i":%d,"tag":"é"}`, i))
			}
			p.Do(ctx, args...)
		}
		p.Do(ctx, "VADD", s.key, "FP32", blob(rnd, s.dim), "bin\xff\x00name", s.quant, "M", max(s.m, 16))
		if _, err := p.Exec(ctx); err != nil {
			t.Fatalf("%s: %v", s.key, err)
		}
	}
	c.Expire(ctx, "vs:q8", time.Hour)
	for i := 0; i < 20; i++ {
		if err := c.Do(ctx, "VADD", "vs:reduced", "REDUCE", 4, "FP32", blob(rnd, 16), fmt.Sprintf("r%d", i)).Err(); err != nil {
			t.Fatal(err)
		}
	}
	c.Set(ctx, "plain", "v", 0)
}

func blob(rnd *rand.Rand, dim int) string {
	b := make([]byte, 4*dim)
	for j := 0; j < dim; j++ {
		binary.LittleEndian.PutUint32(b[4*j:], math.Float32bits(float32(rnd.NormFloat64()*2)))
	}
	return string(b)
}

// checkJSONLines decompresses a dump and parses each line as JSON, as
// zstd -dc | jq would, and checks that a vector set's record shows its
// elements.
func checkJSONLines(t *testing.T, file string) {
	t.Helper()
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	dec, err := zstd.NewReader(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	defer dec.Close()
	var text bytes.Buffer
	if _, err := text.ReadFrom(dec); err != nil {
		t.Fatal(err)
	}
	var params string
	elements := 0
	for i, line := range strings.Split(strings.TrimSpace(text.String()), "\n") {
		var v map[string]interface{}
		if err := json.Unmarshal([]byte(line), &v); err != nil {
			t.Fatalf("line %d is not JSON: %v", i+1, err)
		}
		key, _ := v["key"].(string)
		if v["enc"] == "base64" { // the element name that is not UTF-8
			b, _ := base64.StdEncoding.DecodeString(key)
			key = string(b)
		}
		if key == "vs:f32" { // in parts or whole
			val, _ := v["value"].(map[string]interface{})
			elems, _ := val["elements"].([]interface{})
			elements += len(elems)
			if part, _ := v["part"].(float64); part <= 1 {
				params = fmt.Sprintf("%v %v %v", val["quant"], val["dim"], val["m"])
			}
		}
	}
	if params != "f32 8 32" || elements != 151 {
		t.Errorf("vs:f32's records: quant, dim and m %q, %d elements; want f32 8 32, 151", params, elements)
	}
}

// loadAndCompare loads file into dst, runs crs verify, and compares each
// vector set element by element with the source's.
func loadAndCompare(t *testing.T, ctx context.Context, src, dst *redisserver.Server, file string) {
	t.Helper()
	out, err := runLoad(t, dst, file, func(o *load.Options) { o.JSON = true })
	if err != nil {
		t.Fatalf("load: %v\n%s", err, out)
	}
	var summary struct {
		Approx int `json:"vectors_approximate"`
	}
	if err := json.Unmarshal([]byte(out[strings.LastIndex(out, "\n{")+1:]), &summary); err != nil {
		t.Fatalf("load summary: %v\n%s", err, out)
	}
	approx := 0
	defer func() {
		// Every vector that did not come back bit-exact was counted.
		if approx != summary.Approx {
			t.Errorf("%d vectors differ in their last bits, the load counted %d", approx, summary.Approx)
		}
	}()
	opts := verify.NewOptions()
	opts.Target.URL = dst.URL
	opts.Quiet = true
	var vout bytes.Buffer
	if err := verify.Run(ctx, opts, fileInput(file), &vout); err != nil {
		t.Fatalf("verify: %v\n%s", err, vout.String())
	}
	sc, dc := redistest.Client(t, src, 0), redistest.Client(t, dst, 0)
	for _, s := range vectorSets {
		a, b := vinfo(t, ctx, sc, s.key), vinfo(t, ctx, dc, s.key)
		for _, f := range []string{"quant-type", "vector-dim", "hnsw-m", "size", "attributes-count"} {
			if a[f] != b[f] {
				t.Errorf("%s: VINFO %s %v, target %v", s.key, f, a[f], b[f])
			}
		}
		names, _ := sc.Do(ctx, "VRANDMEMBER", s.key, s.n+1).StringSlice()
		var exact, off int
		var worst int64
		for _, e := range names {
			va, _ := sc.Do(ctx, "VEMB", s.key, e).Float64Slice()
			vb, err := dc.Do(ctx, "VEMB", s.key, e).Float64Slice()
			if err != nil || len(va) != len(vb) {
				t.Fatalf("%s element %q: %v, %d components, target %d", s.key, e, err, len(va), len(vb))
			}
			same := true
			for j := range va {
				if d := ulpDistance(float32(va[j]), float32(vb[j])); d > 0 {
					same, worst = false, max(worst, d)
				}
			}
			if same {
				exact++
			} else {
				off++
			}
			aa, _ := sc.Do(ctx, "VGETATTR", s.key, e).Text()
			ab, _ := dc.Do(ctx, "VGETATTR", s.key, e).Text()
			if aa != ab {
				t.Errorf("%s element %q: attributes %q, target %q", s.key, e, aa, ab)
			}
		}
		t.Logf("%s (%s): %d elements, %d vectors bit-exact, %d within %d ulps", s.key, s.quant, len(names), exact, off, worst)
		if worst > 4 {
			t.Errorf("%s: a vector component %d ulps away", s.key, worst)
		}
		approx += off
	}
	if a, b := sc.PExpireTime(ctx, "vs:q8").Val(), dc.PExpireTime(ctx, "vs:q8").Val(); a != b {
		t.Errorf("vs:q8 expires at %v, target %v", a, b)
	}
	if a, b := sc.Do(ctx, "VCARD", "vs:reduced").Val(), dc.Do(ctx, "VCARD", "vs:reduced").Val(); a != b {
		t.Errorf("vs:reduced (a DUMP payload): VCARD %v, target %v", a, b)
	}
}

func vinfo(t *testing.T, ctx context.Context, c *redis.Client, key string) map[string]interface{} {
	t.Helper()
	info, err := c.Do(ctx, "VINFO", key).Slice()
	if err != nil {
		t.Fatalf("VINFO %s: %v", key, err)
	}
	m := map[string]interface{}{}
	for i := 0; i+1 < len(info); i += 2 {
		m[fmt.Sprint(info[i])] = info[i+1]
	}
	return m
}

func ulpDistance(a, b float32) int64 {
	ord := func(f float32) int64 {
		u := int64(math.Float32bits(f))
		if u&(1<<31) != 0 {
			return -(u &^ (1 << 31))
		}
		return u
	}
	d := ord(a) - ord(b)
	return max(d, -d)
}
