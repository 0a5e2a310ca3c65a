package target

import (
	"encoding/binary"
	"math"
	"strconv"

	"github.com/crs-tool/crs/format"
	"github.com/crs-tool/crs/internal/dumppayload"
	"github.com/crs-tool/crs/internal/resp"
	"github.com/crs-tool/crs/internal/vemb"
)

// The commands that write each kind of record.

// dropCounters removes from a stream record what a target before 7.0
// cannot set (--drop-stream-counters): entries-added, max-deleted-entry-id
// and the groups' entries-read. It reports whether the record had any; a
// record sent again has none left, so a stream is counted once.
func dropCounters(s *format.Stream) bool {
	had := s.EntriesAdded >= 0 || s.MaxDeletedID != ""
	s.EntriesAdded, s.MaxDeletedID = -1, ""
	for i := range s.Groups {
		had = had || s.Groups[i].EntriesRead >= 0
		s.Groups[i].EntriesRead = -1
	}
	return had
}

// commands writes to c the commands for plan p's record, and those that
// finish its key when it is the key's last record. check has passed.
func (w *Writer) commands(c *resp.Conn, p int, it Item, st *keyState) {
	r := it.Rec
	expireSet := false
	switch {
	case r.Dump != "":
		payload := r.Dump
		// A module type's value reads the same in every RDB version: an
		// older target takes it stamped with its own.
		if v := dumppayload.ServerRDB(w.srv.Engine, w.srv.Major, w.srv.Minor); v > 0 && r.RDBVersion > v {
			payload, _ = dumppayload.Restamp(payload, v)
		}
		if it.Exp > 0 && w.srv.AtLeast(5, 0) {
			w.begin(c, p, cmdRestore, "RESTORE", 4).Str(r.Key).Int(it.Exp).Str(payload).Str("ABSTTL")
			expireSet = true
		} else {
			w.begin(c, p, cmdRestore, "RESTORE", 3).Str(r.Key).Int(0).Str(payload)
		}
	case w.encode(c, p, it):
		expireSet = true
	case r.Type == format.TypeString:
		switch {
		case r.Part > 1:
			w.begin(c, p, cmdWrite, "APPEND", 2).Str(r.Key).Str(r.Str)
		case it.Exp > 0 && it.Last && w.srv.AtLeast(6, 2):
			w.begin(c, p, cmdWrite, "SET", 4).Str(r.Key).Str(r.Str).Str("PXAT").Int(it.Exp)
			expireSet = true
		default:
			w.begin(c, p, cmdWrite, "SET", 2).Str(r.Key).Str(r.Str)
		}
	case r.Type == format.TypeList || r.Type == format.TypeSet:
		cmd := "RPUSH"
		if r.Type == format.TypeSet {
			cmd = "SADD"
		}
		for i := 0; i < len(r.Elems); i += elemsPerCommand {
			part := r.Elems[i:min(i+elemsPerCommand, len(r.Elems))]
			w.begin(c, p, cmdWrite, cmd, 1+len(part)).Str(r.Key)
			for _, e := range part {
				c.Str(e)
			}
		}
	case r.Type == format.TypeHash:
		cmd := "HSET"
		if !w.srv.AtLeast(4, 0) {
			cmd = "HMSET"
		}
		for i := 0; i < len(r.Hash); i += elemsPerCommand {
			part := r.Hash[i:min(i+elemsPerCommand, len(r.Hash))]
			w.begin(c, p, cmdWrite, cmd, 1+2*len(part)).Str(r.Key)
			for _, f := range part {
				c.Str(f.Name).Str(f.Value)
			}
		}
		w.fieldExpiry(c, p, r)
	case r.Type == format.TypeZSet:
		for i := 0; i < len(r.ZSet); i += elemsPerCommand {
			part := r.ZSet[i:min(i+elemsPerCommand, len(r.ZSet))]
			w.begin(c, p, cmdWrite, "ZADD", 1+2*len(part)).Str(r.Key)
			for _, m := range part {
				c.Str(formatScore(m.Score)).Str(m.Member)
			}
		}
	case r.Type == format.TypeStream:
		w.streamCommands(c, p, it, st)
	case r.Type == format.TypeVectorSet:
		vectorSetCommands(w, c, p, r, st)
	}
	if it.Last && it.Exp > 0 && !expireSet {
		w.begin(c, p, cmdWrite, "PEXPIREAT", 2).Str(r.Key).Int(it.Exp)
	}
}

