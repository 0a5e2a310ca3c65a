package rdb

import (
	"bytes"
	"encoding/binary"
	"fmt"

	"github.com/crs-tool/crs/format"
)

// Opcodes of a module value's self-describing serialization (type
// MODULE_2), which lets a reader pass over a value it cannot interpret.
const (
	moduleEOF    = 0
	moduleSInt   = 1
	moduleUInt   = 2
	moduleFloat  = 3
	moduleDouble = 4
	moduleString = 5
)

// moduleName decodes the nine-character type name from a module ID (the
// low 10 bits are the encoding version).
func moduleName(id uint64) string {
	const cset = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	var name [9]byte
	id >>= 10
	for j := 8; j >= 0; j-- {
		name[j] = cset[id&63]
		id >>= 6
	}
	return string(name[:])
}

// module reads a module type's value and emits it as a DUMP payload: the
// bytes of the value as the file holds them, then the RDB version and the
// CRC-64, as the DUMP command makes them, for RESTORE on a server that has
// the module.
func (d *Decoder) module(t byte, b *builder) error {
	if t == typeModulePreGA {
		return fmt.Errorf("a module value in the format of Redis 4.0 release candidates, which cannot be read without the module")
	}
	buf := &bytes.Buffer{}
	buf.WriteByte(t)
	d.in.copy = buf
	defer func() { d.in.copy = nil }()
	id, err := d.in.count()
	if err != nil {
		return err
	}
	if moduleName(id) == format.TypeVectorSet && id&1023 == 0 {
		done, err := d.vectorSet(b)
		if done || err != nil {
			return err
		}
	}
	if err := d.skipModuleData(); err != nil {
		return fmt.Errorf("module type %q: %w", moduleName(id), err)
	}
	d.in.copy = nil
	var foot [2]byte
	binary.LittleEndian.PutUint16(foot[:], uint16(d.info.Version))
	buf.Write(foot[:])
	var sum [8]byte
	binary.LittleEndian.PutUint64(sum[:], crcUpdate(0, buf.Bytes()))
	buf.Write(sum[:])
	b.typ = moduleName(id)
	b.start()
	b.rec.Dump, b.rec.RDBVersion = buf.String(), d.info.Version
	b.elems++
	return b.finish()
}

// skipModuleData passes over module data up to its EOF opcode.
func (d *Decoder) skipModuleData() error {
	for {
		op, err := d.in.count()
		if err != nil {
			return err
		}
		switch op {
		case moduleEOF:
			return nil
		case moduleSInt, moduleUInt:
			_, err = d.in.count()
		case moduleFloat:
			_, err = d.in.fixed(4)
		case moduleDouble:
			_, err = d.in.fixed(8)
		case moduleString:
			_, err = d.in.str()
		default:
			return fmt.Errorf("unknown module data opcode %d", op)
		}
		if err != nil {
			return err
		}
	}
}

// moduleAux passes over a module's auxiliary data (not keys).
func (d *Decoder) moduleAux() error {
	for i := 0; i < 3; i++ { // module ID, "when" opcode, "when"
		if _, err := d.in.count(); err != nil {
			return err
		}
	}
	return d.skipModuleData()
}
