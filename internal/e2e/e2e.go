// Package e2e runs crs as a user does, for the end-to-end tests: the
// binaries built once per test process (crs, and crsdump and crsload as
// links to it), command lines run with them first on the PATH, in the
// foreground or the background, and the checks those tests share. The
// servers they run against come from package redistest.
package e2e

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/crs-tool/crs/format"
	"github.com/crs-tool/crs/internal/keyspace"
	"github.com/crs-tool/crs/internal/redisserver"
	"github.com/crs-tool/crs/internal/redistest"
	"github.com/crs-tool/crs/rdb"
)

var (
	buildOnce sync.Once
	binDir    string
	buildErr  error
)

// module is the import path of the crs command, built from any package's
// directory of the module.
const module = "github.com/crs-tool/crs"

// Binaries builds crs once per test process, and names it crsdump and
// crsload too, as make build does; it returns their directory.
func Binaries(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		binDir, buildErr = os.MkdirTemp("", "crs-bin-")
		if buildErr != nil {
			return
		}
		out, err := exec.Command("go", "build", "-o", filepath.Join(binDir, "crs"), module).CombinedOutput()
		if err != nil {
			buildErr = errors.New(string(out))
			return
		}
		for _, name := range []string{"crsdump", "crsload"} {
			if buildErr = os.Link(filepath.Join(binDir, "crs"), filepath.Join(binDir, name)); buildErr != nil {
				return
			}
		}
	})
	if buildErr != nil {
		t.Fatalf("build: %v", buildErr)
	}
	return binDir
}

// Main runs a package's tests (call it from TestMain) and removes the
// binaries after.
func Main(m *testing.M) {
	// Streams' tracked idempotent IDs are compared from their DUMP
	// payloads, which rdb reads.
	redistest.PayloadDecoder = func(payload []byte, key string, emit func(*format.Record) error) error {
		return rdb.DecodePayload(payload, 0, key, rdb.Options{}, emit)
	}
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// Sh runs a shell command line with the binaries first on the PATH and
// returns its combined output and exit code.
func Sh(t testing.TB, dir, script string, env ...string) (string, int) {
	t.Helper()
	cmd := exec.Command("sh", "-c", script)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "PATH="+Binaries(t)+":"+os.Getenv("PATH"))
	cmd.Env = append(cmd.Env, env...)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return string(out), ee.ExitCode()
	}
	if err != nil {
		t.Fatal(err)
	}
	return string(out), 0
}

// Start runs a command line in the background with the binaries first on
// the PATH, its own process group, and combined output in a file; the
// function returned reads the output so far.
func Start(t testing.TB, dir, script string) (*exec.Cmd, func() string) {
	t.Helper()
	cmd := exec.Command("sh", "-c", "exec "+script)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "PATH="+Binaries(t)+":"+os.Getenv("PATH"))
	out, err := os.Create(filepath.Join(dir, "output.txt"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd, func() string { b, _ := os.ReadFile(out.Name()); return string(b) }
}

// ExitCodeOf is the exit code in a command's error (0 for none).
func ExitCodeOf(err error) int {
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	return 0
}

// LineWith returns the first line of out that holds s.
func LineWith(out, s string) string {
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, s) {
			return l
		}
	}
	return ""
}

// FillMany fills s with n guide-shaped keys, enough for a dump or load to
// take a while. Their expiries are moved an hour later, so that none
// passes while a slow machine runs the test (a test of a keyspace that
// expires fills it with keyspace.Fill alone).
func FillMany(t testing.TB, s *redisserver.Server, n int) {
	t.Helper()
	c := redistest.Client(t, s, 0)
	if _, err := keyspace.Fill(context.Background(), c, n); err != nil {
		t.Fatal(err)
	}
	if err := keyspace.Stretch(context.Background(), c, time.Hour); err != nil {
		t.Fatal(err)
	}
}

// AssertNoDiff fails t on every difference between the keys of a and b.
func AssertNoDiff(t testing.TB, a, b *redisserver.Server) {
	t.Helper()
	diffs, err := redistest.Diff(context.Background(), a, b, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range diffs {
		t.Error(d)
	}
}
