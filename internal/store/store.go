// Package store opens the files crs writes and reads, where a path or a
// URL names them: a local path (or file:///path), or an object in a
// bucket, s3://bucket/key, gs://bucket/key or azblob://container/key,
// through gocloud.dev/blob. Credentials come from each cloud's standard
// chain (AWS's environment, profiles and instance roles; Google's
// application default credentials; Azure's environment and managed
// identity); no credential is ever taken from, or printed in, a URL.
//
// The clouds are registered by the package internal/store/clouds, which
// the command imports. A URL's query configures its bucket, as
// gocloud.dev/blob documents it (of s3://, the parameters clouds lists):
// s3://crs/dumps/?endpoint=http://127.0.0.1:7070&use_path_style=true
// names an S3-compatible server; the query is kept when a name is joined
// to a URL of a directory.
//
// Nothing written here looks whole before it is: a local file is written
// as NAME.tmp and renamed when committed, an object upload (multipart,
// with bounded memory, each part retried by the cloud's SDK) becomes
// visible only when committed, and an aborted one never does.
package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"gocloud.dev/blob"
	"gocloud.dev/gcerrors"
)

// schemes are the URL schemes of object storage.
var schemes = []string{"s3://", "gs://", "azblob://"}

// openers open the buckets of a scheme; Register fills it.
var openers = map[string]func(context.Context, *url.URL) (*blob.Bucket, error){}

// Register makes open the opener of the buckets of scheme (s3, gs,
// azblob). It is called from init functions, before any use.
func Register(scheme string, open func(context.Context, *url.URL) (*blob.Bucket, error)) {
	openers[scheme] = open
}

// leftovers remove what an aborted upload left on the server, by scheme;
// RegisterLeftovers fills it.
var leftovers = map[string]func(ctx context.Context, b *blob.Bucket, bucket, key string, since time.Time) error{}

// RegisterLeftovers makes remove what removes, after an upload to key of
// bucket (b) of scheme begun at since was aborted, what it left on the
// server: S3 keeps the parts of an upload its client gave up on (the
// client's own abort is sent with the context already ended) until they
// are aborted, billed and invisible. It is called from init functions.
func RegisterLeftovers(scheme string, remove func(ctx context.Context, b *blob.Bucket, bucket, key string, since time.Time) error) {
	leftovers[scheme] = remove
}

// openBucket opens the bucket of a URL by its scheme's opener.
func openBucket(ctx context.Context, u *url.URL) (*blob.Bucket, error) {
	open := openers[u.Scheme]
	if open == nil {
		return nil, fmt.Errorf("%s:// is not in this build of crs (built with -tags nogcs or noazure)", u.Scheme)
	}
	return open(ctx, u)
}

// IsURL reports whether name is a URL of object storage.
func IsURL(name string) bool {
	for _, s := range schemes {
		if strings.HasPrefix(name, s) {
			return true
		}
	}
	return false
}

// Local returns the path a file:// URL names, and any other name as it
// is; a file URL with a host other than localhost is an error.
func Local(name string) (string, error) {
	if !strings.HasPrefix(name, "file://") {
		return name, nil
	}
	u, err := url.Parse(name)
	if err != nil {
		return "", fmt.Errorf("%s: %w", name, err)
	}
	if u.Host != "" && u.Host != "localhost" {
		return "", fmt.Errorf("%s: a file URL names a file of this machine (file:///path), not of %s", name, u.Host)
	}
	p := u.Path
	if strings.HasSuffix(name, "/") && !strings.HasSuffix(p, "/") {
		p += "/"
	}
	return p, nil
}

// IsDir reports whether name names a directory: it ends in a slash (of a
// URL, its path does), or it is a local directory.
func IsDir(name string) bool {
	if IsURL(name) {
		u, err := url.Parse(name)
		return err == nil && strings.HasSuffix(u.Path, "/")
	}
	if strings.HasSuffix(name, "/") {
		return true
	}
	fi, err := os.Stat(name)
	return err == nil && fi.IsDir()
}

// Join returns the name of file name in directory dir, a path or a URL
// (whose query it keeps).
func Join(dir, name string) string {
	if !IsURL(dir) {
		return filepath.Join(dir, name)
	}
	u, err := url.Parse(dir)
	if err != nil {
		return dir + "/" + name
	}
	u.Path = path.Join(u.Path, name)
	return u.String()
}

