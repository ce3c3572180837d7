package testenv

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/s3utils"

	"github.com/nokstream/nokstream/internal/blob"
)

func TestMinIO(t *testing.T) {
	t.Parallel()
	srv, err := minioServer()
	if err != nil {
		t.Fatal(err)
	}
	var buckets []string
	for i := range 2 {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			env := MinIO(t)
			buckets = append(buckets, env.Bucket)
			mode, _, _, _, err := srv.client.GetObjectLockConfig(t.Context(), env.Bucket)
			if err != nil || mode != "Enabled" {
				t.Fatalf("object lock of bucket %s = %q, %v; want Enabled", env.Bucket, mode, err)
			}
			// Leave what a test of the archiver would: several versions of
			// an object, one under legal hold.
			s, err := blob.NewS3(t.Context(), env.S3Config())
			if err != nil {
				t.Fatal(err)
			}
			defer func() {
				if err := s.Close(); err != nil {
					t.Error(err)
				}
			}()
			for _, v := range []string{"v1", "v2"} {
				if err := s.Put(t.Context(), "k", strings.NewReader(v), int64(len(v))); err != nil {
					t.Fatal(err)
				}
			}
			on := minio.LegalHoldEnabled
			err = srv.client.PutObjectLegalHold(t.Context(), env.Bucket, "k", minio.PutObjectLegalHoldOptions{Status: &on})
			if err != nil {
				t.Fatal(err)
			}
		})
	}
	if len(buckets) != 2 || buckets[0] == buckets[1] {
		t.Fatalf("buckets = %q, want two different ones", buckets)
	}
	for _, b := range buckets {
		// What must be gone is the data: every object version, held ones
		// included. MinIO may answer HEAD on a removed bucket from its
		// metadata cache for a long while under load (more than 30 s on a
		// fresh clone's first make test, where removing it again then
		// succeeded at once), so the bucket's own existence is not the test.
		var left []string
		for obj := range srv.client.ListObjectsIter(t.Context(), b, minio.ListObjectsOptions{Recursive: true, WithVersions: true}) {
			if obj.Err != nil {
				if minio.ToErrorResponse(obj.Err).Code == "NoSuchBucket" {
					break
				}
				t.Fatalf("list bucket %s after its test: %v", b, obj.Err)
			}
			left = append(left, obj.Key+"@"+obj.VersionID)
		}
		if len(left) > 0 {
			t.Errorf("bucket %s still holds %q after its test", b, left)
		}
		if exists, err := srv.client.BucketExists(t.Context(), b); err == nil && exists {
			t.Logf("bucket %s is still listed after its removal (MinIO's cache); removing it again: %v", b,
				removeMinIOBucket(t.Context(), srv.client, b))
		}
	}
}

func TestMinIOBucketName(t *testing.T) {
	t.Parallel()
	for _, name := range []string{
		"TestX",
		"TestStores/s3/RoundTrip/5_MiB_of_unknown_size",
		"Test" + strings.Repeat("Long", 40),
		"Test/Кириллица/..//__",
		"Test/trailing-",
	} {
		t.Run(name, func(t *testing.T) {
			a, err := minioBucketName(name)
			if err != nil {
				t.Fatal(err)
			}
			b, err := minioBucketName(name)
			if err != nil {
				t.Fatal(err)
			}
			if err := s3utils.CheckValidBucketNameStrict(a); err != nil {
				t.Errorf("bucket name %q: %v", a, err)
			}
			if a == b {
				t.Errorf("two calls gave the same bucket name %q", a)
			}
		})
	}
}

func TestFindMinIOMissing(t *testing.T) {
	// Not parallel: it changes the environment.
	empty := t.TempDir()
	for _, v := range []string{"PATH", "GOBIN", "GOPATH", "HOME"} {
		t.Setenv(v, empty)
	}
	_, err := findMinIO()
	if err == nil || !strings.Contains(err.Error(), "make test") {
		t.Errorf("findMinIO without minio = %v, want an error that says to run make test", err)
	}
}

// helperEnv makes the test binary the child process of
// TestMinIODiesWithProcess instead of running tests (TestMain).
const helperEnv = "NOKSTREAM_TESTENV_MINIO_HELPER"

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) != "" {
		os.Exit(minioHelper())
	}
	os.Exit(m.Run())
}

// minioHelper is the child process of TestMinIODiesWithProcess: it starts
// MinIO, prints the server's pid and directory, and waits to be killed.
func minioHelper() int {
	srv, err := minioServer()
	if err != nil {
		fmt.Fprintln(os.Stderr, "minio helper:", err)
		return 1
	}
	fmt.Printf("%d %s\n", srv.pid, filepath.Dir(srv.logPath))
	_, _ = io.Copy(io.Discard, os.Stdin) // Until killed.
	return 0
}

// A test process killed with SIGKILL runs no cleanup at all; its MinIO server
// dies with it anyway, and the next test process removes its directory.
func TestMinIODiesWithProcess(t *testing.T) {
	t.Parallel()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(minioEnviron(EnvS3), helperEnv+"=1")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = stdin.Close() }() // Nothing was written.
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Fatalf("helper said nothing: %v", err)
	}
	var pid int
	var dir string
	if _, err := fmt.Sscan(line, &pid, &dir); err != nil {
		t.Fatalf("helper said %q: %v", line, err)
	}
	if !processAlive(pid) {
		t.Fatalf("minio (pid %d) is not running", pid)
	}

	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait() // Killed, as intended.

	deadline := time.Now().Add(10 * time.Second)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for processAlive(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("minio (pid %d) still running 10s after its test process was killed", pid)
		}
		<-tick.C
	}
	sweepMinIODirs()
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("directory %s of the killed process's minio is still there: %v", dir, err)
	}
}

// processAlive reports whether pid is a running process; a zombie, dead but
// not yet reaped, is not.
func processAlive(pid int) bool {
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	// The state follows the command name, which is in parentheses.
	i := strings.LastIndexByte(string(stat), ')')
	return i < 0 || i+2 >= len(stat) || stat[i+2] != 'Z'
}
