// Package keyset remembers which keys have been seen, in memory that grows
// by about 20 bytes a key whatever the keys' length.
package keyset

import "hash/maphash"

// Set holds a 128-bit fingerprint of each key added (two independently
// seeded hashes), not the key itself. Two different keys share a
// fingerprint with a probability near 2^-128 per pair: never, in practice.
// The zero value is not usable; call New.
type Set struct {
	s1, s2 maphash.Seed
	m      map[[2]uint64]struct{}
}

// New returns an empty set.
func New() *Set { return NewSize(0) }

// NewSize returns an empty set with room for about n keys, so that a set
// whose size is known ahead does not grow (and rehash) step by step.
func NewSize(n int) *Set {
	return &Set{s1: maphash.MakeSeed(), s2: maphash.MakeSeed(), m: make(map[[2]uint64]struct{}, n)}
}

// Add adds k and reports whether it was new.
func (s *Set) Add(k string) bool {
	n := len(s.m)
	s.m[[2]uint64{maphash.String(s.s1, k), maphash.String(s.s2, k)}] = struct{}{}
	return len(s.m) > n // one map operation, not a lookup and an insert
}

// Len returns the number of keys added.
func (s *Set) Len() int { return len(s.m) }
