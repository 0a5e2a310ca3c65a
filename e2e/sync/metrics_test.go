package sync_test

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/crs-tool/crs/internal/e2e"
	"github.com/crs-tool/crs/internal/redistest"
)

// scrape reads the metrics at url: each sample's value by its name and
// labels as written ({link="…"} included), and the text.
func scrape(t *testing.T, url string) (map[string]float64, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, line := range strings.Split(string(b), "\n") {
		i := strings.LastIndexByte(line, ' ')
		if strings.HasPrefix(line, "#") || i < 0 {
			continue
		}
		if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
			out[line[:i]] = v
		}
	}
	return out, string(b)
}

// sum adds the samples whose name and labels start with prefix.
func sum(m map[string]float64, prefix string) float64 {
	var n float64
	for k, v := range m {
		if strings.HasPrefix(k, prefix) {
			n += v
		}
	}
	return n
}

// TestSyncMetrics scrapes a running sync's metrics (--metrics-addr) while
// a writer runs and checks they move as the sync does: commands applied
// grow, the lag falls to about 0 once in step, and the applied offset is
// the one the target records; /status and /healthz answer; every line on
// stderr is a JSON log event with its time (--log-format json); the
// summary lands in --summary-json's file.
func TestSyncMetrics(t *testing.T) {
	src, dst, w, dir := syncPair(t, 2000)
	stopped := false
	defer func() {
		if !stopped {
			w.Stop(t, src)
		}
	}()
	cmd, output := e2e.Start(t, dir, "crs sync --progress plain --log-format json --summary-json sum.json --metrics-addr 127.0.0.1:0 --source "+src.URL+" -u "+dst.URL)
	addr := regexp.MustCompile(`metrics at http://([0-9.:]+)/metrics`)
	redistest.WaitFor(t, "the metrics address", func() bool { return addr.MatchString(output()) })
	base := "http://" + addr.FindStringSubmatch(output())[1]
	redistest.WaitFor(t, "in sync", func() bool { return strings.Contains(output(), "crs sync: in sync") })

	first, text := scrape(t, base+"/metrics")
	for _, name := range []string{"crs_sync_lag_seconds", "crs_sync_lag_bytes", "crs_sync_applied_offset_bytes", "crs_sync_commands_applied_total", "crs_sync_in_sync", "crs_sync_cutover_attempts_total", "process_resident_memory_bytes", "go_goroutines"} {
		if !strings.Contains(text, "# HELP "+name+" ") {
			t.Errorf("no HELP for %s", name)
		}
	}
	var applied float64
	redistest.WaitFor(t, "commands applied to grow", func() bool {
		m, _ := scrape(t, base+"/metrics")
		applied = sum(m, "crs_sync_commands_applied_total")
		return applied > sum(first, "crs_sync_commands_applied_total")
	})
	redistest.WaitFor(t, "the lag to fall to about 0, in step", func() bool {
		m, _ := scrape(t, base+"/metrics")
		return sum(m, "crs_sync_in_sync") == 1 && sum(m, "crs_sync_lag_seconds") < 0.5
	})
	// With the writer stopped, the applied offset the metrics give comes
	// to the one the target records with its writes.
	w.Stop(t, src)
	stopped = true
	redistest.WaitFor(t, "the applied offset to be the target's", func() bool {
		m, _ := scrape(t, base+"/metrics")
		off := checkpointOffset(t, dst)
		return off > 0 && sum(m, "crs_sync_applied_offset_bytes") == float64(off)
	})

	var status struct {
		Running bool
		Total   struct{ Phase string }
		Links   []struct{ Link string }
	}
	resp, err := http.Get(base + "/status")
	if err != nil {
		t.Fatal(err)
	}
	err = json.NewDecoder(resp.Body).Decode(&status)
	resp.Body.Close()
	if err != nil || !status.Running || status.Total.Phase != "streaming" || len(status.Links) != 1 || status.Links[0].Link != src.Addr {
		t.Errorf("/status: %v %+v", err, status)
	}
	if resp, err := http.Get(base + "/healthz"); err != nil || resp.StatusCode != 200 {
		t.Errorf("/healthz: %v %v", err, resp)
	}

	cmd.Process.Signal(syscall.SIGUSR1)
	if err := cmd.Wait(); e2e.ExitCodeOf(err) != 0 {
		t.Fatalf("cutover: exit %d\n%s", e2e.ExitCodeOf(err), output())
	}
	stamp := regexp.MustCompile(`^\{("level":"[A-Z]+",)?"time":"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"`)
	for _, line := range strings.Split(strings.TrimSpace(output()), "\n") {
		if !stamp.MatchString(line) || !json.Valid([]byte(line)) {
			t.Errorf("not a JSON log event with its time: %s", line)
		}
	}
	b, err := os.ReadFile(filepath.Join(dir, "sum.json"))
	if err != nil || !strings.Contains(string(b), `"tool":"crs sync","ok":true`) || !strings.Contains(string(b), `"cutover_attempts":1`) {
		t.Errorf("--summary-json: %v %s", err, b)
	}
	t.Logf("commands applied at a scrape: %.0f", applied)
}
