package format

import "fmt"

// A Checker checks records as a reader of the format must, wherever they
// come from: each record on its own (its shape, as the Writer requires it,
// and its value: no empty collection, a function library with code, a
// stream group first named with its last-delivered ID, a vector set's
// parameters in its first part) and in sequence (the parts of a key
// together and in order; no field expiries where the header says there
// are none). A Reader checks the records of a file with one; a source
// read in the same process is checked with another (package records).
type Checker struct {
	hdr  Header
	open *Record // the key whose next part must follow, if any
	// payloads lets a whole key of a native type come as a DUMP payload.
	payloads bool
}

// AllowPayloads lets a whole key of a native type come as a DUMP payload
// (an RDB file's value handed over undecoded, in one process), which the
// format does not allow in a file.
func (c *Checker) AllowPayloads() { c.payloads = true }

// NewChecker returns a Checker for the records that follow h.
func NewChecker(h Header) *Checker { return &Checker{hdr: h} }

// Check checks rec and its place in the sequence. Its errors wrap
// ErrRecord.
func (c *Checker) Check(rec *Record) error {
	if _, native := types[rec.Type]; native && c.payloads && rec.Dump != "" && rec.Part == 0 && !rec.More {
		return c.sequence(rec)
	}
	if err := checkRecord(rec); err != nil {
		return fmt.Errorf("%w: %v", ErrRecord, err)
	}
	if rec.Dump == "" {
		if err := checkValue(rec); err != nil {
			return err
		}
	}
	return c.sequence(rec)
}

// Open reports whether a key's parts have begun and not ended.
func (c *Checker) Open() (*Record, bool) { return c.open, c.open != nil }

// sequence checks that the parts of a key come together and in order,
// and that a dump whose header says it has no field expiries has none.
func (c *Checker) sequence(rec *Record) error {
	if o := c.open; o != nil {
		if rec.DB != o.DB || rec.Key != o.Key || rec.Type != o.Type || rec.Part != o.Part+1 {
			return fmt.Errorf("%w: expected part %d of key %q (db %d), found part %d of key %q (db %d)", ErrRecord, o.Part+1, o.Key, o.DB, rec.Part, rec.Key, rec.DB)
		}
	} else if rec.Part > 1 {
		return fmt.Errorf("%w: part %d of key %q without the parts before it", ErrRecord, rec.Part, rec.Key)
	}
	if c.hdr.NoFieldExpiry && len(rec.FieldExpire) > 0 {
		return fmt.Errorf("%w: field expiries in a dump whose header says it has none", ErrRecord)
	}
	c.open = nil
	if rec.More {
		c.open = &Record{DB: rec.DB, Key: rec.Key, Type: rec.Type, Part: rec.Part}
	}
	return nil
}

// checkValue checks what a value must be beyond its shape.
func checkValue(rec *Record) error {
	if rec.Type == TypeFunction && (rec.Part != 0 || rec.ExpireAtMs != 0 || rec.Str == "") {
		return fmt.Errorf("%w: a function library has code, no parts and no expiry", ErrRecord)
	}
	if !types[rec.Type].empty && rec.Part <= 1 && elements(rec) == 0 {
		return fmt.Errorf("%w: an empty %s value (Redis holds no empty %ss)", ErrRecord, rec.Type, rec.Type)
	}
	if rec.VectorSet != nil {
		if err := checkVectorSetPart(rec); err != nil {
			return err
		}
	}
	if rec.Stream != nil && rec.Part <= 1 {
		// A group first named here must say where it stands; only a later
		// part may continue a group without it.
		for _, g := range rec.Stream.Groups {
			if g.LastDeliveredID == "" {
				return fmt.Errorf("%w: stream group %q has no last_delivered_id", ErrRecord, g.Name)
			}
		}
	}
	return nil
}

// ApproxSize is about the bytes rec takes in memory (and near what its
// line takes), for bounding what is held: the lengths of its byte strings
// and a little for each element.
func ApproxSize(rec *Record) int {
	n := 64
	byteStrings(rec, func(s string) bool { n += len(s) + 8; return true })
	if rec.VectorSet != nil {
		for _, e := range rec.VectorSet.Elements {
			n += 4 * len(e.Vector)
		}
	}
	n += 16 * len(rec.ZSet)
	if rec.Stream != nil {
		for _, g := range rec.Stream.Groups {
			n += 48 * len(g.Pending)
		}
		n += 24 * len(rec.Stream.Entries)
	}
	return n + len(rec.Dump)
}

// EncodedSize is the length of rec's line as a Writer writes it.
func EncodedSize(rec *Record) int { return len(appendRecord(nil, rec)) }
