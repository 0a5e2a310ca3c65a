package store_test

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/crs-tool/crs/internal/s3test"
	"github.com/crs-tool/crs/internal/store"
	_ "github.com/crs-tool/crs/internal/store/clouds"
)

func TestNames(t *testing.T) {
	for _, tt := range []struct {
		name, join, redacted, local string
		url, dir                    bool
	}{
		{"s3://b/set/?endpoint=http%3A%2F%2Fh%3A1&region=r", "s3://b/set/x.json?endpoint=http%3A%2F%2Fh%3A1&region=r", "s3://b/set/", "s3://b/set/?endpoint=http%3A%2F%2Fh%3A1&region=r", true, true},
		{"s3://b/set?region=r", "s3://b/set/x.json?region=r", "s3://b/set", "s3://b/set?region=r", true, false},
		{"gs://b/a/b.jsonl.zst", "gs://b/a/b.jsonl.zst/x.json", "gs://b/a/b.jsonl.zst", "gs://b/a/b.jsonl.zst", true, false},
		{"azblob://c/d/", "azblob://c/d/x.json", "azblob://c/d/", "azblob://c/d/", true, true},
		{"file:///tmp/a%20b/", "file:/tmp/a%20b/x.json", "file:///tmp/a%20b/", "/tmp/a b/", false, true},
		{"dir/", "dir/x.json", "dir/", "dir/", false, true},
		{"dump.jsonl.zst", "dump.jsonl.zst/x.json", "dump.jsonl.zst", "dump.jsonl.zst", false, false},
	} {
		if got := store.IsURL(tt.name); got != tt.url {
			t.Errorf("IsURL(%q) = %v", tt.name, got)
		}
		if got := store.IsDir(tt.name); got != tt.dir {
			t.Errorf("IsDir(%q) = %v", tt.name, got)
		}
		if got := store.Redact(tt.name); got != tt.redacted {
			t.Errorf("Redact(%q) = %q, want %q", tt.name, got, tt.redacted)
		}
		if got, err := store.Local(tt.name); err != nil || got != tt.local {
			t.Errorf("Local(%q) = %q, %v; want %q", tt.name, got, err, tt.local)
		}
		if !strings.HasPrefix(tt.name, "file:") {
			if got := store.Join(tt.name, "x.json"); got != tt.join {
				t.Errorf("Join(%q) = %q, want %q", tt.name, got, tt.join)
			}
		}
	}
	if _, err := store.Local("file://elsewhere/x"); err == nil {
		t.Error("a file URL of another host was taken")
	}
}

// TestObjects writes objects to a real S3-compatible server: nothing is
// there before Commit, nothing after Abort; a directory lists what was
// committed, with sizes.
func TestObjects(t *testing.T) {
	s := s3test.Start(t)
	for _, kv := range s.Env() {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	ctx := t.Context()
	data := bytes.Repeat([]byte("0123456789abcdef"), 1<<18) // 4 MiB

	w, err := store.Create(ctx, s.URL("d/committed"), 0)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(data)
	if _, err := os.Stat(s.Path("d/committed")); err == nil {
		t.Error("the object is there before Commit")
	}
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	w, err = store.Create(ctx, s.URL("d/aborted"), 0)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(data)
	w.Abort()
	if err := store.WriteFile(ctx, s.URL("d/small.json"), []byte("{}\n")); err != nil {
		t.Fatal(err)
	}

	got, err := store.ReadFile(ctx, s.URL("d/committed"))
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read back %d bytes, %v; want %d", len(got), err, len(data))
	}
	if _, err := store.Open(ctx, s.URL("d/aborted")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the aborted object: %v, want not there", err)
	}
	fsys, done, err := store.Dir(ctx, s.URL("d/"))
	if err != nil {
		t.Fatal(err)
	}
	defer done()
	list, err := fs.ReadDir(fsys, ".")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, d := range list {
		fi, _ := d.Info()
		names = append(names, d.Name()+":"+strconv.FormatInt(fi.Size(), 10))
	}
	if strings.Join(names, " ") != "committed:4194304 small.json:3" {
		t.Errorf("the directory lists %v", names)
	}
	if _, err := store.Create(ctx, s.URL("d/"), 0); err == nil {
		t.Error("an object was created under a directory's name")
	}

	// A local file: NAME.tmp until Commit, mode 0600.
	path := filepath.Join(t.TempDir(), "f")
	w, err = store.Create(ctx, path, 0)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(data)
	if _, err := os.Stat(path); err == nil {
		t.Error("the file is there before Commit")
	}
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 || fi.Size() != int64(len(data)) {
		t.Errorf("the file: %v, %v", fi, err)
	}
}
