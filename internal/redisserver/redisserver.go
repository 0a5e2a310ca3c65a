// Package redisserver starts throwaway redis-server processes on loopback
// for crs's tests, demo and benchmarks. A server it starts keeps nothing on
// disk (--save "" --appendonly no) and is killed by Close.
package redisserver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// ErrNotInstalled means no redis-server is on the PATH.
var ErrNotInstalled = errors.New("redis-server is not installed (Debian: apt-get install redis-server)")

// Server is a running redis-server.
type Server struct {
	// Addr is host:port on 127.0.0.1.
	Addr string
	// URL is a redis:// URL for Addr.
	URL string
	// Dir is the server's working directory, removed by Close.
	Dir string

	cmd  *exec.Cmd
	done chan error
	log  *os.File
	bin  string
	args []string
}

// Start starts a redis-server on a free loopback port with the extra
// config arguments given (as on the redis-server command line, such as
// "--maxmemory", "10mb"), and waits until it answers.
func Start(ctx context.Context, args ...string) (*Server, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, ErrNotInstalled
	}
	return StartBinary(ctx, bin, args...)
}

// StartBinary is Start with a given server binary, such as one of the
// other versions in ../shared/servers (redis-server or valkey-server).
func StartBinary(ctx context.Context, bin string, args ...string) (*Server, error) {
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		s, err := start(ctx, bin, args)
		if err == nil {
			return s, nil
		}
		lastErr = err
		if ctx.Err() != nil {
			break
		}
	}
	return nil, lastErr
}

func start(ctx context.Context, bin string, extra []string) (*Server, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "crs-redis-")
	if err != nil {
		return nil, err
	}
	log, err := os.Create(filepath.Join(dir, "redis.log"))
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	args := []string{
		"--port", strconv.Itoa(port),
		"--bind", "127.0.0.1",
		"--save", "",
		"--appendonly", "no",
		"--dir", dir,
		"--daemonize", "no",
		"--protected-mode", "no",
		"--databases", "16",
	}
	args = append(args, debugArgs(bin)...)
	args = append(args, extra...)
	s := &Server{
		Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
		Dir:  dir,
		log:  log,
		bin:  bin,
		args: args,
	}
	s.URL = "redis://" + s.Addr
	if err := s.run(ctx); err != nil {
		log.Close()
		os.RemoveAll(dir)
		return nil, err
	}
	return s, nil
}

// debugOn caches debugArgs by binary.
var debugOn sync.Map

// debugArgs turns DEBUG on, from loopback, where the binary has the
// setting (7.0+), so that tests can compare DEBUG DIGEST-VALUE.
func debugArgs(bin string) []string {
	on, ok := debugOn.Load(bin)
	if !ok {
		out, _ := exec.Command(bin, "--version").Output()
		_, v, _ := strings.Cut(string(out), " v=")
		major, _ := strconv.Atoi(strings.SplitN(v, ".", 2)[0])
		on = major >= 7
		debugOn.Store(bin, on)
	}
	if on.(bool) {
		return []string{"--enable-debug-command", "local"}
	}
	return nil
}

// run starts the server process and waits until it answers.
func (s *Server) run(ctx context.Context) error {
	cmd := exec.Command(s.bin, s.args...)
	cmd.Stdout = s.log
	cmd.Stderr = s.log
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start redis-server: %w", err)
	}
	s.cmd, s.done = cmd, make(chan error, 1)
	go func() { s.done <- cmd.Wait() }()
	if err := s.waitReady(ctx); err != nil {
		s.cmd.Process.Kill()
		<-s.done
		return err
	}
	return nil
}

// Restart starts the server again once its process has ended (SHUTDOWN,
// Kill), on its port and in its directory, so with the data it saved
// there, and waits until it answers.
func (s *Server) Restart(ctx context.Context) error {
	select {
	case err := <-s.done:
		s.done <- err
	case <-ctx.Done():
		return ctx.Err()
	}
	return s.run(ctx)
}

// FreePort returns a loopback port that was free a moment ago, for a
// second listener such as --tls-port.
func FreePort() (int, error) { return freePort() }

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// waitReady polls with PING until the server answers +PONG.
func (s *Server) waitReady(ctx context.Context) error {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-s.done:
			s.done <- err
			return fmt.Errorf("redis-server exited: %v: %s", err, s.Log())
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		c, err := net.DialTimeout("tcp", s.Addr, time.Second)
		if err != nil {
			continue
		}
		c.SetDeadline(time.Now().Add(time.Second))
		_, err = c.Write([]byte("PING\r\n"))
		buf := make([]byte, 7)
		if err == nil {
			_, err = c.Read(buf)
		}
		c.Close()
		// A server with a password answers -NOAUTH: it is up all the same.
		if err == nil && (strings.HasPrefix(string(buf), "+PONG") || strings.HasPrefix(string(buf), "-NOAUTH")) {
			return nil
		}
	}
	return fmt.Errorf("redis-server on %s did not answer within 10s: %s", s.Addr, s.Log())
}

// Log returns the end of the server's log, for error messages.
func (s *Server) Log() string {
	b, _ := os.ReadFile(filepath.Join(s.Dir, "redis.log"))
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}

// Kill stops the server with SIGKILL, as a crash would, and waits for it.
func (s *Server) Kill() {
	if s.cmd.Process != nil {
		s.cmd.Process.Kill()
	}
	err := <-s.done
	s.done <- err
}

// Pause stops the server with SIGSTOP, as a stalled host would: it keeps
// its connections and answers nothing until Resume.
func (s *Server) Pause() { s.cmd.Process.Signal(syscall.SIGSTOP) }

// Resume continues a paused server.
func (s *Server) Resume() { s.cmd.Process.Signal(syscall.SIGCONT) }

// Close kills the server and removes its directory.
func (s *Server) Close() error {
	s.Kill()
	s.log.Close()
	return os.RemoveAll(s.Dir)
}
