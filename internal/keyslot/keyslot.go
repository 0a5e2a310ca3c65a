// Package keyslot computes a key's Redis Cluster hash slot (CRC16 of its
// hash tag, as the cluster computes it), and splits the slots into even
// ranges for work shared by several processes. It talks to no server.
package keyslot

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Slots is the number of hash slots.
const Slots = 16384

// Slot returns the hash slot of key: the CRC16 of its hash tag (the part
// between the first "{" and the next "}", when not empty), else of all of
// it, modulo 16384.
func Slot(key string) int {
	if tag, ok := Tag(key); ok {
		key = tag
	}
	return int(crc16(key)) % Slots
}

// Tag returns key's hash tag, and whether it has one.
func Tag(key string) (string, bool) {
	if i := strings.IndexByte(key, '{'); i >= 0 {
		if j := strings.IndexByte(key[i+1:], '}'); j > 0 {
			return key[i+1 : i+1+j], true
		}
	}
	return "", false
}

// crc16 is CRC-16/XMODEM (polynomial 0x1021, initial 0), as the cluster
// uses.
func crc16(s string) uint16 {
	var crc uint16
	for i := 0; i < len(s); i++ {
		crc ^= uint16(s[i]) << 8
		for b := 0; b < 8; b++ {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return crc
}

// Part is share I of N (0 <= I < N) of the keyspace: the keys whose slots
// fall in the I-th of N ranges of about even size. The zero Part (N 0)
// is the whole keyspace. NewPart and ParsePart work its range out once;
// a Part made as a literal works it out at each call.
type Part struct {
	I, N   int
	lo, hi int // the range, when hi > 0
}

// NewPart returns part i of n.
func NewPart(i, n int) Part {
	p := Part{I: i, N: n}
	p.lo, p.hi = p.Range()
	return p
}

// Whole reports whether p is the whole keyspace.
func (p Part) Whole() bool { return p.N <= 1 }

// Range returns p's slots, lo included and hi not: the range redis-cli
// --cluster create gives the I-th of N masters (0-5460, 5461-10922 and
// 10923-16383 for three), computed as it does (in float32, a running
// sum), so that on such a cluster each part is one master's keys.
func (p Part) Range() (lo, hi int) {
	switch {
	case p.hi > 0:
		return p.lo, p.hi
	case p.Whole():
		return 0, Slots
	}
	per := float32(Slots) / float32(p.N)
	first, cursor := 0, float32(0)
	for i := 0; i < p.N; i++ {
		last := int(math.Round(float64(cursor + per - 1)))
		if last >= Slots || i == p.N-1 {
			last = Slots - 1
		}
		last = max(last, first)
		if i == p.I {
			return first, last + 1
		}
		first, cursor = last+1, cursor+per
	}
	return Slots, Slots
}

// Holds reports whether key is in p.
func (p Part) Holds(key string) bool {
	if p.Whole() {
		return true
	}
	lo, hi := p.Range()
	s := Slot(key)
	return s >= lo && s < hi
}

// Overlaps reports whether any slot of lo..hi (both included) is in p.
func (p Part) Overlaps(lo, hi int) bool {
	plo, phi := p.Range()
	return lo < phi && hi >= plo
}

// String is p as --part takes it, "I/N".
func (p Part) String() string { return strconv.Itoa(p.I) + "/" + strconv.Itoa(p.N) }

// ParsePart reads --part: "I/N", or "auto/N" for the I that env gives as
// JOB_COMPLETION_INDEX (a Kubernetes Indexed Job's pod index).
func ParsePart(s string, env func(string) string) (Part, error) {
	is, ns, ok := strings.Cut(s, "/")
	n, err := strconv.Atoi(ns)
	if !ok || err != nil || n < 1 || n > Slots {
		return Part{}, fmt.Errorf("--part %q: want I/N (0 <= I < N <= %d), or auto/N", s, Slots)
	}
	if is == "auto" {
		is = env("JOB_COMPLETION_INDEX")
		if is == "" {
			return Part{}, fmt.Errorf("--part %q: JOB_COMPLETION_INDEX is not set (an Indexed Job sets it in each pod)", s)
		}
	}
	i, err := strconv.Atoi(is)
	if err != nil || i < 0 || i >= n {
		return Part{}, fmt.Errorf("--part %q: the index %q is not one of 0 to %d", s, is, n-1)
	}
	return NewPart(i, n), nil
}
