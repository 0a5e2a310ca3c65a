package redistest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/crs-tool/crs/internal/redisserver"
	"github.com/redis/go-redis/v9"
)

// StartSentinels starts n sentinels (Debian's redis-server --sentinel)
// monitoring master as "mymaster" with quorum 2, and waits until each
// knows the others and the replica. It returns their addresses.
func StartSentinels(t *testing.T, master *redisserver.Server, n int) []string {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatal(err)
	}
	_, mport, _ := strings.Cut(master.Addr, ":")
	var addrs []string
	for i := 0; i < n; i++ {
		port, err := redisserver.FreePort()
		if err != nil {
			t.Fatal(err)
		}
		dir := t.TempDir()
		conf := filepath.Join(dir, "sentinel.conf")
		body := fmt.Sprintf("port %d\nbind 127.0.0.1\ndir %s\nsentinel monitor mymaster 127.0.0.1 %s 2\nsentinel down-after-milliseconds mymaster 3000\nsentinel failover-timeout mymaster 20000\n", port, dir, mport)
		if err := os.WriteFile(conf, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(bin, conf, "--sentinel")
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		addrs = append(addrs, "127.0.0.1:"+strconv.Itoa(port))
	}
	for _, a := range addrs {
		c := redis.NewClient(&redis.Options{Addr: a, Protocol: 2, DisableIdentity: true})
		t.Cleanup(func() { c.Close() })
		WaitFor(t, "sentinel "+a+" to know the others and the replica", func() bool {
			m, err := c.Do(context.Background(), "SENTINEL", "MASTER", "mymaster").Slice()
			if err != nil {
				return false
			}
			f := map[string]string{}
			for i := 0; i+1 < len(m); i += 2 {
				k, _ := m[i].(string)
				f[k] = fmt.Sprint(m[i+1])
			}
			return f["num-other-sentinels"] == strconv.Itoa(n-1) && f["num-slaves"] == "1"
		})
	}
	return addrs
}