// encode writes it as one RESTORE of a payload crs encodes, where the
// Writer has an encoder and it covers the record, and counts it.
func (w *Writer) encode(c *resp.Conn, p int, it Item) bool {
	if w.o.Encoder == nil {
		return false
	}
	payload, ok := w.o.Encoder.Encode(it.Rec)
	if !ok {
		return false
	}
	if it.Exp > 0 {
		w.begin(c, p, cmdEncoded, "RESTORE", 4).Str(it.Rec.Key).Int(it.Exp).Bytes(payload).Str("ABSTTL")
	} else {
		w.begin(c, p, cmdEncoded, "RESTORE", 3).Str(it.Rec.Key).Int(0).Bytes(payload)
	}
	return true
}

// fieldExpiry writes HPEXPIREAT commands for r's field expiries, one per
// distinct instant, or counts them as dropped (--drop-field-expiry).
func (w *Writer) fieldExpiry(c *resp.Conn, p int, r *format.Record) {
	if len(r.FieldExpire) == 0 {
		return
	}
	if !w.srv.FieldExpiry {
		w.st.DroppedField += int64(len(r.FieldExpire))
		return
	}
	byTime := make(map[int64][]string)
	var order []int64
	for _, f := range r.FieldExpire {
		if f.AtMs <= 0 {
			continue // dropped by --ttl=none
		}
		if _, ok := byTime[f.AtMs]; !ok {
			order = append(order, f.AtMs)
		}
		byTime[f.AtMs] = append(byTime[f.AtMs], f.Field)
	}
	for _, at := range order {
		fields := byTime[at]
		w.begin(c, p, cmdWrite, "HPEXPIREAT", 4+len(fields)).Str(r.Key).Int(at).Str("FIELDS").Int(int64(len(fields)))
		for _, f := range fields {
			c.Str(f)
		}
	}
}

// streamCommands rebuilds a stream part: entries with XADD at their IDs
// (and placeholders for deleted entries still pending), groups with
// XGROUP CREATE and CREATECONSUMER, pending entries with XCLAIM ... FORCE
// at their delivery time and count; after the last part, the placeholders
// are deleted and XSETID restores the last ID and counters.
func (w *Writer) streamCommands(c *resp.Conn, p int, it Item, st *keyState) {
	r, s := it.Rec, it.Rec.Stream
	if r.Part <= 1 {
		w.begin(c, p, cmdWrite, "XGROUP", 5).Str("CREATE").Str(r.Key).Str(loadingGroup).Str("$").Str("MKSTREAM")
	}
	for _, e := range s.Entries {
		if e.Deleted {
			w.begin(c, p, cmdWrite, "XADD", 4).Str(r.Key).Str(e.ID).Str(placeholderField).Str("")
			if st.entries == 0 {
				st.lead++
			} else {
				st.placeholders = append(st.placeholders, e.ID)
			}
			continue
		}
		st.entries++
		w.begin(c, p, cmdWrite, "XADD", 2+len(e.Fields)).Str(r.Key).Str(e.ID)
		for _, f := range e.Fields {
			c.Str(f)
		}
	}
	for _, g := range s.Groups {
		if g.LastDeliveredID != "" {
			if g.EntriesRead >= 0 {
				w.begin(c, p, cmdWrite, "XGROUP", 6).Str("CREATE").Str(r.Key).Str(g.Name).Str(g.LastDeliveredID).Str("ENTRIESREAD").Int(g.EntriesRead)
			} else {
				w.begin(c, p, cmdWrite, "XGROUP", 4).Str("CREATE").Str(r.Key).Str(g.Name).Str(g.LastDeliveredID)
			}
		}
		for _, cs := range g.Consumers {
			if w.srv.AtLeast(6, 2) {
				w.begin(c, p, cmdWrite, "XGROUP", 4).Str("CREATECONSUMER").Str(r.Key).Str(g.Name).Str(cs.Name)
				continue
			}
			// Before 6.2, a consumer is made by reading its own pending
			// entries past an ID no entry has: nothing is delivered, no
			// pending entry is touched, the group's last ID stays.
			w.begin(c, p, cmdWrite, "XREADGROUP", 8).Str("GROUP").Str(g.Name).Str(cs.Name).Str("COUNT").Int(1).Str("STREAMS").Str(r.Key)
			c.Str(consumerMakingID)
		}
		// One XCLAIM for each run of entries with the same consumer,
		// delivery time and count.
		for i := 0; i < len(g.Pending); {
			pe := g.Pending[i]
			j := i
			for j < len(g.Pending) && j-i < elemsPerCommand {
				q := g.Pending[j]
				if q.Consumer != pe.Consumer || q.DeliveryTimeMs != pe.DeliveryTimeMs || q.DeliveryCount != pe.DeliveryCount {
					break
				}
				j++
			}
			w.begin(c, p, cmdWrite, "XCLAIM", 4+(j-i)+6).Str(r.Key).Str(g.Name).Str(pe.Consumer).Int(0)
			for _, q := range g.Pending[i:j] {
				c.Str(q.ID)
			}
			c.Str("TIME").Int(pe.DeliveryTimeMs).Str("RETRYCOUNT").Int(pe.DeliveryCount).Str("FORCE").Str("JUSTID")
			i = j
		}
	}
	if !it.Last {
		return
	}
	if m := s.IDMP; m != nil {
		// Settings first: XCFGSET clears what a stream tracks when they
		// change. XIDMPRECORD needs each entry, placeholders too.
		w.begin(c, p, cmdWrite, "XCFGSET", 5).Str(r.Key).Str("IDMP-DURATION").Int(m.Duration).Str("IDMP-MAXSIZE").Int(m.MaxSize)
		for _, pr := range m.Producers {
			for _, t := range pr.IIDs {
				w.begin(c, p, cmdWrite, "XIDMPRECORD", 4).Str(r.Key).Str(pr.PID).Str(t.IID).Str(t.ID)
			}
		}
	}
	// Placeholders among the entries go with XDEL, which raises the
	// stream's max-deleted-entry-id (XSETID sets it back, unless the
	// source's is 0-0, which XSETID cannot set); those before every entry
	// (entries trimmed while pending: all of them where the source never
	// deleted one) go with an exact XTRIM, which leaves it alone.
	if len(st.placeholders) > 0 {
		w.begin(c, p, cmdWrite, "XDEL", 1+len(st.placeholders)).Str(r.Key)
		for _, id := range st.placeholders {
			c.Str(id)
		}
	}
	if st.lead > 0 {
		w.begin(c, p, cmdWrite, "XTRIM", 3).Str(r.Key).Str("MAXLEN").Int(st.entries)
	}
	if s.LastID != "" {
		n := 2
		if s.EntriesAdded >= 0 {
			n += 2
		}
		if s.MaxDeletedID != "" {
			n += 2
		}
		w.begin(c, p, cmdWrite, "XSETID", n).Str(r.Key).Str(s.LastID)
		if s.EntriesAdded >= 0 {
			c.Str("ENTRIESADDED").Int(s.EntriesAdded)
		}
		if s.MaxDeletedID != "" {
			c.Str("MAXDELETEDID").Str(s.MaxDeletedID)
		}
	}
	w.begin(c, p, cmdWrite, "XGROUP", 3).Str("DESTROY").Str(r.Key).Str(loadingGroup)
}