// Redact returns name for messages: a URL without its query.
func Redact(name string) string {
	if !IsURL(name) {
		return name
	}
	if i := strings.IndexByte(name, '?'); i >= 0 {
		return name[:i]
	}
	return name
}

// split opens the bucket of a URL and returns it with the key the URL's
// path names (without its leading slash).
func split(ctx context.Context, name string) (*blob.Bucket, string, error) {
	u, err := url.Parse(name)
	if err != nil {
		return nil, "", fmt.Errorf("%s: %w", Redact(name), err)
	}
	key := strings.TrimPrefix(u.Path, "/")
	u.Path = ""
	b, err := openBucket(ctx, u)
	if err != nil {
		return nil, "", fmt.Errorf("open bucket %s://%s: %w", u.Scheme, u.Host, err)
	}
	return b, key, nil
}

// mustParse parses a URL split has parsed already.
func mustParse(name string) *url.URL {
	u, _ := url.Parse(name)
	return u
}

// Open opens the file or object name for reading.
func Open(ctx context.Context, name string) (io.ReadCloser, error) {
	if !IsURL(name) {
		return os.Open(name)
	}
	b, key, err := split(ctx, name)
	if err != nil {
		return nil, err
	}
	r, err := b.NewReader(ctx, key, nil)
	if err != nil {
		b.Close()
		return nil, fmt.Errorf("open %s: %w", Redact(name), notExist(err))
	}
	return &reader{Reader: r, bucket: b}, nil
}

// reader closes its bucket with the object.
type reader struct {
	*blob.Reader
	bucket *blob.Bucket
}

func (r *reader) Close() error {
	err := r.Reader.Close()
	if berr := r.bucket.Close(); err == nil {
		err = berr
	}
	return err
}

// notExist marks a blob's not-found error as fs.ErrNotExist too, and
// says the rest shortly (describe).
func notExist(err error) error {
	if gcerrors.Code(err) == gcerrors.NotFound {
		return fmt.Errorf("%w (%w)", fs.ErrNotExist, describe(err))
	}
	return describe(err)
}

// apiError is what the clouds' SDKs' service errors tell (AWS's smithy
// APIError among them): the service's code and message.
type apiError interface {
	ErrorCode() string
	ErrorMessage() string
}

// describedError says an object store's error in one short clause, and
// unwraps to it.
type describedError struct {
	msg string
	err error
}

func (e *describedError) Error() string { return e.msg }
func (e *describedError) Unwrap() error { return e.err }

// describe says err shortly: the service's code and message where it
// answered (not the SDK's request and host IDs), with a word on where
// credentials come from when they were refused.
func describe(err error) error {
	if err == nil {
		return nil
	}
	var ae apiError
	msg, creds := err.Error(), strings.Contains(err.Error(), "get credentials")
	if errors.As(err, &ae) {
		msg = ae.ErrorCode() + ": " + ae.ErrorMessage()
		switch ae.ErrorCode() {
		case "SignatureDoesNotMatch", "InvalidAccessKeyId", "AccessDenied", "ExpiredToken", "InvalidToken", "AuthorizationPermissionMismatch":
			creds = true
		}
	} else if i := strings.Index(msg, "(code="); strings.HasPrefix(msg, "blob") && i >= 0 {
		if j := strings.Index(msg[i:], "): "); j >= 0 {
			msg = msg[i+j+3:] // without blob's "blob (key ...) (code=...): "
		}
	}
	if creds || gcerrors.Code(err) == gcerrors.PermissionDenied {
		msg += " (credentials come from the cloud's standard chain: for s3://, AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or the machine's role; for gs://, GOOGLE_APPLICATION_CREDENTIALS or the machine's account; for azblob://, AZURE_STORAGE_ACCOUNT with AZURE_STORAGE_KEY or an identity)"
	}
	return &describedError{msg: msg, err: err}
}

// ReadFile returns the content of the file or object name.
func ReadFile(ctx context.Context, name string) ([]byte, error) {
	r, err := Open(ctx, name)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", Redact(name), err)
	}
	return b, nil
}

// Dir returns the directory dir as a file system, to list and read: a
// local directory, or the objects under a URL's path. Close releases it.
func Dir(ctx context.Context, dir string) (fs.FS, func() error, error) {
	if !IsURL(dir) {
		return os.DirFS(dir), func() error { return nil }, nil
	}
	b, key, err := split(ctx, dir)
	if err != nil {
		return nil, nil, err
	}
	if key = strings.TrimSuffix(key, "/"); key != "" {
		b = blob.PrefixedBucket(b, key+"/")
	}
	b.SetIOFSCallback(func() (context.Context, *blob.ReaderOptions) { return ctx, nil })
	return b, b.Close, nil
}

