package testenv

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// EnvPostgres names an existing PostgreSQL server for the tests, as a DSN of
// a role that may CREATE DATABASE. Without it, Postgres starts a private
// cluster from Debian's binaries.
const EnvPostgres = "NOKSTREAM_TEST_PG"

// PostgresSupervisor is the function of the goroutine that waits for the
// private cluster's postmaster for the life of the test process. Tests that
// check for leaked goroutines ignore it:
//
//	goleak.IgnoreAnyFunction(testenv.PostgresSupervisor)
const PostgresSupervisor = ChildSupervisor

// pgDir is where Debian's postgresql packages install their binaries, one
// directory per major version.
const pgDir = "/usr/lib/postgresql"

// pgCluster is the private cluster shared by every test of this process.
//
// It is the one piece of package-level state in the module: starting a
// cluster takes seconds, so tests share one per process and each gets its
// own database in it. sync.Once makes the start race-free under t.Parallel.
var pgCluster struct {
	once  sync.Once
	admin string // DSN of the superuser's "postgres" database
	err   error
}

// Postgres returns the DSN of a fresh, empty database that belongs to this
// test alone. The database is dropped when the test ends (connections still
// open are terminated).
//
// The server is the one EnvPostgres names, or else a private cluster that this
// test process starts once, in a temporary directory, listening on a unix
// socket there and on 127.0.0.1 at a free port, with fsync off. The cluster
// stops when the test process exits, however it exits. When the tests run as
// root, the cluster runs as the system user "postgres", because PostgreSQL
// refuses to run as root. Without PostgreSQL installed the test fails and
// says to run `make test`, which installs it.
func Postgres(t testing.TB) string {
	t.Helper()
	admin := os.Getenv(EnvPostgres)
	if admin == "" {
		pgCluster.once.Do(func() {
			pgCluster.admin, pgCluster.err = startPostgres()
		})
		if pgCluster.err != nil {
			t.Fatalf("testenv: start postgres: %v", pgCluster.err)
		}
		admin = pgCluster.admin
	}

	name := databaseName(t.Name())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := adminExec(ctx, admin, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		t.Fatalf("testenv: create database %s: %v", name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := adminExec(ctx, admin, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
			t.Errorf("testenv: drop database %s: %v", name, err)
		}
	})
	dsn, err := withDatabase(admin, name)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	return dsn
}

// adminExec runs one statement on the admin connection.
func adminExec(ctx context.Context, dsn, sql string) error {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	_, err = conn.Exec(ctx, sql)
	if cerr := conn.Close(ctx); err == nil && cerr != nil {
		err = fmt.Errorf("close: %w", cerr)
	}
	return err
}

// databaseName returns a unique database name that still says which test it
// belongs to, within PostgreSQL's 63-byte limit on identifiers.
func databaseName(testName string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(testName) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	suffix := strings.ToLower(rand.Text()[:10])
	slug := b.String()
	if room := 63 - len("t__") - len(suffix); len(slug) > room {
		slug = slug[:room]
	}
	return "t_" + slug + "_" + suffix
}

// withDatabase returns dsn with its database replaced by name. It accepts
// both URL DSNs and libpq keyword/value strings.
func withDatabase(dsn, name string) (string, error) {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			return "", fmt.Errorf("parse %s: %w", EnvPostgres, err)
		}
		u.Path = "/" + name
		u.RawPath = ""
		return u.String(), nil
	}
	// In keyword/value form a later keyword overrides an earlier one.
	return dsn + " dbname=" + name, nil
}

