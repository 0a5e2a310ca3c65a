package keyset

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"os"

	"github.com/klauspost/compress/s2"
)

// blockSize is the size of a partition's buffer: entries are written in
// blocks of about this many bytes, each compressed on its own.
const blockSize = 8 << 10

// Entry kinds in a partition file.
const (
	kindFingerprint = 0 // 16 bytes: a fingerprint held in memory before the spill
	kindKey         = 1 // uvarint db, uvarint length, the key, varint tag
)

// partitions is the number of partition files for about hint keys, of
// which limit were held in memory: each partition should hold about half
// the limit, so that Finish checks it in less memory than the limit took.
// Between 16 and 512 (512 buffers of blockSize are 4 MiB); 256 when the
// number of keys is not known. At 100M keys a partition holds about
// 200,000; past about 250M keys partitions grow past the limit.
func partitions(hint int64, limit int) int {
	if hint <= 0 {
		return 256
	}
	want := hint * 2 / int64(max(limit, 1))
	return 1 << min(max(bits.Len64(uint64(want)), 4), 9)
}

// spill is the partition files of a Seen past its limit. Each file is a
// sequence of blocks, each a uvarint length and that many bytes of
// s2-compressed entries.
type spill struct {
	dir     string
	shift   uint // the partition of a fingerprint is fp[1] >> shift
	parts   []part
	scratch []byte
	keys    int64 // keys written
	bytes   int64 // bytes written
}

type part struct {
	f   *os.File
	buf []byte // entries not yet written
	n   int    // entries in the file and buf
}

func newSpill(n int) (*spill, error) {
	dir, err := os.MkdirTemp("", "crs-keys-")
	if err != nil {
		return nil, fmt.Errorf("keys past the memory limit: %w", err)
	}
	sp := &spill{dir: dir, shift: uint(64 - bits.Len(uint(n-1))), parts: make([]part, n)}
	for i := range sp.parts {
		f, err := os.CreateTemp(dir, "part-")
		if err != nil {
			sp.close()
			return nil, fmt.Errorf("keys past the memory limit: %w", err)
		}
		sp.parts[i] = part{f: f, buf: make([]byte, 0, blockSize)}
	}
	return sp, nil
}

func (sp *spill) part(fp [2]uint64) *part { return &sp.parts[fp[1]>>sp.shift] }

func (sp *spill) addFingerprint(fp [2]uint64) error {
	p := sp.part(fp)
	if err := sp.room(p, 17); err != nil {
		return err
	}
	p.buf = append(p.buf, kindFingerprint)
	p.buf = binary.LittleEndian.AppendUint64(p.buf, fp[0])
	p.buf = binary.LittleEndian.AppendUint64(p.buf, fp[1])
	p.n++
	return nil
}

func (sp *spill) addKey(fp [2]uint64, db int, k string, tag int64) error {
	p := sp.part(fp)
	if err := sp.room(p, 1+3*binary.MaxVarintLen64+len(k)); err != nil {
		return err
	}
	p.buf = append(p.buf, kindKey)
	p.buf = binary.AppendUvarint(p.buf, uint64(db))
	p.buf = binary.AppendUvarint(p.buf, uint64(len(k)))
	p.buf = append(p.buf, k...)
	p.buf = binary.AppendVarint(p.buf, tag)
	p.n++
	sp.keys++
	return nil
}

// room writes p's buffer out unless n more bytes fit in its block.
func (sp *spill) room(p *part, n int) error {
	if len(p.buf)+n <= blockSize || len(p.buf) == 0 {
		return nil
	}
	return sp.flush(p)
}

func (sp *spill) flush(p *part) error {
	if len(p.buf) == 0 {
		return nil
	}
	enc := s2.Encode(sp.scratch[:cap(sp.scratch)], p.buf)
	sp.scratch = enc
	hdr := binary.AppendUvarint(make([]byte, 0, binary.MaxVarintLen64), uint64(len(enc)))
	if _, err := p.f.Write(hdr); err != nil {
		return fmt.Errorf("keys past the memory limit: %w", err)
	}
	if _, err := p.f.Write(enc); err != nil {
		return fmt.Errorf("keys past the memory limit: %w", err)
	}
	sp.bytes += int64(len(hdr) + len(enc))
	p.buf = p.buf[:0]
	return nil
}

// finish reads the partitions back one by one, calling fn for each key.
func (sp *spill) finish(s *Seen, fn func(db int, key string, tag int64, dup bool) error) error {
	for i := range sp.parts {
		p := &sp.parts[i]
		if err := sp.flush(p); err != nil {
			return err
		}
		if err := sp.check(s, p, fn); err != nil {
			return err
		}
		p.f.Close()
		os.Remove(p.f.Name())
		p.f = nil
	}
	return nil
}

// check goes over one partition file with a table of its own.
func (sp *spill) check(s *Seen, p *part, fn func(db int, key string, tag int64, dup bool) error) error {
	if _, err := p.f.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("keys past the memory limit: %w", err)
	}
	br := bufio.NewReaderSize(p.f, 64<<10)
	t := newTable(p.n)
	var block, dec []byte
	for {
		n, err := binary.ReadUvarint(br)
		if err == io.EOF {
			return nil
		}
		if err == nil {
			block = grow(block, int(n))
			_, err = io.ReadFull(br, block)
		}
		if err == nil {
			dec, err = s2.Decode(dec[:cap(dec)], block)
		}
		if err == nil {
			err = entries(s, t, dec, fn)
		}
		if err != nil {
			return fmt.Errorf("keys past the memory limit: %s: %w", p.f.Name(), err)
		}
	}
}

var errCorrupt = errors.New("corrupt entry")

// entries goes over the entries of one block.
func entries(s *Seen, t *table, b []byte, fn func(db int, key string, tag int64, dup bool) error) error {
	for len(b) > 0 {
		kind := b[0]
		b = b[1:]
		if kind == kindFingerprint {
			if len(b) < 16 {
				return errCorrupt
			}
			t.insert([2]uint64{binary.LittleEndian.Uint64(b), binary.LittleEndian.Uint64(b[8:])})
			b = b[16:]
			continue
		}
		db, n1 := binary.Uvarint(b)
		if n1 <= 0 {
			return errCorrupt
		}
		l, n2 := binary.Uvarint(b[n1:])
		if n2 <= 0 || uint64(len(b)-n1-n2) < l {
			return errCorrupt
		}
		key := string(b[n1+n2 : n1+n2+int(l)])
		b = b[n1+n2+int(l):]
		tag, n3 := binary.Varint(b)
		if n3 <= 0 {
			return errCorrupt
		}
		b = b[n3:]
		dup := !t.insert(s.fingerprint(int(db), key))
		if err := fn(int(db), key, tag, dup); err != nil {
			return err
		}
	}
	return nil
}

func grow(b []byte, n int) []byte {
	if cap(b) < n {
		return make([]byte, n)
	}
	return b[:n]
}

func (sp *spill) close() error {
	for _, p := range sp.parts {
		if p.f != nil {
			p.f.Close()
		}
	}
	return os.RemoveAll(sp.dir)
}
