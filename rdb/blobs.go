package rdb

import (
	"encoding/binary"
	"fmt"
	"strconv"
)

// The compact encodings Redis keeps small values in, and saves as one
// string: ziplist (lists, hashes and zsets before 7.0), listpack (7.0+),
// intset (sets of integers) and zipmap (hashes before 2.6). Each walker
// calls fn with every element as a string, in order. A walker's b is new
// memory that the decoder's input made (see owned) and nothing writes
// again: the elements are substrings of it, not copies.

// walkZiplist walks a ziplist: zlbytes, zltail, zllen, entries, 0xff.
func walkZiplist(b []byte, fn func(string) error) error {
	if len(b) < 11 {
		return fmt.Errorf("ziplist of %d bytes is too short", len(b))
	}
	i := 10
	for {
		if i >= len(b) {
			return fmt.Errorf("ziplist has no end marker")
		}
		if b[i] == 0xff {
			return nil
		}
		// prevlen: one byte, or 0xfe and four
		if b[i] == 0xfe {
			i += 5
		} else {
			i++
		}
		if i >= len(b) {
			return fmt.Errorf("ziplist entry cut short")
		}
		enc := b[i]
		var s string
		var n int
		switch enc >> 6 {
		case 0:
			n, i = int(enc&0x3f), i+1
		case 1:
			if i+2 > len(b) {
				return fmt.Errorf("ziplist entry cut short")
			}
			n, i = int(enc&0x3f)<<8|int(b[i+1]), i+2
		case 2:
			if i+5 > len(b) {
				return fmt.Errorf("ziplist entry cut short")
			}
			n, i = int(binary.BigEndian.Uint32(b[i+1:])), i+5
		default:
			v, size, err := ziplistInt(b, i)
			if err != nil {
				return err
			}
			s, i, n = strconv.FormatInt(v, 10), i+size, -1
		}
		if n >= 0 {
			if n > len(b)-i {
				return fmt.Errorf("ziplist string runs past the end")
			}
			s, i = owned(b)[i:i+n], i+n
		}
		if err := fn(s); err != nil {
			return err
		}
	}
}

// ziplistInt reads an integer entry whose encoding byte is at b[i], and
// returns it with the bytes it takes, encoding byte included.
func ziplistInt(b []byte, i int) (int64, int, error) {
	enc := b[i]
	need := map[byte]int{0xc0: 2, 0xd0: 4, 0xe0: 8, 0xf0: 3, 0xfe: 1}[enc]
	if enc >= 0xf1 && enc <= 0xfd {
		return int64(enc&0x0f) - 1, 1, nil
	}
	if need == 0 {
		return 0, 0, fmt.Errorf("bad ziplist encoding 0x%02x", enc)
	}
	if i+1+need > len(b) {
		return 0, 0, fmt.Errorf("ziplist integer cut short")
	}
	p := b[i+1:]
	var v int64
	switch enc {
	case 0xc0:
		v = int64(int16(binary.LittleEndian.Uint16(p)))
	case 0xd0:
		v = int64(int32(binary.LittleEndian.Uint32(p)))
	case 0xe0:
		v = int64(binary.LittleEndian.Uint64(p))
	case 0xf0:
		v = int64(int32(uint32(p[0])<<8|uint32(p[1])<<16|uint32(p[2])<<24) >> 8)
	case 0xfe:
		v = int64(int8(p[0]))
	}
	return v, 1 + need, nil
}

// walkListpack walks a listpack: total bytes, element count, entries
// (encoding, data, back length), 0xff.
func walkListpack(b []byte, fn func(string) error) error {
	if len(b) < 7 {
		return fmt.Errorf("listpack of %d bytes is too short", len(b))
	}
	i := 6
	for {
		if i >= len(b) {
			return fmt.Errorf("listpack has no end marker")
		}
		if b[i] == 0xff {
			return nil
		}
		s, size, err := listpackEntry(b, i)
		if err != nil {
			return err
		}
		i += size
		if err := fn(s); err != nil {
			return err
		}
	}
}

