package redistest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/crs-tool/crs/internal/redisserver"
)

// Binary is one server binary at hand and what it is, as it reports
// itself and as probing a throwaway instance of it found: tests choose
// servers by these, never by folder name, so a new set of servers needs
// no edit.
type Binary struct {
	Path    string
	Name    string // engine and version as reported, such as "redis-7.0.15" or "valkey-9.1.2"
	Engine  string // "redis" or "valkey"
	Version [3]int // the engine's own version

	RDB            int  // the RDB version of its SAVE
	StreamCounters bool // XINFO STREAM reports entries-added (7.0+)
	CreateConsumer bool // XGROUP CREATECONSUMER (6.2+)
	FieldExpiry    bool // HPEXPIRETIME (Redis 7.4+, Valkey 9)
	VectorSets     bool // VADD built in (Redis 8.0+)
	IDMP           bool // idempotent stream producers, XCFGSET (Redis 8.6+)
	// VectorModule is the absolute path of ../shared/servers/modules/vectorset.so
	// where the server has no vector sets of its own and loads that module.
	VectorModule string
}

// AtLeast reports whether b's engine version is major.minor or later.
func (b Binary) AtLeast(major, minor int) bool {
	return b.Version[0] > major || b.Version[0] == major && b.Version[1] >= minor
}

func (b Binary) String() string { return b.Name }

var (
	serversOnce sync.Once
	servers     []Binary
	serversErr  error
	serversRoot string
)

// Servers returns every server binary at hand, probed: redis-server on
// the PATH (Debian's) and each of ../shared/servers beside the project's
// root, ordered by engine and version. It skips t with a message where
// ../shared/servers does not exist (a user's machine: it exists for the
// developers and CI). The probing runs once per test binary.
func Servers(t testing.TB) []Binary {
	t.Helper()
	root := sharedServers(t)
	paths, _ := filepath.Glob(filepath.Join(root, "*", "*-server"))
	if len(paths) == 0 {
		t.Skipf("no server binaries of other versions in %s: the cross-version tests run where it exists (the developers' machines and CI)", root)
	}
	serversOnce.Do(func() {
		if p, err := exec.LookPath("redis-server"); err == nil {
			paths = append([]string{p}, paths...)
		}
		module, _ := filepath.Abs(filepath.Join(root, "modules", "vectorset.so"))
		for _, p := range paths {
			b, err := probeBinary(p, module)
			if err != nil {
				serversErr = err
				return
			}
			servers = append(servers, b)
		}
		sort.SliceStable(servers, func(i, j int) bool {
			a, b := servers[i], servers[j]
			if a.Engine != b.Engine {
				return a.Engine < b.Engine
			}
			return a.Version[0] < b.Version[0] || a.Version[0] == b.Version[0] && (a.Version[1] < b.Version[1] || a.Version[1] == b.Version[1] && a.Version[2] < b.Version[2])
		})
		seen := map[string]int{}
		for i := range servers {
			if seen[servers[i].Name]++; seen[servers[i].Name] > 1 {
				servers[i].Name += fmt.Sprintf("#%d", seen[servers[i].Name])
			}
		}
	})
	if serversErr != nil {
		t.Fatal(serversErr)
	}
	return servers
}

// Describe is a line per binary naming what it is and has, for a test's
// output.
func Describe(bins []Binary) string {
	var lines []string
	for _, b := range bins {
		var has []string
		for _, c := range []struct {
			ok   bool
			name string
		}{{b.StreamCounters, "stream counters"}, {b.CreateConsumer, "CREATECONSUMER"}, {b.FieldExpiry, "field expiry"}, {b.VectorSets, "vector sets"}, {b.VectorModule != "", "vectorset module"}, {b.IDMP, "IDMP"}} {
			if c.ok {
				has = append(has, c.name)
			}
		}
		lines = append(lines, fmt.Sprintf("  %-14s RDB %-2d %s (%s)", b.Name, b.RDB, strings.Join(has, ", "), b.Path))
	}
	return strings.Join(lines, "\n")
}

// sharedServers is ../shared/servers beside the project's root.
func sharedServers(t testing.TB) string {
	t.Helper()
	if serversRoot != "" {
		return serversRoot
	}
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test's directory")
		}
		dir = parent
	}
	serversRoot = filepath.Join(dir, "..", "shared", "servers")
	return serversRoot
}

