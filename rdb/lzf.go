package rdb

import "fmt"

// lzfDecompress expands LZF data (liblzf's format, as Redis writes it) to
// exactly want bytes.
func lzfDecompress(in []byte, want uint64) ([]byte, error) {
	if want > uint64(len(in))*256+64 {
		// LZF expands at most ~256 times (a 3-byte back reference copies
		// up to 264 bytes); a larger claim is corrupt.
		return nil, fmt.Errorf("LZF string claims %d bytes from %d", want, len(in))
	}
	out := make([]byte, 0, want)
	for i := 0; i < len(in); {
		ctrl := int(in[i])
		i++
		if ctrl < 32 { // a literal run of ctrl+1 bytes
			n := ctrl + 1
			if i+n > len(in) {
				return nil, fmt.Errorf("LZF literal runs past the end")
			}
			out = append(out, in[i:i+n]...)
			i += n
			continue
		}
		n := ctrl >> 5 // a back reference
		if n == 7 {
			if i >= len(in) {
				return nil, fmt.Errorf("LZF back reference cut short")
			}
			n += int(in[i])
			i++
		}
		if i >= len(in) {
			return nil, fmt.Errorf("LZF back reference cut short")
		}
		ref := len(out) - ((ctrl & 0x1f) << 8) - int(in[i]) - 1
		i++
		if ref < 0 {
			return nil, fmt.Errorf("LZF back reference before the start")
		}
		for j := 0; j < n+2; j++ { // may overlap what it copies
			out = append(out, out[ref+j])
		}
	}
	if uint64(len(out)) != want {
		return nil, fmt.Errorf("LZF string is %d bytes, the header said %d", len(out), want)
	}
	return out, nil
}

// lzfWindow is how far back an LZF back reference reaches.
const lzfWindow = 8192

// lzfChunks expands an LZF string of clen compressed bytes read from in,
// handing the ulen bytes it expands to to fn in pieces of at least size
// bytes (the last may be shorter), holding no more than a piece and the
// window a back reference may reach.
func (in *input) lzfChunks(clen, ulen uint64, size int, fn func([]byte) error) error {
	src := lzfSource{in: in, left: clen}
	out := make([]byte, 0, size+2*lzfWindow)
	var total uint64
	flush := func(keep int) error {
		n := len(out) - keep
		if n <= 0 {
			return nil
		}
		total += uint64(n)
		if total > ulen {
			return fmt.Errorf("LZF string is longer than the %d bytes the header said", ulen)
		}
		if err := fn(append([]byte(nil), out[:n]...)); err != nil {
			return err
		}
		out = append(out[:0], out[n:]...)
		return nil
	}
	for src.more() {
		ctrl, err := src.byte()
		if err != nil {
			return err
		}
		if ctrl < 32 {
			lit, err := src.take(int(ctrl) + 1)
			if err != nil {
				return err
			}
			out = append(out, lit...)
		} else {
			n := int(ctrl >> 5)
			if n == 7 {
				b, err := src.byte()
				if err != nil {
					return err
				}
				n += int(b)
			}
			b, err := src.byte()
			if err != nil {
				return err
			}
			ref := len(out) - (int(ctrl&0x1f)<<8 | int(b)) - 1
			if ref < 0 {
				return fmt.Errorf("LZF back reference before the start")
			}
			for j := 0; j < n+2; j++ {
				out = append(out, out[ref+j])
			}
		}
		if len(out) >= size+lzfWindow {
			if err := flush(lzfWindow); err != nil {
				return err
			}
		}
	}
	if err := flush(0); err != nil {
		return err
	}
	if total != ulen {
		return fmt.Errorf("LZF string is %d bytes, the header said %d", total, ulen)
	}
	return nil
}

// lzfSource reads the compressed bytes of an LZF string from the input
// 64 KiB at a time.
type lzfSource struct {
	in   *input
	left uint64 // compressed bytes not yet read from in
	buf  []byte
}

func (s *lzfSource) more() bool { return len(s.buf) > 0 || s.left > 0 }

func (s *lzfSource) fill(n int) error {
	for len(s.buf) < n {
		if s.left == 0 {
			return fmt.Errorf("LZF data cut short")
		}
		c := min(s.left, 64<<10)
		b, err := s.in.full(c)
		if err != nil {
			return err
		}
		s.left -= c
		s.buf = append(s.buf, b...)
	}
	return nil
}

func (s *lzfSource) byte() (byte, error) {
	if err := s.fill(1); err != nil {
		return 0, err
	}
	b := s.buf[0]
	s.buf = s.buf[1:]
	return b, nil
}

func (s *lzfSource) take(n int) ([]byte, error) {
	if err := s.fill(n); err != nil {
		return nil, err
	}
	b := s.buf[:n]
	s.buf = s.buf[n:]
	return b, nil
}
