package repl

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"syscall"

	"github.com/redis/go-redis/v9"

	"github.com/crs-tool/crs/internal/redisconn"
)

// SnapshotBytes estimates the disk a snapshot of the server (of every
// master of a cluster) takes in the spool: the memory its data takes
// (INFO memory's used_memory_dataset), which its RDB rarely exceeds.
func (s *Server) SnapshotBytes(ctx context.Context) (int64, error) {
	var n int64
	err := s.each(func(c *redis.Client) error {
		info, err := c.Info(ctx, "memory").Result()
		if err != nil {
			return fmt.Errorf("source: info memory: %w", err)
		}
		v, _ := strconv.ParseInt(redisconn.InfoFields(info)["used_memory_dataset"], 10, 64)
		n += v
		return nil
	})
	return n, err
}

// SpoolDir is where a link with Dir dir spools: dir, or TMPDIR.
func SpoolDir(dir string) string {
	if dir == "" {
		return os.TempDir()
	}
	return dir
}

// FreeBytes is the space free to an unprivileged user in the file system
// that holds dir.
func FreeBytes(dir string) (int64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, fmt.Errorf("spool: %w", err)
	}
	return int64(st.Bavail) * int64(st.Bsize), nil
}
