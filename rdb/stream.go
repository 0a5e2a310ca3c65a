package rdb

import (
	"encoding/binary"
	"fmt"
	"sort"
	"strconv"

	"github.com/crs-tool/crs/format"
)

// Flags of a stream entry in a listpack.
const (
	entryDeleted    = 1
	entrySameFields = 2
)

func streamID(ms, seq uint64) string {
	return strconv.FormatUint(ms, 10) + "-" + strconv.FormatUint(seq, 10)
}

// rawID reads a 16-byte big-endian stream ID.
func (d *Decoder) rawID() (ms, seq uint64, err error) {
	b, err := d.in.fixed(16)
	if err != nil {
		return 0, 0, err
	}
	return binary.BigEndian.Uint64(b), binary.BigEndian.Uint64(b[8:]), nil
}

func (d *Decoder) lenID() (string, error) {
	ms, err := d.in.count()
	if err != nil {
		return "", err
	}
	seq, err := d.in.count()
	return streamID(ms, seq), err
}

// stream reads a stream: its listpack nodes (entries, in parts when
// many), its metadata, then its consumer groups, which go in the last
// record.
func (d *Decoder) stream(t byte, b *builder) error {
	b.start()
	ids := &idLog{}
	err := d.each(func() error {
		key, err := d.in.str()
		if err != nil {
			return err
		}
		if len(key) != 16 {
			return fmt.Errorf("stream node key of %d bytes, not a 16-byte ID", len(key))
		}
		lp, err := d.in.str()
		if err != nil {
			return err
		}
		return streamNode(binary.BigEndian.Uint64(key), binary.BigEndian.Uint64(key[8:]), lp, b, ids)
	})
	if err != nil {
		return err
	}
	length, err := d.in.count()
	if err != nil {
		return err
	}
	last, err := d.lenID()
	if err != nil {
		return err
	}
	meta := format.Stream{LastID: last, EntriesAdded: -1}
	if t >= typeStreamListpack2 {
		if _, err := d.lenID(); err != nil { // first ID
			return err
		}
		if meta.MaxDeletedID, err = d.lenID(); err != nil {
			return err
		}
		n, err := d.in.count()
		if err != nil {
			return err
		}
		meta.EntriesAdded = int64(n)
	}
	if meta.Groups, err = d.groups(t); err != nil {
		return err
	}
	if t >= typeStreamListpack4 {
		if meta.IDMP, err = d.idmp(); err != nil {
			return err
		}
	}
	// A server keeps the length the file records, which files of Redis 5
	// written after XTRIM can have wrong; a load has the entries' count.
	if live := ids.count(); length != live && !b.skip {
		d.Stats.LengthMismatch++
		if len(d.Stats.LengthMismatchKeys) < 10 {
			d.Stats.LengthMismatchKeys = append(d.Stats.LengthMismatchKeys, fmt.Sprintf("%q (db %d): length %d, %d entries", b.key, b.db, length, live))
		}
	}
	if err := b.next(); err != nil {
		return err
	}
	st := b.rec.Stream
	st.LastID, st.EntriesAdded, st.MaxDeletedID, st.Groups, st.IDMP = meta.LastID, meta.EntriesAdded, meta.MaxDeletedID, meta.Groups, meta.IDMP
	if err := placeholders(st, b.part == 0, ids); err != nil {
		return err
	}
	b.elems++ // the stream exists even with no entries left
	return b.finish()
}

