package rdb

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"

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

// moduleAux passes over a module's auxiliary data (not keys: a module's
// own state, such as its configuration), naming the module in Stats.
func (d *Decoder) moduleAux() error {
	id, err := d.in.count()
	if err != nil {
		return err
	}
	name := strings.TrimRight(moduleName(id), "-")
	if !slices.Contains(d.Stats.ModuleAuxNames, name) {
		d.Stats.ModuleAuxNames = append(d.Stats.ModuleAuxNames, name)
	}
	for i := 0; i < 2; i++ { // "when" opcode, "when"
		if _, err := d.in.count(); err != nil {
			return err
		}
	}
	return d.skipModuleData()
}

// DecodePayload decodes a DUMP payload (a value, its RDB version and the
// CRC-64 of both) of key in database db, calling emit with its records as
// Decode would for the key in a file. It checks the checksum and that the
// payload holds one value and nothing more.
func DecodePayload(payload []byte, db int, key string, opts Options, emit func(*format.Record) error) error {
	if len(payload) < 11 {
		return &Error{Offset: 0, Err: fmt.Errorf("DUMP payload of %d bytes is too short", len(payload))}
	}
	body := len(payload) - 10
	if want, got := crcUpdate(0, payload[:body+2]), binary.LittleEndian.Uint64(payload[body+2:]); got != 0 && got != want {
		return &Error{Offset: int64(body + 2), Err: fmt.Errorf("DUMP payload checksum mismatch: it says %016x, its bytes give %016x", got, want)}
	}
	d := NewDecoder(bytes.NewReader(payload[:body]), opts)
	d.info = Info{Version: int(binary.LittleEndian.Uint16(payload[body:])), Engine: "redis"}
	d.head, d.db = true, db
	t, err := d.in.byte()
	if err != nil {
		return d.fail(err)
	}
	var meta []string
	if t == opKeyMeta {
		if meta, err = d.keyMeta(); err == nil {
			t, err = d.in.byte()
		}
		if err != nil {
			return d.fail(err)
		}
	}
	if len(meta) > 0 && !opts.DropKeyMeta {
		return d.fail(fmt.Errorf("db %d key %q carries module key metadata (%s), which crs cannot carry", db, key, strings.Join(meta, ", ")))
	}
	b := &builder{opts: d.opts, emit: emit, db: db, key: key, stats: &d.Stats}
	if err := d.value(t, b); err != nil {
		if isEmitError(err) {
			return errors.Unwrap(err)
		}
		return d.fail(fmt.Errorf("db %d key %q: %w", db, key, err))
	}
	if d.in.off != int64(body) {
		return &Error{Offset: d.in.off, Err: fmt.Errorf("DUMP payload of key %q holds %d bytes past its value", key, int64(body)-d.in.off)}
	}
	return nil
}
