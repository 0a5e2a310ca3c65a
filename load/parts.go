package load

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"runtime"
	"sync"

	"golang.org/x/sync/errgroup"

	"github.com/crs-tool/crs/format"
	"github.com/crs-tool/crs/records"
	"github.com/crs-tool/crs/target"
)

// A dump set (records.PartsInput) is loaded part by part side by side,
// PartsAtOnce at a time: each part as Load loads a dump, with writers of
// its own (Concurrency shared out between the parts at once) and a
// checkpoint of its own, CHECKPOINT.part-I. A part whose load finished
// leaves a checkpoint that says so until the whole set is loaded, so that
// crsload --resume continues each unfinished part from its own
// checkpoint, starts those that never began, and passes over the
// finished ones. Two parts never hold the same key, so no writer of one
// part waits for another's.

// partsAtOnce is how many of n parts load side by side.
func partsAtOnce(opts Options, n int) int {
	p := opts.PartsAtOnce
	if p <= 0 {
		p = min(runtime.GOMAXPROCS(0), 4)
	}
	return max(min(p, n), 1)
}

// partCheckpoint is the checkpoint of part i of a set's load.
func partCheckpoint(base string, i int) string {
	if base == "" {
		return ""
	}
	return fmt.Sprintf("%s.part-%d", base, i)
}

// partDone reads whether the checkpoint at path says its part finished,
// whether there is one, and of how many writers.
func partDone(path string) (done, there bool, writers int) {
	b, err := os.ReadFile(path)
	if err != nil {
		return false, false, 0
	}
	var cp checkpoint
	if json.Unmarshal(b, &cp) != nil {
		return false, true, 0
	}
	return cp.Done, true, len(cp.Writers)
}

// loadParts loads the parts of a set (whose merged header is hdr) side
// by side into the target, adding what they did to st and what their
// readers counted to src.
func loadParts(ctx context.Context, opts Options, hdr format.Header, parts []records.Input, st *Stats, src *records.Stats) error {
	at := partsAtOnce(opts, len(parts))
	if !opts.Replace && !opts.SkipExisting && !opts.Resume {
		if err := checkSetTarget(ctx, opts, hdr); err != nil {
			return err
		}
	}
	resume, writers := make([]bool, len(parts)), make([]int, len(parts))
	if opts.Resume {
		any := false
		for i := range parts {
			done, there, w := partDone(partCheckpoint(opts.Checkpoint, i))
			if done {
				parts[i] = nil // finished before
			}
			resume[i], any, writers[i] = there && !done, any || there, w
		}
		if !any {
			return fmt.Errorf("%w (%s.part-*): the load it would continue finished, or never started with this dump, target and --concurrency", ErrNoCheckpoint, opts.Checkpoint)
		}
	}
	var keys int64
	for _, d := range hdr.Databases {
		keys += d.Keys
	}
	opts.Counter.SetTotal(keys)
	if opts.KeysKnown != nil {
		opts.KeysKnown(keys)
	}
	var mu sync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(at)
	for i, part := range parts {
		if part == nil {
			continue
		}
		sub := opts
		sub.inSet, sub.Resume = true, resume[i]
		sub.Checkpoint = partCheckpoint(opts.Checkpoint, i)
		sub.Concurrency = max(opts.Concurrency/at, 1)
		if resume[i] && writers[i] > 0 {
			sub.Concurrency = writers[i] // as many writers as it had: each resumes from its line
		}
		sub.MaxInFlight = max(opts.MaxInFlight/int64(at), 1)
		sub.SeenLimit = max(opts.SeenLimit/at, 1)
		g.Go(func() error {
			pst, psrc, err := loadPart(gctx, sub, part)
			mu.Lock()
			st.Records += pst.Records
			st.Expired += pst.Expired
			st.Functions += pst.Functions
			st.SkippedFunctions += pst.SkippedFunctions
			st.Deferred += pst.Deferred
			st.DiskBytes += pst.DiskBytes
			st.HeldMs, st.PeakCPU = max(st.HeldMs, pst.HeldMs), max(st.PeakCPU, pst.PeakCPU)
			st.add(&pst)
			if src.From == "" {
				*src = psrc
			} else {
				src.Add(&psrc)
			}
			mu.Unlock()
			if err == nil && sub.Checkpoint != "" {
				err = writeDone(sub.Checkpoint)
			}
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	for i := range parts {
		if p := partCheckpoint(opts.Checkpoint, i); p != "" {
			os.Remove(p)
		}
	}
	return nil
}

// loadPart loads one part of a set.
func loadPart(ctx context.Context, opts Options, part records.Input) (Stats, records.Stats, error) {
	r, err := part.Open(ctx, nil)
	if err != nil {
		return Stats{ByType: map[string]int64{}}, records.Stats{}, err
	}
	st, err := Load(ctx, r, opts)
	src, serr := r.Close()
	if err == nil {
		err = serr
	}
	return st, src, err
}

// writeDone leaves a checkpoint saying its part finished.
func writeDone(path string) error {
	b, err := json.Marshal(checkpoint{Version: 1, Done: true})
	if err != nil {
		return err
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		return fmt.Errorf("write checkpoint: %w", err)
	}
	return nil
}

// checkSetTarget refuses a target whose databases that the set writes to
// already hold keys, before any part is loaded.
func checkSetTarget(ctx context.Context, opts Options, hdr format.Header) error {
	targetDB, err := opts.Conn.SelectedDB()
	if err != nil {
		return err
	}
	tgt, err := target.Open(ctx, opts.Conn)
	if err != nil {
		return err
	}
	defer tgt.Close()
	bases, _, err := nodeClients(ctx, tgt)
	if err != nil {
		return err
	}
	defer closeAll(bases)
	_, err = emptyCheck(ctx, bases, hdr, targetDB)
	return err
}

// anyPartCheckpoint reports whether a checkpoint of a part of a set's
// load is there.
func anyPartCheckpoint(base string, n int) bool {
	for i := 0; i < n; i++ {
		if _, there, _ := partDone(partCheckpoint(base, i)); there {
			return true
		}
	}
	return false
}
