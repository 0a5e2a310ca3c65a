package redisconn

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/redis/go-redis/v9"
)

// A setting crs changes on a server for as long as it runs (a sync turns
// keyspace notifications on) is put back when it ends; a process killed
// first cannot. So each change is noted in a file of the user's cache
// directory before it is made and the note removed once it is undone,
// and the next run that would change the same setting of the same server
// first undoes a change whose process is gone.

// configNote is a setting changed, what it was, and by which process.
type configNote struct {
	Addr  string `json:"addr"`
	Param string `json:"param"`
	Was   string `json:"was"`
	Pid   int    `json:"pid"`
}

// notePath is where the note of param on the server at addr is kept.
func notePath(addr, param string) (string, error) {
	dir, err := os.UserCacheDir()
	if err != nil {
		dir = os.TempDir() // no HOME: the notes last until TMPDIR is cleaned
	}
	name := strings.NewReplacer(":", "_", "/", "_", "[", "", "]", "").Replace(addr) + "-" + param + ".json"
	return filepath.Join(dir, "crs", "changed", name), nil
}

// NoteConfig notes that this process sets param of the server at addr,
// which was was, until ForgetConfig. Callers go on where it fails: the
// note only lets a later run undo what a killed one left.
func NoteConfig(addr, param, was string) error {
	path, err := notePath(addr, param)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	b, _ := json.Marshal(configNote{Addr: addr, Param: param, Was: was, Pid: os.Getpid()})
	return os.WriteFile(path, b, 0o600)
}

// ForgetConfig removes the note of param of the server at addr, once the
// setting is back.
func ForgetConfig(addr, param string) {
	if path, err := notePath(addr, param); err == nil {
		os.Remove(path)
	}
}

// UndoLeftover puts param of the server at addr back (on every client of
// cs) where a note says a process that is gone changed it, and returns
// what it did ("" when nothing).
func UndoLeftover(ctx context.Context, addr, param string, cs ...*redis.Client) (string, error) {
	path, err := notePath(addr, param)
	if err != nil {
		return "", nil
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	var n configNote
	if err != nil || json.Unmarshal(b, &n) != nil {
		os.Remove(path)
		return "", nil
	}
	if _, err := os.Stat(fmt.Sprintf("/proc/%d", n.Pid)); err == nil && n.Pid != os.Getpid() {
		return "", nil // its process still runs, and puts it back itself
	}
	for _, c := range cs {
		if err := c.ConfigSet(ctx, param, n.Was).Err(); err != nil {
			return "", fmt.Errorf("put %s back to %q as a killed crs (pid %d) left it: %w", param, n.Was, n.Pid, err)
		}
	}
	os.Remove(path)
	return fmt.Sprintf("put %s of %s back to %q, which a crs killed before it could (pid %d) had changed", param, addr, n.Was, n.Pid), nil
}
