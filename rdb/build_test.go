package rdb

import (
	"encoding/binary"
	"fmt"
	"math"
	"strconv"
)

// A small RDB writer for fixtures, built from the RDB specification, so
// that encodings no server at hand writes any more (zipmap, ziplist,
// quicklist 1, linked lists, text scores) are tested byte for byte.

type buf struct{ b []byte }

func (w *buf) byte(v ...byte) *buf { w.b = append(w.b, v...); return w }

func (w *buf) len(n uint64) *buf {
	switch {
	case n < 1<<6:
		return w.byte(byte(n))
	case n < 1<<14:
		return w.byte(byte(n>>8)|0x40, byte(n))
	case n <= math.MaxUint32:
		w.byte(0x80)
		w.b = binary.BigEndian.AppendUint32(w.b, uint32(n))
		return w
	}
	w.byte(0x81)
	w.b = binary.BigEndian.AppendUint64(w.b, n)
	return w
}

func (w *buf) str(s string) *buf { w.len(uint64(len(s))); w.b = append(w.b, s...); return w }

func (w *buf) u64(v uint64) *buf { w.b = binary.LittleEndian.AppendUint64(w.b, v); return w }

// rdbFile wraps a body (opcodes and keys) in a magic, a version, an aux
// field and the EOF opcode with its checksum.
func rdbFile(magic string, version int, body []byte) []byte {
	w := &buf{}
	if magic == "VALKEY" {
		w.b = fmt.Appendf(w.b, "VALKEY%03d", version)
	} else {
		w.b = fmt.Appendf(w.b, "REDIS%04d", version)
	}
	w.byte(opAux).str("redis-ver").str("9.9.9")
	w.byte(opAux).str("ctime").str("1764000000")
	w.b = append(w.b, body...)
	w.byte(opEOF)
	if version >= 5 {
		w.u64(crcUpdate(0, w.b))
	}
	return w.b
}

// ziplist encodes entries (strings, or int64 for integers).
func ziplist(entries ...any) []byte {
	var body []byte
	prev, last := 0, 10
	for _, e := range entries {
		var ent []byte
		if prev < 254 {
			ent = append(ent, byte(prev))
		} else {
			ent = append(ent, 0xfe)
			ent = binary.LittleEndian.AppendUint32(ent, uint32(prev))
		}
		switch v := e.(type) {
		case string:
			switch n := len(v); {
			case n < 64:
				ent = append(ent, byte(n))
			case n < 16384:
				ent = append(ent, byte(n>>8)|0x40, byte(n))
			default:
				ent = append(ent, 0x80)
				ent = binary.BigEndian.AppendUint32(ent, uint32(n))
			}
			ent = append(ent, v...)
		case int64:
			switch {
			case v >= 0 && v <= 12:
				ent = append(ent, 0xf1+byte(v))
			case v == int64(int8(v)):
				ent = append(ent, 0xfe, byte(v))
			case v == int64(int16(v)):
				ent = binary.LittleEndian.AppendUint16(append(ent, 0xc0), uint16(v))
			case v >= -1<<23 && v < 1<<23:
				u := uint32(v)
				ent = append(ent, 0xf0, byte(u), byte(u>>8), byte(u>>16))
			case v == int64(int32(v)):
				ent = binary.LittleEndian.AppendUint32(append(ent, 0xd0), uint32(v))
			default:
				ent = binary.LittleEndian.AppendUint64(append(ent, 0xe0), uint64(v))
			}
		}
		last = 10 + len(body)
		body = append(body, ent...)
		prev = len(ent)
	}
	out := binary.LittleEndian.AppendUint32(nil, uint32(11+len(body)))
	out = binary.LittleEndian.AppendUint32(out, uint32(last))
	out = binary.LittleEndian.AppendUint16(out, uint16(len(entries)))
	return append(append(out, body...), 0xff)
}

// listpack encodes entries (strings, or int64 for integers).
func listpack(entries ...any) []byte {
	var body []byte
	for _, e := range entries {
		var ent []byte
		switch v := e.(type) {
		case string:
			switch n := len(v); {
			case n < 64:
				ent = append(ent, 0x80|byte(n))
			case n < 4096:
				ent = append(ent, 0xe0|byte(n>>8), byte(n))
			default:
				ent = binary.LittleEndian.AppendUint32(append(ent, 0xf0), uint32(n))
			}
			ent = append(ent, v...)
		case int64:
			switch {
			case v >= 0 && v < 128:
				ent = append(ent, byte(v))
			case v >= -4096 && v < 4096:
				u := uint16(v) & 0x1fff
				ent = append(ent, 0xc0|byte(u>>8), byte(u))
			case v == int64(int16(v)):
				ent = binary.LittleEndian.AppendUint16(append(ent, 0xf1), uint16(v))
			case v >= -1<<23 && v < 1<<23:
				u := uint32(v)
				ent = append(ent, 0xf2, byte(u), byte(u>>8), byte(u>>16))
			case v == int64(int32(v)):
				ent = binary.LittleEndian.AppendUint32(append(ent, 0xf3), uint32(v))
			default:
				ent = binary.LittleEndian.AppendUint64(append(ent, 0xf4), uint64(v))
			}
		}
		n := len(ent)
		if n < 128 {
			ent = append(ent, byte(n))
		} else {
			ent = append(ent, byte(n>>7), byte(n&127)|128)
		}
		body = append(body, ent...)
	}
	out := binary.LittleEndian.AppendUint32(nil, uint32(7+len(body)))
	out = binary.LittleEndian.AppendUint16(out, uint16(len(entries)))
	return append(append(out, body...), 0xff)
}

func intset(width int, vals ...int64) []byte {
	out := binary.LittleEndian.AppendUint32(nil, uint32(width))
	out = binary.LittleEndian.AppendUint32(out, uint32(len(vals)))
	for _, v := range vals {
		switch width {
		case 2:
			out = binary.LittleEndian.AppendUint16(out, uint16(v))
		case 4:
			out = binary.LittleEndian.AppendUint32(out, uint32(v))
		default:
			out = binary.LittleEndian.AppendUint64(out, uint64(v))
		}
	}
	return out
}

func zipmap(pairs ...string) []byte {
	out := []byte{byte(len(pairs) / 2)}
	for i, s := range pairs {
		if len(s) < 254 {
			out = append(out, byte(len(s)))
		} else {
			out = binary.LittleEndian.AppendUint32(append(out, 254), uint32(len(s)))
		}
		if i%2 == 1 {
			out = append(out, 2) // two free bytes after the value
		}
		out = append(out, s...)
		if i%2 == 1 {
			out = append(out, 0, 0)
		}
	}
	return append(out, 0xff)
}

func itoa(i int) string { return strconv.Itoa(i) }
