package verify

import (
	"fmt"

	"github.com/crs-tool/crs/format"
	"github.com/redis/go-redis/v9"
)

// entryRange is the IDs of the first and last entries of s that are in
// the stream (not deleted ones kept for their pending entries).
func entryRange(s *format.Stream) (first, last string, ok bool) {
	for _, e := range s.Entries {
		if e.Deleted {
			continue
		}
		if !ok {
			first, ok = e.ID, true
		}
		last = e.ID
	}
	return first, last, ok
}

func (v *verifier) stream(rec *format.Record, q *pending) error {
	first, last, ok := entryRange(rec.Stream)
	var want []format.StreamEntry
	for _, e := range rec.Stream.Entries {
		if !e.Deleted {
			want = append(want, e)
		}
	}
	if ok {
		res, _ := q.values[0].(*redis.Cmd).Val().([]interface{})
		if len(res) != len(want) {
			v.differ(rec.DB, rec.Key, "%d entries from %s to %s, target %d", len(want), first, last, len(res))
			return nil
		}
		for i, x := range res {
			e, _ := x.([]interface{})
			if len(e) != 2 || e[0] != want[i].ID || !sameFields(e[1], want[i].Fields) {
				v.differ(rec.DB, rec.Key, "entry %s differs", want[i].ID)
				return nil
			}
		}
	}
	v.entries += int64(len(want))
	s := rec.Stream
	if q.xinfo != nil {
		info, err := q.xinfo.Slice()
		if err != nil {
			return fmt.Errorf("XINFO STREAM: %w", err)
		}
		m := map[string]interface{}{}
		for i := 0; i+1 < len(info); i += 2 {
			if k, ok := info[i].(string); ok {
				m[k] = info[i+1]
			}
		}
		switch {
		case m["last-generated-id"] != s.LastID:
			v.differ(rec.DB, rec.Key, "last ID %s, target %v", s.LastID, m["last-generated-id"])
		case s.EntriesAdded >= 0 && m["entries-added"] != nil && m["entries-added"] != s.EntriesAdded:
			v.differ(rec.DB, rec.Key, "entries-added %d, target %v", s.EntriesAdded, m["entries-added"])
		case s.MaxDeletedID != "" && m["max-deleted-entry-id"] != nil && m["max-deleted-entry-id"] != s.MaxDeletedID:
			v.differ(rec.DB, rec.Key, "max-deleted-entry-id %s, target %v", s.MaxDeletedID, m["max-deleted-entry-id"])
		case s.IDMP != nil && m["idmp-duration"] != nil && (m["idmp-duration"] != s.IDMP.Duration || m["idmp-maxsize"] != s.IDMP.MaxSize):
			v.differ(rec.DB, rec.Key, "idmp-duration %d, idmp-maxsize %d, target %v, %v", s.IDMP.Duration, s.IDMP.MaxSize, m["idmp-duration"], m["idmp-maxsize"])
		case s.IDMP != nil && s.IDMP.Tracked >= 0 && m["iids-tracked"] != nil && m["iids-tracked"] != s.IDMP.Tracked:
			v.differ(rec.DB, rec.Key, "%d tracked idempotent IDs, target %v", s.IDMP.Tracked, m["iids-tracked"])
		}
	}
	// Groups may continue across parts: add them up for finish.
	if v.groups == nil {
		v.groups = map[string]*groupSum{}
	}
	for _, g := range s.Groups {
		sum := v.groups[g.Name]
		if sum == nil {
			sum = &groupSum{entriesRead: -1}
			v.groups[g.Name] = sum
			v.order = append(v.order, g.Name)
		}
		if g.LastDeliveredID != "" {
			sum.lastDelivered, sum.entriesRead = g.LastDeliveredID, g.EntriesRead
		}
		sum.consumers += int64(len(g.Consumers))
		sum.pending += int64(len(g.Pending))
	}
	return nil
}

// streamGroups compares the consumer groups the dump holds for a stream
// with the target's.
func (v *verifier) streamGroups(rec *format.Record, q *pending) error {
	got, err := q.groups.Result()
	if err != nil {
		return fmt.Errorf("XINFO GROUPS: %w", err)
	}
	if len(got) != len(v.order) {
		v.differ(rec.DB, rec.Key, "%d consumer groups, target %d", len(v.order), len(got))
		return nil
	}
	on := map[string]redis.XInfoGroup{}
	for _, g := range got {
		on[g.Name] = g
	}
	for _, name := range v.order {
		want, g := v.groups[name], on[name]
		switch {
		case g.Name != name:
			v.differ(rec.DB, rec.Key, "group %q missing from the target", name)
		case g.LastDeliveredID != want.lastDelivered:
			v.differ(rec.DB, rec.Key, "group %q: last delivered ID %s, target %s", name, want.lastDelivered, g.LastDeliveredID)
		case want.entriesRead >= 0 && g.EntriesRead != want.entriesRead:
			v.differ(rec.DB, rec.Key, "group %q: entries-read %d, target %d", name, want.entriesRead, g.EntriesRead)
		case g.Consumers != want.consumers:
			v.differ(rec.DB, rec.Key, "group %q: %d consumers, target %d", name, want.consumers, g.Consumers)
		case g.Pending != want.pending:
			v.differ(rec.DB, rec.Key, "group %q: %d pending entries, target %d", name, want.pending, g.Pending)
		default:
			continue
		}
		return nil
	}
	return nil
}

func sameFields(x interface{}, want []string) bool {
	got, _ := x.([]interface{})
	if len(got) != len(want) {
		return false
	}
	for i := range want {
		if got[i] != want[i] {
			return false
		}
	}
	return true
}