// startPostgres creates and starts the private cluster and returns the DSN of
// its admin database.
func startPostgres() (string, error) {
	bin, err := postgresBin()
	if err != nil {
		return "", err
	}
	sweepStaleClusters()

	dir, err := os.MkdirTemp("", "nokstream-pg-")
	if err != nil {
		return "", fmt.Errorf("create cluster directory: %w", err)
	}
	// The owner file lets a later test process remove this directory once
	// this process has gone (see sweepStaleClusters).
	if err := os.WriteFile(filepath.Join(dir, "owner.pid"), []byte(strconv.Itoa(os.Getpid())), 0o600); err != nil {
		return "", fmt.Errorf("write cluster owner: %w", err)
	}
	cred, err := serverCredential()
	if err != nil {
		return "", err
	}
	if cred != nil {
		// The postgres user needs to write the cluster directory and to
		// traverse the directories above it.
		if err := os.Chown(dir, int(cred.Uid), int(cred.Gid)); err != nil {
			return "", fmt.Errorf("chown cluster directory: %w", err)
		}
	}

	password := rand.Text()
	pwfile := filepath.Join(dir, "pwfile")
	if err := os.WriteFile(pwfile, []byte(password+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("write password file: %w", err)
	}
	if cred != nil {
		if err := os.Chown(pwfile, int(cred.Uid), int(cred.Gid)); err != nil {
			return "", fmt.Errorf("chown password file: %w", err)
		}
	}

	data := filepath.Join(dir, "data")
	initdb := exec.Command(filepath.Join(bin, "initdb"),
		"--pgdata", data,
		"--username", "postgres",
		"--pwfile", pwfile,
		"--auth-local", "trust",
		"--auth-host", "scram-sha-256",
		"--encoding", "UTF8",
		"--locale", "C",
		"--no-sync",
	)
	initdb.Dir = dir
	initdb.Env = []string{"PATH=" + bin + ":/usr/bin:/bin", "LC_ALL=C"}
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	if out, err := initdb.CombinedOutput(); err != nil {
		return "", fmt.Errorf("initdb: %w\n%s", err, out)
	}

	var lastErr error
	// The free port is only free until postgres binds it; another process
	// may take it in between, so try a few times.
	for attempt := 0; attempt < 3; attempt++ {
		port, err := freePort()
		if err != nil {
			return "", err
		}
		dsn := fmt.Sprintf("postgres://postgres:%s@127.0.0.1:%d/postgres?sslmode=disable", password, port)
		if lastErr = runServer(bin, dir, data, port, cred, dsn); lastErr == nil {
			return dsn, nil
		}
	}
	return "", lastErr
}

// runServer starts the postmaster and waits until it accepts connections.
func runServer(bin, dir, data string, port int, cred *syscall.Credential, dsn string) error {
	logPath := filepath.Join(dir, fmt.Sprintf("postgres-%d.log", port))
	logFile, err := os.Create(logPath)
	if err != nil {
		return fmt.Errorf("create server log: %w", err)
	}
	cmd := exec.Command(filepath.Join(bin, "postgres"),
		"-D", data,
		"-c", "listen_addresses=127.0.0.1",
		"-c", "port="+strconv.Itoa(port),
		"-c", "unix_socket_directories="+dir,
		"-c", "fsync=off",
		"-c", "synchronous_commit=off",
		"-c", "full_page_writes=off",
		"-c", "max_connections=300",
		"-c", "shared_buffers=32MB",
	)
	cmd.Dir = dir
	cmd.Env = []string{"LC_ALL=C"}
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Credential: cred,
		// Its own process group keeps a terminal's ^C away from it, and
		// SIGQUIT (immediate shutdown) reaches it when this process dies.
		Setpgid:   true,
		Pdeathsig: syscall.SIGQUIT,
	}

	exited, err := Spawn(cmd)
	if err != nil {
		_ = logFile.Close()
		return fmt.Errorf("start postgres: %w", err)
	}
	// The child holds its own copy of the descriptor.
	_ = logFile.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for {
		conn, err := pgx.Connect(ctx, dsn)
		if err == nil {
			return conn.Close(ctx)
		}
		select {
		case werr := <-exited:
			log, _ := os.ReadFile(logPath)
			return fmt.Errorf("postgres exited before it was ready (%v):\n%s", werr, log)
		case <-ctx.Done():
			log, _ := os.ReadFile(logPath)
			return fmt.Errorf("postgres not ready after 60s (%v):\n%s", err, log)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// postgresBin returns the bin directory of the newest PostgreSQL installed.
func postgresBin() (string, error) {
	entries, err := os.ReadDir(pgDir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("look for postgresql in %s: %w", pgDir, err)
	}
	var versions []float64
	for _, e := range entries {
		v, err := strconv.ParseFloat(e.Name(), 64)
		if err != nil {
			continue
		}
		if _, err := os.Stat(filepath.Join(pgDir, e.Name(), "bin", "postgres")); err == nil {
			versions = append(versions, v)
		}
	}
	if len(versions) == 0 {
		return "", fmt.Errorf("no PostgreSQL server in %s/*/bin: run `make test`, which installs it, or set %s to a server's DSN", pgDir, EnvPostgres)
	}
	sort.Float64s(versions)
	return filepath.Join(pgDir, strconv.FormatFloat(versions[len(versions)-1], 'f', -1, 64), "bin"), nil
}

// serverCredential returns the credential to run the server with: nil to run
// as ourselves, or the postgres system user's when we are root.
func serverCredential() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("running as root, and PostgreSQL refuses to; look up the postgres user to run it as (run `make test`, which installs PostgreSQL and creates that user): %w", err)
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("postgres user: uid %q: %w", u.Uid, err)
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("postgres user: gid %q: %w", u.Gid, err)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	if err := l.Close(); err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	return port, nil
}

// sweepStaleClusters removes the directories of clusters whose test process
// and postmaster are both gone, so that tests leave nothing behind even
// though no code runs when a test process exits. It is best effort.
func sweepStaleClusters() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), "nokstream-pg-*"))
	for _, dir := range dirs {
		if alive(filepath.Join(dir, "owner.pid")) || alive(filepath.Join(dir, "data", "postmaster.pid")) {
			continue
		}
		if _, err := os.Stat(filepath.Join(dir, "owner.pid")); err != nil {
			// Not ours, or still being created.
			continue
		}
		_ = os.RemoveAll(dir)
	}
}

// alive reports whether the process whose pid is on the first line of the
// file exists.
func alive(pidFile string) bool {
	b, err := os.ReadFile(pidFile)
	if err != nil {
		return false
	}
	line, _, _ := strings.Cut(string(b), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil || pid <= 0 {
		return false
	}
	err = syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}
