package main

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/crs-tool/crs/internal/e2e"

	"github.com/crs-tool/crs/internal/redistest"
)

// TestProgressAndJSON runs the tools as a user would: with --json for
// scripts, and on a terminal (through script(1)), where the progress bar
// shows.
func TestProgressAndJSON(t *testing.T) {
	src := redistest.Start(t)
	e2e.FillMany(t, src, 60_000)
	want, err := redistest.Client(t, src, 0).DBSize(context.Background()).Result()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()

	// --json: one JSON object on stderr, the dump on stdout.
	out, code := e2e.Sh(t, dir, "crsdump --json -u "+src.URL+" > d.zst 2> dump.json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, out)
	}
	var ds struct {
		Tool    string
		OK      bool
		Keys    int64
		ByType  map[string]int64 `json:"keys_by_type"`
		Written int64            `json:"written_bytes"`
	}
	b, _ := os.ReadFile(filepath.Join(dir, "dump.json"))
	if err := json.Unmarshal(b, &ds); err != nil || !ds.OK || ds.Tool != "crsdump" || ds.Keys != want || ds.ByType["string"]+ds.ByType["hash"] != want {
		t.Errorf("crsdump --json: %v %+v\n%s", err, ds, b)
	}
	if fi, err := os.Stat(filepath.Join(dir, "d.zst")); err != nil || fi.Size() != ds.Written {
		t.Errorf("written_bytes %d, the file has %v (%v)", ds.Written, fi.Size(), err)
	}

	dst := redistest.Start(t)
	out, code = e2e.Sh(t, dir, "crsload --json -q -u "+dst.URL+" d.zst")
	var ls struct {
		OK   bool
		Keys int64
	}
	if err := json.Unmarshal([]byte(out), &ls); err != nil || code != 0 || !ls.OK || ls.Keys != want {
		t.Errorf("crsload --json: exit %d, %v, %+v\n%s", code, err, ls, out)
	}
	// A failure is in the JSON too, and in the exit code.
	out, code = e2e.Sh(t, dir, "crsload --json -u "+dst.URL+" d.zst 2> refused.json; code=$?; head -n 1 refused.json; exit $code")
	var refused struct {
		OK    bool
		Error string
	}
	if err := json.Unmarshal([]byte(out), &refused); err != nil || refused.OK || !strings.Contains(refused.Error, "not empty") || code != 4 {
		t.Errorf("a refused load: exit %d, %v: %s", code, err, out)
	}

	if out, code := e2e.Sh(t, dir, "crsload --progress=sometimes d.zst"); code != 2 || !strings.Contains(out, "--progress must be") {
		t.Errorf("bad --progress: exit %d: %s", code, out)
	}

	// On a terminal the bar shows; it is drawn every 200ms, so a load
	// that took longer than a second must have drawn it.
	if _, err := exec.LookPath("script"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("script(1) is not installed")
		}
		t.Skip("script(1) is not installed")
	}
	again := redistest.Start(t)
	out, code = e2e.Sh(t, dir, `script -qec "crsload --pipeline 16 --concurrency 1 -u `+again.URL+` d.zst" /dev/null`)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, out)
	}
	m := regexp.MustCompile(`loaded \d+ keys .* in ([0-9.]+)s`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no summary:\n%q", out)
	}
	secs, _ := strconv.ParseFloat(m[1], 64)
	bar := regexp.MustCompile(`\r\x1b\[Kcrsload \[[#.]{24}\] +[0-9.]+% \d+/` + strconv.FormatInt(want, 10) + ` keys, \d+ keys/s`)
	switch {
	case bar.MatchString(out):
	case secs > 1:
		t.Errorf("a %.1fs load on a terminal drew no progress bar:\n%q", secs, out)
	default:
		t.Logf("the load took %.2fs, too short to be sure of a bar", secs)
	}
	if !strings.Contains(out, "\r\x1b[Kcrsload: loaded") {
		t.Errorf("the bar is not erased before the summary:\n%q", out)
	}

	// crs verify draws one too, against the header's count, and erases it.
	out, code = e2e.Sh(t, dir, `script -qec "crs verify -u `+again.URL+` d.zst" /dev/null`)
	if code != 0 || !strings.Contains(out, "\r\x1b[Kcrs verify: "+strconv.FormatInt(want, 10)+" keys checked, 0 differences") {
		t.Errorf("crs verify on a terminal: exit %d:\n%q", code, out)
	}
	if out, code := e2e.Sh(t, dir, "crs verify --progress=sometimes -u "+again.URL+" d.zst"); code != 2 {
		t.Errorf("bad --progress: exit %d: %s", code, out)
	}
}
