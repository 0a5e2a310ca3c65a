package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/crs-tool/crs/internal/e2e"
	"github.com/crs-tool/crs/internal/redistest"
	"github.com/crs-tool/crs/internal/s3test"
)

// faultProxy stands between crs and the S3 server, and answers 503 to the
// first fail requests that upload part number part of a multipart upload
// (-1: every one), as an overloaded S3 does (SlowDown).
type faultProxy struct {
	*httptest.Server
	mu          sync.Mutex
	part, fail  int
	tries, seen map[string]int // by part number: requests, refused ones
}

func startFaultProxy(t *testing.T, s3 *s3test.Server, part, fail int) *faultProxy {
	p := &faultProxy{part: part, fail: fail, tries: map[string]int{}, seen: map[string]int{}}
	rp := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: "http", Host: s3.Addr})
	p.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := r.URL.Query().Get("partNumber")
		if r.Method == http.MethodPut && n != "" {
			p.mu.Lock()
			p.tries[n]++
			refuse := n == fmt.Sprint(p.part) && (p.fail < 0 || p.seen[n] < p.fail)
			if refuse {
				p.seen[n]++
			}
			p.mu.Unlock()
			if refuse {
				w.Header().Set("Content-Type", "application/xml")
				w.WriteHeader(http.StatusServiceUnavailable)
				fmt.Fprint(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>`)
				return
			}
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(p.Close)
	return p
}

// url is the s3:// URL of key through the proxy.
func (p *faultProxy) url(key string) string {
	return "s3://crs/" + key + "?endpoint=" + url.QueryEscape(p.URL) + "&use_path_style=true&region=" + s3test.Region
}

// TestObjectStorage dumps to and loads from an S3-compatible server: a
// dump larger than three upload parts, one of them refused once (retried,
// the object whole); a dump whose part is refused every time (it fails,
// and no object is left, nor an upload in progress); a set read from the
// bucket with an object cut short (refused, naming it); file:// URLs; and
// wrong credentials (one line, no secret in it).
func TestObjectStorage(t *testing.T) {
	s3 := s3test.Start(t)
	src := redistest.Start(t)
	ctx := context.Background()
	c := redistest.Client(t, src, 0)
	// 24 MiB that zstd cannot shrink: three 8 MiB upload parts and more.
	pipe := c.Pipeline()
	for i := 0; i < 240; i++ {
		b := make([]byte, 100<<10)
		rand.Read(b)
		pipe.Set(ctx, fmt.Sprintf("blob:%d", i), b, 0)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	// The corpus without its keys that expire within seconds: the targets
	// are compared with the source strictly, long after.
	if soon := fill(t, src); c.Del(ctx, soon...).Err() != nil {
		t.Fatal("DEL")
	}
	dir := t.TempDir()
	env := s3.Env()

	once := startFaultProxy(t, s3, 2, 1)
	obj := once.url("one/dump.jsonl.zst")
	if out, code := e2e.Sh(t, dir, "crsdump -u "+src.URL+" -o '"+obj+"'", env...); code != 0 {
		t.Fatalf("dump to S3: exit %d\n%s", code, out)
	}
	if once.tries["2"] != 2 || once.tries["4"] == 0 {
		t.Errorf("upload part requests by part number %v: want part 2 tried twice (refused once), 4 parts at least", once.tries)
	}
	if _, err := os.Stat(s3.Path("one/dump.jsonl.zst")); err != nil {
		t.Fatalf("the object: %v", err)
	}
	dst := redistest.Start(t)
	if out, code := e2e.Sh(t, dir, "crsload -u "+dst.URL+" '"+s3.URL("one/dump.jsonl.zst")+"'", env...); code != 0 {
		t.Fatalf("load from S3: exit %d\n%s", code, out)
	}
	e2e.AssertNoDiff(t, src, dst)

	// Part 3 refused every time: the dump fails, naming the upload, and
	// leaves nothing behind.
	never := startFaultProxy(t, s3, 3, -1)
	out, code := e2e.Sh(t, dir, "crsdump -u "+src.URL+" -o '"+never.url("two/dump.jsonl.zst")+"'", env...)
	if code == 0 || !strings.Contains(out, "upload s3://crs/two/dump.jsonl.zst") || strings.Contains(out, "goroutine ") {
		t.Errorf("a dump whose upload fails: exit %d\n%s", code, out)
	}
	if never.tries["3"] < 2 {
		t.Errorf("part 3 was not retried: %v", never.tries)
	}
	if left := files(t, filepath.Join(s3.Root, "crs"), "two"); len(left) > 0 {
		t.Errorf("a failed upload left %v", left)
	}
	if left := s3.Uploads(); len(left) > 0 {
		t.Errorf("a failed dump left its upload in progress (not aborted): %v", left)
	}

	// A set in the bucket, one of its objects then cut short.
	set := s3.URL("set/")
	if out, code := e2e.Sh(t, dir, "crsdump -q --parts 2 -u "+src.URL+" -o '"+set+"'", env...); code != 0 {
		t.Fatalf("dump set to S3: exit %d\n%s", code, out)
	}
	viaSet := redistest.Start(t)
	if out, code := e2e.Sh(t, dir, "crsload -q -u "+viaSet.URL+" '"+set+"' && crs verify -u "+viaSet.URL+" '"+set+"'", env...); code != 0 || !strings.Contains(out, " 0 differences") {
		t.Fatalf("load and verify of the set in S3: exit %d\n%s", code, out)
	}
	e2e.AssertNoDiff(t, src, viaSet)
	if err := os.Truncate(s3.Path("set/part-0001-of-0002.jsonl.zst"), 1000); err != nil {
		t.Fatal(err)
	}
	empty := redistest.Start(t)
	out, code = e2e.Sh(t, dir, "crsload -u "+empty.URL+" '"+set+"'", env...)
	if code != 3 || !strings.Contains(out, "part 1 of 2") || !strings.Contains(out, "cut short") || strings.Contains(out, "endpoint=") {
		t.Errorf("a set in S3 with a part cut short: exit %d\n%s", code, out)
	}
	if n, _ := redistest.Client(t, empty, 0).DBSize(ctx).Result(); n != 0 {
		t.Errorf("a refused set wrote %d keys", n)
	}

	// file:// URLs, as paths.
	fileURL := "file://" + filepath.Join(dir, "local.jsonl.zst")
	viaFile := redistest.Start(t)
	if out, code := e2e.Sh(t, dir, "crsdump -q -u "+src.URL+" -o "+fileURL+" && crsload -q -u "+viaFile.URL+" "+fileURL); code != 0 {
		t.Fatalf("file:// URLs: exit %d\n%s", code, out)
	}
	e2e.AssertNoDiff(t, src, viaFile)

	// Wrong credentials: one line, the secret not in it.
	out, code = e2e.Sh(t, dir, "crs stats '"+s3.URL("one/dump.jsonl.zst")+"'", "AWS_ACCESS_KEY_ID="+s3test.AccessKey, "AWS_SECRET_ACCESS_KEY=not-the-secret")
	t.Logf("wrong credentials: %s", out)
	if code == 0 || strings.Count(strings.TrimSpace(out), "\n") > 0 || strings.Contains(out, "not-the-secret") || !strings.Contains(out, "s3://crs/one/dump.jsonl.zst") {
		t.Errorf("wrong credentials: exit %d\n%s", code, out)
	}

	// The source lost while the upload goes well, a part of it on the
	// server: crsdump aborts the upload (the SDK aborts only its own
	// failures); nothing of it is left, object or parts.
	cmd, output := e2e.Start(t, mkdir(t, dir, "lost"), "env AWS_ACCESS_KEY_ID="+s3test.AccessKey+" AWS_SECRET_ACCESS_KEY="+s3test.SecretKey+" crsdump --rate 40 -u "+src.URL+" -o '"+s3.URL("three/dump.jsonl.zst")+"'")
	redistest.WaitFor(t, "a part of the upload on the server", func() bool { return len(s3.Uploads()) > 0 })
	src.Kill()
	if err := cmd.Wait(); e2e.ExitCodeOf(err) == 0 {
		t.Fatalf("a dump whose source died: exit 0\n%s", output())
	}
	if left := append(files(t, filepath.Join(s3.Root, "crs"), "three"), s3.Uploads()...); len(left) > 0 {
		t.Errorf("a dump whose source died left %v\n%s", left, output())
	}
}

// files lists the files under root whose path (from root) mentions
// what.
func files(t *testing.T, root, what string) []string {
	t.Helper()
	var found []string
	filepath.Walk(root, func(path string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() && strings.Contains(path[len(root):], what) {
			found = append(found, path[len(root):])
		}
		return nil
	})
	return found
}
