package pick

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strconv"

	"github.com/crs-tool/crs/format"
	"github.com/crs-tool/crs/internal/progress"
	"github.com/crs-tool/crs/internal/store"
	"github.com/crs-tool/crs/records"
)

// setInput is a dump set (format.ReadSet) read as one dump: its parts one
// after another, their headers made one. With --part I/N where the set
// has N parts, part I alone.
type setInput struct {
	spec    Spec
	dir     string
	entries []format.PartEntry
}

// openSet reads and checks the set spec.File names (a directory, or a
// URL's prefix) before anything is read of it: a part missing or cut
// short fails here, naming it. ok is false where spec.File holds no part
// entries and is not a directory: a file, or an object.
func openSet(ctx context.Context, spec Spec) (in records.Input, ok bool) {
	dir := spec.File
	if !store.IsURL(dir) && !store.IsDir(dir) {
		return nil, false
	}
	fsys, done, err := store.Dir(ctx, dir)
	if err != nil {
		return failed{store.Redact(dir), err}, true
	}
	defer done()
	if !format.IsSet(fsys) && !(store.IsURL(dir) && store.IsDir(dir)) {
		return nil, false // a file, an AOF directory, an object
	}
	entries, err := format.ReadSet(fsys, store.Redact(dir), spec.Select.Part.I, spec.Select.Part.N)
	if err != nil {
		return failed{store.Redact(dir), err}, true
	}
	if spec.SetParts != nil {
		entries = slices.DeleteFunc(entries, func(e format.PartEntry) bool { return !slices.Contains(spec.SetParts, e.Part) })
		if len(entries) == 0 {
			return failed{store.Redact(dir), fmt.Errorf("%w %s: --parts-file lists none of its parts", format.ErrSet, store.Redact(dir))}, true
		}
	}
	return &setInput{spec: spec, dir: dir, entries: entries}, true
}

// Entries returns the set's part entries, in part order.
func (s *setInput) Entries() []format.PartEntry { return s.entries }

func (s *setInput) Name() string      { return store.Redact(s.dir) }
func (s *setInput) Replayable() error { return nil }
func (s *setInput) Close() error      { return nil }

// Parts returns each part as an input of its own, selected and reshaped
// as the set is (records.PartsInput).
func (s *setInput) Parts() []records.Input {
	var parts []records.Input
	for k := range s.entries {
		in := s.part(k)
		in.spec.Select, in.spec.Reshape = s.spec.Select, s.spec.Reshape
		parts = append(parts, &namedPart{input: in, set: s, k: k})
	}
	return parts
}

// namedPart is a part of a set read on its own: its errors name the part
// as the set's reader names them.
type namedPart struct {
	*input
	set *setInput
	k   int
}

func (p *namedPart) Open(ctx context.Context, c *progress.Counter) (records.ReadCloser, error) {
	rc, err := p.input.Open(ctx, c)
	if err != nil {
		return nil, p.named(err)
	}
	return &namedReader{Wrapped: records.Wrapped{ReadCloser: rc}, p: p}, nil
}

func (p *namedPart) named(err error) error {
	return fmt.Errorf("%s: %w", store.Redact(store.Join(p.set.dir, p.set.entries[p.k].File)), err)
}

// namedReader names its part in its errors.
type namedReader struct {
	records.Wrapped
	p *namedPart
}

func (r *namedReader) Read() (*format.Record, error) {
	rec, err := r.Wrapped.Read()
	if err != nil && err != io.EOF {
		err = r.p.named(err)
	}
	return rec, err
}

// part is part k's file as an input of its own, neither selected nor
// reshaped (the set's reader does both, once).
func (s *setInput) part(k int) *input {
	spec := s.spec
	spec.File = store.Join(s.dir, s.entries[k].File)
	spec.Select, spec.Reshape = records.Selection{}, records.Reshape{}
	return &input{spec: spec, path: spec.File}
}

func (s *setInput) Header(ctx context.Context) (format.Header, error) {
	h, err := s.merged(ctx)
	return s.spec.Reshape.Header(h), err
}

