// Package keyset remembers which keys have been seen, in memory that grows
// by about 20 bytes a key whatever the keys' length.
package keyset

import (
	"hash/maphash"
	"math/bits"
)

// Set holds a 128-bit fingerprint of each key added (two independently
// seeded hashes), not the key itself. Two different keys share a
// fingerprint with a probability near 2^-128 per pair: never, in practice.
//
// The fingerprints live in one open-addressed table, probed linearly from
// a slot the first hash picks, at most three quarters full: an Add costs
// about one cache miss, where a Go map of the same fingerprints cost
// several times more on the dump's and load's hot paths.
// The zero value is not usable; call New.
type Set struct {
	s1, s2 maphash.Seed
	slots  [][2]uint64 // {0, 0} marks an empty slot
	n      int
}

// New returns an empty set.
func New() *Set { return NewSize(0) }

// NewSize returns an empty set with room for about n keys, so that a set
// whose size is known ahead does not grow (and rehash) step by step.
func NewSize(n int) *Set {
	return &Set{s1: maphash.MakeSeed(), s2: maphash.MakeSeed(), slots: make([][2]uint64, capFor(n))}
}

// capFor is the table size that holds n fingerprints at most three
// quarters full.
func capFor(n int) int { return max(n+n/3+1, 16) }

// Add adds k and reports whether it was new.
func (s *Set) Add(k string) bool {
	fp := [2]uint64{maphash.String(s.s1, k), maphash.String(s.s2, k)}
	if fp == [2]uint64{} {
		fp[1] = 1 // {0, 0} is the empty slot
	}
	if !s.insert(fp) {
		return false
	}
	if s.n++; s.n > len(s.slots)*3/4 {
		s.grow()
	}
	return true
}

// insert puts fp into its slot unless it is there already.
func (s *Set) insert(fp [2]uint64) bool {
	i, _ := bits.Mul64(fp[0], uint64(len(s.slots))) // fp[0] scaled to the table
	for {
		switch s.slots[i] {
		case [2]uint64{}:
			s.slots[i] = fp
			return true
		case fp:
			return false
		}
		if i++; i == uint64(len(s.slots)) {
			i = 0
		}
	}
}

// grow doubles the table.
func (s *Set) grow() {
	old := s.slots
	s.slots = make([][2]uint64, 2*len(old))
	for _, fp := range old {
		if fp != [2]uint64{} {
			s.insert(fp)
		}
	}
}

// Len returns the number of keys added.
func (s *Set) Len() int { return s.n }
