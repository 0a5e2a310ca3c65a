package livesync

import (
	"bytes"
	"context"
	"slices"
	"time"

	"github.com/crs-tool/crs/records"
)

// Keys changed during the sync are compared while it runs, so that the
// cutover's pause covers only those changed in its last moments, however
// long the sync ran. A batch of changed keys whose last write the target
// has applied is read on the source in one transaction with the source's
// replication offset; once the target has applied the stream up to that
// offset, the same keys are read there. A key written again in between
// is left for later; one equal on both sides leaves the changed set; one
// that differs stays in it, for the cutover's check to judge (which
// decodes a value whose encodings differ).

// comparing is a batch of changed keys of source database db read on the
// source, each at its offset, to be read on the target once it has
// applied the stream up to the last of them.
type comparing struct {
	db      int
	keys    []string
	dumps   []records.Dumped
	offsets []int64
	last    int64
}

// compareBatch is the most keys one step compares.
const compareBatch = 1024

// compareWithin bounds a step's read of a batch on the source.
const compareWithin = 10 * time.Second

// compareEvery is how often the stream's loop takes a step.
const compareEvery = 20 * time.Millisecond

// compareStep takes the comparison of the keys changed during the sync
// one step further: it reads a batch on the source, or, once the target
// has applied the stream up to where that read stood, reads it on the
// target and drops the keys found equal from the changed set.
func (a *applier) compareStep(ctx context.Context) error {
	if a.many || a.notify || a.judges() {
		return nil
	}
	if c := a.cmp; c != nil {
		if a.pos.Offset < c.last {
			return nil
		}
		a.cmp = nil
		to, _ := a.mapDB(c.db)
		got, err := a.t.dumps(ctx, to, a.targetNames(c.keys))
		if err != nil {
			return err
		}
		readAt := time.Now().UnixMilli()
		for i, k := range c.keys {
			dk := dbKey{c.db, k}
			if last, ok := a.changed[dk]; !ok || last > c.offsets[i] {
				continue // written again since the source was read
			}
			if sameDump(c.dumps[i], got[i], readAt) {
				delete(a.changed, dk)
				a.st.Compared++
			}
		}
		return nil
	}
	db := -1
	var keys []string
	for k, at := range a.changed {
		if at > a.pos.Offset || (db >= 0 && k.db != db) {
			continue
		}
		db = k.db
		if keys = append(keys, k.key); len(keys) == compareBatch {
			break
		}
	}
	if len(keys) == 0 {
		return nil
	}
	// A source that does not answer in time is asked again at a later
	// step: the stream must go on to its link, which says when the source
	// is gone, rather than wait out every retry of a stopped source.
	actx, cancel := context.WithTimeout(ctx, compareWithin)
	defer cancel()
	dumps, offsets, err := a.src.DumpsAt(actx, a.srcKey, db, keys)
	if err != nil && actx.Err() != nil && ctx.Err() == nil {
		return nil
	}
	if err != nil {
		return err
	}
	a.cmp = &comparing{db: db, keys: keys, dumps: dumps, offsets: offsets, last: slices.Max(offsets)}
	return nil
}

// dumpTrailer is what ends a DUMP payload after the value: its RDB
// version (2 bytes) and CRC-64 (8), which differ between server versions
// for the same value.
const dumpTrailer = 10

// sameDump reports whether a key read on the source (w) and on the target
// (g), both by readAt (unix ms), is the same: both gone; or the same
// value in the same encoding, with the same expiry (within expirySlack,
// for servers that give only PTTL); or held by one side only with an
// expiry that has passed by then (see expiring).
func sameDump(w, g records.Dumped, readAt int64) bool {
	switch {
	case w.Payload == nil && g.Payload == nil:
		return true
	case w.Payload == nil:
		return expiring(g, readAt)
	case g.Payload == nil:
		return expiring(w, readAt)
	}
	return sameValue(w.Payload, g.Payload) && (w.ExpireAtMs == 0) == (g.ExpireAtMs == 0) && absDiff(w.ExpireAtMs, g.ExpireAtMs) <= expirySlack
}

// sameValue reports whether two DUMP payloads hold the same value in the
// same encoding, whatever RDB version each server stamped them with.
func sameValue(a, b []byte) bool {
	if len(a) < dumpTrailer || len(b) < dumpTrailer {
		return bytes.Equal(a, b)
	}
	return bytes.Equal(a[:len(a)-dumpTrailer], b[:len(b)-dumpTrailer])
}