// A Writer writes a file or an object that no reader sees before Commit.
type Writer struct {
	w      io.Writer
	commit func() error
	abort  func()
	done   bool
}

// Write writes p.
func (w *Writer) Write(p []byte) (int, error) { return w.w.Write(p) }

// Commit makes what was written the file's or object's content, whole.
func (w *Writer) Commit() error {
	if w.done {
		return errors.New("store: committed twice")
	}
	w.done = true
	return w.commit()
}

// Abort throws away what was written; nothing is left under the name.
// After Commit it does nothing.
func (w *Writer) Abort() {
	if !w.done {
		w.done = true
		w.abort()
	}
}

// Create returns a Writer of the file or object name. A local file is
// written as NAME.tmp, mode 0600, synced and renamed on Commit. An object
// is uploaded as it is written, in parts of partSize bytes (at most two
// in memory; 0 means 8 MiB), and made whole on Commit.
func Create(ctx context.Context, name string, partSize int) (*Writer, error) {
	if !IsURL(name) {
		return createFile(name)
	}
	b, key, err := split(ctx, name)
	if err != nil {
		return nil, err
	}
	if key == "" || strings.HasSuffix(key, "/") {
		b.Close()
		return nil, fmt.Errorf("create %s: the URL names a directory, not an object", Redact(name))
	}
	if partSize <= 0 {
		partSize = 8 << 20
	}
	began, u := time.Now(), mustParse(name)
	wctx, cancel := context.WithCancel(ctx)
	bw, err := b.NewWriter(wctx, key, &blob.WriterOptions{
		BufferSize: partSize, MaxConcurrency: 2,
		ContentType: contentType(key),
	})
	if err != nil {
		cancel()
		b.Close()
		return nil, fmt.Errorf("create %s: %w", Redact(name), err)
	}
	return &Writer{
		w: bw,
		commit: func() error {
			defer cancel()
			defer b.Close()
			if err := bw.Close(); err != nil {
				return fmt.Errorf("upload %s: %w", Redact(name), describe(err))
			}
			return nil
		},
		abort: func() {
			cancel() // an upload whose context ends before Close is not made
			bw.Close()
			if remove := leftovers[u.Scheme]; remove != nil {
				// On a context of its own: the dump's may have ended (^C).
				rctx, done := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
				remove(rctx, b, u.Host, key, began)
				done()
			}
			b.Close()
		},
	}, nil
}

// contentType names what an object holds, so that a browser of the
// bucket shows it; the upload does not sniff it.
func contentType(key string) string {
	switch {
	case strings.HasSuffix(key, ".json"):
		return "application/json"
	case strings.HasSuffix(key, ".zst"):
		return "application/zstd"
	case strings.HasSuffix(key, ".jsonl"):
		return "application/jsonl"
	}
	return "application/octet-stream"
}

// createFile writes NAME.tmp, renamed to NAME on Commit.
func createFile(name string) (*Writer, error) {
	tmp := name + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("create output: %w", err)
	}
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		os.Remove(tmp)
		return nil, fmt.Errorf("create output: %w", err)
	}
	return &Writer{
		w: f,
		commit: func() error {
			err := f.Sync()
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err == nil {
				err = os.Rename(tmp, name)
			}
			if err != nil {
				os.Remove(tmp)
				return fmt.Errorf("write %s: %w", name, err)
			}
			return nil
		},
		abort: func() {
			f.Close()
			os.Remove(tmp)
		},
	}, nil
}

// WriteFile writes data as the whole content of the file or object name,
// atomically.
func WriteFile(ctx context.Context, name string, data []byte) error {
	w, err := Create(ctx, name, 0)
	if err != nil {
		return err
	}
	if _, err := w.Write(data); err != nil {
		w.Abort()
		return fmt.Errorf("write %s: %w", Redact(name), err)
	}
	return w.Commit()
}

// MkdirAll makes a local directory and its parents; of a URL, whose
// directories are only its objects' prefixes, it does nothing.
func MkdirAll(dir string) error {
	if IsURL(dir) {
		return nil
	}
	return os.MkdirAll(dir, 0o755)
}
