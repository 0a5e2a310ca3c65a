// Package dumppayload reads and re-stamps the footer of a DUMP payload:
// the serialized value, then the RDB version (2 bytes, little-endian) and
// Redis's CRC-64 of everything before it (8 bytes, little-endian).
//
// A server's RESTORE refuses a payload whose RDB version is newer than
// its own, even where the value's encoding is one it reads. A module
// type's value (RDB_TYPE_MODULE_2) is encoded the same way in every RDB
// version since 5.0, so such a payload can be stamped with the target's
// version; the module itself still checks its own encoding version.
package dumppayload

import (
	"encoding/binary"
	"fmt"
)

// Dumped is a key as DUMP gives it (Payload nil for a key that does not
// exist), with the instant it expires, in Unix milliseconds (0: never).
type Dumped struct {
	Payload    []byte
	ExpireAtMs int64
}

// footer is the version and checksum at a payload's end.
const footer = 10

// typeModule2 is RDB_TYPE_MODULE_2, a module type's value.
const typeModule2 = 7

// crcTables are the tables of Redis's CRC-64, slicing by 8: hash/crc64
// slices only its own two polynomials, and goes byte by byte (or builds
// the tables anew per call) for any other, which made the checksum a
// seventh of crsdump --rdb's time.
var crcTables = func() *[8][256]uint64 {
	var t [8][256]uint64
	for i := range 256 {
		crc := uint64(i)
		for range 8 {
			if crc&1 == 1 {
				crc = crc>>1 ^ 0x95ac9329ac4bc9b5
			} else {
				crc >>= 1
			}
		}
		t[0][i] = crc
	}
	for i := range 256 {
		crc := t[0][i]
		for k := 1; k < 8; k++ {
			crc = t[0][crc&0xff] ^ crc>>8
			t[k][i] = crc
		}
	}
	return &t
}()

// CRC returns Redis's CRC-64 (Jones polynomial, reflected, no inversion at
// start or end, unlike hash/crc64's) of p, continuing crc.
func CRC(crc uint64, p []byte) uint64 {
	t := crcTables
	for len(p) >= 8 {
		crc ^= binary.LittleEndian.Uint64(p)
		crc = t[7][crc&0xff] ^ t[6][crc>>8&0xff] ^ t[5][crc>>16&0xff] ^ t[4][crc>>24&0xff] ^
			t[3][crc>>32&0xff] ^ t[2][crc>>40&0xff] ^ t[1][crc>>48&0xff] ^ t[0][crc>>56]
		p = p[8:]
	}
	for _, b := range p {
		crc = t[0][byte(crc)^b] ^ crc>>8
	}
	return crc
}

// Version returns the RDB version a payload carries.
func Version(payload string) (int, error) {
	if len(payload) < footer+1 {
		return 0, fmt.Errorf("DUMP payload of %d bytes is too short", len(payload))
	}
	return int(binary.LittleEndian.Uint16([]byte(payload[len(payload)-footer:]))), nil
}

// Restamp returns payload stamped with RDB version v and its checksum
// made anew, where the payload holds a module type's value, whose
// encoding does not depend on the RDB version; ok is false otherwise.
func Restamp(payload string, v int) (_ string, ok bool) {
	if len(payload) < footer+1 || payload[0] != typeModule2 || v < 9 || v > 0xffff {
		return payload, false
	}
	b := []byte(payload)
	body := len(b) - footer
	binary.LittleEndian.PutUint16(b[body:], uint16(v))
	binary.LittleEndian.PutUint64(b[body+2:], CRC(0, b[:body+2]))
	return string(b), true
}

// ServerRDB returns the RDB version a server writes, from its engine
// ("redis" or "valkey") and version, or 0 when it is not known.
func ServerRDB(engine string, major, minor int) int {
	if engine == "valkey" {
		switch {
		case major >= 9:
			return 80
		case major >= 7:
			return 11
		}
		return 0
	}
	for _, r := range []struct{ major, minor, rdb int }{
		{8, 6, 13}, {7, 4, 12}, {7, 2, 11}, {7, 0, 10}, {5, 0, 9}, {4, 0, 8}, {3, 2, 7}, {2, 6, 6},
	} {
		if major > r.major || major == r.major && minor >= r.minor {
			return r.rdb
		}
	}
	return 0
}
