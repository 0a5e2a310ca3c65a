// Package s3test starts a throwaway S3-compatible server for crs's tests:
// versitygw (github.com/versity/versitygw, an S3 gateway over a local
// directory, which checks every request's signature), built from the Go
// module proxy by scripts/deps.sh. Where it is not built, a test that
// needs it fails when the environment variable CI is set and is skipped
// otherwise, saying how to build it.
package s3test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/crs-tool/crs/internal/redisserver"
)

// Version is the versitygw that scripts/deps.sh builds.
const Version = "v1.8.0"

// Credentials the server takes, and the region it is in.
const (
	AccessKey = "crs-test"
	SecretKey = "crs-test-secret"
	Region    = "us-east-1"
)

// Server is a running versitygw with one bucket.
type Server struct {
	// Addr is its host:port on 127.0.0.1.
	Addr string
	// Root is the directory it serves: a bucket is a directory in it.
	Root string
	// Bucket is the bucket made for the test.
	Bucket string
}

// Binary returns the path of versitygw: on the PATH, in $CRS_VERSITYGW,
// or where go install puts it.
func Binary() (string, error) {
	if p := os.Getenv("CRS_VERSITYGW"); p != "" {
		return p, nil
	}
	if p, err := exec.LookPath("versitygw"); err == nil {
		return p, nil
	}
	dir := os.Getenv("GOBIN")
	if dir == "" {
		out, err := exec.Command("go", "env", "GOPATH").Output()
		if err != nil {
			return "", err
		}
		dir = filepath.Join(strings.TrimSpace(strings.SplitN(string(out), ":", 2)[0]), "bin")
	}
	p := filepath.Join(dir, "versitygw")
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("versitygw %s is not built (scripts/deps.sh builds it: go install github.com/versity/versitygw/cmd/versitygw@%s)", Version, Version)
	}
	return p, nil
}

// Start starts a server with a bucket named "crs" for the test, stopped
// when the test ends; it skips the test where versitygw is not built,
// unless CI is set.
func Start(t testing.TB) *Server {
	t.Helper()
	bin, err := Binary()
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	s := &Server{Root: t.TempDir(), Bucket: "crs"}
	if err := os.Mkdir(filepath.Join(s.Root, s.Bucket), 0o755); err != nil {
		t.Fatal(err)
	}
	for attempt := 0; ; attempt++ {
		err := s.start(t, bin)
		if err == nil {
			return s
		}
		if attempt == 4 {
			t.Fatal(err)
		}
	}
}

// start runs the server on a free port and waits until it answers.
func (s *Server) start(t testing.TB, bin string) error {
	port, err := redisserver.FreePort()
	if err != nil {
		return err
	}
	s.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	log, err := os.Create(filepath.Join(t.TempDir(), "versitygw.log"))
	if err != nil {
		return err
	}
	cmd := exec.Command(bin, "--port", s.Addr, "--quiet", "--region", Region, "posix", s.Root)
	cmd.Env = append(os.Environ(), "ROOT_ACCESS_KEY="+AccessKey, "ROOT_SECRET_KEY="+SecretKey)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		log.Close()
		return fmt.Errorf("start versitygw: %w", err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait(); log.Close() }()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := waitReady(ctx, "http://"+s.Addr+"/", done); err != nil {
		cmd.Process.Kill()
		<-done
		b, _ := os.ReadFile(log.Name())
		return fmt.Errorf("versitygw on %s: %w\n%s", s.Addr, err, b)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-done
	})
	return nil
}

// waitReady waits until the server answers HTTP at all (an anonymous
// request is refused, with an answer), or its process ends.
func waitReady(ctx context.Context, u string, done <-chan error) error {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
			return nil
		}
		select {
		case err := <-done:
			return fmt.Errorf("it exited: %v", err)
		case <-ctx.Done():
			return errors.New("it did not answer within 30s")
		case <-tick.C:
		}
	}
}

// Query is the query of a URL that names this server: its endpoint, path
// style (a bucket in the path, not the host name), its region.
func (s *Server) Query() string {
	return "endpoint=" + url.QueryEscape("http://"+s.Addr) + "&use_path_style=true&region=" + Region
}

// URL returns the s3:// URL of key in the test's bucket (a trailing slash
// names a directory), with the server's query.
func (s *Server) URL(key string) string {
	return "s3://" + s.Bucket + "/" + strings.TrimPrefix(key, "/") + "?" + s.Query()
}

// Env is the environment a crs process needs to reach the server: the
// credentials, as AWS's standard chain reads them (the region is in the
// URL's query).
func (s *Server) Env() []string {
	return []string{"AWS_ACCESS_KEY_ID=" + AccessKey, "AWS_SECRET_ACCESS_KEY=" + SecretKey}
}

// Uploads returns the files of the multipart uploads begun in the bucket
// and neither completed nor aborted (versitygw keeps them under the
// bucket's .sgwtmp/multipart until then), as paths from the bucket.
func (s *Server) Uploads() []string {
	root := filepath.Join(s.Root, s.Bucket)
	var found []string
	filepath.WalkDir(filepath.Join(root, ".sgwtmp", "multipart"), func(path string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(root, path)
			found = append(found, rel)
		}
		return nil
	})
	return found
}

// Path returns where the object key lies in the server's directory.
func (s *Server) Path(key string) string {
	return filepath.Join(s.Root, s.Bucket, filepath.FromSlash(key))
}
