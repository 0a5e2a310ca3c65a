package scan

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"strconv"

	"github.com/redis/go-redis/v9"

	"github.com/crs-tool/crs/format"
	"github.com/crs-tool/crs/internal/dumppayload"
	"github.com/crs-tool/crs/internal/redisconn"
	"github.com/crs-tool/crs/internal/rtype"
)

// readVectorSet reads a vector set (Redis 8, or the vectorset module):
// VINFO for its quantization, dimension and M; VRANDMEMBER with the set's
// size for the names of its elements; then VEMB and VGETATTR for a window
// of elements at a time, each window a part. It reads under WATCH, so
// that the parts are one value the set held (atomically). A set made with
// VADD REDUCE cannot be rebuilt from VEMB's reduced vectors (its
// projection matrix cannot be read): it is carried as its DUMP payload.
// It reports retry when the key turned out to have another type.
func (r *reader) readVectorSet(ctx context.Context, p probed) (retry bool, err error) {
	err = r.atomically(ctx, p.key, func(ctx context.Context) error {
		var err error
		retry, err = r.readVectorSetOnce(ctx, p)
		return err
	})
	return retry, err
}

func (r *reader) readVectorSetOnce(ctx context.Context, p probed) (retry bool, err error) {
	fail := func(err error) (bool, error) {
		if redisconn.IsWrongType(err) {
			return true, nil
		}
		return false, fmt.Errorf("db %d: vector set %q: %w", r.db, p.key, err)
	}
	if r.caps.ExpireTime {
		ms, err := r.c.Do(ctx, "PEXPIRETIME", p.key).Int64()
		if err != nil {
			return fail(err)
		}
		p.exp = max(ms, 0)
	}
	info, err := r.c.Do(ctx, "VINFO", p.key).Slice()
	switch {
	case err == redis.Nil:
		r.vanished()
		return false, nil
	case err != nil:
		return fail(err)
	}
	vs, size, projected, err := rtype.VectorSetInfo(info)
	if err != nil {
		return fail(err)
	}
	if projected {
		return false, r.emitDump(ctx, p)
	}
	names, err := r.vectorNames(ctx, p.key, size)
	if err != nil {
		return fail(err)
	}
	defer names.close()
	if names.n == 0 {
		r.vanished()
		return false, nil
	}
	// A window of elements stays near PartBytes of JSON: a component
	// takes about 12 bytes.
	n := max(min(r.opts.PartElems, int(r.opts.PartBytes)/(12*max(vs.Dim, 1)+64)), 1)
	part := 0
	for done := 0; done < names.n; {
		win, err := names.next(n)
		if err != nil {
			return false, fmt.Errorf("db %d: vector set %q: %w", r.db, p.key, err)
		}
		done += len(win)
		elems, err := r.vectorElements(ctx, p.key, win)
		if err != nil {
			return fail(err)
		}
		rec := &format.Record{DB: r.db, Key: p.key, Type: format.TypeVectorSet, VectorSet: &format.VectorSet{Elements: elems}}
		if part == 0 {
			rec.ExpireAtMs = p.exp
			rec.VectorSet.Quant, rec.VectorSet.Dim, rec.VectorSet.M = vs.Quant, vs.Dim, vs.M
		}
		last := done >= names.n
		if part > 0 || !last {
			part++
			rec.Part, rec.More = part, !last
		}
		if err := r.emit(rec); err != nil {
			return false, err
		}
	}
	return false, nil
}

// vectorNames reads the names of a set's elements (VRANDMEMBER with the
// set's size returns each once) as they arrive: held in memory up to
// PartBytes, and past that in a temporary file, so that a set of
// millions of elements is not held whole.
func (r *reader) vectorNames(ctx context.Context, key string, size int64) (*nameSpool, error) {
	sp := &nameSpool{limit: int(r.opts.PartBytes)}
	r.rc.Begin("VRANDMEMBER", 2).Str(key).Int(size)
	if err := r.rc.ExecEach(ctx, sp.add); err != nil {
		sp.close()
		return nil, err
	}
	return sp, sp.rewind()
}

