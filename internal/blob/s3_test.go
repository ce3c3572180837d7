package blob_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/nokstream/nokstream/internal/blob"
	"github.com/nokstream/nokstream/internal/testenv"
)

func TestParseS3URL(t *testing.T) {
	// Not parallel: it sets environment variables.
	tests := []struct {
		name    string
		url     string
		env     map[string]string
		want    blob.S3Config
		wantErr string
	}{
		{
			name: "full",
			url:  "s3://AK:SK@minio.local:9000/evidence/site/1?ssl=false&region=ru-central-1",
			want: blob.S3Config{Endpoint: "minio.local:9000", Bucket: "evidence", Prefix: "site/1",
				AccessKey: "AK", SecretKey: "SK", Region: "ru-central-1"},
		},
		{
			name: "TLS by default, no prefix",
			url:  "s3://AK:SK@s3.example.com/evidence",
			want: blob.S3Config{Endpoint: "s3.example.com", Bucket: "evidence", AccessKey: "AK", SecretKey: "SK", UseSSL: true},
		},
		{
			name: "escaped secret",
			url:  "s3://AK:s%2Fe%40c%23r%3Aet@h:9000/b?ssl=false",
			want: blob.S3Config{Endpoint: "h:9000", Bucket: "b", AccessKey: "AK", SecretKey: "s/e@c#r:et"},
		},
		{
			name: "credentials from the environment",
			url:  "s3://h:9000/b/?ssl=false",
			env:  map[string]string{"AWS_ACCESS_KEY_ID": "envAK", "AWS_SECRET_ACCESS_KEY": "envSK"},
			want: blob.S3Config{Endpoint: "h:9000", Bucket: "b", AccessKey: "envAK", SecretKey: "envSK"},
		},
		{
			name: "secret from the environment",
			url:  "s3://AK@h:9000/b?ssl=false",
			env:  map[string]string{"AWS_ACCESS_KEY_ID": "envAK", "AWS_SECRET_ACCESS_KEY": "envSK"},
			want: blob.S3Config{Endpoint: "h:9000", Bucket: "b", AccessKey: "AK", SecretKey: "envSK"},
		},
		{
			name: "no bucket",
			url:  "s3://AK:SK@h:9000?ssl=false",
			want: blob.S3Config{Endpoint: "h:9000", AccessKey: "AK", SecretKey: "SK"},
		},
		{name: "wrong scheme", url: "http://AK:S3CR3T@h:9000/b", wantErr: `scheme "http"`},
		{name: "no host", url: "s3:///b", wantErr: "no host"},
		{name: "unknown parameter", url: "s3://AK:S3CR3T@h/b?sll=false", wantErr: `unknown parameter "sll"`},
		{name: "bad ssl", url: "s3://AK:S3CR3T@h/b?ssl=maybe", wantErr: `ssl="maybe"`},
		{name: "repeated parameter", url: "s3://AK:S3CR3T@h/b?region=a&region=b", wantErr: "region given 2 times"},
		{name: "unescaped # in secret", url: "s3://AK:12#S3CR3T@h/b", wantErr: "fragment"},
		{name: "unescaped / in secret", url: "s3://AK:TOP/S3CR3T@h/b", wantErr: "percent-encoded"},
		{name: "malformed with secret", url: "s3://AK:TOPS3CR3T@h:port/b", wantErr: "percent-encoded"},
		{name: "malformed", url: "s3://h:port/b", wantErr: "invalid port"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("AWS_ACCESS_KEY_ID", tt.env["AWS_ACCESS_KEY_ID"])
			t.Setenv("AWS_SECRET_ACCESS_KEY", tt.env["AWS_SECRET_ACCESS_KEY"])
			got, err := blob.ParseS3URL(tt.url)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseS3URL(%q) = %v, want an error with %q", tt.url, err, tt.wantErr)
				}
				for _, secret := range []string{"S3CR3T", "TOP"} {
					if strings.Contains(err.Error(), secret) {
						t.Errorf("error %q shows the secret", err)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseS3URL(%q): %v", tt.url, err)
			}
			if got != tt.want {
				t.Errorf("ParseS3URL(%q) =\n%#v, want\n%#v (secrets %q, %q)", tt.url, got, tt.want, got.SecretKey, tt.want.SecretKey)
			}
		})
	}
}

