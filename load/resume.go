package load

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync/atomic"
	"time"
)

// A load keeps a checkpoint (Options.Checkpoint) while it runs: for each
// writer, the last line up to which every record it was given is on the
// target, its keys whole. Records are routed to writers by a hash of
// database and key that does not change between runs, so crsload
// --resume, given the same dump, target and writers, skips each writer's
// records up to its line and sends the rest, each key from scratch after
// a DEL (the checkpoint is written every 200 ms, so after a crash keys
// past it may be on the target, whole or in part): nothing is written
// twice, no part of a key doubled.

// checkpoint is the file's content.
type checkpoint struct {
	Version int     `json:"version"`
	Writers []int64 `json:"writers"` // per writer, the last line whose record (and every one before it) is written
	// Done says a part of a set finished (loadParts).
	Done bool `json:"done,omitempty"`
}

// ErrNoCheckpoint is returned by --resume when there is nothing to resume.
var ErrNoCheckpoint = errors.New("no checkpoint to resume from")

// readCheckpoint reads path for a load of writers writers.
func readCheckpoint(path string, writers int) ([]int64, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w (%s): the load it would continue finished, or never started with this dump, target and --concurrency", ErrNoCheckpoint, path)
	}
	if err != nil {
		return nil, fmt.Errorf("read checkpoint: %w", err)
	}
	var cp checkpoint
	if err := json.Unmarshal(b, &cp); err != nil || cp.Version != 1 {
		return nil, fmt.Errorf("checkpoint %s: not one crsload wrote", path)
	}
	if len(cp.Writers) != writers {
		return nil, fmt.Errorf("checkpoint %s: the load had %d writers and this one has %d: give the same --concurrency and target", path, len(cp.Writers), writers)
	}
	return cp.Writers, nil
}

// writeCheckpoint writes the writers' lines to path, atomically.
func writeCheckpoint(path string, lines []*atomic.Int64) error {
	cp := checkpoint{Version: 1}
	for _, l := range lines {
		cp.Writers = append(cp.Writers, l.Load())
	}
	b, err := json.Marshal(cp)
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("write checkpoint: %w", err)
	}
	return os.Rename(tmp, path)
}

// keepCheckpoint writes the checkpoint every interval until stop is
// closed, then once more.
func keepCheckpoint(path string, lines []*atomic.Int64, stop <-chan struct{}, done chan<- error) {
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			if err := writeCheckpoint(path, lines); err != nil {
				done <- err
				return
			}
		case <-stop:
			done <- writeCheckpoint(path, lines)
			return
		}
	}
}

// routeHash is the writer-choosing hash of a key: FNV-1a of its database
// and name, the same in every run.
func routeHash(db int, key string) uint64 {
	// hash/fnv's, inlined: no allocation per key on the hot path.
	const offset, prime = 14695981039346656037, 1099511628211
	var digits [20]byte
	h := uint64(offset)
	for _, c := range strconv.AppendInt(digits[:0], int64(db), 10) {
		h = (h ^ uint64(c)) * prime
	}
	h *= prime // the 0 byte between
	for i := 0; i < len(key); i++ {
		h = (h ^ uint64(key[i])) * prime
	}
	return h
}