// streamNode reads the entries of one listpack node, delta-encoded
// against the node's master ID.
func streamNode(ms, seq uint64, lp []byte, b *builder, ids *idLog) error {
	var items []string
	if err := walkListpack(lp, func(s string) error { items = append(items, s); return nil }); err != nil {
		return err
	}
	signed := func(i int) (int64, error) {
		if i >= len(items) {
			return 0, fmt.Errorf("stream listpack cut short")
		}
		v, err := strconv.ParseInt(items[i], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("stream listpack: %q where a number belongs", items[i])
		}
		return v, nil
	}
	num := func(i int) (uint64, error) {
		v, err := signed(i)
		if err == nil && v < 0 {
			return 0, fmt.Errorf("stream listpack: %d where a count belongs (the file is corrupt)", v)
		}
		return uint64(v), err
	}
	// An ID is the master's plus signed deltas, in wrapping unsigned
	// arithmetic as Redis adds them: an entry whose ms is past the
	// master's often has a smaller sequence number (1001-0 after 1000-5).
	delta := func(i int) (uint64, error) {
		v, err := signed(i)
		return uint64(v), err
	}
	// Master entry: count, deleted, field count, fields, 0.
	nf, err := num(2)
	if err != nil {
		return err
	}
	if nf > uint64(len(items)) || 3+int(nf)+1 > len(items) {
		return fmt.Errorf("stream listpack master entry cut short")
	}
	master := items[3 : 3+nf]
	i := 3 + int(nf) + 1
	for i < len(items) {
		flags, err := num(i)
		if err != nil {
			return err
		}
		dms, err := delta(i + 1)
		if err != nil {
			return err
		}
		dseq, err := delta(i + 2)
		if err != nil {
			return err
		}
		i += 3
		var fields []string
		if flags&entrySameFields != 0 {
			if i+len(master) > len(items) {
				return fmt.Errorf("stream entry cut short")
			}
			for k, f := range master {
				fields = append(fields, f, items[i+k])
			}
			i += len(master)
		} else {
			n, err := num(i)
			if err != nil {
				return err
			}
			if n > uint64(len(items)) || i+1+2*int(n) > len(items) {
				return fmt.Errorf("stream entry cut short")
			}
			fields = append(fields, items[i+1:i+1+2*int(n)]...)
			i += 1 + 2*int(n)
		}
		i++ // lp-count, for walking backwards
		if err := b.next(); err != nil {
			return err
		}
		// A deleted entry still in its node is carried as one (it may be
		// pending in a group); a whole stream drops those that are not.
		ids.add(ms+dms, seq+dseq)
		e := format.StreamEntry{ID: streamID(ms+dms, seq+dseq), Fields: fields}
		if flags&entryDeleted != 0 {
			e = format.StreamEntry{ID: e.ID, Deleted: true}
		} else {
			ids.live++
		}
		b.rec.Stream.Entries = append(b.rec.Stream.Entries, e)
		size := 16
		for _, f := range fields {
			size += len(f)
		}
		if err := b.grew(size); err != nil {
			return err
		}
	}
	return nil
}

// groups reads a stream's consumer groups, joining each pending entry of
// the group's list to the consumer that holds it.
func (d *Decoder) groups(t byte) ([]format.Group, error) {
	var out []format.Group
	err := d.each(func() error {
		name, err := d.in.str()
		if err != nil {
			return err
		}
		g := format.Group{Name: string(name), EntriesRead: -1}
		if g.LastDeliveredID, err = d.lenID(); err != nil {
			return err
		}
		if t >= typeStreamListpack2 {
			n, err := d.in.count()
			if err != nil {
				return err
			}
			g.EntriesRead = int64(n)
		}
		index := map[string]int{}
		err = d.each(func() error {
			ms, seq, err := d.rawID()
			if err != nil {
				return err
			}
			at, err := d.in.uint64LE()
			if err != nil {
				return err
			}
			n, err := d.in.count()
			if err != nil {
				return err
			}
			id := streamID(ms, seq)
			index[id] = len(g.Pending)
			g.Pending = append(g.Pending, format.Pending{ID: id, DeliveryTimeMs: int64(at), DeliveryCount: int64(n)})
			return nil
		})
		if err != nil {
			return err
		}
		if err := d.consumers(t, &g, index); err != nil {
			return err
		}
		for _, p := range g.Pending {
			if p.Consumer == "" {
				return fmt.Errorf("group %q: pending entry %s has no consumer", g.Name, p.ID)
			}
		}
		out = append(out, g)
		return nil
	})
	return out, err
}

// consumers reads a group's consumers and their pending lists.
func (d *Decoder) consumers(t byte, g *format.Group, index map[string]int) error {
	return d.each(func() error {
		name, err := d.in.str()
		if err != nil {
			return err
		}
		c := format.Consumer{Name: string(name)}
		seen, err := d.in.uint64LE()
		if err != nil {
			return err
		}
		c.SeenTimeMs = int64(seen)
		if t >= typeStreamListpack3 {
			active, err := d.in.uint64LE()
			if err != nil {
				return err
			}
			c.ActiveTimeMs = int64(active)
		}
		g.Consumers = append(g.Consumers, c)
		return d.each(func() error {
			ms, seq, err := d.rawID()
			if err != nil {
				return err
			}
			id := streamID(ms, seq)
			k, ok := index[id]
			if !ok {
				return fmt.Errorf("group %q: consumer %q holds %s, which is not in the group's pending list", g.Name, c.Name, id)
			}
			g.Pending[k].Consumer = c.Name
			return nil
		})
	})
}

// idLog remembers the IDs of the entries emitted of a stream in parts,
// in order, 16 bytes each, up to 2M of them, to tell which pending entries
// point at an entry no longer in the stream.
type idLog struct {
	ids  [][2]uint64
	full bool
	live uint64 // entries not deleted, however many
}

const maxIDLog = 2 << 20

func (l *idLog) add(ms, seq uint64) {
	if len(l.ids) >= maxIDLog {
		l.full = true
		return
	}
	l.ids = append(l.ids, [2]uint64{ms, seq})
}

