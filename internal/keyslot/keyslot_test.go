package keyslot

import (
	"strings"
	"testing"
)

func TestSlot(t *testing.T) {
	// Values from the Redis Cluster specification and CLUSTER KEYSLOT.
	for _, tt := range []struct {
		key  string
		slot int
	}{
		{"123456789", 12739}, // CRC16/XMODEM check value 0x31C3
		{"foo", 12182},
		{"{user1000}.following", Slot("user1000")},
		{"foo{}{bar}", Slot("foo{}{bar}")},
		{"foo{{bar}}zap", Slot("{bar")},
		{"foo{bar}{zap}", Slot("bar")},
		{"", 0},
	} {
		if got := Slot(tt.key); got != tt.slot {
			t.Errorf("Slot(%q) = %d, want %d", tt.key, got, tt.slot)
		}
	}
	if crc16("123456789") != 0x31c3 {
		t.Errorf("crc16 check value %x", crc16("123456789"))
	}
}

// TestParts checks that N parts hold every slot once, evenly.
func TestParts(t *testing.T) {
	for _, n := range []int{1, 2, 3, 7, 100, Slots} {
		seen := make([]int, Slots)
		for i := 0; i < n; i++ {
			p := NewPart(i, n)
			lo, hi := p.Range()
			if l2, h2 := (Part{I: i, N: n}).Range(); l2 != lo || h2 != hi {
				t.Fatalf("part %d/%d: %d-%d made by NewPart, %d-%d as a literal", i, n, lo, hi, l2, h2)
			}
			if d := hi - lo; d < Slots/n || d > Slots/n+1 {
				t.Errorf("part %d/%d holds %d slots", i, n, d)
			}
			for s := lo; s < hi; s++ {
				seen[s]++
			}
		}
		for s, c := range seen {
			if c != 1 {
				t.Fatalf("%d parts: slot %d in %d of them", n, s, c)
			}
		}
	}
	keys := 0
	for i := 0; i < 3; i++ {
		if (Part{I: i, N: 3}).Holds("user:1") {
			keys++
		}
	}
	if keys != 1 {
		t.Errorf("a key in %d of 3 parts", keys)
	}
}

func TestParsePart(t *testing.T) {
	env := func(v string) func(string) string {
		return func(string) string { return v }
	}
	for _, tt := range []struct {
		in, env string
		want    Part
		err     string
	}{
		{"0/3", "", Part{I: 0, N: 3}, ""},
		{"2/3", "", Part{I: 2, N: 3}, ""},
		{"auto/3", "1", Part{I: 1, N: 3}, ""},
		{"auto/3", "", Part{}, "JOB_COMPLETION_INDEX is not set"},
		{"auto/3", "3", Part{}, "not one of 0 to 2"},
		{"3/3", "", Part{}, "not one of 0 to 2"},
		{"1", "", Part{}, "want I/N"},
		{"1/0", "", Part{}, "want I/N"},
		{"-1/2", "", Part{}, "not one of"},
	} {
		got, err := ParsePart(tt.in, env(tt.env))
		if tt.err == "" && (err != nil || got.I != tt.want.I || got.N != tt.want.N) || tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)) {
			t.Errorf("ParsePart(%q) with index %q = %v, %v; want %v, %q", tt.in, tt.env, got, err, tt.want, tt.err)
		}
	}
}

// TestPartsAsRedisCli checks the ranges against redis-cli --cluster
// create's for three and five masters (redis-cli.c computes them in
// float32 with a running sum: from 78 masters on, a closed form in
// float64 is a slot off here and there).
func TestPartsAsRedisCli(t *testing.T) {
	for n, want := range map[int][][2]int{
		3: {{0, 5460}, {5461, 10922}, {10923, 16383}},
		5: {{0, 3276}, {3277, 6553}, {6554, 9829}, {9830, 13106}, {13107, 16383}},
	} {
		for i, w := range want {
			lo, hi := NewPart(i, n).Range()
			if lo != w[0] || hi-1 != w[1] {
				t.Errorf("part %d/%d: slots %d-%d, redis-cli gives %d-%d", i, n, lo, hi-1, w[0], w[1])
			}
		}
	}
}
