// Package memlimit sets the Go runtime's soft memory limit for crs's
// tools: a fixed base for their working memory, whatever the size of the
// keys, plus what grows with the number of keys (the sets that catch a key
// seen twice, about 20 bytes a key). The limit makes the runtime collect
// and return freed memory before the process grows past it; set too close
// to the live heap, it makes the collector run without pause, so it must
// grow with the key count. GOMEMLIMIT, when set, wins.
package memlimit

import (
	"os"
	"runtime/debug"
)

// Base is the limit for a tool's working memory.
const Base = 40 << 20

// PerKey is what the limit grows by for each key the tool must remember.
const PerKey = 32

// Set sets the limit for a run that remembers about keys keys.
func Set(keys int64) {
	if os.Getenv("GOMEMLIMIT") != "" {
		return
	}
	debug.SetMemoryLimit(Base + PerKey*max(keys, 0))
}