// probeBinary starts the binary at path once (twice where it may load the
// vector-set module) and finds what it is.
func probeBinary(path, module string) (Binary, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	b := Binary{Path: path}
	s, err := redisserver.StartBinary(ctx, path)
	if err != nil {
		return b, fmt.Errorf("probe %s: %w", path, err)
	}
	defer s.Close()
	c := redis.NewClient(&redis.Options{Addr: s.Addr, Protocol: 2, DisableIdentity: true})
	defer c.Close()
	info, err := c.Info(ctx, "server").Result()
	if err != nil {
		return b, fmt.Errorf("probe %s: %w", path, err)
	}
	fields := map[string]string{}
	for _, line := range strings.Split(info, "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), ":"); ok {
			fields[k] = v
		}
	}
	b.Engine, b.Name = "redis", "redis-"+fields["redis_version"]
	version := fields["redis_version"]
	if v := fields["valkey_version"]; v != "" {
		b.Engine, b.Name, version = "valkey", "valkey-"+v, v
	}
	for i, part := range strings.SplitN(version, ".", 3) {
		b.Version[i], _ = strconv.Atoi(part)
	}
	known := func(args ...interface{}) bool {
		err := c.Do(ctx, args...).Err()
		return err == nil || err == redis.Nil || !strings.Contains(strings.ToLower(err.Error()), "unknown")
	}
	b.FieldExpiry = known("HPEXPIRETIME", "crs:probe", "FIELDS", 1, "f")
	b.VectorSets = known("VCARD", "crs:probe")
	b.IDMP = known("XCFGSET", "crs:probe", "IDMP-DURATION", 100)
	if err := c.Do(ctx, "XADD", "crs:probe:s", "1-1", "f", "v").Err(); err != nil {
		return b, fmt.Errorf("probe %s: %w", path, err)
	}
	c.Do(ctx, "XGROUP", "CREATE", "crs:probe:s", "g", "0")
	b.CreateConsumer = known("XGROUP", "CREATECONSUMER", "crs:probe:s", "g", "c")
	xinfo, _ := c.Do(ctx, "XINFO", "STREAM", "crs:probe:s").Slice()
	for _, v := range xinfo {
		if v == "entries-added" {
			b.StreamCounters = true
		}
	}
	if err := c.Save(ctx).Err(); err != nil {
		return b, fmt.Errorf("probe %s: save: %w", path, err)
	}
	head := make([]byte, 9)
	f, err := os.Open(filepath.Join(s.Dir, "dump.rdb"))
	if err != nil {
		return b, fmt.Errorf("probe %s: %w", path, err)
	}
	_, err = f.Read(head)
	f.Close()
	if err != nil {
		return b, fmt.Errorf("probe %s: the RDB file: %w", path, err)
	}
	switch {
	case strings.HasPrefix(string(head), "REDIS"):
		b.RDB, _ = strconv.Atoi(string(head[5:9]))
	case strings.HasPrefix(string(head), "VALKEY"):
		b.RDB, _ = strconv.Atoi(string(head[6:9]))
	}
	if !b.VectorSets {
		if _, err := os.Stat(module); err == nil {
			m, err := redisserver.StartBinary(ctx, path, "--loadmodule", module)
			if err == nil {
				mc := redis.NewClient(&redis.Options{Addr: m.Addr, Protocol: 2, DisableIdentity: true})
				// The module loads into 6.x and crashes it at the first VADD.
				vec := "\x00\x00\x80\x3f\x00\x00\x00\x40"
				if mc.Do(ctx, "VADD", "crs:probe", "FP32", vec, "e").Err() == nil && mc.Do(ctx, "VCARD", "crs:probe").Val() == int64(1) {
					b.VectorModule = module
				}
				mc.Close()
				m.Close()
			}
		}
	}
	return b, nil
}

// Newest returns the newest binary of engine ("redis" or "valkey") among
// bins, or false where there is none.
func Newest(bins []Binary, engine string) (Binary, bool) {
	var newest Binary
	for _, b := range bins {
		if b.Engine == engine && slices.Compare(b.Version[:], newest.Version[:]) > 0 {
			newest = b
		}
	}
	return newest, newest.Name != ""
}
