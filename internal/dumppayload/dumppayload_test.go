package dumppayload

import (
	"hash/crc64"
	"testing"
)

func TestCRC(t *testing.T) {
	// The check value Redis's crc64.c tests against.
	if got, want := CRC(0, []byte("123456789")), uint64(0xe9c6d914c4b8d9ca); got != want {
		t.Fatalf("CRC = %#x, want %#x", got, want)
	}
}

func TestRestamp(t *testing.T) {
	// A module value stamped 13, made as a server would: value, version,
	// CRC of both.
	made := func(typ byte, v int) string {
		b := []byte{typ, 1, 2, 3, byte(v), byte(v >> 8)}
		crc := CRC(0, b)
		for i := 0; i < 8; i++ {
			b = append(b, byte(crc>>(8*i)))
		}
		return string(b)
	}
	for _, tt := range []struct {
		name string
		in   string
		v    int
		want string
		ok   bool
	}{
		{"module 13 to 10", made(7, 13), 10, made(7, 10), true},
		{"module 12 to 12", made(7, 12), 12, made(7, 12), true},
		{"a native type is left", made(0, 13), 10, made(0, 13), false},
		{"too short", "\x07", 10, "\x07", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := Restamp(tt.in, tt.v)
			if got != tt.want || ok != tt.ok {
				t.Errorf("Restamp = %q, %v; want %q, %v", got, ok, tt.want, tt.ok)
			}
			if ok {
				if v, _ := Version(got); v != tt.v {
					t.Errorf("Version = %d, want %d", v, tt.v)
				}
			}
		})
	}
}

func TestServerRDB(t *testing.T) {
	for _, tt := range []struct {
		engine       string
		major, minor int
		want         int
	}{
		{"redis", 6, 0, 9}, {"redis", 7, 0, 10}, {"redis", 7, 2, 11}, {"redis", 7, 4, 12}, {"redis", 8, 0, 12},
		{"redis", 8, 6, 13}, {"valkey", 8, 1, 11}, {"valkey", 9, 1, 80}, {"redis", 2, 4, 0},
	} {
		if got := ServerRDB(tt.engine, tt.major, tt.minor); got != tt.want {
			t.Errorf("ServerRDB(%s %d.%d) = %d, want %d", tt.engine, tt.major, tt.minor, got, tt.want)
		}
	}
}

// TestCRCSlicing checks the sliced CRC against hash/crc64's byte-by-byte
// one, over every length up to 100 and split at every point.
func TestCRCSlicing(t *testing.T) {
	tab := crc64.MakeTable(0x95ac9329ac4bc9b5)
	p := make([]byte, 100)
	for i := range p {
		p[i] = byte(i*131 + 7)
	}
	for n := 0; n <= len(p); n++ {
		want := ^crc64.Update(^uint64(0), tab, p[:n])
		for split := 0; split <= n; split++ {
			if got := CRC(CRC(0, p[:split]), p[split:n]); got != want {
				t.Fatalf("%d bytes split at %d: %016x, want %016x", n, split, got, want)
			}
		}
	}
}
