package blob

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/minio/minio-go/v7/pkg/s3utils"
)

// redacted replaces secrets wherever a config is printed or logged.
const redacted = "<redacted>"

// S3Config says which S3 bucket an S3 store uses and how to reach it.
//
// String, GoString and LogValue print SecretKey as "<redacted>", so a config
// can be logged and printed whole.
type S3Config struct {
	// Endpoint is host:port, without a scheme.
	Endpoint string `yaml:"endpoint"`
	Bucket   string `yaml:"bucket"`
	// AccessKey and SecretKey are the S3 (AWS v4) credentials.
	AccessKey string `yaml:"access_key"`
	SecretKey string `yaml:"secret_key"`
	// Region is sent in signatures; empty lets the client discover it.
	Region string `yaml:"region"`
	UseSSL bool   `yaml:"use_ssl"`
	// Prefix, if set, is prepended with a '/' to every key, so that one
	// bucket can hold several stores.
	Prefix string `yaml:"prefix"`
	// CreateBucket makes NewS3 create the bucket, with Object Lock enabled,
	// if it does not exist.
	CreateBucket bool `yaml:"create_bucket"`
}

// ParseS3URL parses a URL such as
//
//	s3://ACCESS:SECRET@host:9000/bucket/optional/prefix?ssl=false&region=us-east-1
//
// into an S3Config. A missing access key or secret is taken from the
// environment variables AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY. TLS is on
// unless ssl=false. The bucket may be left out (the config then fails
// Validate until one is set); unknown query parameters are refused. Errors
// never contain the secret.
func ParseS3URL(rawURL string) (S3Config, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		// The error quotes the URL or a part of it, which may be the secret.
		if strings.Contains(rawURL, "@") {
			return S3Config{}, errors.New("parse s3 url: malformed (are special characters in the access key and secret percent-encoded?)")
		}
		if ue, ok := errors.AsType[*url.Error](err); ok {
			err = ue.Err
		}
		return S3Config{}, fmt.Errorf("parse s3 url: %w", err)
	}
	if u.Scheme != "s3" {
		return S3Config{}, fmt.Errorf("parse s3 url: scheme %q, want s3", u.Scheme)
	}
	if u.Opaque != "" || u.Host == "" {
		return S3Config{}, errors.New("parse s3 url: no host, want s3://host:port/bucket")
	}
	if u.Fragment != "" {
		return S3Config{}, errors.New("parse s3 url: unexpected fragment (is a '#' in the secret not escaped as %23?)")
	}
	cfg := S3Config{Endpoint: u.Host, UseSSL: true}
	if u.User != nil {
		cfg.AccessKey = u.User.Username()
		cfg.SecretKey, _ = u.User.Password()
	}
	if cfg.AccessKey == "" {
		cfg.AccessKey = os.Getenv("AWS_ACCESS_KEY_ID")
	}
	if cfg.SecretKey == "" {
		cfg.SecretKey = os.Getenv("AWS_SECRET_ACCESS_KEY")
	}
	cfg.Bucket, cfg.Prefix, _ = strings.Cut(strings.Trim(u.Path, "/"), "/")
	query, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return S3Config{}, fmt.Errorf("parse s3 url: query: %w", err)
	}
	for name, values := range query {
		if len(values) != 1 {
			return S3Config{}, fmt.Errorf("parse s3 url: parameter %s given %d times", name, len(values))
		}
		switch v := values[0]; name {
		case "ssl":
			cfg.UseSSL, err = strconv.ParseBool(v)
			if err != nil {
				return S3Config{}, fmt.Errorf("parse s3 url: ssl=%q: want true or false", v)
			}
		case "region":
			cfg.Region = v
		default:
			return S3Config{}, fmt.Errorf("parse s3 url: unknown parameter %q (known: ssl, region)", name)
		}
	}
	return cfg, nil
}