func TestS3ConfigRedactsSecret(t *testing.T) {
	t.Parallel()
	const secret = "wJalrXUtnFEMI-very-secret"
	cfg := blob.S3Config{Endpoint: "h:9000", Bucket: "b", AccessKey: "AK", SecretKey: secret, Prefix: "p"}
	var logged bytes.Buffer
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("config", "s3", cfg)
	outer := struct{ S3 blob.S3Config }{cfg}
	for _, out := range []string{
		cfg.String(),
		fmt.Sprint(cfg),
		fmt.Sprintf("%v %+v %#v %s", cfg, cfg, cfg, cfg),
		fmt.Sprintf("%v %+v", &cfg, &cfg),
		fmt.Sprintf("%v %+v %#v", outer, outer, outer),
		logged.String(),
	} {
		if strings.Contains(out, secret) {
			t.Errorf("printed the secret: %s", out)
		}
		if !strings.Contains(out, "<redacted>") {
			t.Errorf("no <redacted> in %s", out)
		}
	}
	if got, want := cfg.String(), "s3://AK:<redacted>@h:9000/b/p?ssl=false"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
}

func TestS3ConfigValidate(t *testing.T) {
	t.Parallel()
	valid := blob.S3Config{Endpoint: "h:9000", Bucket: "evidence", AccessKey: "AK", SecretKey: "SK"}
	tests := []struct {
		name    string
		edit    func(*blob.S3Config)
		wantErr string
	}{
		{name: "valid", edit: func(*blob.S3Config) {}},
		{name: "valid prefix", edit: func(c *blob.S3Config) { c.Prefix = "/site/1/" }},
		{name: "no endpoint", edit: func(c *blob.S3Config) { c.Endpoint = "" }, wantErr: "endpoint is empty"},
		{name: "endpoint with scheme", edit: func(c *blob.S3Config) { c.Endpoint = "http://h:9000" }, wantErr: "without a scheme"},
		{name: "no bucket", edit: func(c *blob.S3Config) { c.Bucket = "" }, wantErr: "bucket"},
		{name: "bad bucket", edit: func(c *blob.S3Config) { c.Bucket = "Evidence_Bucket" }, wantErr: "bucket"},
		{name: "no secret", edit: func(c *blob.S3Config) { c.SecretKey = "" }, wantErr: "secret key"},
		{name: "bad prefix", edit: func(c *blob.S3Config) { c.Prefix = "a/../b" }, wantErr: "prefix"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := valid
			tt.edit(&cfg)
			err := cfg.Validate()
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("Validate() = %v, want nil", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("Validate() = %v, want an error with %q", err, tt.wantErr)
			}
		})
	}
	if _, err := blob.NewS3(t.Context(), blob.S3Config{}); err == nil {
		t.Error("NewS3 with an empty config succeeded")
	}
}

