package redisconn

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/redis/go-redis/v9"
)

// Caps are the optional commands a server has, which crs uses where it
// can and works around where it cannot.
type Caps struct {
	ExpireTime  bool // PEXPIRETIME (7.0+); else PTTL and TIME
	MemoryUsage bool // MEMORY USAGE (4.0+; disabled or denied on some services)
	FieldExpiry bool // HPEXPIRETIME and HPEXPIREAT (Redis 7.4+, Valkey 9)
	MultiMember bool // SMISMEMBER and ZMSCORE (6.2+)
	VectorSets  bool // VADD, VEMB... (Redis 8.0+, or the vectorset module)
	IDMP        bool // XCFGSET and XIDMPRECORD: streams' idempotent producers (Redis 8.6.2+)
	// Modules names the modules MODULE LIST shows; nil when the server
	// would not say (MODULE denied, as on some managed services).
	Modules []string
}

// HasModule reports whether the server has loaded the module named name;
// known is false when it would not say.
func (c Caps) HasModule(name string) (has, known bool) {
	if c.Modules == nil {
		return false, false
	}
	for _, m := range c.Modules {
		if strings.EqualFold(m, name) {
			return true, true
		}
	}
	return false, true
}

// ProbeCaps learns a server's Caps in one round trip, by calling each
// command on a key that does not exist: a command the server does not
// know, or that the user may not run, is one it lacks.
func ProbeCaps(ctx context.Context, c redis.Cmdable) (Caps, error) {
	probes := [][]interface{}{
		{"PEXPIRETIME", "crs:probe"},
		{"MEMORY", "USAGE", "crs:probe"},
		{"HPEXPIRETIME", "crs:probe", "FIELDS", 1, "f"},
		{"SMISMEMBER", "crs:probe", "m"},
		{"ZMSCORE", "crs:probe", "m"},
		{"VCARD", "crs:probe"},
		{"MODULE", "LIST"},
		{"XIDMPRECORD", "crs:probe", "p", "i", "1-1"},
		{"XCFGSET", "crs:probe", "IDMP-DURATION", 100},
	}
	cmds := make([]*redis.Cmd, len(probes))
	_, err := c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, args := range probes {
			cmds[i] = p.Do(ctx, args...)
		}
		return nil
	})
	if err != nil && !IsReplyError(err) {
		return Caps{}, fmt.Errorf("probe commands: %w", err)
	}
	has := func(i int) bool {
		err := cmds[i].Err()
		switch {
		case err == nil || err == redis.Nil:
			return true
		case IsUnknownCommand(err), IsNoPerm(err):
			return false
		}
		// It exists; the probe's arguments just did not suit it. MEMORY
		// USAGE is the exception: an error there means it cannot be used.
		return i != 1
	}
	return Caps{ExpireTime: has(0), MemoryUsage: has(1), FieldExpiry: has(2), MultiMember: has(3) && has(4),
		VectorSets: has(5), Modules: moduleNames(cmds[6]), IDMP: has(7) && has(8)}, nil
}

// moduleNames reads MODULE LIST's reply: a list of modules, each a list
// (RESP2) or map (RESP3) of fields, "name" among them.
func moduleNames(c *redis.Cmd) []string {
	mods, err := c.Slice()
	if err != nil {
		return nil
	}
	names := []string{}
	for _, m := range mods {
		switch m := m.(type) {
		case []interface{}:
			for i := 0; i+1 < len(m); i += 2 {
				if k, _ := m[i].(string); k == "name" {
					n, _ := m[i+1].(string)
					names = append(names, n)
				}
			}
		case map[interface{}]interface{}:
			n, _ := m["name"].(string)
			names = append(names, n)
		}
	}
	return names
}

// IsReplyError reports whether err is a reply from the server (such as
// WRONGTYPE for one command of a pipeline), not a connection failure.
func IsReplyError(err error) bool {
	var re redis.Error
	return errors.As(err, &re)
}
