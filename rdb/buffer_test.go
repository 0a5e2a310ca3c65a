package rdb

import (
	"bytes"
	"io"
	"math/rand"
	"testing"
	"testing/iotest"

	"github.com/crs-tool/crs/internal/dumppayload"
)

// TestBuffered reads an input with a random mix of ReadByte, Peek,
// Discard and Read (small and larger than the buffer), from sources that
// give a byte at a time, half reads and whole reads: the bytes come in
// order, and the checksum is the CRC-64 of the bytes consumed.
func TestBuffered(t *testing.T) {
	data := make([]byte, 300_000)
	rand.New(rand.NewSource(1)).Read(data)
	for name, src := range map[string]func() io.Reader{
		"whole":    func() io.Reader { return bytes.NewReader(data) },
		"one byte": func() io.Reader { return iotest.OneByteReader(bytes.NewReader(data)) },
		"half":     func() io.Reader { return iotest.HalfReader(bytes.NewReader(data)) },
	} {
		rng := rand.New(rand.NewSource(2))
		b := newBuffered(src(), 4096, false)
		var got []byte
		for len(got) < len(data) {
			switch rng.Intn(4) {
			case 0:
				c, err := b.ReadByte()
				if err != nil {
					t.Fatalf("%s: ReadByte at %d: %v", name, len(got), err)
				}
				got = append(got, c)
			case 1:
				n := min(rng.Intn(20), len(data)-len(got))
				p, err := b.Peek(n)
				if err != nil || !bytes.Equal(p, data[len(got):len(got)+n]) {
					t.Fatalf("%s: Peek(%d) at %d: %v", name, n, len(got), err)
				}
				d, _ := b.Discard(n)
				got = append(got, p[:d]...)
			case 2, 3:
				p := make([]byte, min(rng.Intn(10_000), len(data)-len(got)))
				if _, err := io.ReadFull(b, p); err != nil {
					t.Fatalf("%s: Read(%d) at %d: %v", name, len(p), len(got), err)
				}
				got = append(got, p...)
			}
			if rng.Intn(50) == 0 {
				if want := dumppayload.CRC(0, got); b.CRC() != want {
					t.Fatalf("%s: checksum after %d bytes: %016x, want %016x", name, len(got), b.CRC(), want)
				}
			}
		}
		if !bytes.Equal(got, data) {
			t.Fatalf("%s: the bytes differ", name)
		}
		if want := dumppayload.CRC(0, data); b.CRC() != want {
			t.Errorf("%s: checksum %016x, want %016x", name, b.CRC(), want)
		}
		if _, err := b.ReadByte(); err != io.EOF {
			t.Errorf("%s: after the end: %v", name, err)
		}
	}
}
