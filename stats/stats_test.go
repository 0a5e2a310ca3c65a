package stats

import "testing"

func TestMatch(t *testing.T) {
	for _, tt := range []struct {
		pattern, key string
		want         bool
	}{
		{"*", "", true}, {"*", "a/b:c", true}, {"client_keys:*", "client_keys:sk-1", true},
		{"client_keys:*", "client_key:sk-1", false}, {"*_pool:*", "high_pool:slots:a", true},
		{"h?llo", "hello", true}, {"h?llo", "hllo", false}, {"h[ae]llo", "hallo", true},
		{"h[^e]llo", "hello", false}, {"h[a-c]llo", "hbllo", true}, {"h[a-c]llo", "hdllo", false},
		{`a\*b`, "a*b", true}, {`a\*b`, "axb", false}, {"**x", "abx", true}, {"a*", "b", false},
	} {
		if got := Match(tt.pattern, tt.key); got != tt.want {
			t.Errorf("Match(%q, %q) = %v, want %v", tt.pattern, tt.key, got, tt.want)
		}
	}
}
