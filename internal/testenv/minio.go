package testenv

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/nokstream/nokstream/internal/blob"
)

// EnvS3 names an S3 server for the tests to use instead of starting MinIO,
// as a URL in the form blob.ParseS3URL reads, without a bucket:
// s3://ACCESS:SECRET@host:9000?ssl=false.
const EnvS3 = "NOKSTREAM_TEST_S3"

// minioReadyTimeout bounds how long a starting server may take to answer.
const minioReadyTimeout = time.Minute

// minioDirPrefix starts the name of each test process's MinIO directory in
// os.TempDir(); the process id follows it.
const minioDirPrefix = "nokstream-minio-"

// MinIOEnv is a private bucket, with Object Lock enabled, on the test
// process's MinIO server (or the server NOKSTREAM_TEST_S3 names).
type MinIOEnv struct {
	// Endpoint is host:port.
	Endpoint  string
	AccessKey string
	SecretKey string
	Bucket    string
	// UseSSL and Region matter only for a server from NOKSTREAM_TEST_S3.
	UseSSL bool
	Region string
}

// S3Config returns the config of a blob.S3 store in the bucket.
func (e MinIOEnv) S3Config() blob.S3Config {
	return blob.S3Config{
		Endpoint:  e.Endpoint,
		Bucket:    e.Bucket,
		AccessKey: e.AccessKey,
		SecretKey: e.SecretKey,
		Region:    e.Region,
		UseSSL:    e.UseSSL,
	}
}

// String describes the bucket with the secret redacted.
func (e MinIOEnv) String() string { return e.S3Config().String() }

// MinIO returns a fresh bucket, with Object Lock enabled, that only this test
// uses; it is emptied and removed when the test ends.
//
// The bucket is on the one MinIO server of this test process, started on the
// first call. That needs the minio binary on PATH or in $GOPATH/bin (GOBIN,
// or $HOME/go/bin); `make test` installs it. A missing binary fails the test:
// an integration test that silently skips proves nothing. If
// NOKSTREAM_TEST_S3 is set (s3://ACCESS:SECRET@host:port?ssl=false), the
// bucket is made on that server instead.
func MinIO(t testing.TB) MinIOEnv {
	t.Helper()
	srv, err := minioServer()
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	bucket, err := minioBucketName(t.Name())
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	err = srv.client.MakeBucket(t.Context(), bucket, minio.MakeBucketOptions{Region: srv.region, ObjectLocking: true})
	if err != nil {
		t.Fatalf("testenv: create bucket %s on %s: %v", bucket, srv.endpoint, err)
	}
	t.Cleanup(func() {
		// t.Context() has ended by now.
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := removeMinIOBucketRetry(ctx, srv.client, bucket); err != nil {
			// Objects under COMPLIANCE retention cannot be removed by anyone
			// before they expire; a local server's directory goes with it.
			t.Logf("testenv: leaving bucket %s on %s: %v", bucket, srv.endpoint, err)
		}
	})
	t.Logf("testenv: bucket %s on %s", bucket, srv.describe())
	return MinIOEnv{
		Endpoint:  srv.endpoint,
		AccessKey: srv.accessKey,
		SecretKey: srv.secretKey,
		Bucket:    bucket,
		UseSSL:    srv.useSSL,
		Region:    srv.region,
	}
}

// MinIOStore returns a blob.S3 store in a fresh bucket of MinIO(t). Its idle
// connections are closed when the test ends.
func MinIOStore(t testing.TB) *blob.S3 {
	t.Helper()
	env := MinIO(t)
	s, err := blob.NewS3(t.Context(), env.S3Config())
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("testenv: close s3 store: %v", err)
		}
	})
	return s
}

// MinIOSupervisor is the function of the goroutine that waits for this test
// process's MinIO server for the life of the process. Tests that check for
// leaked goroutines ignore it:
//
//	goleak.IgnoreAnyFunction(testenv.MinIOSupervisor)
const MinIOSupervisor = "github.com/nokstream/nokstream/internal/testenv.superviseMinIO"

// minioServer returns this test process's S3 server, starting MinIO on the
// first call; every later call returns the same server, or the same error.
//
// It is package-level state, which the house style allows testenv only for
// this, a server shared by the whole test process: one server per test would
// cost every test the startup time and a few hundred megabytes, while a
// bucket per test already keeps tests apart. sync.OnceValues makes the start
// race-free under t.Parallel. The server outlives the tests that use it and
// dies with the process.
var minioServer = sync.OnceValues(startMinIO)

// minioInstance is a running S3 server and an admin client for it.
type minioInstance struct {
	endpoint  string
	accessKey string
	secretKey string
	region    string
	useSSL    bool
	client    *minio.Client
	// For a server started here: its process, how long it took to be
	// ready, and its log.
	pid     int
	startup time.Duration
	logPath string
}