// listpackEntry decodes the entry at b[i] and returns it with its whole
// size, back length included.
func listpackEntry(b []byte, i int) (string, int, error) {
	enc := b[i]
	var s string
	var n int // encoding and data
	need := func(k int) error {
		if i+k > len(b) {
			return fmt.Errorf("listpack entry cut short")
		}
		return nil
	}
	switch {
	case enc&0x80 == 0: // 7-bit unsigned
		s, n = strconv.Itoa(int(enc)), 1
	case enc&0xc0 == 0x80: // 6-bit length string
		l := int(enc & 0x3f)
		if err := need(1 + l); err != nil {
			return "", 0, err
		}
		s, n = owned(b)[i+1:i+1+l], 1+l
	case enc&0xe0 == 0xc0: // 13-bit signed
		if err := need(2); err != nil {
			return "", 0, err
		}
		v := int64(enc&0x1f)<<8 | int64(b[i+1])
		if v >= 1<<12 {
			v -= 1 << 13
		}
		s, n = strconv.FormatInt(v, 10), 2
	case enc&0xf0 == 0xe0: // 12-bit length string
		if err := need(2); err != nil {
			return "", 0, err
		}
		l := int(enc&0x0f)<<8 | int(b[i+1])
		if err := need(2 + l); err != nil {
			return "", 0, err
		}
		s, n = owned(b)[i+2:i+2+l], 2+l
	case enc == 0xf0: // 32-bit length string
		if err := need(5); err != nil {
			return "", 0, err
		}
		l := int(binary.LittleEndian.Uint32(b[i+1:]))
		if l < 0 || l > len(b) {
			return "", 0, fmt.Errorf("listpack string runs past the end")
		}
		if err := need(5 + l); err != nil {
			return "", 0, err
		}
		s, n = owned(b)[i+5:i+5+l], 5+l
	case enc >= 0xf1 && enc <= 0xf4: // 16, 24, 32, 64-bit signed
		w := []int{2, 3, 4, 8}[enc-0xf1]
		if err := need(1 + w); err != nil {
			return "", 0, err
		}
		var u uint64
		for k := w - 1; k >= 0; k-- {
			u = u<<8 | uint64(b[i+1+k])
		}
		v := int64(u << (64 - 8*w) >> 0)
		v >>= 64 - 8*w
		s, n = strconv.FormatInt(v, 10), 1+w
	default:
		return "", 0, fmt.Errorf("bad listpack encoding 0x%02x", enc)
	}
	back := 1
	for l := n; l >= 128; l >>= 7 {
		back++
	}
	if err := need(n + back); err != nil {
		return "", 0, err
	}
	return s, n + back, nil
}

// walkIntset walks an intset: element width, count, then the integers in
// order, little-endian.
func walkIntset(b []byte, fn func(string) error) error {
	if len(b) < 8 {
		return fmt.Errorf("intset of %d bytes is too short", len(b))
	}
	w := int(binary.LittleEndian.Uint32(b))
	n := int(binary.LittleEndian.Uint32(b[4:]))
	if w != 2 && w != 4 && w != 8 {
		return fmt.Errorf("intset element width %d", w)
	}
	if n < 0 || n > (len(b)-8)/w || 8+n*w != len(b) {
		return fmt.Errorf("intset of %d bytes cannot hold %d elements of %d bytes", len(b), n, w)
	}
	for k := 0; k < n; k++ {
		p := b[8+k*w:]
		var v int64
		switch w {
		case 2:
			v = int64(int16(binary.LittleEndian.Uint16(p)))
		case 4:
			v = int64(int32(binary.LittleEndian.Uint32(p)))
		default:
			v = int64(binary.LittleEndian.Uint64(p))
		}
		if err := fn(strconv.FormatInt(v, 10)); err != nil {
			return err
		}
	}
	return nil
}

// walkZipmap walks a zipmap (hashes before Redis 2.6): a count byte, then
// key length, key, value length, free byte count, value, free bytes, and
// 0xff at the end.
//
// It checks what Redis checks (zipmapValidateIntegrity): the last byte is
// the end marker, a length below 254 takes one byte, the map is not empty
// and its count byte is the count of pairs or 254 (too many to count).
// A count byte of 255, which Redis 7.0 and later refuse, is read as the
// servers that wrote zipmaps read it (any count from 254 is counted) and
// counted in odd.
func walkZipmap(b []byte, odd *int64, fn func(string) error) error {
	if len(b) < 2 {
		return fmt.Errorf("zipmap of %d bytes is too short", len(b))
	}
	if b[len(b)-1] != 0xff {
		return fmt.Errorf("zipmap does not end with its end marker")
	}
	i, pairs := 1, 0
	str := func(withFree bool) (string, bool, error) {
		if i >= len(b) {
			return "", false, fmt.Errorf("zipmap has no end marker")
		}
		if b[i] == 0xff {
			return "", true, nil
		}
		l := int(b[i])
		i++
		if l == 254 {
			if i+4 > len(b) {
				return "", false, fmt.Errorf("zipmap length cut short")
			}
			l = int(binary.LittleEndian.Uint32(b[i:]))
			i += 4
			if l < 254 {
				return "", false, fmt.Errorf("zipmap length %d in five bytes", l)
			}
		} else if l == 255 {
			return "", false, fmt.Errorf("zipmap length 255")
		}
		free := 0
		if withFree {
			if i >= len(b) {
				return "", false, fmt.Errorf("zipmap entry cut short")
			}
			free = int(b[i])
			i++
		}
		if l < 0 || i+l+free > len(b) {
			return "", false, fmt.Errorf("zipmap string runs past the end")
		}
		s := owned(b)[i : i+l]
		i += l + free
		return s, false, nil
	}
	for {
		k, end, err := str(false)
		if err != nil {
			return err
		}
		if end {
			if pairs == 0 {
				return fmt.Errorf("zipmap is empty")
			}
			if b[0] == 255 {
				*odd++
			} else if b[0] != 254 && int(b[0]) != pairs {
				return fmt.Errorf("zipmap count byte %d, and it holds %d pairs (the file is corrupt)", b[0], pairs)
			}
			return nil
		}
		pairs++
		v, end, err := str(true)
		if err != nil {
			return err
		}
		if end {
			return fmt.Errorf("zipmap key without a value")
		}
		if err := fn(k); err != nil {
			return err
		}
		if err := fn(v); err != nil {
			return err
		}
	}
}
