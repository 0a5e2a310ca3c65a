package dump

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/crs-tool/crs/format"
	"github.com/crs-tool/crs/internal/keyslot"
	"github.com/crs-tool/crs/internal/progress"
	"github.com/crs-tool/crs/internal/store"
	"github.com/crs-tool/crs/records"
)

// SetOptions are a dump set's: the directory (a path, or a URL of
// object storage), and which parts of how many this process writes.
type SetOptions struct {
	Dir   string
	Parts []keyslot.Part
	// Version is crs's version, for the entries.
	Version string
}

// RunSet writes parts of a dump set (format.ReadSet) into dir: for each,
// the dump of the keys open(part) reads, then its entry, once the dump is
// whole (committed: renamed, or its upload completed). Parts are written
// one after another, each as Run writes a dump.
func RunSet(ctx context.Context, open func(keyslot.Part) records.Input, set SetOptions, opts Options, stdout, stderr io.Writer) error {
	if err := store.MkdirAll(set.Dir); err != nil {
		return fmt.Errorf("dump set: %w", err)
	}
	for _, p := range set.Parts {
		if err := runPart(ctx, open(p), p, set, opts, stdout, stderr); err != nil {
			return fmt.Errorf("part %s: %w", p, err)
		}
	}
	return nil
}

func runPart(ctx context.Context, in records.Input, p keyslot.Part, set SetOptions, opts Options, stdout, stderr io.Writer) error {
	defer in.Close()
	name := format.PartName(p.I, p.N) + ".jsonl"
	if opts.Compress == "zstd" {
		name += ".zst"
	}
	opts.Output = store.Join(set.Dir, name)
	var sum bytes.Buffer
	if opts.Summary != nil {
		opts.Summary = io.MultiWriter(opts.Summary, &sum)
	} else {
		opts.Summary = &sum
	}
	opts.Counter = &progress.Counter{}
	started := time.Now()
	counted := &byDB{Input: in, keys: map[string]int64{}}
	if err := Run(ctx, counted, opts, stdout, stderr); err != nil {
		return err
	}
	var st struct {
		Records int64  `json:"records"`
		Keys    int64  `json:"keys"`
		Written int64  `json:"written_bytes"`
		CRC32C  string `json:"written_crc32c"`
	}
	if err := json.Unmarshal(sum.Bytes(), &st); err != nil {
		return fmt.Errorf("read its summary: %w", err)
	}
	lo, hi := p.Range()
	b, err := json.MarshalIndent(format.PartEntry{
		Format: format.SetFormat, Version: 1, Part: p.I, Parts: p.N, Slots: [2]int{lo, hi - 1},
		File: name, Bytes: st.Written, CRC32C: st.CRC32C, Records: st.Records, Keys: st.Keys,
		KeysByDB: counted.keys, Source: store.Redact(in.Name()), CRSVersion: set.Version,
		StartedMs: started.UnixMilli(), FinishedMs: time.Now().UnixMilli(),
	}, "", "  ")
	if err != nil {
		return err
	}
	return store.WriteFile(ctx, store.Join(set.Dir, format.EntryName(p.I, p.N)), append(b, '\n'))
}

// byDB counts, per database, the keys read from an input.
type byDB struct {
	records.Input
	keys map[string]int64
}

func (b *byDB) Open(ctx context.Context, p *progress.Counter) (records.ReadCloser, error) {
	rc, err := b.Input.Open(ctx, p)
	if err != nil {
		return nil, err
	}
	return &countingReader{ReadCloser: rc, keys: b.keys}, nil
}

type countingReader struct {
	records.ReadCloser
	keys map[string]int64
}

func (c *countingReader) Read() (*format.Record, error) {
	rec, err := c.ReadCloser.Read()
	if err == nil && rec.Part <= 1 && rec.Type != format.TypeFunction {
		c.keys[strconv.Itoa(rec.DB)]++
	}
	return rec, err
}
