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
