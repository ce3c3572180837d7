package api_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nokstream/nokstream/internal/blob"
	"github.com/nokstream/nokstream/internal/bus"
	"github.com/nokstream/nokstream/internal/events"
	"github.com/nokstream/nokstream/internal/httpserver"
	"github.com/nokstream/nokstream/internal/obs"
	"github.com/nokstream/nokstream/internal/testenv"
	"github.com/nokstream/nokstream/registry/api"
	"github.com/nokstream/nokstream/registry/index"
	"github.com/nokstream/nokstream/registry/store"
)

// BenchmarkMediaServing measures GET /api/v1/media with a signed URL (a
// 2.5 MB segment in a local directory store, the registry on a real
// listener as `nokstream registry` serves it) against nginx serving the
// same file from the same directory (sendfile on, its access log off), both
// loaded by wrk with 32 connections for NOKSTREAM_BENCH_SECONDS (10 s) in
// alternating rounds; the best round of each counts. It prints a
// BENCHTABLE line (make bench) with the ratio; the goal is 0.7 of nginx or
// more. nginx and wrk come from Debian (deploy/local/bench.sh installs
// them).
func BenchmarkMediaServing(b *testing.B) {
	nginx, err := exec.LookPath("nginx")
	if err != nil {
		nginx = "/usr/sbin/nginx"
		if _, err := os.Stat(nginx); err != nil {
			b.Skip("nginx is not installed: apt-get install nginx-light (make bench does)")
		}
	}
	wrk, err := exec.LookPath("wrk")
	if err != nil {
		b.Skip("wrk is not installed: apt-get install wrk (make bench does)")
	}
	secs := 10
	if v, err := strconv.Atoi(os.Getenv("NOKSTREAM_BENCH_SECONDS")); err == nil && v > 0 {
		secs = v
	}
	const clients = 32
	ctx := context.Background()
	dsn := testenv.Postgres(b)
	if err := store.Migrate(ctx, dsn); err != nil {
		b.Fatal(err)
	}
	st, err := store.Open(ctx, dsn)
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	dir := b.TempDir()
	blobs, err := blob.NewDir(filepath.Join(dir, "blob"))
	if err != nil {
		b.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))

	// One 2.5 MB segment (6 s at ~3.3 Mbit/s) and its init segment.
	data := make([]byte, 2_500_000)
	if _, err := rand.Read(data); err != nil {
		b.Fatal(err)
	}
	key, initKey := "raw/site1/cam1/000000.m4s", "raw/site1/cam1/init-a.mp4"
	for k, v := range map[string][]byte{key: data, initKey: []byte("init")} {
		if err := blobs.Put(ctx, k, bytes.NewReader(v), int64(len(v))); err != nil {
			b.Fatal(err)
		}
	}
	sum, initSum := sha256.Sum256(data), sha256.Sum256([]byte("init"))
	ev, _ := json.Marshal(&events.SegmentClosed{SegmentID: "seg-0", StreamID: "site1/cam1", Source: events.SourceRoom,
		Site: "site1", Device: "cam1", Start: time.Now().Add(-time.Hour), Duration: 6, Codecs: []string{"avc1.64001f"},
		Bytes: int64(len(data)), SHA256: hex.EncodeToString(sum[:]), PrevChain: strings.Repeat("0", 64), Chain: strings.Repeat("1", 64),
		ObjectKey: key, InitKey: initKey, InitSHA256: hex.EncodeToString(initSum[:]), InitBytes: 4, IngestNode: "node1"})
	if err := index.Handler(st, log)(ctx, bus.Message{Topic: events.TopicSegments, Key: "site1/cam1", Value: ev}); err != nil {
		b.Fatal(err)
	}

	cfg := api.DefaultConfig()
	cfg.SigningKey = api.Secret("0123456789abcdef0123456789abcdef")
	srv, err := api.New(cfg, api.Deps{Store: st, Blob: blobs, Log: log, Registry: prometheus.NewRegistry(), Health: obs.NewHealth()})
	if err != nil {
		b.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	hs := httpserver.New(srv.Handler(), httpserver.DefaultConfig(), api.Streaming)
	go func() { _ = hs.Serve(l) }()
	defer hs.Close()
	base := "http://" + l.Addr().String()
	signed := benchSignedURL(b, st, base, "/api/v1/media/"+key)

	port := testenv.FreePort(b)
	anchor := fmt.Sprintf("http://127.0.0.1:%d/%s", port, key)
	stop := startNginx(b, nginx, filepath.Join(dir, "nginx"), filepath.Join(dir, "blob"), port)
	defer stop()
	// Both answer the same bytes.
	for _, u := range []string{base + signed, anchor} {
		res, err := http.Get(u)
		if err != nil {
			b.Fatal(err)
		}
		got, err := io.ReadAll(res.Body)
		_ = res.Body.Close()
		if err != nil || res.StatusCode != http.StatusOK || !bytes.Equal(got, data) {
			b.Fatalf("GET %s: %d, %d bytes (%v): not the segment", u, res.StatusCode, len(got), err)
		}
	}

	run := func(url string, secs int) float64 {
		b.Helper()
		out, err := exec.Command(wrk, "-t2", fmt.Sprintf("-c%d", clients), fmt.Sprintf("-d%ds", secs), url).CombinedOutput()
		if err != nil {
			b.Fatalf("wrk: %v\n%s", err, out)
		}
		if strings.Contains(string(out), "Non-2xx") {
			b.Fatalf("wrk %s: answers other than 200:\n%s", url, out)
		}
		m := regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`).FindSubmatch(out)
		if m == nil {
			b.Fatalf("wrk: no Requests/sec in\n%s", out)
		}
		rps, _ := strconv.ParseFloat(string(m[1]), 64)
		return rps
	}
	run(anchor, 2) // warm both: page cache, connections, caches
	run(base+signed, 2)
	var ours, theirs float64
	for round := range 2 {
		n := run(anchor, secs)
		o := run(base+signed, secs)
		b.Logf("round %d: nginx %.0f req/s, nokstream %.0f req/s", round+1, n, o)
		theirs, ours = max(theirs, n), max(ours, o)
	}
	b.ReportMetric(ours, "req/s")
	b.ReportMetric(theirs, "nginx-req/s")
	b.ReportMetric(ours/theirs, "ratio")
	benchTable("media GET, signed URL, 2.5 MB segment, 32 clients", fmt.Sprintf("%.0f req/s", ours), fmt.Sprintf("%.0f req/s (nginx)", theirs),
		ours/theirs, "≥ 0.7×")

	// All of it is audited, in a handful of rows.
	if err := srv.CloseMediaAudit(ctx); err != nil {
		b.Fatal(err)
	}
	logRows, err := st.AuditLog(ctx, 0, 100000)
	if err != nil {
		b.Fatal(err)
	}
	rows, fetches := 0, 0.0
	for _, a := range logRows {
		if a.Action == "media.get" {
			rows++
			f, _ := a.Detail["fetches"].(float64)
			fetches += f
		}
	}
	b.Logf("audit: %d media.get rows for %.0f fetches", rows, fetches)
}

// benchTable prints a line of the `make bench` table (deploy/local/bench.sh
// collects them): figure, ours, the anchor's, ratio and goal.
func benchTable(figure, ours, anchor string, ratio float64, goal string) {
	fmt.Printf("BENCHTABLE|%s|%s|%s|%.2f×|%s\n", figure, ours, anchor, ratio, goal)
}

// benchSignedURL makes a NARK operator, changes its temporary password,
// and returns a signed URL of path made in its session.
func benchSignedURL(b *testing.B, st *store.Store, base, path string) string {
	b.Helper()
	temp, err := st.AddUser(context.Background(), "operator", store.RoleNARK, "")
	if err != nil {
		b.Fatal(err)
	}
	post := func(path, token string, body any) map[string]any {
		j, _ := json.Marshal(body)
		req, _ := http.NewRequest("POST", base+path, bytes.NewReader(j))
		req.Header.Set("Content-Type", "application/json")
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		defer res.Body.Close()
		var v map[string]any
		if err := json.NewDecoder(res.Body).Decode(&v); err != nil || res.StatusCode != http.StatusOK {
			b.Fatalf("POST %s: %d %v %v", path, res.StatusCode, v, err)
		}
		return v
	}
	token := post("/api/v1/auth/login", "", map[string]string{"login": "operator", "password": temp})["token"].(string)
	token = post("/api/v1/auth/password", token, map[string]string{"old_password": temp, "new_password": "a long enough password"})["token"].(string)
	post("/api/v1/auth/privacy-policy", token, map[string]string{"version": api.PrivacyPolicyVersion})
	return post("/api/v1/links", token, map[string]string{"path": path})["url"].(string)
}

// startNginx runs nginx in the foreground with a private configuration
// serving root on port, and returns what stops it.
func startNginx(b *testing.B, nginx, prefix, root string, port int) (stop func()) {
	b.Helper()
	if err := os.MkdirAll(filepath.Join(prefix, "logs"), 0o755); err != nil {
		b.Fatal(err)
	}
	user := ""
	if os.Geteuid() == 0 {
		user = "user root;" // the test's files are not nobody's to read
	}
	conf := fmt.Sprintf(`%s
worker_processes auto;
pid %[2]s/nginx.pid;
error_log %[2]s/logs/error.log;
events { worker_connections 1024; }
http {
  sendfile on;
  tcp_nopush on;
  keepalive_requests 100000;
  access_log off;
  client_body_temp_path %[2]s/body;
  proxy_temp_path %[2]s/proxy;
  fastcgi_temp_path %[2]s/fastcgi;
  uwsgi_temp_path %[2]s/uwsgi;
  scgi_temp_path %[2]s/scgi;
  default_type application/octet-stream;
  server {
    listen 127.0.0.1:%[3]d;
    root %[4]s;
    location / { }
  }
}
`, user, prefix, port, root)
	path := filepath.Join(prefix, "nginx.conf")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(nginx, "-p", prefix, "-c", path, "-e", filepath.Join(prefix, "logs", "error.log"), "-g", "daemon off;")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		b.Fatalf("start nginx: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err == nil {
			_ = c.Close()
			break
		}
		select {
		case err := <-done:
			b.Fatalf("nginx exited: %v\n%s", err, out.String())
		default:
		}
		if time.Now().After(deadline) {
			b.Fatalf("nginx does not listen on %d: %s", port, out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	return func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	}
}
