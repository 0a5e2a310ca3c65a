package target

import (
	"context"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/crs-tool/crs/internal/dumppayload"
	"github.com/crs-tool/crs/internal/redisconn"
)

// RestoreInfo is what a server needs for keys written as RESTORE of a
// payload crs encodes: the RDB version it reads and its settings for the
// compact encodings. RDB is 0 where it cannot take them.
type RestoreInfo struct {
	RDB    int
	Limits dumppayload.Limits
	// Why says why RDB is 0, for the pre-flight's report.
	Why string
}

// ProbeRestore learns whether the server on c takes RESTORE (a server too old,
// or an ACL or a managed service that denies it, does not) and its
// encoding settings (the defaults, where CONFIG is denied).
func ProbeRestore(ctx context.Context, c *redis.Client, srv redisconn.Server) RestoreInfo {
	ri := RestoreInfo{RDB: dumppayload.ServerRDB(srv.Engine, srv.Major, srv.Minor), Limits: dumppayload.DefaultLimits()}
	if ri.RDB < 9 {
		ri.RDB, ri.Why = 0, "the target's RDB version is not known (RESTORE ... ABSTTL needs Redis 5.0+)"
		return ri
	}
	var probe *redis.Cmd
	var conf *redis.MapStringStringCmd
	_, _ = c.Pipelined(ctx, func(p redis.Pipeliner) error {
		// An empty payload: refused as a bad payload where RESTORE may run.
		probe = p.Do(ctx, "RESTORE", "crs:probe", 0, "")
		conf = p.ConfigGet(ctx, "*-max-*")
		return nil
	})
	if err := probe.Err(); err != nil && (redisconn.IsUnknownCommand(err) || redisconn.IsNoPerm(err)) {
		ri.RDB, ri.Why = 0, "the target does not let this user RESTORE ("+err.Error()+")"
		return ri
	}
	if kv, err := conf.Result(); err == nil {
		ri.Limits = readLimits(kv, ri.Limits)
	}
	return ri
}

// readLimits reads the encoding settings from CONFIG GET's reply, by
// their listpack names or (before 7.0) their ziplist names.
func readLimits(kv map[string]string, l dumppayload.Limits) dumppayload.Limits {
	get := func(dst *int, names ...string) {
		for _, n := range names {
			if v, err := strconv.Atoi(strings.TrimSpace(kv[n])); err == nil {
				*dst = v
				return
			}
		}
	}
	get(&l.HashEntries, "hash-max-listpack-entries", "hash-max-ziplist-entries")
	get(&l.HashValue, "hash-max-listpack-value", "hash-max-ziplist-value")
	get(&l.ZSetEntries, "zset-max-listpack-entries", "zset-max-ziplist-entries")
	get(&l.ZSetValue, "zset-max-listpack-value", "zset-max-ziplist-value")
	get(&l.SetIntset, "set-max-intset-entries")
	get(&l.SetEntries, "set-max-listpack-entries")
	get(&l.SetValue, "set-max-listpack-value")
	get(&l.ListSize, "list-max-listpack-size", "list-max-ziplist-size")
	return l
}