// Validate reports what is missing or malformed in the config.
func (c S3Config) Validate() error {
	var errs []error
	switch {
	case c.Endpoint == "":
		errs = append(errs, errors.New("endpoint is empty"))
	case strings.Contains(c.Endpoint, "/"):
		errs = append(errs, fmt.Errorf("endpoint %q: want host:port without a scheme or path", c.Endpoint))
	}
	if err := s3utils.CheckValidBucketNameStrict(c.Bucket); err != nil {
		errs = append(errs, fmt.Errorf("bucket %q: %w", c.Bucket, err))
	}
	if c.AccessKey == "" || c.SecretKey == "" {
		errs = append(errs, errors.New("access key and secret key are both required"))
	}
	if p := strings.Trim(c.Prefix, "/"); p != "" {
		if err := CheckKey(p); err != nil {
			errs = append(errs, fmt.Errorf("prefix: %w", err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("s3 config: %w", err)
	}
	return nil
}

// String returns the config as an s3:// URL with the secret redacted.
func (c S3Config) String() string {
	var b strings.Builder
	b.WriteString("s3://")
	if c.AccessKey != "" || c.SecretKey != "" {
		b.WriteString(url.PathEscape(c.AccessKey))
		if c.SecretKey != "" {
			b.WriteString(":" + redacted)
		}
		b.WriteString("@")
	}
	b.WriteString(c.Endpoint + "/" + c.Bucket)
	if p := strings.Trim(c.Prefix, "/"); p != "" {
		b.WriteString("/" + p)
	}
	b.WriteString("?ssl=" + strconv.FormatBool(c.UseSSL))
	if c.Region != "" {
		b.WriteString("&region=" + url.QueryEscape(c.Region))
	}
	return b.String()
}

// GoString is String, so that %#v does not print the secret either.
func (c S3Config) GoString() string { return "blob.S3Config(" + c.String() + ")" }

// LogValue logs the config as a group with the secret redacted.
func (c S3Config) LogValue() slog.Value {
	secret := ""
	if c.SecretKey != "" {
		secret = redacted
	}
	return slog.GroupValue(
		slog.String("endpoint", c.Endpoint),
		slog.String("bucket", c.Bucket),
		slog.String("prefix", c.Prefix),
		slog.String("region", c.Region),
		slog.Bool("use_ssl", c.UseSSL),
		slog.String("access_key", c.AccessKey),
		slog.String("secret_key", secret),
		slog.Bool("create_bucket", c.CreateBucket),
	)
}

// S3 is a Store in an S3 bucket, through minio-go: MinIO, Ceph RGW, or any S3
// with Object Lock.
//
// Every Put carries the SHA-256 of its content (as a trailing
// x-amz-checksum-sha256, per part for multipart uploads), so the server
// refuses an upload whose bytes were corrupted on the way.
type S3 struct {
	client    *minio.Client
	transport *http.Transport
	bucket    string
	prefix    string // "" or ends in '/'
}

var _ Store = (*S3)(nil)

// NewS3 returns a Store in the configured bucket. It contacts the server only
// if cfg.CreateBucket is set, to create the bucket with Object Lock enabled
// when it is missing; use Ping to check that the bucket is reachable.
func NewS3(ctx context.Context, cfg S3Config) (*S3, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	transport, err := minio.DefaultTransport(cfg.UseSSL)
	if err != nil {
		return nil, fmt.Errorf("s3 client for %s: %w", cfg.Endpoint, err)
	}
	client, err := minio.New(cfg.Endpoint, &minio.Options{
		Creds:     credentials.NewStaticV4(cfg.AccessKey, cfg.SecretKey, ""),
		Secure:    cfg.UseSSL,
		Region:    cfg.Region,
		Transport: transport,
		// Needed for PutObjectOptions.Checksum: the SHA-256 is computed while
		// streaming and sent as a trailer.
		TrailingHeaders: true,
	})
	if err != nil {
		return nil, fmt.Errorf("s3 client for %s: %w", cfg.Endpoint, err)
	}
	s := &S3{client: client, transport: transport, bucket: cfg.Bucket}
	if p := strings.Trim(cfg.Prefix, "/"); p != "" {
		s.prefix = p + "/"
	}
	if cfg.CreateBucket {
		if err := s.createBucket(ctx, cfg.Region); err != nil {
			return nil, err
		}
	}
	return s, nil
}

func (s *S3) createBucket(ctx context.Context, region string) error {
	exists, err := s.client.BucketExists(ctx, s.bucket)
	if err != nil {
		return fmt.Errorf("check bucket %s: %w", s.bucket, err)
	}
	if exists {
		return nil
	}
	err = s.client.MakeBucket(ctx, s.bucket, minio.MakeBucketOptions{Region: region, ObjectLocking: true})
	if err != nil && minio.ToErrorResponse(err).Code != minio.BucketAlreadyOwnedByYou {
		return fmt.Errorf("create bucket %s: %w", s.bucket, err)
	}
	return nil
}

// Put uploads the object. S3 makes it visible only once it is complete. If
// size is not -1, a body of any other length is refused and nothing is
// stored.
func (s *S3) Put(ctx context.Context, key string, r io.Reader, size int64) error {
	if err := CheckKey(key); err != nil {
		return fmt.Errorf("put object: %w", err)
	}
	if err := s.put(ctx, s.prefix+key, r, size); err != nil {
		return fmt.Errorf("put object %s: %w", key, err)
	}
	return nil
}

func (s *S3) put(ctx context.Context, name string, r io.Reader, size int64) error {
	seeker, seekable := r.(io.Seeker)
	if seekable && size >= 0 {
		// Checked up front: minio-go would find a short body only after
		// retrying it for seconds, and would store the first size bytes of
		// a long one.
		if err := checkSize(seeker, size); err != nil {
			return err
		}
	}
	body := r
	if !seekable && size >= 0 {
		// Left to itself, minio-go may read past size, and may send a short
		// body with the length it was told; the HTTP request then fails
		// and is retried for seconds.
		body = &sizedReader{r: r, size: size}
	}
	info, err := s.client.PutObject(ctx, s.bucket, name, body, size, minio.PutObjectOptions{
		ContentType: "application/octet-stream",
		Checksum:    minio.ChecksumSHA256,
	})
	if err != nil {
		return err
	}
	if seekable || size < 0 {
		return nil
	}
	// minio-go read exactly size bytes of a body it cannot seek: if r has
	// more, what it stored is truncated and must go again (a reader may
	// have seen it meanwhile).
	var extra [1]byte
	if n, _ := io.ReadFull(r, extra[:]); n == 0 {
		return nil
	}
	err = fmt.Errorf("body longer than %d bytes", size)
	rmErr := s.client.RemoveObject(ctx, s.bucket, name, minio.RemoveObjectOptions{VersionID: info.VersionID})
	if rmErr != nil {
		return fmt.Errorf("%w; remove the truncated upload (version %s): %w", err, info.VersionID, rmErr)
	}
	return err
}

// sizedReader reads the first size bytes of r, and fails if r ends sooner.
type sizedReader struct {
	r          io.Reader
	size, read int64
}

func (s *sizedReader) Read(p []byte) (int, error) {
	left := s.size - s.read
	if left <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > left {
		p = p[:left]
	}
	n, err := s.r.Read(p)
	s.read += int64(n)
	if errors.Is(err, io.EOF) && s.read < s.size {
		err = fmt.Errorf("body ended after %d of %d bytes", s.read, s.size)
	}
	return n, err
}

// checkSize reports whether size bytes remain between r's offset and its end.
func checkSize(r io.Seeker, size int64) error {
	cur, err := r.Seek(0, io.SeekCurrent)
	if err != nil {
		return fmt.Errorf("check body size: %w", err)
	}
	end, err := r.Seek(0, io.SeekEnd)
	if err != nil {
		return fmt.Errorf("check body size: %w", err)
	}
	if _, err := r.Seek(cur, io.SeekStart); err != nil {
		return fmt.Errorf("check body size: %w", err)
	}
	if n := end - cur; n != size {
		return fmt.Errorf("body is %d bytes, want %d", n, size)
	}
	return nil
}

// Get opens the object for reading. The caller closes it. The reader reads
// under ctx: it fails once ctx ends.
func (s *S3) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	if err := CheckKey(key); err != nil {
		return nil, fmt.Errorf("get object: %w", err)
	}
	obj, err := s.client.GetObject(ctx, s.bucket, s.prefix+key, minio.GetObjectOptions{})
	if err != nil {
		return nil, fmt.Errorf("get object %s: %w", key, mapS3Err(err))
	}
	// GetObject is lazy; Stat sends the request, so a missing object is
	// reported here rather than on the first Read.
	if _, err := obj.Stat(); err != nil {
		_ = obj.Close() // Nothing was read: closing loses nothing.
		return nil, fmt.Errorf("get object %s: %w", key, mapS3Err(err))
	}
	return obj, nil
}

// Stat returns the object's size and modification time, or ErrNotFound.
func (s *S3) Stat(ctx context.Context, key string) (Attrs, error) {
	if err := CheckKey(key); err != nil {
		return Attrs{}, fmt.Errorf("stat object: %w", err)
	}
	info, err := s.client.StatObject(ctx, s.bucket, s.prefix+key, minio.StatObjectOptions{})
	if err != nil {
		return Attrs{}, fmt.Errorf("stat object %s: %w", key, mapS3Err(err))
	}
	return Attrs{Size: info.Size, ModTime: info.LastModified}, nil
}

// List calls fn for every key that starts with prefix, in lexical (byte)
// order. It stops at the first error fn returns and returns it. Objects in
// the bucket whose names are not valid keys are skipped.
func (s *S3) List(ctx context.Context, prefix string, fn func(key string) error) error {
	if err := checkPrefix(prefix); err != nil {
		return fmt.Errorf("list objects: %w", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // Stops the listing when fn fails.
	opts := minio.ListObjectsOptions{Prefix: s.prefix + prefix, Recursive: true}
	for obj := range s.client.ListObjectsIter(ctx, s.bucket, opts) {
		if obj.Err != nil {
			return fmt.Errorf("list objects %q: %w", prefix, obj.Err)
		}
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("list objects %q: %w", prefix, err)
		}
		key := strings.TrimPrefix(obj.Key, s.prefix)
		if CheckKey(key) != nil {
			continue
		}
		if err := fn(key); err != nil {
			return fmt.Errorf("list objects %q: %w", prefix, err)
		}
	}
	// minio-go ends the listing quietly when ctx ends: it is not complete.
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("list objects %q: %w", prefix, err)
	}
	return nil
}

// Delete removes every version of the object. Deleting a missing object is
// not an error.
//
// A bucket with Object Lock is versioned, and a plain S3 delete there only
// adds a delete marker and keeps the bytes. Footage past its retention must
// really go (152-FZ), so Delete removes each version, delete markers
// included. A version still under retention or legal hold is refused by the
// server, and Delete returns that error, wrapping ErrRetained.
func (s *S3) Delete(ctx context.Context, key string) error {
	if err := CheckKey(key); err != nil {
		return fmt.Errorf("delete object: %w", err)
	}
	name := s.prefix + key
	var versions []string
	err := func() error {
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		opts := minio.ListObjectsOptions{Prefix: name, Recursive: true, WithVersions: true}
		for obj := range s.client.ListObjectsIter(ctx, s.bucket, opts) {
			switch {
			case obj.Err != nil:
				return obj.Err
			case obj.Key == name:
				versions = append(versions, obj.VersionID)
			case obj.Key > name:
				return nil // Versions come in key order; the rest are other keys.
			}
		}
		return ctx.Err() // minio-go ends the listing quietly when ctx ends.
	}()
	if err != nil {
		return fmt.Errorf("delete object %s: list versions: %w", key, err)
	}
	for _, v := range versions {
		// An unversioned bucket lists its objects with version "null", which
		// S3 takes to mean the only version.
		err := s.client.RemoveObject(ctx, s.bucket, name, minio.RemoveObjectOptions{VersionID: v})
		if err != nil && !errors.Is(mapS3Err(err), ErrNotFound) {
			return fmt.Errorf("delete object %s version %s: %w", key, v, retainedErr(err))
		}
	}
	return nil
}

// Ping reports whether the bucket exists and the credentials are accepted,
// for readiness checks.
func (s *S3) Ping(ctx context.Context) error {
	exists, err := s.client.BucketExists(ctx, s.bucket)
	if err != nil {
		return fmt.Errorf("ping bucket %s: %w", s.bucket, err)
	}
	if !exists {
		return fmt.Errorf("ping bucket %s: bucket does not exist", s.bucket)
	}
	return nil
}

// Close closes idle connections to the server. The store stays usable: a
// later call opens new ones. Tests call it so that no connection goroutines
// outlive them.
func (s *S3) Close() error {
	s.transport.CloseIdleConnections()
	return nil
}

// mapS3Err wraps ErrNotFound around the S3 error for a missing object, and
// returns other errors as they are.
func mapS3Err(err error) error {
	switch minio.ToErrorResponse(err).Code {
	case minio.NoSuchKey, minio.NoSuchVersion:
		return fmt.Errorf("%w: %w", ErrNotFound, err)
	}
	return err
}
