package testenv

import (
	"context"
	"crypto/rand"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
)

// PrivateMinIO is a MinIO server that belongs to one test, which may stop
// it and start it again on the same address and data, to play a blob store
// outage. Most tests share the process's server through MinIO instead.
type PrivateMinIO struct {
	Env MinIOEnv

	bin, dir, user, password string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done <-chan struct{}
}

// StartPrivateMinIO starts a MinIO server for t alone, with one bucket
// (Object Lock enabled). It is killed when t ends.
func StartPrivateMinIO(t testing.TB) *PrivateMinIO {
	t.Helper()
	bin, err := findMinIO()
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	dir := t.TempDir()
	m := &PrivateMinIO{bin: bin, dir: dir, user: "nokstream-test", password: rand.Text()}
	port := FreePort(t)
	m.Env = MinIOEnv{Endpoint: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), AccessKey: m.user, SecretKey: m.password}
	if err := m.Start(); err != nil {
		t.Fatalf("testenv: %v", err)
	}
	t.Cleanup(m.Stop)
	inst, err := newMinIOInstance(m.Env.Endpoint, m.user, m.password, "", false)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	bucket, err := minioBucketName(t.Name())
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	if err := inst.client.MakeBucket(t.Context(), bucket, minio.MakeBucketOptions{ObjectLocking: true}); err != nil {
		t.Fatalf("testenv: create bucket %s: %v", bucket, err)
	}
	m.Env.Bucket = bucket
	return m
}

// S3URL returns the bucket as a --blob URL.
func (m *PrivateMinIO) S3URL() string {
	return fmt.Sprintf("s3://%s:%s@%s/%s?ssl=false", url.QueryEscape(m.Env.AccessKey), url.QueryEscape(m.Env.SecretKey), m.Env.Endpoint, m.Env.Bucket)
}

// Start starts the server if it is stopped and waits until it is ready.
func (m *PrivateMinIO) Start() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cmd != nil {
		return nil
	}
	logFile, err := os.OpenFile(filepath.Join(m.dir, "minio.log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	cmd := exec.Command(m.bin, "server", "--quiet", "--address", m.Env.Endpoint,
		"--certs-dir", filepath.Join(m.dir, "certs"), filepath.Join(m.dir, "data"))
	cmd.Env = append(minioEnviron("MINIO_"), "MINIO_ROOT_USER="+m.user, "MINIO_ROOT_PASSWORD="+m.password,
		"MINIO_BROWSER=off", "MINIO_UPDATE=off")
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	done, err := spawnMinIO(cmd)
	if cerr := logFile.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("start minio: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), minioReadyTimeout)
	defer cancel()
	if err := waitMinIOReady(ctx, m.Env.Endpoint, done); err != nil {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
		return fmt.Errorf("%w (log:\n%s)", err, minioLogTail(filepath.Join(m.dir, "minio.log")))
	}
	m.cmd, m.done = cmd, done
	return nil
}

// Stop kills the server (as a crash or a power cut would) and waits for it
// to exit.
func (m *PrivateMinIO) Stop() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cmd == nil {
		return
	}
	_ = syscall.Kill(-m.cmd.Process.Pid, syscall.SIGKILL)
	select {
	case <-m.done:
	case <-time.After(30 * time.Second):
	}
	m.cmd = nil
}