// merged is the parts' headers made one. Each part's header describes
// what its source held (a server's keys and memory whole, a cluster's
// for the shards it read); the entries count the part's own keys, and
// its memory is taken in proportion.
func (s *setInput) merged(ctx context.Context) (format.Header, error) {
	var h format.Header
	byDB := map[int]int64{}
	for k, e := range s.entries {
		ph, err := s.part(k).Header(ctx)
		if err != nil {
			return h, err
		}
		var srcKeys int64
		for _, d := range ph.Databases {
			srcKeys += d.Keys
		}
		if srcKeys > e.Keys {
			ph.MemoryBytes = int64(float64(ph.MemoryBytes) * float64(e.Keys) / float64(srcKeys))
		}
		if k == 0 {
			h = ph
		} else {
			h.CreatedMs = min(h.CreatedMs, ph.CreatedMs)
			h.NoFieldExpiry = h.NoFieldExpiry && ph.NoFieldExpiry
			h.MemoryBytes += ph.MemoryBytes
			for _, m := range ph.Modules {
				if !slices.Contains(h.Modules, m) {
					h.Modules = append(h.Modules, m)
				}
			}
		}
		for db, n := range e.KeysByDB {
			d, err := strconv.Atoi(db)
			if err != nil {
				return h, fmt.Errorf("%w %s: part %d's keys_by_db names database %q", format.ErrSet, s.dir, e.Part, db)
			}
			byDB[d] += n
		}
	}
	h.Databases = []format.Database{}
	for db, n := range byDB {
		h.Databases = append(h.Databases, format.Database{DB: db, Keys: n})
	}
	slices.SortFunc(h.Databases, func(a, b format.Database) int { return a.DB - b.DB })
	return h, nil
}

func (s *setInput) Open(ctx context.Context, p *progress.Counter) (records.ReadCloser, error) {
	return s.read(ctx, func(in *input) (records.ReadCloser, error) { return in.Open(ctx, p) })
}

func (s *setInput) Skim(ctx context.Context) (records.ReadCloser, error) {
	return s.read(ctx, func(in *input) (records.ReadCloser, error) { return in.Skim(ctx) })
}

func (s *setInput) read(ctx context.Context, open func(*input) (records.ReadCloser, error)) (records.ReadCloser, error) {
	h, err := s.merged(ctx)
	if err != nil {
		return nil, err
	}
	return s.spec.shape(&concat{s: s, open: open, hdr: h}), nil
}

// concat reads the parts' records one part after another.
type concat struct {
	s    *setInput
	open func(*input) (records.ReadCloser, error)
	hdr  format.Header
	k    int                // the next part to open
	cur  records.ReadCloser // the part being read, nil between parts
	st   records.Stats      // of the parts read to their end
}

func (c *concat) Header() (format.Header, error) { return c.hdr, nil }

func (c *concat) Read() (*format.Record, error) {
	for {
		if c.cur == nil {
			if c.k == len(c.s.entries) {
				return nil, io.EOF
			}
			rc, err := c.open(c.s.part(c.k))
			if err != nil {
				return nil, c.namedPart(c.k, err)
			}
			if _, err := rc.Header(); err != nil {
				rc.Close()
				return nil, c.namedPart(c.k, err)
			}
			c.cur, c.k = rc, c.k+1
		}
		rec, err := c.cur.Read()
		switch {
		case err == nil:
			return rec, nil
		case err != io.EOF:
			return nil, c.named(err)
		}
		st, err := c.cur.Close()
		c.cur = nil
		c.add(st)
		if err != nil {
			return nil, c.named(err)
		}
	}
}

// named says which part's file an error of the part being read is of.
func (c *concat) named(err error) error { return c.namedPart(c.k-1, err) }

func (c *concat) namedPart(k int, err error) error {
	return fmt.Errorf("%s: %w", store.Redact(store.Join(c.s.dir, c.s.entries[k].File)), err)
}

func (c *concat) add(st records.Stats) {
	if c.st.From == "" {
		c.st = st
		return
	}
	c.st.Add(&st)
}

func (c *concat) Close() (records.Stats, error) {
	var err error
	if c.cur != nil {
		var st records.Stats
		st, err = c.cur.Close()
		c.cur = nil
		c.add(st)
	}
	return c.st, err
}
