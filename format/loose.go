package format

// Number is a JSON number as DecodeLoose found it, its text unchanged, so
// that a caller parses it exactly (strconv.ParseFloat of a score).
type Number string

// DecodeLoose decodes one JSON value that another tool wrote, such as a
// line of the Ruby redis-dump gem: an object is a map[string]any, an
// array []any, a string a string, a number a Number, true and false a
// bool and null nil. Unlike a dump's records, a string may hold bytes
// that are not UTF-8, written raw: they are kept as they are, byte for
// byte, since they are what the value held. Anything after the value but
// white space is an error.
func DecodeLoose(b []byte) (any, error) {
	s := &scanner{b: b, raw: true}
	v, err := s.value(0)
	if err != nil {
		return nil, err
	}
	if s.peek() != 0 {
		return nil, s.errorf("more after the value")
	}
	return v, nil
}

// maxLooseDepth bounds the nesting DecodeLoose follows, so that a
// hostile line cannot exhaust the stack.
const maxLooseDepth = 64

func (s *scanner) value(depth int) (any, error) {
	if depth > maxLooseDepth {
		return nil, s.errorf("nested deeper than %d", maxLooseDepth)
	}
	switch c := s.peek(); {
	case c == '"':
		return s.str()
	case c == '{':
		m := map[string]any{}
		err := s.object(func(name string) error {
			v, err := s.value(depth + 1)
			m[name] = v
			return err
		})
		return m, err
	case c == '[':
		a := []any{}
		err := s.array(func(int) error {
			v, err := s.value(depth + 1)
			a = append(a, v)
			return err
		})
		return a, err
	case c == '-' || '0' <= c && c <= '9':
		t, err := s.number()
		return Number(t), err
	}
	lit, err := s.literal()
	switch lit {
	case "true", "false":
		return lit == "true", err
	}
	return nil, err
}
