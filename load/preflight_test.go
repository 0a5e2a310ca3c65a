package load

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/crs-tool/crs/format"
	"github.com/crs-tool/crs/internal/redisconn"
	"github.com/crs-tool/crs/internal/redistest"
)

// streamDump holds a plain stream, one with a consumer, and one with the
// 7.0 counters, the last in two parts.
var streamDump = handWritten(`{"format":"crs","version":1,"server_version":"7.0.15","field_expiry":false,"modules":[]}`,
	`{"db":0,"key":"plain","type":"stream","value":{"entries":[["1-0",["a","1"]]],"last_id":"1-0"}}`,
	`{"db":0,"key":"consumer","type":"stream","value":{"entries":[["1-0",["a","1"]]],"last_id":"1-0","groups":[{"name":"g","last_delivered_id":"0-0","consumers":[{"name":"c","seen_time_ms":1}],"pending":[]}]}}`,
	`{"db":1,"key":"counters","type":"stream","part":1,"more":true,"value":{"entries":[["1-0",["a","1"]]],"groups":[{"name":"g","last_delivered_id":"1-0","entries_read":1,"consumers":[{"name":"c","seen_time_ms":1}],"pending":[]}]}}`,
	`{"db":1,"key":"counters","type":"stream","part":2,"value":{"entries":[["2-0",["a","2"]]],"last_id":"2-0","entries_added":2,"max_deleted_id":"0-0"}}`,
	`{"db":1,"key":"string","type":"string","value":"v"}`,
)

func TestScanNeeds(t *testing.T) {
	path := filepath.Join(t.TempDir(), "d.jsonl")
	if err := os.WriteFile(path, []byte(streamDump), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		version string
		want    []string // one problem each, in order
	}{
		{"7.0.15", nil},
		{"6.2.14", []string{`1 keys have stream counters (entries-read, entries-added, max-deleted-entry-id), which need XSETID ... ENTRIESADDED MAXDELETEDID and XGROUP CREATE ... ENTRIESREAD (Redis 7.0+), and the target is redis 6.2.14: "counters" (db 1)`}},
		// Consumers without pending entries are made by XREADGROUP before 6.2.
		{"6.0.20", []string{`1 keys have stream counters (entries-read, entries-added, max-deleted-entry-id), which need XSETID ... ENTRIESADDED MAXDELETEDID and XGROUP CREATE ... ENTRIESREAD (Redis 7.0+), and the target is redis 6.0.20: "counters" (db 1)`}},
		{"4.0.14", []string{`3 keys have streams, which need XADD (Redis 5.0+), and the target is redis 4.0.14: "plain" (db 0), "consumer" (db 0), "counters" (db 1)`, `1 keys have stream counters`}},
	} {
		major, minor := redisconn.ParseVersion(tt.version)
		tgt := serverInfo{Server: redisconn.Server{Version: tt.version, Engine: "redis", Major: major, Minor: minor}}
		problems, err := scanNeeds(context.Background(), fileInput(path), tgt, false, NewOptions())
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, p := range problems {
			if !errors.Is(p, ErrTargetLacks) {
				t.Errorf("%s: %v is not ErrTargetLacks", tt.version, p)
			}
			got = append(got, p.Error())
		}
		joined := strings.Join(got, "\n")
		for _, w := range tt.want {
			if !strings.Contains(joined, w) {
				t.Errorf("target %s: problems do not say %q:\n%s", tt.version, w, joined)
			}
		}
		if tt.want == nil && len(got) > 0 {
			t.Errorf("target %s: problems %q, want none", tt.version, got)
		}
		if tt.want != nil && len(got) != strings.Count(strings.Join(tt.want, "\n"), "keys have") {
			t.Errorf("target %s: %d problems:\n%s", tt.version, len(got), joined)
		}
		// Only a target older than 7.0 makes a load read the dump first.
		if want := tt.version != "7.0.15"; needsScan(headerOf(t, streamDump), tgt, NewOptions()) != want {
			t.Errorf("target %s: needsScan = %v, want %v", tt.version, !want, want)
		}
	}
}