// count is the number of entries read that are not deleted.
func (l *idLog) count() uint64 { return l.live }

func (l *idLog) has(ms, seq uint64) bool {
	i := sort.Search(len(l.ids), func(i int) bool {
		return l.ids[i][0] > ms || l.ids[i][0] == ms && l.ids[i][1] >= seq
	})
	return i < len(l.ids) && l.ids[i] == [2]uint64{ms, seq}
}

func (l *idLog) last() (uint64, uint64, bool) {
	if len(l.ids) == 0 {
		return 0, 0, false
	}
	x := l.ids[len(l.ids)-1]
	return x[0], x[1], true
}

// placeholders makes the deleted entries of a stream those its groups'
// pending entries need, as the format carries them: a deleted entry (an
// ID pending in a group, no longer in the stream) for each pending ID not
// among the entries, in ID order; and, in a whole stream, no deleted
// entry that nothing is pending on. A stream in parts can add a deleted
// entry only after those emitted: a pending entry deleted earlier in it
// (its whole node gone) cannot be carried, and says so.
func placeholders(st *format.Stream, whole bool, ids *idLog) error {
	pending := map[string]bool{}
	for _, g := range st.Groups {
		for _, p := range g.Pending {
			pending[p.ID] = true
		}
	}
	// A tracked idempotent ID may point at an entry since deleted: it is
	// carried too, as XIDMPRECORD needs the entry while it is recorded.
	if st.IDMP != nil {
		for _, p := range st.IDMP.Producers {
			for _, id := range p.IIDs {
				pending[id.ID] = true
			}
		}
	}
	if whole {
		kept := st.Entries[:0]
		for _, e := range st.Entries {
			if !e.Deleted || pending[e.ID] {
				kept = append(kept, e)
			}
		}
		st.Entries = kept
	}
	lastMs, lastSeq, any := ids.last()
	var missing []format.StreamEntry
	for id := range pending {
		ms, seq := splitID(id)
		if ids.has(ms, seq) {
			continue
		}
		if !whole && (ids.full || any && (ms < lastMs || ms == lastMs && seq < lastSeq)) {
			return fmt.Errorf("pending entry %s was deleted from this stream, which is too large to hold whole to carry it (dump the live server instead, or raise --part-elems)", id)
		}
		missing = append(missing, format.StreamEntry{ID: id, Deleted: true})
	}
	if len(missing) == 0 {
		return nil
	}
	st.Entries = append(st.Entries, missing...)
	sort.SliceStable(st.Entries, func(i, j int) bool { return idLess(st.Entries[i].ID, st.Entries[j].ID) })
	return nil
}

func idLess(a, b string) bool {
	am, as := splitID(a)
	bm, bs := splitID(b)
	return am < bm || am == bm && as < bs
}

func splitID(id string) (uint64, uint64) {
	for i := 0; i < len(id); i++ {
		if id[i] == '-' {
			ms, _ := strconv.ParseUint(id[:i], 10, 64)
			seq, _ := strconv.ParseUint(id[i+1:], 10, 64)
			return ms, seq
		}
	}
	return 0, 0
}

// idmp reads a stream's idempotent-producer state (RDB_TYPE_STREAM_LISTPACKS_4,
// Redis 8.6): duration, maxsize, the producers with their tracked IDs in
// insertion order, and the all-time counters.
func (d *Decoder) idmp() (*format.IDMP, error) {
	m := &format.IDMP{Producers: []format.Producer{}}
	dur, err := d.in.count()
	if err != nil {
		return nil, err
	}
	max, err := d.in.count()
	if err != nil {
		return nil, err
	}
	// The ranges Redis 8.6 checks on load.
	if dur < 1 || dur > 86400 || max < 1 || max > 10000 {
		return nil, fmt.Errorf("stream IDMP duration %d or maxsize %d out of range (the file is corrupt)", dur, max)
	}
	m.Duration, m.MaxSize = int64(dur), int64(max)
	err = d.each(func() error {
		pid, err := d.in.str()
		if err != nil {
			return err
		}
		p := format.Producer{PID: string(pid)}
		err = d.each(func() error {
			iid, err := d.in.str()
			if err != nil {
				return err
			}
			id, err := d.lenID()
			if err != nil {
				return err
			}
			p.IIDs = append(p.IIDs, format.TrackedID{IID: string(iid), ID: id})
			m.Tracked++
			return nil
		})
		m.Producers = append(m.Producers, p)
		return err
	})
	if err != nil {
		return nil, err
	}
	added, err := d.in.count()
	if err != nil {
		return nil, err
	}
	dups, err := d.in.count()
	if err != nil {
		return nil, err
	}
	m.Added, m.Duplicates = int64(added), int64(dups)
	return m, nil
}
