// Package clouds gives the store package its object stores: s3:// (AWS
// and S3-compatible servers), gs:// (Google Cloud Storage) and azblob://
// (Azure Blob Storage), through gocloud.dev/blob's drivers. The command
// imports it; the libraries that read and write files do not, so that
// their tests build without the clouds' SDKs.
//
// gs:// costs the most: Google's storage client brings gRPC and its xDS,
// about 25 MB of resident memory in every crs process and 30 MB of
// binary. go build -tags nogcs leaves it out (and -tags noazure
// azblob://); such a build says so when given one of their URLs.
package clouds

import (
	"context"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go/logging"
	"gocloud.dev/blob"
	"gocloud.dev/blob/s3blob"

	"github.com/crs-tool/crs/internal/store"
)

// init registers s3:// (by s3Opener, and abortUploads for what an
// aborted upload leaves).
func init() {
	store.Register(s3blob.Scheme, s3Opener{}.OpenBucketURL)
	store.RegisterLeftovers(s3blob.Scheme, abortUploads)
}

// abortUploads aborts the multipart uploads to key of bucket begun since
// since (less a minute, for the clocks of client and server), which an
// aborted Writer left: another process's upload to key, begun before,
// is left alone.
func abortUploads(ctx context.Context, b *blob.Bucket, bucket, key string, since time.Time) error {
	var c *s3.Client
	if !b.As(&c) {
		return nil
	}
	list, err := c.ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{Bucket: aws.String(bucket), Prefix: aws.String(key)})
	if err != nil {
		return err
	}
	for _, up := range list.Uploads {
		if aws.ToString(up.Key) != key || up.Initiated != nil && up.Initiated.Before(since.Add(-time.Minute)) {
			continue
		}
		if _, err := c.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{Bucket: aws.String(bucket), Key: up.Key, UploadId: up.UploadId}); err != nil {
			return err
		}
	}
	return nil
}

// byBlob opens a bucket as gocloud.dev/blob does, with the drivers this
// build holds (gs://: Google's application default credentials;
// azblob://: Azure's environment and identities).
func byBlob(ctx context.Context, u *url.URL) (*blob.Bucket, error) {
	return blob.OpenBucket(ctx, u.String())
}

// s3Params are the query parameters an s3:// URL may have.
var s3Params = []string{"region", "endpoint", "profile", "use_path_style", "disable_https", "anonymous", "ssetype", "kmskeyid"}

// s3Opener opens s3:// URLs as s3blob's opener does, with the SDK's own
// log silenced: its warnings (a missing instance metadata service while it
// looks for credentials) would break crs's one line per error. It takes
// the parameters of s3Params, as gocloud.dev/blob/s3blob documents them.
type s3Opener struct{}

func (s3Opener) OpenBucketURL(ctx context.Context, u *url.URL) (*blob.Bucket, error) {
	q := u.Query()
	opts := []func(*config.LoadOptions) error{
		config.WithLogger(logging.Nop{}),
		// Retry each request (an upload's part among them) with backoff,
		// not limited by the client's retry budget.
		config.WithRetryer(func() aws.Retryer {
			return retry.NewStandard(func(o *retry.StandardOptions) { o.RateLimiter = ratelimit.None })
		}),
	}
	var s3opts []func(*s3.Options)
	var bopts s3blob.Options
	for k := range q {
		if !slices.Contains(s3Params, k) {
			return nil, fmt.Errorf("s3:// URL: unknown query parameter %q (known: %v)", k, s3Params)
		}
	}
	flag := func(k string) (bool, error) {
		if q.Get(k) == "" {
			return false, nil
		}
		v, err := strconv.ParseBool(q.Get(k))
		if err != nil {
			return false, fmt.Errorf("s3:// URL: %s=%q is not true or false", k, q.Get(k))
		}
		return v, nil
	}
	if v := q.Get("region"); v != "" {
		opts = append(opts, config.WithRegion(v))
	}
	if v := q.Get("profile"); v != "" {
		opts = append(opts, config.WithSharedConfigProfile(v))
	}
	if v, err := flag("anonymous"); err != nil {
		return nil, err
	} else if v {
		opts = append(opts, config.WithCredentialsProvider(aws.AnonymousCredentials{}))
	}
	if v := q.Get("endpoint"); v != "" {
		s3opts = append(s3opts, func(o *s3.Options) { o.BaseEndpoint = aws.String(v) })
	}
	if v, err := flag("use_path_style"); err != nil {
		return nil, err
	} else if v {
		s3opts = append(s3opts, func(o *s3.Options) { o.UsePathStyle = true })
	}
	if v, err := flag("disable_https"); err != nil {
		return nil, err
	} else if v {
		s3opts = append(s3opts, func(o *s3.Options) { o.EndpointOptions.DisableHTTPS = true })
	}
	if v := q.Get("ssetype"); v != "" {
		bopts.EncryptionType = types.ServerSideEncryption(v)
		if !slices.Contains(types.ServerSideEncryptionAes256.Values(), bopts.EncryptionType) {
			return nil, fmt.Errorf("s3:// URL: ssetype=%q is not one of %v", v, types.ServerSideEncryptionAes256.Values())
		}
	}
	bopts.KMSEncryptionID = q.Get("kmskeyid")
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("AWS configuration: %w", err)
	}
	bopts.RequestChecksumCalculation = cfg.RequestChecksumCalculation
	return s3blob.OpenBucket(ctx, s3.NewFromConfig(cfg, s3opts...), u.Host, &bopts)
}
