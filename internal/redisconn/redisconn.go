// Package redisconn turns crs's connection flags (a redis-cli style URL,
// host, port, password, user, database) into go-redis clients, and gives
// connection failures one clear, password-free error.
package redisconn

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/crs-tool/crs/internal/resp"
)

// QuietLogger is a go-redis logger that prints nothing. go-redis logs
// some connection trouble on its own; crs reports errors itself, once, so
// main installs this with redis.SetLogger.
type QuietLogger struct{}

// Printf discards its arguments.
func (QuietLogger) Printf(context.Context, string, ...interface{}) {}

// Options says how to reach a server. Fields left at their zero value
// (Port 0, DB -1) fall back to the URL, then to 127.0.0.1:6379 and db 0.
type Options struct {
	URL      string // redis://, rediss:// or unix:// URL
	Host     string
	Port     int
	User     string
	Password string
	// DB is the database named by -n, or -1. A database in the URL's
	// path counts as -n too; DBFromFlags reports which applies.
	DB int
	// PasswordFile names a file whose first line is the password, so that
	// it stays out of the process list and the shell history.
	PasswordFile string
	// TLS turns TLS on for a redis:// URL or host and port; rediss://
	// turns it on too. The server's certificate is verified unless
	// Insecure: against CACert when given, else the system's roots.
	TLS      bool
	CACert   string // PEM file of the CA(s) to trust
	Cert     string // PEM client certificate, with Key, for servers that ask
	Key      string
	SNI      string // server name to send and verify, when not the host
	Insecure bool   // skip verification (say so explicitly; never default)
	// Retries is how many times go-redis retries a failed command on a new
	// connection. Loads set it to -1: a retried RPUSH would append twice.
	Retries int
	// Timeout is how long an answer the server owes may take before the
	// connection counts as lost (and a load reconnects, for --retry-for);
	// 60s if zero. A server that stops answering without closing the
	// connection (stopped, partitioned away) is found after it.
	Timeout time.Duration
	// ReadOnly sends READONLY on each connection, so that a replica of a
	// cluster answers reads of its slots instead of redirecting them.
	ReadOnly bool
	// SentinelMaster names a Sentinel-managed master: the options then
	// name the sentinels (SentinelAddrs, comma-separated host:port, or
	// the address the options give), whom Resolve asks where it is.
	SentinelMaster   string
	SentinelAddrs    string
	SentinelUser     string
	SentinelPassword string
	// SentinelReplica resolves to a replica of the master instead.
	SentinelReplica bool
}

// ErrBadURL is wrapped by the errors of a server URL that does not parse.
var ErrBadURL = errors.New("bad URL")

// NewOptions returns the defaults: no URL, default host and port, no db.
func NewOptions() Options {
	return Options{DB: -1}
}

// ClientOptions builds go-redis options, without the database: callers
// choose the database per client.
func (o Options) ClientOptions() (*redis.Options, error) {
	ro := &redis.Options{Network: "tcp", Addr: "127.0.0.1:6379"}
	if o.URL != "" {
		if p, err := url.Parse(o.URL); err != nil || p.Scheme != "redis" && p.Scheme != "rediss" && p.Scheme != "unix" {
			return nil, fmt.Errorf("%w %q: it must start with redis://, rediss:// or unix://", ErrBadURL, Redact(o.URL))
		}
		u, err := redis.ParseURL(o.URL)
		if err != nil {
			return nil, fmt.Errorf("%w %q: %s", ErrBadURL, Redact(o.URL), strings.TrimPrefix(err.Error(), "redis: "))
		}
		ro = u
	}
	if o.Host != "" || o.Port != 0 {
		host, port, err := net.SplitHostPort(ro.Addr)
		if err != nil || ro.Network == "unix" {
			host, port = "127.0.0.1", "6379"
		}
		if o.Host != "" {
			host = o.Host
		}
		if o.Port != 0 {
			port = strconv.Itoa(o.Port)
		}
		ro.Network = "tcp"
		ro.Addr = net.JoinHostPort(host, port)
	}
	if o.User != "" {
		ro.Username = o.User
	}
	if o.Password != "" {
		ro.Password = o.Password
	}
	if o.PasswordFile != "" {
		b, err := os.ReadFile(o.PasswordFile)
		if err != nil {
			return nil, fmt.Errorf("password file: %w", err)
		}
		line, _, _ := strings.Cut(string(b), "\n")
		ro.Password = strings.TrimRight(line, "\r")
	}
	if err := o.tlsConfig(ro); err != nil {
		return nil, err
	}
	ro.DB = 0
	ro.Protocol = 2 // RESP2: scores arrive as the server's exact text
	ro.DisableIdentity = true
	ro.DialTimeout = 5 * time.Second
	ro.ReadTimeout, ro.WriteTimeout = 60*time.Second, 60*time.Second
	if o.Timeout > 0 {
		ro.ReadTimeout, ro.WriteTimeout = o.Timeout, o.Timeout
	}
	ro.MaxRetries = o.Retries
	if o.ReadOnly {
		ro.OnConnect = func(ctx context.Context, cn *redis.Conn) error { return cn.ReadOnly(ctx).Err() }
	}
	return ro, nil
}

