package redisconn

import (
	"context"

	"github.com/redis/go-redis/v9"
)

// OpenAny connects to the server o names, as Open does, and when it runs
// in cluster mode returns a cluster client instead, which sends each
// command to the node that serves its key: for readers (verify, stats)
// that take a cluster on either side. A cluster has only database 0
// (Valkey 9 has more: db selects one).
func OpenAny(ctx context.Context, o Options, db, poolSize int) (redis.UniversalClient, Server, error) {
	c, srv, err := Open(ctx, o, db, poolSize)
	if err != nil {
		return nil, srv, err
	}
	info, err := c.Info(ctx, "cluster").Result()
	if err != nil || InfoFields(info)["cluster_enabled"] != "1" {
		return c, srv, nil // not a cluster (or INFO cluster refused): the server alone
	}
	c.Close()
	ro, err := o.ClientOptions()
	if err != nil {
		return nil, srv, err
	}
	cc := redis.NewClusterClient(&redis.ClusterOptions{
		Addrs: []string{ro.Addr}, Username: ro.Username, Password: ro.Password,
		TLSConfig: ro.TLSConfig, Protocol: 2, DisableIdentity: true,
		DialTimeout: ro.DialTimeout, ReadTimeout: ro.ReadTimeout, WriteTimeout: ro.WriteTimeout,
		MaxRetries: ro.MaxRetries, PoolSize: poolSize,
		NewClient: func(opt *redis.Options) *redis.Client {
			opt.DB = db
			return redis.NewClient(opt)
		},
	})
	context.AfterFunc(ctx, func() { cc.Close() })
	return cc, srv, nil
}
