package target

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/crs-tool/crs/internal/resp"
)

// Keys finds the keys of a write command as a server does, from its
// COMMAND INFO (first key, last key, step), asked once a command (once a
// subcommand, XGROUP|CREATE, for a command that has them), or, for a
// command whose keys' places depend on its arguments, from COMMAND
// GETKEYS: what routes a command to the cluster node that holds its keys,
// and what crs sync remembers as changed.
type Keys struct {
	r     *Router
	infos map[string]*KeySpec
}

// KeySpec is where a command's keys are among its arguments, as COMMAND
// INFO says.
type KeySpec struct {
	// Known is false for a command the server does not have.
	Known bool
	// First, Last and Step: the first key's argument (0: none, or its
	// subcommand's), the last's (negative: from the end), the step.
	First, Last, Step int
	// Movable: where the keys are depends on the arguments.
	Movable bool
	// Subcommands: the command is a container (XGROUP, Redis 7.0+),
	// whose keys are where its subcommand's spec says.
	Subcommands bool
}

// NewKeys asks the first server of r.
func NewKeys(r *Router) *Keys { return &Keys{r: r, infos: map[string]*KeySpec{}} }

// Of returns the keys of the command args (its name first), and where
// each is among args (nil when the server listed them: their places
// depend on the arguments); none for a command without keys (FLUSHALL,
// SCRIPT LOAD, FUNCTION LOAD …). It fails for a command the server does
// not know.
func (k *Keys) Of(ctx context.Context, args []string) (keys []string, at []int, err error) {
	spec, err := k.Spec(ctx, args[0])
	if err != nil {
		return nil, nil, err
	}
	if !spec.Known {
		return nil, nil, fmt.Errorf("the target has no %s command", strings.ToUpper(args[0]))
	}
	// A container's keys (XGROUP CREATE key …) are its subcommand's.
	if spec.Subcommands && len(args) > 1 {
		sub, err := k.Spec(ctx, args[0]+"|"+args[1])
		if err != nil {
			return nil, nil, err
		}
		if sub.Known {
			spec = sub
		}
	}
	if spec.Movable {
		v, err := k.r.Do(ctx, 0, 0, append([]string{"COMMAND", "GETKEYS"}, args...)...)
		var refused resp.ServerError
		if errors.As(err, &refused) {
			return nil, nil, nil // the server finds no keys in it
		}
		keys, _ = v.Strings()
		return keys, nil, err
	}
	if spec.First <= 0 {
		return nil, nil, nil
	}
	last := spec.Last
	if last < 0 {
		last += len(args)
	}
	for i := spec.First; i <= last && i < len(args); i += max(spec.Step, 1) {
		keys, at = append(keys, args[i]), append(at, i)
	}
	return keys, at, nil
}

// Spec returns where the keys of command name are, asked of the server
// once.
func (k *Keys) Spec(ctx context.Context, name string) (*KeySpec, error) {
	if s := k.infos[name]; s != nil {
		return s, nil
	}
	lower := strings.ToLower(name)
	v, err := k.r.Do(ctx, 0, 0, "COMMAND", "INFO", lower)
	if err != nil {
		return nil, fmt.Errorf("command info %s: %w", lower, err)
	}
	s := &KeySpec{}
	if len(v.Array) == 1 && !v.Array[0].Nil && len(v.Array[0].Array) >= 6 {
		d := v.Array[0].Array
		s.Known, s.First, s.Last, s.Step = true, int(d[3].Int), int(d[4].Int), int(d[5].Int)
		for _, f := range d[2].Array {
			s.Movable = s.Movable || f.Str == "movablekeys"
		}
		s.Subcommands = len(d) > 9 && len(d[9].Array) > 0
	}
	k.infos[name] = s
	return s, nil
}