// moduleDump holds a vector set, in two parts, and a JSON document as a
// DUMP payload, from a source with both modules.
var moduleDump = handWritten(`{"format":"crs","version":1,"server_version":"8.0.6","field_expiry":false,"modules":["vectorset","ReJSON"]}`,
	`{"db":0,"key":"vs","type":"vectorset","part":1,"more":true,"value":{"quant":"int8","dim":2,"m":16,"elements":[["a",[1,2]]]}}`,
	`{"db":0,"key":"vs","type":"vectorset","part":2,"value":{"elements":[["b",[2,1]]]}}`,
	`{"db":0,"key":"doc","type":"ReJSON-RL","rdb_version":12,"dump":"AAAA"}`,
	`{"db":0,"key":"s","type":"string","value":"v"}`,
)

func TestScanNeedsModules(t *testing.T) {
	path := filepath.Join(t.TempDir(), "d.jsonl")
	if err := os.WriteFile(path, []byte(moduleDump), 0o600); err != nil {
		t.Fatal(err)
	}
	skip := NewOptions()
	skip.SkipUnsupported = true
	for _, tt := range []struct {
		name      string
		caps      redisconn.Caps
		opts      Options
		want      []string
		needsScan bool
	}{
		{"both modules", redisconn.Caps{VectorSets: true, Modules: []string{"vectorset", "ReJSON"}}, NewOptions(), nil, false},
		{"no vector sets", redisconn.Caps{Modules: []string{"ReJSON"}}, NewOptions(), []string{`1 keys have vector sets, which need VADD (Redis 8.0+, or the vectorset module on 7.x), and the target is redis 7.4.1: "vs" (db 0)`}, true},
		{"no modules", redisconn.Caps{Modules: []string{}}, NewOptions(), []string{`1 keys have vector sets`, `1 keys have the module type "ReJSON-RL" (DUMP payloads), which need the module "ReJSON"`}, true},
		{"no modules, --skip-unsupported", redisconn.Caps{Modules: []string{}}, skip, []string{`1 keys have vector sets`}, true},
		{"MODULE LIST denied", redisconn.Caps{VectorSets: true}, NewOptions(), nil, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tgt := serverInfo{Server: redisconn.Server{Version: "7.4.1", Engine: "redis", Major: 7, Minor: 4}, Caps: tt.caps}
			tgt.FieldExpiry = true
			problems, err := scanNeeds(context.Background(), fileInput(path), tgt, false, tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			if len(problems) != len(tt.want) {
				t.Fatalf("%d problems, want %d: %v", len(problems), len(tt.want), problems)
			}
			for i, w := range tt.want {
				if !errors.Is(problems[i], ErrTargetLacks) || !strings.Contains(problems[i].Error(), w) {
					t.Errorf("problem %d: %v, want %q", i, problems[i], w)
				}
			}
			if got := needsScan(headerOf(t, moduleDump), tgt, tt.opts); got != tt.needsScan {
				t.Errorf("needsScan = %v, want %v", got, tt.needsScan)
			}
		})
	}
}

// idmpDump holds, from Redis 8.6, a stream that tracks a producer's ID,
// one with settings of its own, and one with the defaults only.
var idmpDump = handWritten(`{"format":"crs","version":1,"server_version":"8.6.3","field_expiry":true,"modules":[]}`,
	`{"db":0,"key":"tracked","type":"stream","value":{"entries":[["1-0",["a","1"]]],"last_id":"1-0","idmp":{"duration":100,"maxsize":100,"tracked":1,"producers":[{"pid":"p","iids":[["i","1-0"]]}]}}}`,
	`{"db":0,"key":"settings","type":"stream","value":{"entries":[["1-0",["a","1"]]],"last_id":"1-0","idmp":{"duration":600,"maxsize":100,"tracked":0,"producers":[]}}}`,
	`{"db":0,"key":"defaults","type":"stream","value":{"entries":[["1-0",["a","1"]]],"last_id":"1-0","idmp":{"duration":100,"maxsize":100,"tracked":0,"producers":[]}}}`,
)

