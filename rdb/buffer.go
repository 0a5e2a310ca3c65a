package rdb

import (
	"bufio"
	"io"

	"github.com/crs-tool/crs/internal/dumppayload"
)

// buffered is the decoder's read buffer: bufio.Reader's ReadByte, Peek,
// Discard and Read, that also keeps Redis's CRC-64 of the bytes consumed.
// It sums them a buffer at a time, before the buffer is refilled, rather
// than piece by piece as the decoder takes them (a piece is often one
// byte): the checksum then costs a few percent of decoding, not a seventh.
type buffered struct {
	src    io.Reader
	buf    []byte
	r, w   int // buf[r:w] is unread
	summed int // buf[summed:r] is consumed and not in crc yet
	crc    uint64
	noCRC  bool // the checksum is not checked (Options.Skim)
	err    error
}

func newBuffered(src io.Reader, size int, noCRC bool) *buffered {
	return &buffered{src: src, buf: make([]byte, size), noCRC: noCRC}
}

// sum adds the bytes consumed since the last sum to the checksum.
func (b *buffered) sum() {
	if !b.noCRC {
		b.crc = dumppayload.CRC(b.crc, b.buf[b.summed:b.r])
	}
	b.summed = b.r
}

// CRC returns the checksum of every byte consumed so far.
func (b *buffered) CRC() uint64 {
	b.sum()
	return b.crc
}

// fill moves the unread bytes to the start of the buffer and reads once
// more after them.
func (b *buffered) fill() {
	b.sum()
	if b.r > 0 {
		copy(b.buf, b.buf[b.r:b.w])
		b.w -= b.r
		b.r, b.summed = 0, 0
	}
	for tries := 0; b.w < len(b.buf) && b.err == nil; tries++ {
		n, err := b.src.Read(b.buf[b.w:])
		b.w += n
		b.err = err
		if n > 0 {
			return
		}
		if tries == 100 {
			b.err = io.ErrNoProgress
		}
	}
}

// ReadByte reads one byte.
func (b *buffered) ReadByte() (byte, error) {
	for b.r == b.w {
		if b.err != nil {
			return 0, b.err
		}
		b.fill()
	}
	c := b.buf[b.r]
	b.r++
	return c, nil
}

// Peek returns the next n bytes (n at most the buffer's size) without
// consuming them, valid until the next read; fewer, with the error, at
// the end of the input.
func (b *buffered) Peek(n int) ([]byte, error) {
	if n > len(b.buf) {
		return nil, bufio.ErrBufferFull
	}
	for b.w-b.r < n && b.err == nil {
		b.fill()
	}
	if b.w-b.r < n {
		return b.buf[b.r:b.w], b.err
	}
	return b.buf[b.r : b.r+n], nil
}

// Discard consumes the next n bytes.
func (b *buffered) Discard(n int) (int, error) {
	done := 0
	for done < n {
		if b.r == b.w {
			if b.err != nil {
				return done, b.err
			}
			b.fill()
			continue
		}
		k := min(n-done, b.w-b.r)
		b.r += k
		done += k
	}
	return done, nil
}

// Read reads into p; a read at least the buffer's size with the buffer
// empty goes straight into p.
func (b *buffered) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if b.r == b.w {
		if b.err != nil {
			return 0, b.err
		}
		if len(p) >= len(b.buf) {
			b.sum()
			n, err := b.src.Read(p)
			if !b.noCRC {
				b.crc = dumppayload.CRC(b.crc, p[:n])
			}
			b.err = err
			if n > 0 {
				return n, nil
			}
			return 0, err
		}
		b.fill()
		if b.r == b.w {
			return 0, b.err
		}
	}
	n := copy(p, b.buf[b.r:b.w])
	b.r += n
	return n, nil
}