// consumerMakingID is the ID a consumer reads its pending entries past to
// be made on a server without XGROUP CREATECONSUMER: the largest ID but
// one (past the largest, the server answers at once without making it).
const consumerMakingID = "18446744073709551615-18446744073709551614"

// formatScore writes a score the way Redis reads it back exactly: the
// shortest decimal form, and "inf" / "-inf".
func formatScore(f float64) string {
	switch {
	case math.IsInf(f, 1):
		return "inf"
	case math.IsInf(f, -1):
		return "-inf"
	}
	return strconv.FormatFloat(f, 'g', -1, 64)
}

// vectorSetCommands writes a VADD for each element of a vector set record:
// its vector as 32-bit floats (FP32), the set's quantization and M (from
// the first part, kept in st for the later ones) and its attributes. The
// vector given is the one for which VEMB returns the dump's exactly
// (internal/vemb); where none is found, the dump's, counted.
// VADD builds the HNSW graph anew: the elements, vectors and attributes
// are the source's, the graph's links may differ.
func vectorSetCommands(w *Writer, c *resp.Conn, p int, r *format.Record, st *keyState) {
	if r.Part <= 1 {
		st.vset = r.VectorSet
	}
	quant, _ := format.QuantOption(st.vset.Quant)
	blob := make([]byte, 4*st.vset.Dim)
	for _, e := range r.VectorSet.Elements {
		args := 7
		if e.Attr != "" {
			args += 2
		}
		in, exact := vemb.Input(st.vset.Quant, e.Vector)
		if !exact {
			w.st.VectorsApprox++
		}
		blob = blob[:0]
		for _, f := range in {
			blob = binary.LittleEndian.AppendUint32(blob, math.Float32bits(f))
		}
		w.begin(c, p, cmdWrite, "VADD", args).Str(r.Key).Str("FP32").Str(string(blob)).Str(e.Name).Str(quant).Str("M").Int(int64(st.vset.M))
		if e.Attr != "" {
			c.Str("SETATTR").Str(e.Attr)
		}
	}
}