func (m *minioInstance) describe() string {
	if m.logPath == "" {
		return m.endpoint + " (from " + EnvS3 + ")"
	}
	return fmt.Sprintf("%s (minio ready in %s, log %s)", m.endpoint, m.startup.Round(time.Millisecond), m.logPath)
}

// startMinIO connects to the server NOKSTREAM_TEST_S3 names, or else starts
// a MinIO server for this process.
func startMinIO() (*minioInstance, error) {
	if raw := os.Getenv(EnvS3); raw != "" {
		cfg, err := blob.ParseS3URL(raw)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", EnvS3, err)
		}
		if cfg.Bucket != "" {
			return nil, fmt.Errorf("%s names bucket %q: leave it out, each test makes its own", EnvS3, cfg.Bucket)
		}
		return newMinIOInstance(cfg.Endpoint, cfg.AccessKey, cfg.SecretKey, cfg.Region, cfg.UseSSL)
	}
	return startLocalMinIO()
}

func newMinIOInstance(endpoint, accessKey, secretKey, region string, useSSL bool) (*minioInstance, error) {
	transport, err := minio.DefaultTransport(useSSL)
	if err != nil {
		return nil, fmt.Errorf("minio admin client: %w", err)
	}
	// No idle connections, so none outlives a test that checks for leaked
	// goroutines.
	transport.DisableKeepAlives = true
	client, err := minio.New(endpoint, &minio.Options{
		Creds:     credentials.NewStaticV4(accessKey, secretKey, ""),
		Secure:    useSSL,
		Region:    region,
		Transport: transport,
	})
	if err != nil {
		return nil, fmt.Errorf("minio admin client for %s: %w", endpoint, err)
	}
	return &minioInstance{
		endpoint:  endpoint,
		accessKey: accessKey,
		secretKey: secretKey,
		region:    region,
		useSSL:    useSSL,
		client:    client,
	}, nil
}

// startLocalMinIO starts a single-drive MinIO server on a free loopback
// port, with its data, certs directory and log in a directory of its own
// under os.TempDir(), and waits until it serves requests.
func startLocalMinIO() (*minioInstance, error) {
	bin, err := findMinIO()
	if err != nil {
		return nil, err
	}
	sweepMinIODirs()
	dir, err := os.MkdirTemp("", minioDirPrefix+strconv.Itoa(os.Getpid())+"-")
	if err != nil {
		return nil, fmt.Errorf("minio directory: %w", err)
	}
	user, password := "nokstream-test", rand.Text()

	// The free port found may be taken by another process before MinIO
	// binds it; MinIO then exits, and a new port is tried.
	const attempts = 3
	var errs []error
	for range attempts {
		inst, exited, err := runMinIO(bin, dir, user, password)
		if err == nil {
			return inst, nil
		}
		errs = append(errs, err)
		if !exited {
			break
		}
	}
	return nil, fmt.Errorf("start minio (%s): %w", bin, errors.Join(errs...))
}

// runMinIO starts MinIO once and waits until it is ready. If it fails,
// exited says whether MinIO exited by itself before it was ready.
func runMinIO(bin, dir, user, password string) (_ *minioInstance, exited bool, _ error) {
	port, err := freePort()
	if err != nil {
		return nil, false, err
	}
	endpoint := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	logPath := filepath.Join(dir, "minio.log")
	logFile, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, false, fmt.Errorf("minio log: %w", err)
	}
	cmd := exec.Command(bin, "server", "--quiet",
		"--address", endpoint,
		"--certs-dir", filepath.Join(dir, "certs"),
		filepath.Join(dir, "data"))
	cmd.Env = append(minioEnviron("MINIO_"),
		"MINIO_ROOT_USER="+user,
		"MINIO_ROOT_PASSWORD="+password,
		"MINIO_BROWSER=off", // No console on another port.
		"MINIO_UPDATE=off",
	)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{
		// The kernel kills MinIO when this process dies, however it dies:
		// normal exit, panic, test timeout, SIGKILL. See superviseMinIO.
		Pdeathsig: syscall.SIGKILL,
		// Its own process group: a terminal's ^C goes to the test process
		// alone, which then takes MinIO down with it through Pdeathsig, and
		// the whole group can be killed if MinIO does not become ready.
		Setpgid: true,
	}

	start := time.Now()
	done, err := spawnMinIO(cmd)
	// MinIO has its own descriptor for the log now, or never started.
	if closeErr := logFile.Close(); err == nil && closeErr != nil {
		err = closeErr
	}
	if err != nil {
		return nil, false, fmt.Errorf("run %s: %w", bin, err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), minioReadyTimeout)
	defer cancel()
	if err := waitMinIOReady(ctx, endpoint, done); err != nil {
		select {
		case <-done:
			exited = true
		default:
			// Kill the group and wait, so that nothing of it outlives the error.
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) // ESRCH if it has just exited.
			<-done
		}
		return nil, exited, fmt.Errorf("%w (log %s:\n%s)", err, logPath, minioLogTail(logPath))
	}
	inst, err := newMinIOInstance(endpoint, user, password, "", false)
	if err != nil {
		return nil, false, err
	}
	inst.pid = cmd.Process.Pid
	inst.startup = time.Since(start)
	inst.logPath = logPath
	return inst, false, nil
}

