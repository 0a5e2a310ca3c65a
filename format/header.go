package format

import (
	"fmt"
	"math"
)

func parseHeader(b []byte) (Header, error) {
	var h Header
	s := &scanner{b: b}
	if s.peek() != '{' {
		return h, fmt.Errorf("%w: the first line is not a JSON object", ErrNotDump)
	}
	var name string
	version := int64(-1)
	err := s.object(func(field string) error {
		var err error
		switch field {
		case "format":
			name, err = s.str()
		case "version":
			version, err = s.int()
		case "created_ms":
			h.CreatedMs, err = s.int()
		case "source":
			h.Source, err = s.str()
		case "server_version":
			h.ServerVersion, err = s.str()
		case "engine":
			h.Engine, err = s.str()
		case "databases":
			h.Databases = []Database{} // present, even when empty
			err = s.array(func(int) error {
				var d Database
				var db int64 = -1
				err := s.object(func(f string) error {
					var err error
					switch f {
					case "db":
						db, err = s.int()
					case "keys":
						d.Keys, err = s.int()
					default:
						err = s.skip()
					}
					return err
				})
				if err != nil {
					return err
				}
				if db < 0 || db > math.MaxInt32 {
					return fmt.Errorf("%w: bad database in header", ErrNotDump)
				}
				d.DB = int(db)
				h.Databases = append(h.Databases, d)
				return nil
			})
		case "field_expiry":
			var v string
			if v, err = s.literal(); err == nil && v != "true" && v != "false" {
				err = fmt.Errorf("header field \"field_expiry\" must be true or false")
			}
			h.NoFieldExpiry = v == "false"
		case "modules":
			h.Modules = []string{} // present, even when empty
			err = s.array(func(int) error {
				m, err := s.str()
				h.Modules = append(h.Modules, m)
				return err
			})
		case "cluster":
			h.Cluster, err = parseCluster(s)
		case "memory_bytes":
			if h.MemoryBytes, err = s.int(); err == nil && h.MemoryBytes < 0 {
				err = fmt.Errorf("header field \"memory_bytes\" is negative")
			}
		default:
			// Readers ignore header fields they do not know.
			err = s.skip()
		}
		if err == errNotInteger {
			err = fmt.Errorf("header field %q is not an integer", field)
		}
		return err
	})
	if err != nil {
		return h, fmt.Errorf("%w: %v", ErrNotDump, err)
	}
	if s.peek() != 0 {
		return h, fmt.Errorf("%w: trailing data after the header object", ErrNotDump)
	}
	if name != Name {
		return h, fmt.Errorf("%w: the header's format is %q, want %q", ErrNotDump, name, Name)
	}
	if version < 1 {
		return h, fmt.Errorf("%w: the header has no valid version", ErrNotDump)
	}
	if version > Version {
		return h, fmt.Errorf("%w: the dump is format version %d, this crs reads up to %d; use a newer crs", ErrVersion, version, Version)
	}
	h.Version = int(version)
	return h, nil
}

// parseCluster reads the header's "cluster" member.
func parseCluster(s *scanner) (*Cluster, error) {
	c := &Cluster{}
	err := s.object(func(name string) error {
		switch name {
		case "shards":
			return s.array(func(int) error {
				var sh Shard
				err := s.object(func(f string) error {
					var err error
					switch f {
					case "node":
						sh.Node, err = s.str()
					case "slots":
						sh.Slots, err = s.str()
					default:
						err = s.skip()
					}
					return err
				})
				c.Shards = append(c.Shards, sh)
				return err
			})
		case "node_only":
			v, err := s.literal()
			if err == nil && v != "true" && v != "false" {
				err = fmt.Errorf("header field \"node_only\" must be true or false")
			}
			c.NodeOnly = v == "true"
			return err
		}
		return s.skip()
	})
	return c, err
}