// tlsConfig sets up TLS on ro from the flags.
func (o Options) tlsConfig(ro *redis.Options) error {
	if !o.TLS && ro.TLSConfig == nil && o.CACert == "" && o.Cert == "" && o.SNI == "" && !o.Insecure {
		return nil
	}
	if ro.Network == "unix" {
		return errors.New("TLS over a unix socket is not supported")
	}
	cfg := ro.TLSConfig
	if cfg == nil {
		host, _, err := net.SplitHostPort(ro.Addr)
		if err != nil {
			host = ro.Addr
		}
		cfg = &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}
	}
	if o.SNI != "" {
		cfg.ServerName = o.SNI
	}
	if o.CACert != "" {
		pem, err := os.ReadFile(o.CACert)
		if err != nil {
			return fmt.Errorf("--cacert: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return fmt.Errorf("--cacert %s: no PEM certificate in it", o.CACert)
		}
		cfg.RootCAs = pool
	}
	if o.Cert != "" || o.Key != "" {
		cert, err := tls.LoadX509KeyPair(o.Cert, o.Key)
		if err != nil {
			return fmt.Errorf("--cert/--key: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	cfg.InsecureSkipVerify = o.Insecure
	ro.TLSConfig = cfg
	return nil
}

// URLDB returns the database named in the URL's path or query, or -1.
func (o Options) URLDB() (int, error) {
	if o.URL == "" {
		return -1, nil
	}
	u, err := url.Parse(o.URL)
	if err != nil {
		return -1, fmt.Errorf("%w %q", ErrBadURL, Redact(o.URL))
	}
	if d := u.Query().Get("db"); d != "" {
		n, err := strconv.Atoi(d)
		if err != nil || n < 0 {
			return -1, fmt.Errorf("%w %q: bad database %q", ErrBadURL, Redact(o.URL), d)
		}
		return n, nil
	}
	if u.Scheme == "unix" {
		return -1, nil
	}
	p := strings.Trim(u.Path, "/")
	if p == "" {
		return -1, nil
	}
	n, err := strconv.Atoi(p)
	if err != nil || n < 0 {
		return -1, fmt.Errorf("%w %q: bad database %q", ErrBadURL, Redact(o.URL), p)
	}
	return n, nil
}

// SelectedDB returns the database chosen by -n or, failing that, the URL,
// or -1 when neither names one.
func (o Options) SelectedDB() (int, error) {
	if o.DB >= 0 {
		return o.DB, nil
	}
	return o.URLDB()
}

// At returns the options pointed at another server, addr (host:port), with
// the same credentials and TLS settings: another node of a cluster.
func (o Options) At(addr string) Options {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return o
	}
	o.Host = host
	o.Port, _ = strconv.Atoi(port)
	return o
}

// Address returns where the options point, without credentials.
func (o Options) Address() string {
	ro, err := o.ClientOptions()
	if err != nil {
		return Redact(o.URL)
	}
	if ro.Network == "unix" {
		return "unix://" + ro.Addr
	}
	if ro.TLSConfig != nil {
		return "rediss://" + ro.Addr
	}
	return ro.Addr
}

// Local reports whether the server is on this machine: a unix socket or
// a loopback address.
func (o Options) Local() bool {
	ro, err := o.ClientOptions()
	if err != nil {
		return false
	}
	if ro.Network == "unix" {
		return true
	}
	host, _, err := net.SplitHostPort(ro.Addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Cores is how many of this machine's cores crs should use against the
// server o points at: all but one when the server is on this machine.
// Redis runs commands on one thread, and a core that crs takes from it
// slows the server more than it speeds crs. Measured on the 2-core bench
// machine, crsdump and crsload ran 5-10% faster against a local server.
func Cores(o Options) int {
	n := runtime.NumCPU()
	if o.Local() && n > 1 {
		return n - 1
	}
	return n
}

// Redact removes the password from a URL.
func Redact(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.User == nil {
		if i := strings.LastIndex(s, "@"); i >= 0 {
			if j := strings.Index(s, "://"); j >= 0 && j < i {
				return s[:j+3] + "xxxxx" + s[i:]
			}
			return "xxxxx" + s[i:]
		}
		return s
	}
	if _, has := u.User.Password(); has {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	return u.String()
}

// RESP returns options for a raw pipeline connection to database db.
func (o Options) RESP(db int) (resp.Options, error) {
	ro, err := o.ClientOptions()
	if err != nil {
		return resp.Options{}, err
	}
	return resp.Options{
		Network: ro.Network, Addr: ro.Addr, TLS: ro.TLSConfig,
		Username: ro.Username, Password: ro.Password, DB: db,
		DialTimeout: ro.DialTimeout, IOTimeout: ro.ReadTimeout, ReadOnly: o.ReadOnly,
	}, nil
}

// Error is a failure to connect to or authenticate with a server.
type Error struct {
	Addr string
	Err  error
}

func (e *Error) Error() string {
	return fmt.Sprintf("cannot use %s: %v", e.Addr, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// Server describes a connected server.
type Server struct {
	Version string // such as "7.0.15"
	Engine  string // "redis" or "valkey"
	Major   int
	Minor   int
}

// AtLeast reports whether the server's version is at least major.minor.
func (s Server) AtLeast(major, minor int) bool {
	return s.Major > major || (s.Major == major && s.Minor >= minor)
}

// Open connects a client to database db, checks that the server answers,
// and reads its version. poolSize bounds the connections the client opens.
//
// The client lives no longer than ctx: go-redis bounds a call by its
// timeouts, not by its context, so when ctx ends the client is closed,
// which ends any call still waiting on a stalled server at once.
func Open(ctx context.Context, o Options, db, poolSize int) (*redis.Client, Server, error) {
	o, err := Resolve(ctx, o)
	if err != nil {
		return nil, Server{}, err
	}
	ro, err := o.ClientOptions()
	if err != nil {
		return nil, Server{}, err
	}
	ro.DB = db
	ro.PoolSize = poolSize
	c := redis.NewClient(ro)
	context.AfterFunc(ctx, func() { c.Close() })
	info, err := c.Info(ctx, "server").Result()
	if err != nil {
		c.Close()
		return nil, Server{}, &Error{Addr: o.Address(), Err: explain(err)}
	}
	return c, ParseServer(info), nil
}

// ParseServer reads the version and engine from INFO server output.
func ParseServer(info string) Server {
	f := InfoFields(info)
	s := Server{Version: f["redis_version"], Engine: "redis"}
	if v, ok := f["valkey_version"]; ok {
		s.Version, s.Engine = v, "valkey"
	} else if n := f["server_name"]; n != "" {
		s.Engine = n
	}
	s.Major, s.Minor = ParseVersion(s.Version)
	return s
}

// ParseVersion returns the major and minor numbers of a version string
// such as "7.0.15", or zeros.
func ParseVersion(v string) (major, minor int) {
	parts := strings.SplitN(v, ".", 3)
	if len(parts) >= 2 {
		major, _ = strconv.Atoi(parts[0])
		minor, _ = strconv.Atoi(parts[1])
	}
	return major, minor
}

// InfoFields parses INFO output into its name:value pairs.
func InfoFields(info string) map[string]string {
	m := make(map[string]string)
	for _, line := range strings.Split(info, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' {
			continue
		}
		if k, v, ok := strings.Cut(line, ":"); ok {
			m[k] = v
		}
	}
	return m
}

// Keyspace returns the number of keys of each database that holds any
// (INFO keyspace).
func Keyspace(ctx context.Context, c *redis.Client) (map[int]int64, error) {
	counts, err := KeyspaceCounts(ctx, c)
	out := make(map[int]int64, len(counts))
	for db, n := range counts {
		out[db] = n.Keys
	}
	return out, err
}

// DBCount is what INFO keyspace says of a database: its keys, and how
// many of them have an expiry. Keys - Expires, the keys without one, no
// clock changes.
type DBCount struct {
	Keys, Expires int64
}

// KeyspaceCounts returns INFO keyspace's counts of each database that
// holds keys.
func KeyspaceCounts(ctx context.Context, c *redis.Client) (map[int]DBCount, error) {
	info, err := c.Info(ctx, "keyspace").Result()
	if err != nil {
		return nil, fmt.Errorf("info keyspace: %w", err)
	}
	out := make(map[int]DBCount)
	for k, v := range InfoFields(info) {
		if !strings.HasPrefix(k, "db") {
			continue
		}
		db, err := strconv.Atoi(k[2:])
		if err != nil {
			continue
		}
		var n DBCount
		for _, kv := range strings.Split(v, ",") {
			if s, ok := strings.CutPrefix(kv, "keys="); ok {
				n.Keys, _ = strconv.ParseInt(s, 10, 64)
			} else if s, ok := strings.CutPrefix(kv, "expires="); ok {
				n.Expires, _ = strconv.ParseInt(s, 10, 64)
			}
		}
		out[db] = n
	}
	return out, nil
}

// explain turns common connection errors into short sentences.
func explain(err error) error {
	var ne net.Error
	msg := err.Error()
	switch {
	case IsAuthFailure(err):
		return fmt.Errorf("authentication failed: %w", err)
	case IsCertificateError(err):
		return fmt.Errorf("TLS: %w (give the CA with --cacert; --insecure skips the check)", err)
	case strings.Contains(msg, "connection refused"):
		return fmt.Errorf("connection refused (is the server running, and is the address right?)")
	case errors.As(err, &ne) && ne.Timeout():
		return fmt.Errorf("timed out: %w", err)
	}
	return err
}

// IsUnknownCommand reports whether err is the server's reply to a command
// it does not have.
func IsUnknownCommand(err error) bool {
	return err != nil && strings.HasPrefix(err.Error(), "ERR unknown command")
}

// Replies crs tells apart, each matched in one place.

// IsExecAbort reports whether err is EXEC's EXECABORT: a command of the
// transaction was refused when queued, so none ran.
func IsExecAbort(err error) bool {
	return err != nil && strings.HasPrefix(err.Error(), "EXECABORT")
}

// IsWrongType reports whether err is a WRONGTYPE reply: the key holds
// another type than the command reads (it changed meanwhile).
func IsWrongType(err error) bool {
	return err != nil && strings.HasPrefix(err.Error(), "WRONGTYPE")
}

// IsBusyKey reports whether err is RESTORE's BUSYKEY: the key exists
// already.
func IsBusyKey(err error) bool {
	return err != nil && strings.HasPrefix(err.Error(), "BUSYKEY")
}

// IsNoSuchKey reports whether err says the key does not exist (XINFO,
// XCFGSET and the like answer so for a missing key).
func IsNoSuchKey(err error) bool {
	return err != nil && strings.Contains(err.Error(), "no such key")
}

// IsAlreadyExists reports whether err says what was to be created exists
// already (FUNCTION LOAD of a library the server has).
func IsAlreadyExists(err error) bool {
	return err != nil && strings.Contains(err.Error(), "already exists")
}

// IsAuthFailure reports whether err is a refused authentication.
func IsAuthFailure(err error) bool {
	if err == nil {
		return false
	}
	msg := err.Error()
	return strings.HasPrefix(msg, "WRONGPASS") || strings.HasPrefix(msg, "NOAUTH") ||
		strings.Contains(msg, "invalid password") || strings.Contains(msg, "invalid username-password")
}

// IsReadOnly reports whether err is a READONLY reply: the server is a
// replica now (a failover demoted it).
func IsReadOnly(err error) bool {
	return err != nil && strings.HasPrefix(err.Error(), "READONLY")
}

// IsCertificateError reports whether err is a TLS certificate failure.
func IsCertificateError(err error) bool {
	return err != nil && strings.Contains(err.Error(), "certificate")
}

// ACLHint names the ACL rule a NOPERM refusal lacks: "…no permissions to
// run the 'watch' command" becomes "; the ACL user needs +watch".
func ACLHint(err error) string {
	msg := err.Error()
	i := strings.Index(msg, "NOPERM")
	if i < 0 {
		return ""
	}
	rest := msg[i:]
	if strings.Contains(rest, "access one of the keys") || strings.Contains(rest, "channel") {
		return "; the ACL user lacks access to that key: add a ~pattern rule that covers it (~* for every key)"
	}
	a := strings.Index(rest, "'")
	if a < 0 {
		return ""
	}
	b := strings.Index(rest[a+1:], "'")
	if b < 0 {
		return ""
	}
	what := rest[a+1 : a+1+b]
	return fmt.Sprintf("; the ACL user needs +%s (README: \"Least privilege\" lists what each command needs)", what)
}

// IsNoPerm reports whether err is an ACL refusal (NOPERM).
func IsNoPerm(err error) bool {
	return err != nil && strings.Contains(err.Error(), "NOPERM")
}

// CheckKeyAccess is the pre-flight of an ACL user's key rules (~pattern):
// it asks EXISTS of each of keys, keys the command will touch (a sample
// of each --match pattern, or a made-up one when any key may come), and
// returns an error naming the first the user may not touch, with why
// that matters; nil when each may be touched, and for any other answer
// (a key another cluster node serves, a command rule: the command's own
// first refusal names those).
func CheckKeyAccess(ctx context.Context, c redis.Cmdable, addr string, keys []string, why string) error {
	for _, k := range keys {
		if err := c.Exists(ctx, k).Err(); IsNoPerm(err) && strings.Contains(err.Error(), "key") {
			return &Error{Addr: addr, Err: fmt.Errorf("the ACL user may not touch key %q: %s: %w", k, why, err)}
		}
	}
	return nil
}
