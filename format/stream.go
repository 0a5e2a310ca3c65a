package format

import (
	"fmt"
	"strconv"
	"strings"
)

// streamID reads a stream ID: "ms-seq", two unsigned decimal integers.
func streamID(s *scanner, what string) (string, error) {
	if s.peek() != '"' {
		return "", fmt.Errorf("%w: %s must be a string, found %s", ErrRecord, what, s.kind())
	}
	v, err := s.str()
	if err != nil {
		return "", err
	}
	ms, seq, ok := strings.Cut(v, "-")
	if !ok || !isUint64(ms) || !isUint64(seq) {
		return "", fmt.Errorf("%w: %s %q is not a stream ID (ms-seq)", ErrRecord, what, v)
	}
	return v, nil
}

func isUint64(s string) bool {
	_, err := strconv.ParseUint(s, 10, 64)
	return err == nil && s != "" && s[0] != '+'
}

func nonNegative(s *scanner, what string) (int64, error) {
	n, err := s.int()
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%w: %s must be a non-negative integer", ErrRecord, what)
	}
	return n, nil
}

func parseStream(s *scanner, bs strDecoder) (*Stream, error) {
	st := &Stream{EntriesAdded: -1}
	err := s.object(func(name string) error {
		var err error
		switch name {
		case "entries":
			if s.peek() != '[' {
				return fmt.Errorf("%w: stream entries must be an array", ErrRecord)
			}
			return s.array(func(i int) error {
				var e StreamEntry
				items := 0
				if s.peek() != '[' {
					return fmt.Errorf("%w: stream entry %d must be [id, fields]", ErrRecord, i)
				}
				err := s.array(func(j int) error {
					items++
					switch j {
					case 0:
						start := s.i
						if e.ID, err = streamID(s, ""); err != nil {
							s.i = start
							e.ID, err = streamID(s, fmt.Sprintf("entry %d's ID", i))
						}
						return err
					case 1:
						if s.peek() == 'n' {
							_, err := s.literal()
							e.Deleted = true
							return err
						}
						if s.peek() != '[' {
							return fmt.Errorf("%w: entry %d's fields must be an array or null", ErrRecord, i)
						}
						e.Fields = []string{}
						return s.array(func(k int) error {
							v, err := bs.readAs(s, func() string { return fmt.Sprintf("entry %d's field %d", i, k) })
							e.Fields = append(e.Fields, v)
							return err
						})
					}
					return fmt.Errorf("%w: stream entry %d has more than two items", ErrRecord, i)
				})
				if err != nil {
					return err
				}
				if items != 2 || (!e.Deleted && (len(e.Fields) == 0 || len(e.Fields)%2 != 0)) {
					return fmt.Errorf("%w: stream entry %d must be [id, [field, value, ...]] with at least one pair, or [id, null]", ErrRecord, i)
				}
				st.Entries = append(st.Entries, e)
				return nil
			})
		case "last_id":
			st.LastID, err = streamID(s, "last_id")
		case "max_deleted_id":
			st.MaxDeletedID, err = streamID(s, "max_deleted_id")
		case "entries_added":
			st.EntriesAdded, err = nonNegative(s, "entries_added")
		case "idmp":
			st.IDMP, err = parseIDMP(s, bs)
		case "groups":
			if s.peek() != '[' {
				return fmt.Errorf("%w: stream groups must be an array", ErrRecord)
			}
			return s.array(func(i int) error {
				g, err := parseGroup(s, bs, i)
				st.Groups = append(st.Groups, g)
				return err
			})
		default:
			return fmt.Errorf("%w: unknown stream field %q", ErrRecord, name)
		}
		return err
	})
	return st, err
}

func parseGroup(s *scanner, bs strDecoder, i int) (Group, error) {
	// Absent lists read as empty ones, as the writer writes them.
	g := Group{EntriesRead: -1, Consumers: []Consumer{}, Pending: []Pending{}}
	if s.peek() != '{' {
		return g, fmt.Errorf("%w: group %d must be an object", ErrRecord, i)
	}
	named := false
	err := s.object(func(name string) error {
		var err error
		switch name {
		case "name":
			g.Name, err = bs.read(s, fmt.Sprintf("group %d's name", i))
			named = true
		case "last_delivered_id":
			g.LastDeliveredID, err = streamID(s, fmt.Sprintf("group %d's last_delivered_id", i))
		case "entries_read":
			g.EntriesRead, err = nonNegative(s, fmt.Sprintf("group %d's entries_read", i))
		case "consumers":
			if s.peek() != '[' {
				return fmt.Errorf("%w: group %d's consumers must be an array", ErrRecord, i)
			}
			g.Consumers = []Consumer{}
			return s.array(func(j int) error {
				var c Consumer
				what := fmt.Sprintf("group %d's consumer %d", i, j)
				if s.peek() != '{' {
					return fmt.Errorf("%w: %s must be an object", ErrRecord, what)
				}
				err := s.object(func(f string) error {
					var err error
					switch f {
					case "name":
						c.Name, err = bs.read(s, what+"'s name")
					case "seen_time_ms":
						c.SeenTimeMs, err = nonNegative(s, what+"'s seen_time_ms")
					case "active_time_ms":
						c.ActiveTimeMs, err = nonNegative(s, what+"'s active_time_ms")
					default:
						err = fmt.Errorf("%w: unknown field %q in %s", ErrRecord, f, what)
					}
					return err
				})
				g.Consumers = append(g.Consumers, c)
				return err
			})
		case "pending":
			if s.peek() != '[' {
				return fmt.Errorf("%w: group %d's pending must be an array", ErrRecord, i)
			}
			g.Pending = []Pending{}
			return s.array(func(j int) error {
				var p Pending
				what := fmt.Sprintf("group %d's pending entry %d", i, j)
				err := tuple(s, 4, what+" must be [id, consumer, delivery ms, count]", func(k int) (err error) {
					switch k {
					case 0:
						p.ID, err = streamID(s, what+"'s ID")
					case 1:
						p.Consumer, err = bs.read(s, what+"'s consumer")
					case 2:
						p.DeliveryTimeMs, err = nonNegative(s, what+"'s delivery time")
					case 3:
						p.DeliveryCount, err = nonNegative(s, what+"'s delivery count")
					}
					return err
				})
				g.Pending = append(g.Pending, p)
				return err
			})
		default:
			err = fmt.Errorf("%w: unknown field %q in group %d", ErrRecord, name, i)
		}
		return err
	})
	if err == nil && !named {
		err = fmt.Errorf("%w: group %d has no name", ErrRecord, i)
	}
	return g, err
}

