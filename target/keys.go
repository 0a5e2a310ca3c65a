package target

import (
	"context"
	"fmt"
	"strings"

	"github.com/crs-tool/crs/internal/resp"
)

// Keys finds the keys of a write command as a server does, from its
// COMMAND INFO (first key, last key, step), asked once a command, or,
// for a command whose keys' places depend on its arguments or on its
// subcommand (XGROUP CREATE), from COMMAND GETKEYS: what routes a command to the cluster node that holds
// its keys.
type Keys struct {
	c     *resp.Conn
	infos map[string]*keySpec
}

type keySpec struct {
	first, last, step int
	movable, known    bool
}

// NewKeys asks the server on c (any node of the target).
func NewKeys(c *resp.Conn) *Keys { return &Keys{c: c, infos: map[string]*keySpec{}} }

// Of returns the keys of the command args (its name first); none for a
// command without keys (FLUSHALL, SCRIPT LOAD, FUNCTION LOAD …). It fails
// for a command the server does not know.
func (k *Keys) Of(ctx context.Context, args []string) ([]string, error) {
	spec, err := k.spec(ctx, args[0])
	if err != nil {
		return nil, err
	}
	// A container's keys (XGROUP CREATE key …) are its subcommand's: the
	// server says which they are, as for movable keys; an error reply
	// is a command without keys (SCRIPT LOAD).
	if spec.movable || spec.first == 0 && len(args) > 1 {
		k.c.Begin("COMMAND", len(args)+1).Str("GETKEYS")
		for _, a := range args {
			k.c.Str(a)
		}
		var keys []string
		err := k.c.ExecValues(ctx, func(_ int, v resp.Value) error {
			if v.Kind == resp.KindArray {
				keys, _ = v.Strings()
			}
			return nil // an error reply: a command without keys
		})
		return keys, err
	}
	if spec.first <= 0 {
		return nil, nil
	}
	last := spec.last
	if last < 0 {
		last += len(args)
	}
	var keys []string
	for i := spec.first; i <= last && i < len(args); i += max(spec.step, 1) {
		keys = append(keys, args[i])
	}
	return keys, nil
}

func (k *Keys) spec(ctx context.Context, name string) (*keySpec, error) {
	if s := k.infos[name]; s != nil {
		return s, nil
	}
	lower := strings.ToLower(name)
	s := &keySpec{}
	k.c.Begin("COMMAND", 2).Str("INFO").Str(lower)
	err := k.c.ExecValues(ctx, func(_ int, v resp.Value) error {
		if v.Kind == resp.KindError {
			return fmt.Errorf("command info %s: %s", lower, v.Str)
		}
		if len(v.Array) != 1 || v.Array[0].Nil || len(v.Array[0].Array) < 6 {
			return nil
		}
		d := v.Array[0].Array
		s.known, s.first, s.last, s.step = true, int(d[3].Int), int(d[4].Int), int(d[5].Int)
		for _, f := range d[2].Array {
			s.movable = s.movable || f.Str == "movablekeys"
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if !s.known {
		return nil, fmt.Errorf("the target has no %s command", strings.ToUpper(lower))
	}
	k.infos[name] = s
	return s, nil
}
