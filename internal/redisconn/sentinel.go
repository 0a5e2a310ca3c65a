package redisconn

import (
	"context"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Sentinel resolution: with SentinelMaster set, Options name the sentinels
// to ask (SentinelAddrs, or the address the options give), and Resolve
// points them at the server the sentinels name now: the master, or with
// SentinelReplica a replica of it. The result keeps the sentinel fields,
// so that resolving it again (after a lost connection, a failover)
// follows the master to where it is.

// Resolve returns o pointing at the server its sentinels name now, or o
// itself where it names no Sentinel-managed master.
func Resolve(ctx context.Context, o Options) (Options, error) {
	if o.SentinelMaster == "" {
		return o, nil
	}
	if o.SentinelAddrs == "" {
		o.SentinelAddrs = o.Address()
	}
	var errs []string
	for _, addr := range strings.Split(o.SentinelAddrs, ",") {
		addr = strings.TrimSpace(addr)
		target, err := askSentinel(ctx, o, addr)
		if err == nil {
			return o.At(target), nil
		}
		errs = append(errs, fmt.Sprintf("%s: %v", addr, err))
		if ctx.Err() != nil {
			break
		}
	}
	what := "master"
	if o.SentinelReplica {
		what = "replica of the master"
	}
	return o, &Error{Addr: o.SentinelAddrs, Err: fmt.Errorf("no sentinel named a %s %q (%s)", what, o.SentinelMaster, strings.Join(errs, "; "))}
}

// askSentinel asks one sentinel where the master (or a healthy replica)
// is.
func askSentinel(ctx context.Context, o Options, addr string) (string, error) {
	c := redis.NewClient(&redis.Options{Addr: addr, Username: o.SentinelUser, Password: o.SentinelPassword,
		Protocol: 2, DisableIdentity: true, DialTimeout: 2 * time.Second, ReadTimeout: 2 * time.Second, MaxRetries: -1})
	defer c.Close()
	if !o.SentinelReplica {
		hp, err := c.Do(ctx, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", o.SentinelMaster).StringSlice()
		if err != nil {
			return "", err
		}
		if len(hp) != 2 {
			return "", fmt.Errorf("it monitors no master %q", o.SentinelMaster)
		}
		return net.JoinHostPort(hp[0], hp[1]), nil
	}
	reps, err := c.Do(ctx, "SENTINEL", "REPLICAS", o.SentinelMaster).Slice()
	if err != nil {
		return "", err
	}
	for _, r := range reps {
		f := map[string]string{}
		if kv, ok := r.([]interface{}); ok {
			for i := 0; i+1 < len(kv); i += 2 {
				k, _ := kv[i].(string)
				v, _ := kv[i+1].(string)
				f[k] = v
			}
		}
		if f["ip"] != "" && !strings.Contains(f["flags"], "down") && !strings.Contains(f["flags"], "disconnected") && f["master-link-status"] == "ok" {
			return net.JoinHostPort(f["ip"], f["port"]), nil
		}
	}
	return "", fmt.Errorf("no healthy replica of %q", o.SentinelMaster)
}