// nameSpool holds names in memory, then in a file past limit bytes.
type nameSpool struct {
	limit int
	mem   []string
	bytes int
	n     int // names added
	f     *os.File
	w     *bufio.Writer
	r     *bufio.Reader

	scratch [binary.MaxVarintLen64]byte
}

func (s *nameSpool) add(name []byte) error {
	s.n++
	if s.f == nil && s.bytes+len(name) <= s.limit {
		s.mem = append(s.mem, string(name))
		s.bytes += len(name)
		return nil
	}
	if s.f == nil {
		f, err := os.CreateTemp("", "crsdump-names-*")
		if err != nil {
			return fmt.Errorf("spool a vector set's names: %w", err)
		}
		s.f, s.w = f, bufio.NewWriter(f)
	}
	s.w.Write(binary.AppendUvarint(s.scratch[:0], uint64(len(name))))
	_, err := s.w.Write(name)
	return err
}

// rewind makes the names readable with next, those in memory first.
func (s *nameSpool) rewind() error {
	if s.f == nil {
		return nil
	}
	if err := s.w.Flush(); err != nil {
		return fmt.Errorf("spool a vector set's names: %w", err)
	}
	if _, err := s.f.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("spool a vector set's names: %w", err)
	}
	s.r = bufio.NewReader(s.f)
	return nil
}

// next returns up to n more names.
func (s *nameSpool) next(n int) ([]string, error) {
	if len(s.mem) > 0 {
		win := s.mem[:min(n, len(s.mem))]
		s.mem = s.mem[len(win):]
		return win, nil
	}
	var win []string
	for len(win) < n && s.r != nil {
		l, err := binary.ReadUvarint(s.r)
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("spooled names: %w", err)
		}
		b := make([]byte, l)
		if _, err := io.ReadFull(s.r, b); err != nil {
			return nil, fmt.Errorf("spooled names: %w", err)
		}
		win = append(win, string(b))
	}
	if len(win) == 0 {
		return nil, fmt.Errorf("spooled names: fewer than the %d read", s.n)
	}
	return win, nil
}

func (s *nameSpool) close() {
	if s.f != nil {
		s.f.Close()
		os.Remove(s.f.Name())
	}
}

// vectorElements reads the vectors and attributes of names in one round
// trip. An element gone meanwhile is left out: the set changed, which the
// WATCH around the read catches.
func (r *reader) vectorElements(ctx context.Context, key string, names []string) ([]format.VectorElement, error) {
	embs := make([]*redis.StringSliceCmd, len(names))
	attrs := make([]*redis.Cmd, len(names))
	_, err := r.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, e := range names {
			embs[i] = redis.NewStringSliceCmd(ctx, "VEMB", key, e)
			attrs[i] = p.Do(ctx, "VGETATTR", key, e)
			p.Process(ctx, embs[i])
		}
		return nil
	})
	if err != nil && err != redis.Nil {
		return nil, err
	}
	out := make([]format.VectorElement, 0, len(names))
	for i, e := range names {
		vals, err := embs[i].Result()
		if err == redis.Nil || len(vals) == 0 {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("VEMB %q: %w", e, err)
		}
		el := format.VectorElement{Name: e, Vector: make([]float32, len(vals))}
		for j, v := range vals {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				return nil, fmt.Errorf("VEMB %q: component %q: %w", e, v, err)
			}
			el.Vector[j] = float32(f)
		}
		switch a, err := attrs[i].Text(); {
		case err == nil:
			el.Attr = a
		case err != redis.Nil:
			return nil, fmt.Errorf("VGETATTR %q: %w", e, err)
		}
		out = append(out, el)
	}
	return out, nil
}

// emitDump emits a key as its DUMP payload.
func (r *reader) emitDump(ctx context.Context, p probed) error {
	payload, err := r.c.Dump(ctx, p.key).Result()
	if err == redis.Nil {
		r.vanished()
		return nil
	}
	if err != nil {
		return fmt.Errorf("db %d: key %q: DUMP: %w", r.db, p.key, err)
	}
	v, err := dumppayload.Version(payload)
	if err != nil {
		return fmt.Errorf("db %d: key %q: %w", r.db, p.key, err)
	}
	return r.emit(&format.Record{DB: r.db, Key: p.key, Type: p.typ, ExpireAtMs: p.exp, Dump: payload, RDBVersion: v})
}