// adminClient returns a plain minio-go client for the test's server, to look
// at what the store did.
func adminClient(t *testing.T, env testenv.MinIOEnv) *minio.Client {
	t.Helper()
	transport, err := minio.DefaultTransport(env.UseSSL)
	if err != nil {
		t.Fatal(err)
	}
	transport.DisableKeepAlives = true // No connection outlives the test.
	c, err := minio.New(env.Endpoint, &minio.Options{
		Creds:     credentials.NewStaticV4(env.AccessKey, env.SecretKey, ""),
		Secure:    env.UseSSL,
		Region:    env.Region,
		Transport: transport,
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func newS3(t *testing.T, cfg blob.S3Config) *blob.S3 {
	t.Helper()
	s, err := blob.NewS3(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	})
	return s
}

// The server checks the SHA-256 that Put sends and keeps it: an upload
// corrupted on the way would have been refused.
func TestS3PutSendsSHA256(t *testing.T) {
	t.Parallel()
	env := testenv.MinIO(t)
	s := newS3(t, env.S3Config())
	data := randomBytes(3<<20, 7)
	put(t, s, "seg/1.m4s", data)

	info, err := adminClient(t, env).StatObject(t.Context(), env.Bucket, "seg/1.m4s", minio.StatObjectOptions{Checksum: true})
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	if want := base64.StdEncoding.EncodeToString(sum[:]); info.ChecksumSHA256 != want {
		t.Errorf("stored SHA-256 = %q, want %q", info.ChecksumSHA256, want)
	}
}

// In a bucket with Object Lock, and so versioning, Delete removes every
// version, not just adds a delete marker: the bytes are gone.
func TestS3DeleteRemovesAllVersions(t *testing.T) {
	t.Parallel()
	env := testenv.MinIO(t)
	s := newS3(t, env.S3Config())
	put(t, s, "k", []byte("v1"))
	put(t, s, "k", []byte("v2"))
	put(t, s, "k2", []byte("other key with k as a prefix"))
	if err := s.Delete(t.Context(), "k"); err != nil {
		t.Fatal(err)
	}
	var left []string
	opts := minio.ListObjectsOptions{Recursive: true, WithVersions: true}
	for obj := range adminClient(t, env).ListObjectsIter(t.Context(), env.Bucket, opts) {
		if obj.Err != nil {
			t.Fatal(obj.Err)
		}
		left = append(left, obj.Key)
	}
	if !slices.Equal(left, []string{"k2"}) {
		t.Errorf("versions left = %q, want only k2's", left)
	}
}

// Delete does not remove a version under legal hold: the server refuses, and
// Delete says so.
func TestS3DeleteRespectsLegalHold(t *testing.T) {
	t.Parallel()
	env := testenv.MinIO(t)
	s := newS3(t, env.S3Config())
	put(t, s, "held", []byte("evidence"))
	on := minio.LegalHoldEnabled
	err := adminClient(t, env).PutObjectLegalHold(t.Context(), env.Bucket, "held", minio.PutObjectLegalHoldOptions{Status: &on})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(t.Context(), "held"); err == nil {
		t.Error("Delete of an object under legal hold succeeded")
	}
	if got := string(get(t, s, "held")); got != "evidence" {
		t.Errorf("Get after refused Delete = %q", got)
	}
}

// Stores with different prefixes share a bucket without seeing each other.
func TestS3Prefix(t *testing.T) {
	t.Parallel()
	env := testenv.MinIO(t)
	cfg := env.S3Config()
	cfg.Prefix = "site-1/"
	one := newS3(t, cfg)
	cfg.Prefix = "site-2"
	two := newS3(t, cfg)
	whole := newS3(t, env.S3Config())

	put(t, one, "k", []byte("one"))
	put(t, two, "k", []byte("two"))
	put(t, two, "k2", []byte("two"))
	if got := list(t, one, ""); !slices.Equal(got, []string{"k"}) {
		t.Errorf("List in site-1 = %q, want [k]", got)
	}
	if got := string(get(t, two, "k")); got != "two" {
		t.Errorf("Get(k) in site-2 = %q, want two", got)
	}
	if got, want := list(t, whole, ""), []string{"site-1/k", "site-2/k", "site-2/k2"}; !slices.Equal(got, want) {
		t.Errorf("List of the bucket = %q, want %q", got, want)
	}
}

func TestS3CreateBucket(t *testing.T) {
	t.Parallel()
	env := testenv.MinIO(t)
	cfg := env.S3Config()
	cfg.Bucket = env.Bucket + "-new"
	cfg.CreateBucket = true
	admin := adminClient(t, env)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := admin.RemoveBucket(ctx, cfg.Bucket); err != nil { // Empty.
			t.Errorf("remove bucket %s: %v", cfg.Bucket, err)
		}
	})

	s := newS3(t, cfg)
	if err := s.Ping(t.Context()); err != nil {
		t.Fatalf("Ping after NewS3 created the bucket: %v", err)
	}
	lock, _, _, _, err := admin.GetObjectLockConfig(t.Context(), cfg.Bucket)
	if err != nil {
		t.Fatalf("object lock of the created bucket: %v", err)
	}
	if lock != "Enabled" {
		t.Errorf("object lock = %q, want Enabled", lock)
	}
	newS3(t, cfg) // The bucket exists now: not an error.
}

func TestS3PingMissingBucket(t *testing.T) {
	t.Parallel()
	env := testenv.MinIO(t)
	cfg := env.S3Config()
	cfg.Bucket = env.Bucket + "-missing"
	err := newS3(t, cfg).Ping(t.Context())
	if err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("Ping of a missing bucket = %v, want an error saying so", err)
	}

	cfg = env.S3Config()
	cfg.SecretKey = "wrong-secret"
	if err := newS3(t, cfg).Ping(t.Context()); err == nil {
		t.Error("Ping with a wrong secret succeeded")
	}
}