// parseIDMP reads a stream's "idmp" member.
func parseIDMP(s *scanner, bs strDecoder) (*IDMP, error) {
	m := &IDMP{Tracked: -1, Added: -1, Duplicates: -1}
	if s.peek() != '{' {
		return nil, fmt.Errorf("%w: idmp must be an object", ErrRecord)
	}
	var has int
	err := s.object(func(name string) error {
		var err error
		switch name {
		case "duration":
			m.Duration, err = nonNegative(s, "idmp duration")
			has |= 1
		case "maxsize":
			m.MaxSize, err = nonNegative(s, "idmp maxsize")
			has |= 2
		case "tracked":
			m.Tracked, err = nonNegative(s, "idmp tracked")
		case "iids_added":
			m.Added, err = nonNegative(s, "idmp iids_added")
		case "iids_duplicates":
			m.Duplicates, err = nonNegative(s, "idmp iids_duplicates")
		case "producers":
			if s.peek() != '[' {
				return fmt.Errorf("%w: idmp producers must be an array", ErrRecord)
			}
			m.Producers = []Producer{}
			return s.array(func(i int) error {
				p, err := parseProducer(s, bs, i)
				m.Producers = append(m.Producers, p)
				return err
			})
		default:
			err = fmt.Errorf("%w: unknown field %q in idmp", ErrRecord, name)
		}
		return err
	})
	if err == nil && has != 3 {
		err = fmt.Errorf("%w: idmp must have duration and maxsize", ErrRecord)
	}
	if err == nil && m.Producers != nil {
		n := int64(0)
		for _, p := range m.Producers {
			n += int64(len(p.IIDs))
		}
		if m.Tracked >= 0 && m.Tracked != n {
			err = fmt.Errorf("%w: idmp says %d tracked IDs and lists %d", ErrRecord, m.Tracked, n)
		}
	}
	return m, err
}

func parseProducer(s *scanner, bs strDecoder, i int) (Producer, error) {
	var p Producer
	what := fmt.Sprintf("idmp producer %d", i)
	if s.peek() != '{' {
		return p, fmt.Errorf("%w: %s must be an object", ErrRecord, what)
	}
	named := false
	err := s.object(func(name string) error {
		var err error
		switch name {
		case "pid":
			p.PID, err = bs.read(s, what+"'s pid")
			named = true
		case "iids":
			if s.peek() != '[' {
				return fmt.Errorf("%w: %s's iids must be an array", ErrRecord, what)
			}
			p.IIDs = []TrackedID{}
			return s.array(func(j int) error {
				var t TrackedID
				w := fmt.Sprintf("%s's iid %d", what, j)
				err := tuple(s, 2, w+" must be [iid, entry id]", func(k int) (err error) {
					if k == 0 {
						t.IID, err = bs.read(s, w)
					} else {
						t.ID, err = streamID(s, w+"'s entry ID")
					}
					return err
				})
				p.IIDs = append(p.IIDs, t)
				return err
			})
		default:
			err = fmt.Errorf("%w: unknown field %q in %s", ErrRecord, name, what)
		}
		return err
	})
	if err == nil && !named {
		err = fmt.Errorf("%w: %s has no pid", ErrRecord, what)
	}
	return p, err
}

// tuple reads an array of exactly n items, calling item for each; shape
// says what it must be, for the error.
func tuple(s *scanner, n int, shape string, item func(k int) error) error {
	if s.peek() != '[' {
		return fmt.Errorf("%w: %s", ErrRecord, shape)
	}
	items := 0
	err := s.array(func(k int) error {
		if items++; k >= n {
			return fmt.Errorf("%w: %s", ErrRecord, shape)
		}
		return item(k)
	})
	if err == nil && items != n {
		err = fmt.Errorf("%w: %s", ErrRecord, shape)
	}
	return err
}