// spawnMinIO starts cmd from a goroutine that keeps its OS thread for as long
// as the server runs, and returns a channel that is closed when it exits.
func spawnMinIO(cmd *exec.Cmd) (<-chan struct{}, error) {
	started := make(chan error, 1)
	exited := make(chan struct{})
	go superviseMinIO(cmd, started, exited)
	if err := <-started; err != nil {
		return nil, err
	}
	return exited, nil
}

// superviseMinIO starts cmd and waits for it to exit.
//
// Pdeathsig is sent when the thread that started the child ends, not the
// process (prctl(2) PR_SET_PDEATHSIG; https://go.dev/issue/27505). Go ends a
// thread only when a goroutine locked to it exits, so this goroutine locks
// its thread and stays until the server has exited: the signal then fires
// only when the whole process ends. It lives as long as the server, which is
// why MinIOSupervisor exists.
func superviseMinIO(cmd *exec.Cmd, started chan<- error, exited chan<- struct{}) {
	runtime.LockOSThread()
	// No UnlockOSThread: once MinIO is gone, the thread may as well end too.
	if err := cmd.Start(); err != nil {
		started <- err
		return
	}
	started <- nil
	_ = cmd.Wait() // How MinIO ended is in its log.
	close(exited)
}

// waitMinIOReady polls MinIO's liveness endpoint until it answers 200 with its
// object layer up, the process exits, or ctx ends.
func waitMinIOReady(ctx context.Context, endpoint string, exited <-chan struct{}) error {
	client := &http.Client{
		Timeout:   time.Second,
		Transport: &http.Transport{DisableKeepAlives: true},
	}
	url := "http://" + endpoint + "/minio/health/live"
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		last = probeMinIO(ctx, client, url)
		if last == nil {
			return nil
		}
		select {
		case <-exited:
			return fmt.Errorf("minio exited before it was ready at %s: %w", endpoint, last)
		case <-ctx.Done():
			return fmt.Errorf("minio not ready at %s after %s: %w", url, minioReadyTimeout, last)
		case <-tick.C:
		}
	}
}

// probeMinIO asks MinIO once whether it is ready.
func probeMinIO(ctx context.Context, client *http.Client, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	_ = resp.Body.Close() // A response body: closing loses nothing.
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %s", resp.Status)
	}
	// MinIO answers 200 before its object layer is up, and says so in this
	// header; S3 calls made then fail with XMinioServerNotInitialized.
	if s := resp.Header.Get("X-Minio-Server-Status"); s == "offline" {
		return errors.New("object layer not initialized")
	}
	return nil
}

// findMinIO looks for the minio binary on PATH, then where `go install` puts
// it: GOBIN, each $GOPATH/bin, or $HOME/go/bin.
func findMinIO() (string, error) {
	if p, err := exec.LookPath("minio"); err == nil {
		return p, nil
	}
	var dirs []string
	if d := os.Getenv("GOBIN"); d != "" {
		dirs = append(dirs, d)
	}
	for _, d := range filepath.SplitList(os.Getenv("GOPATH")) {
		dirs = append(dirs, filepath.Join(d, "bin"))
	}
	if home, err := os.UserHomeDir(); err == nil {
		dirs = append(dirs, filepath.Join(home, "go", "bin"))
	}
	for _, d := range dirs {
		p := filepath.Join(d, "minio")
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("minio binary not found on PATH or in %s: run `make test`, which installs it",
		strings.Join(dirs, ", "))
}

// sweepMinIODirs removes the MinIO directories of test processes that have
// ended. A process cannot remove its own: its server runs until the process
// is gone. Sweeping is best effort: a directory left behind now is tried
// again by the next test process.
func sweepMinIODirs() {
	matches, err := filepath.Glob(filepath.Join(os.TempDir(), minioDirPrefix+"*"))
	if err != nil {
		return
	}
	for _, m := range matches {
		pidText, _, _ := strings.Cut(strings.TrimPrefix(filepath.Base(m), minioDirPrefix), "-")
		pid, err := strconv.Atoi(pidText)
		if err != nil || pid <= 0 || pid == os.Getpid() {
			continue
		}
		// Signal 0 checks whether the process exists. Only ESRCH means it
		// does not; EPERM is someone else's live process.
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			_ = os.RemoveAll(m) // Best effort, see above.
		}
	}
}