func TestScanNeedsIDMP(t *testing.T) {
	path := filepath.Join(t.TempDir(), "d.jsonl")
	if err := os.WriteFile(path, []byte(idmpDump), 0o600); err != nil {
		t.Fatal(err)
	}
	drop := NewOptions()
	drop.DropStreamIDMP = true
	for _, tt := range []struct {
		name      string
		idmp      bool
		opts      Options
		want      string
		needsScan bool
	}{
		{"8.6.3", true, NewOptions(), "", false},
		{"8.0.6", false, NewOptions(), `2 keys have streams' idempotent-producer state (idmp settings other than the defaults, or tracked producer IDs), which need XCFGSET and XIDMPRECORD (Redis 8.6.2+), and the target is redis 8.0.6: "tracked" (db 0), "settings" (db 0); use --drop-stream-idmp`, true},
		{"8.0.6 --drop-stream-idmp", false, drop, "", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tgt := serverInfo{Server: redisconn.Server{Version: "8.0.6", Engine: "redis", Major: 8, Minor: 0}, Caps: redisconn.Caps{FieldExpiry: true, VectorSets: true, IDMP: tt.idmp, Modules: []string{}}}
			problems, err := scanNeeds(context.Background(), fileInput(path), tgt, false, tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			if got := fmt.Sprint(problems); tt.want == "" && len(problems) > 0 || tt.want != "" && (len(problems) != 1 || !strings.Contains(got, tt.want)) {
				t.Errorf("problems %s, want %q", got, tt.want)
			}
			if got := needsScan(headerOf(t, idmpDump), tgt, tt.opts); got != tt.needsScan {
				t.Errorf("needsScan = %v, want %v", got, tt.needsScan)
			}
		})
	}
}

// TestPreflightListsEveryProblem plants three problems in one target and
// expects one run to name them all and write nothing.
func TestPreflightListsEveryProblem(t *testing.T) {
	for _, policy := range []string{"noeviction", "allkeys-lru"} {
		t.Run(policy, func(t *testing.T) {
			s := redistest.Start(t, "--maxmemory", "4mb", "--maxmemory-policy", policy)
			ctx := context.Background()
			redistest.Client(t, s, 0).Set(ctx, "there", "already", 0)
			in := handWritten(`{"format":"crs","version":1,"databases":[{"db":0,"keys":2}],"memory_bytes":104857600}`,
				`{"db":0,"key":"h","type":"hash","field_expire_at_ms":{"f":99999999999999},"value":{"f":"1","g":"2"}}`,
				`{"db":0,"key":"s","type":"string","value":"v"}`)
			opts := NewOptions()
			opts.Conn.URL = s.URL
			var stderr bytes.Buffer
			err := Run(ctx, opts, stdinInput(strings.NewReader(in)), &stderr)
			var pe *PreflightError
			if !errors.As(err, &pe) || len(pe.Problems) != 3 {
				t.Fatalf("err = %v", err)
			}
			for _, sentinel := range []error{ErrTargetNotEmpty, ErrTargetMemory, ErrTargetLacks} {
				if !errors.Is(err, sentinel) {
					t.Errorf("err does not match %v", sentinel)
				}
			}
			msg := err.Error()
			for _, want := range []string{"3 problems, nothing was written", "db 0 has 1 keys", "about 100.0 MiB on the source", "maxmemory 4.0 MiB", `1 keys have hash field expiries`, `"h" (db 0)`, "--drop-field-expiry"} {
				if !strings.Contains(msg, want) {
					t.Errorf("error does not say %q:\n%s", want, msg)
				}
			}
			if policy != "noeviction" && !strings.Contains(msg, "would evict keys") {
				t.Errorf("error does not warn of eviction:\n%s", msg)
			}
			if n, _ := redistest.Client(t, s, 0).DBSize(ctx).Result(); n != 1 {
				t.Errorf("the target holds %d keys, want its 1", n)
			}

			// Each problem answered, the load goes through.
			opts.Replace, opts.IgnoreMemory, opts.DropFieldExpiry = true, true, true
			stderr.Reset()
			if err := Run(ctx, opts, stdinInput(strings.NewReader(in)), &stderr); err != nil {
				t.Fatalf("%v\n%s", err, stderr.String())
			}
			if !strings.Contains(stderr.String(), "pre-flight ok") || !strings.Contains(stderr.String(), "DROPPED 1 hash field expiries") {
				t.Errorf("summary: %s", stderr.String())
			}
		})
	}
}

func headerOf(t *testing.T, dump string) format.Header {
	t.Helper()
	h, err := format.NewReader(strings.NewReader(dump)).Header()
	if err != nil {
		t.Fatal(err)
	}
	return h
}
