// Package keyset catches a key added twice in memory that does not grow
// with the number of keys: up to a limit it keeps a 128-bit fingerprint of
// each key in memory (about 21 bytes a key); past the limit it writes the
// keys to partition files on disk and decides on them at the end, one
// partition at a time.
package keyset

import (
	"hash/maphash"
	"math/bits"
)

// DefaultLimit is the number of keys a Seen keeps in memory before it
// spills to disk: about 11 MiB of fingerprints.
const DefaultLimit = 1 << 19

// Verdict is what Add says about a key.
type Verdict int

// The verdicts of Add.
const (
	New      Verdict = iota // not seen before
	Twice                   // seen before
	Deferred                // past the limit: written to disk, decided by Finish
)

// Seen remembers which (database, key) pairs have been added. It holds a
// 128-bit fingerprint of each (two independently seeded hashes), not the
// key: two different keys share one with a probability near 2^-128 per
// pair, never in practice.
//
// Up to its limit, Add answers at once. Past it, Seen writes its
// fingerprints and every further key to partition files (by fingerprint,
// in a temporary directory), answers Deferred, and Finish goes over the
// partitions one by one, each small enough to check in memory. The zero
// value is not usable; call NewSeen, and Close when done.
type Seen struct {
	s1, s2 maphash.Seed
	mem    *table
	limit  int
	hint   int64  // the number of keys expected, for the partition count
	sp     *spill // nil until past the limit
}

// Limit returns the number of keys a Seen made with limit keeps in
// memory: limit, or DefaultLimit if limit <= 0.
func Limit(limit int) int {
	if limit <= 0 {
		return DefaultLimit
	}
	return limit
}

// NewSeen returns an empty Seen that keeps up to Limit(limit) keys in
// memory, expecting about hint keys in all (0 if not known).
func NewSeen(limit int, hint int64) *Seen {
	limit = Limit(limit)
	return &Seen{s1: maphash.MakeSeed(), s2: maphash.MakeSeed(), limit: limit, hint: hint,
		mem: newTable(int(min(max(hint, 0), int64(limit))))}
}

// fingerprint returns the fingerprint of key k of database db. The
// database is mixed into the first half by an injective multiplication:
// one key in two databases never shares a fingerprint.
func (s *Seen) fingerprint(db int, k string) [2]uint64 {
	fp := [2]uint64{maphash.String(s.s1, k) ^ uint64(db)*0x9e3779b97f4a7c15, maphash.String(s.s2, k)}
	if fp == [2]uint64{} {
		fp[1] = 1 // {0, 0} is the empty slot
	}
	return fp
}

// Add adds key k of database db. Past the limit it writes k and tag (a
// number the caller wants back from Finish, such as a line number) to
// disk and returns Deferred; an error is a failure to write there.
func (s *Seen) Add(db int, k string, tag int64) (Verdict, error) {
	fp := s.fingerprint(db, k)
	if s.sp != nil {
		return Deferred, s.sp.addKey(fp, db, k, tag)
	}
	if !s.mem.insert(fp) {
		return Twice, nil
	}
	if s.mem.n < s.limit {
		return New, nil
	}
	// The limit is reached: the fingerprints go to disk, the memory is
	// freed, and every later key is deferred.
	sp, err := newSpill(partitions(s.hint, s.limit))
	if err != nil {
		return New, err
	}
	s.sp = sp
	for _, fp := range s.mem.slots {
		if fp != [2]uint64{} {
			if err := sp.addFingerprint(fp); err != nil {
				return New, err
			}
		}
	}
	s.mem = nil
	return New, nil
}

// Deferred returns the number of keys Add deferred to disk, and the bytes
// written there.
func (s *Seen) Deferred() (keys, bytes int64) {
	if s.sp == nil {
		return 0, 0
	}
	return s.sp.keys, s.sp.bytes
}

// Finish calls fn with each key Add deferred, partition by partition,
// saying whether it had been added before (dup). Keys of one partition
// come in the order they were added. It removes the partition files.
func (s *Seen) Finish(fn func(db int, key string, tag int64, dup bool) error) error {
	if s.sp == nil {
		return nil
	}
	return s.sp.finish(s, fn)
}

// Close removes what Seen wrote to disk.
func (s *Seen) Close() error {
	if s.sp == nil {
		return nil
	}
	return s.sp.close()
}

// table is an open-addressed set of fingerprints, probed linearly from a
// slot the first half picks, at most three quarters full: an insert costs
// about one cache miss, where a Go map of the same fingerprints cost
// several times more on the dump's and load's hot paths.
type table struct {
	slots [][2]uint64 // {0, 0} marks an empty slot
	n     int
}

// newTable returns a table with room for about n fingerprints.
func newTable(n int) *table { return &table{slots: make([][2]uint64, capFor(n))} }

// capFor is the table size that holds n fingerprints at most three
// quarters full.
func capFor(n int) int { return max(n+n/3+1, 16) }

// insert adds fp and reports whether it was new.
func (t *table) insert(fp [2]uint64) bool {
	if !t.put(fp) {
		return false
	}
	if t.n++; t.n > len(t.slots)*3/4 {
		old := t.slots
		t.slots = make([][2]uint64, 2*len(old))
		for _, fp := range old {
			if fp != [2]uint64{} {
				t.put(fp)
			}
		}
	}
	return true
}

// put puts fp into its slot unless it is there already.
func (t *table) put(fp [2]uint64) bool {
	i, _ := bits.Mul64(fp[0], uint64(len(t.slots))) // fp[0] scaled to the table
	for {
		switch t.slots[i] {
		case [2]uint64{}:
			t.slots[i] = fp
			return true
		case fp:
			return false
		}
		if i++; i == uint64(len(t.slots)) {
			i = 0
		}
	}
}