// minioEnviron returns this process's environment minus the variables
// starting with prefix.
func minioEnviron(prefix string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, prefix) {
			env = append(env, kv)
		}
	}
	return env
}

// minioLogTail returns the end of a log file, for an error message.
func minioLogTail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	const keep = 4 << 10
	if len(b) > keep {
		b = b[len(b)-keep:]
	}
	return string(b)
}

// minioBucketName returns a bucket name unique to one call, readable as the test
// it belongs to.
func minioBucketName(testName string) (string, error) {
	var b strings.Builder
	b.WriteString("nok-")
	dash := true
	for _, r := range strings.ToLower(testName) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
			dash = false
		case !dash:
			b.WriteByte('-')
			dash = true
		}
		if b.Len() >= 40 {
			break
		}
	}
	if !dash {
		b.WriteByte('-')
	}
	suffix := strings.ToLower(rand.Text()[:10])
	name := b.String() + suffix
	if len(name) > 63 {
		return "", fmt.Errorf("bucket name %q too long", name)
	}
	return name, nil
}

// removeMinIOBucketRetry retries removeMinIOBucket for up to half a
// minute: under load a listing right after writes may come from MinIO's
// list cache and miss the newest versions, and then the bucket is not
// empty yet (seen in CI).
func removeMinIOBucketRetry(ctx context.Context, client *minio.Client, bucket string) error {
	var err error
	for deadline, wait := time.Now().Add(30*time.Second), 100*time.Millisecond; ; wait = min(2*wait, 5*time.Second) {
		if err = removeMinIOBucket(ctx, client, bucket); err == nil {
			// Under load MinIO has answered a removal with success and
			// still listed the bucket half a minute later, when removing
			// it again worked at once: removed is when it is gone.
			exists, existsErr := client.BucketExists(ctx, bucket)
			if existsErr == nil && !exists {
				return nil
			}
			err = fmt.Errorf("bucket %s still there after its removal succeeded (%v)", bucket, existsErr)
		} else if minio.ToErrorResponse(errors.Unwrap(err)).Code == "NoSuchBucket" || minio.ToErrorResponse(err).Code == "NoSuchBucket" {
			return nil // a removal before this one took after all
		} else if errors.Is(err, errCompliance) {
			// Nothing removes it before its date: trying again for the
			// rest of the deadline only holds up the test (30 s of each
			// test that locks footage).
			return err
		}
		if time.Now().Add(wait).After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(wait):
		}
	}
}

// removeMinIOBucket removes every object version in the bucket, then the bucket.
// Legal holds are lifted and GOVERNANCE retention bypassed; COMPLIANCE
// retention cannot be, and makes it fail.
func removeMinIOBucket(ctx context.Context, client *minio.Client, bucket string) error {
	var errs []error
	opts := minio.ListObjectsOptions{Recursive: true, WithVersions: true}
	for obj := range client.ListObjectsIter(ctx, bucket, opts) {
		if obj.Err != nil {
			return fmt.Errorf("list object versions: %w", obj.Err)
		}
		if err := removeMinIOVersion(ctx, client, bucket, obj.Key, obj.VersionID); err != nil {
			errs = append(errs, err)
		}
	}
	if err := ctx.Err(); err != nil { // minio-go ends the listing quietly.
		return fmt.Errorf("list object versions: %w", err)
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if err := client.RemoveBucket(ctx, bucket); err != nil {
		return fmt.Errorf("remove bucket: %w", err)
	}
	return nil
}

// errCompliance marks a version that COMPLIANCE retention keeps: no one
// can remove it before its date.
var errCompliance = errors.New("under COMPLIANCE retention")

func removeMinIOVersion(ctx context.Context, client *minio.Client, bucket, key, version string) error {
	opts := minio.RemoveObjectOptions{VersionID: version, GovernanceBypass: true}
	err := client.RemoveObject(ctx, bucket, key, opts)
	if err == nil {
		return nil
	}
	off := minio.LegalHoldDisabled
	holdErr := client.PutObjectLegalHold(ctx, bucket, key, minio.PutObjectLegalHoldOptions{VersionID: version, Status: &off})
	if holdErr != nil {
		return fmt.Errorf("remove %s version %s: %w", key, version, err)
	}
	if err := client.RemoveObject(ctx, bucket, key, opts); err != nil {
		// With its legal hold lifted and GOVERNANCE bypassed, a version
		// still refused as "WORM protected" (MinIO's InvalidRequest) is
		// under COMPLIANCE retention.
		if resp := minio.ToErrorResponse(err); resp.Code == "InvalidRequest" && strings.Contains(strings.ToLower(resp.Message), "worm") {
			return fmt.Errorf("remove %s version %s: %w: %w", key, version, errCompliance, err)
		}
		return fmt.Errorf("remove %s version %s: %w", key, version, err)
	}
	return nil
}
