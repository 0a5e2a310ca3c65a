package scan

import (
	"context"
	"encoding/gob"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/redis/go-redis/v9"

	"github.com/crs-tool/crs/format"
)

// attempts is how many times a key read in parts is read while it keeps
// changing, before the dump fails (or carries the last read, with
// AllowChanging).
const attempts = 3

// ErrChanging is wrapped when a key read in parts kept changing.
var ErrChanging = errors.New("a key kept changing while it was read in parts")

// atomically runs read, which emits the parts of one key, so that what
// reaches the dump is the value the key held at one instant: the key is
// WATCHed before the read, the parts are held in a spool (the first in
// memory, the rest in a temporary file), and an empty transaction after
// the read tells whether the key changed meanwhile. Only then do the
// parts go on; a change reads the key again.
func (r *reader) atomically(ctx context.Context, key string, read func(ctx context.Context) error) error {
	for attempt := 1; ; attempt++ {
		sp := &spool{}
		emit := r.emit
		r.emit = sp.add
		err := r.c.Watch(ctx, func(tx *redis.Tx) error {
			if err := read(ctx); err != nil {
				return err
			}
			if r.afterRead != nil {
				r.afterRead(key, attempt)
			}
			// An EXISTS of the key (a read the dump may do anyway, unlike
			// PING, which an ACL user might lack) in a transaction that
			// fails if the key changed since WATCH.
			_, err := tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
				p.Exists(ctx, key)
				return nil
			})
			return err
		}, key)
		r.emit = emit
		changed := errors.Is(err, redis.TxFailedErr)
		if err != nil && !changed {
			sp.close()
			return err
		}
		if !changed || (attempt == attempts && r.opts.AllowChanging) {
			r.counts.note(attempt-1, changed)
			err := sp.replay(r.emit)
			sp.close()
			return err
		}
		sp.close()
		if attempt == attempts {
			return fmt.Errorf("db %d: key %q: %w (%d reads): its parts would not be one value it held; dump it when it is quiet, take a --snapshot, or use --allow-changing to write the last read and count it", r.db, key, ErrChanging, attempts)
		}
	}
}

// spool holds the parts of one key until they may go on.
type spool struct {
	first *format.Record
	n     int
	f     *os.File
	enc   *gob.Encoder
}

func (s *spool) add(rec *format.Record) error {
	s.n++
	if s.first == nil {
		s.first = rec
		return nil
	}
	if s.f == nil {
		f, err := os.CreateTemp("", "crsdump-key-*")
		if err != nil {
			return fmt.Errorf("spool a key read in parts: %w", err)
		}
		s.f, s.enc = f, gob.NewEncoder(f)
	}
	if err := s.enc.Encode(rec); err != nil {
		return fmt.Errorf("spool a key read in parts: %w", err)
	}
	return nil
}

// replay hands the spooled parts to emit, in order.
func (s *spool) replay(emit func(*format.Record) error) error {
	if s.first == nil {
		return nil
	}
	if err := emit(s.first); err != nil {
		return err
	}
	if s.f == nil {
		return nil
	}
	if _, err := s.f.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	dec := gob.NewDecoder(s.f)
	for i := 1; i < s.n; i++ {
		rec := &format.Record{}
		if err := dec.Decode(rec); err != nil {
			return fmt.Errorf("spool: %w", err)
		}
		if err := emit(rec); err != nil {
			return err
		}
	}
	return nil
}

func (s *spool) close() {
	if s.f != nil {
		s.f.Close()
		os.Remove(s.f.Name())
	}
}
