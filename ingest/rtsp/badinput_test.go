package rtsp_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/pion/rtp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/nokstream/nokstream/ingest/observe"
	"github.com/nokstream/nokstream/ingest/rtsp"
	"github.com/nokstream/nokstream/ingest/segmenter"
	"github.com/nokstream/nokstream/ingest/spool"
	"github.com/nokstream/nokstream/internal/events"
	"github.com/nokstream/nokstream/internal/testenv"
)

// logBuffer is a concurrency-safe log destination.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

type server struct {
	cfg   rtsp.Config
	spool *spool.Spool
	reg   *prometheus.Registry
	log   *logBuffer
}

// startServer runs an RTSP server for devices site1/cam1 and site1/cam2
// whose configuration edit may change.
func startServer(t testing.TB, edit func(*rtsp.Config)) *server {
	t.Helper()
	lb := &logBuffer{}
	log := slog.New(slog.NewTextHandler(lb, nil))
	sp, err := spool.Open(t.TempDir(), "test", log, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	cfg := rtsp.DefaultConfig()
	// Port 0 everywhere: New opens the sockets, and the test uses the
	// ports the kernel picked.
	cfg.Addr = "127.0.0.1:0"
	cfg.UDPRTPAddr, cfg.UDPRTCPAddr = "127.0.0.1:0", "127.0.0.1:0"
	cfg.Segment.SegmentDuration = 2 * time.Second
	if edit != nil {
		edit(&cfg)
	}
	reg := prometheus.NewRegistry()
	out := func(site, device, source string) segmenter.Output { return sp.Stream(site, device, source) }
	cont := observe.New(sp, 2*time.Second, log, observe.NewMetrics(reg), time.Now)
	srv, err := rtsp.New(cfg, checker{map[string]bool{"site1/cam1": true, "site1/cam2": true}}, out, log,
		rtsp.NewMetrics(reg), time.Now, rtsp.Options{Continuity: cont})
	if err != nil {
		t.Fatal(err)
	}
	cfg.Addr, cfg.TLSAddr = srv.Addr(), srv.TLSAddr()
	cfg.UDPRTPAddr, cfg.UDPRTCPAddr = srv.UDPAddrs()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("server run: %v", err)
		}
		if t.Failed() {
			t.Logf("server log:\n%s", lb.String())
		}
	})
	// The listener was open before Run: a connection is taken at once.
	c, err := net.Dial("tcp", cfg.Addr)
	if err != nil {
		t.Fatalf("the server's address %s right after New: %v", cfg.Addr, err)
	}
	c.Close()
	return &server{cfg: cfg, spool: sp, reg: reg, log: lb}
}

// streamSeconds returns the media duration spooled for a stream and checks
// its sequence numbers.
func (s *server) streamSeconds(t *testing.T, stream string) float64 {
	pend, err := s.spool.Pending()
	if err != nil {
		t.Fatal(err)
	}
	total, seq := 0.0, int64(0)
	for _, p := range pend {
		if p.Event.StreamID != stream {
			continue
		}
		if p.Event.Sequence != seq {
			t.Errorf("%s: segment %d has sequence %d", stream, seq, p.Event.Sequence)
		}
		seq++
		total += p.Event.Duration
	}
	return total
}

// observations returns the spooled observations of a stream of a kind.
func (s *server) observations(t *testing.T, stream, kind string) []events.Observation {
	t.Helper()
	pend, err := s.spool.PendingObservations()
	if err != nil {
		t.Fatal(err)
	}
	var out []events.Observation
	for _, p := range pend {
		if p.Observation.StreamID == stream && p.Observation.Kind == kind {
			out = append(out, p.Observation)
		}
	}
	return out
}

// rawRTSP sends one RTSP request on a fresh TCP connection and returns the
// status line of the answer ("" if the server closed the connection).
func rawRTSP(t *testing.T, addr, method, url string, headers map[string]string, body []byte) string {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	var req bytes.Buffer
	fmt.Fprintf(&req, "%s %s RTSP/1.0\r\nCSeq: 1\r\n", method, url)
	for k, v := range headers {
		fmt.Fprintf(&req, "%s: %s\r\n", k, v)
	}
	if body != nil {
		fmt.Fprintf(&req, "Content-Type: application/sdp\r\nContent-Length: %d\r\n", len(body))
	}
	req.WriteString("\r\n")
	req.Write(body)
	if _, err := c.Write(req.Bytes()); err != nil {
		return ""
	}
	line, _ := bufio.NewReader(c).ReadString('\n')
	return strings.TrimSpace(line)
}

func basic(user, pass string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
}

// TestMalformedInputDoesNotDisturbOthers: while a healthy publisher
// records, garbage is thrown at the server — UDP datagrams at its RTP and
// RTCP ports, ANNOUNCEs with a huge, a malformed and an unsupported SDP, and
// a session that records garbage RTP with timestamps jumping back. Each is
// refused or its packets dropped, with a reason in the log and the metrics;
// the healthy stream is recorded whole.
func TestMalformedInputDoesNotDisturbOthers(t *testing.T) {
	t.Parallel()
	s := startServer(t, nil)
	var wg sync.WaitGroup
	var goodErr error
	var goodStderr string
	wg.Add(1)
	go func() {
		defer wg.Done()
		goodStderr, goodErr = publish(t, "rtsp://cam1:s3cret-cam1@"+s.cfg.Addr+"/site1/cam1", 8, "aac", "tcp")
	}()

	// Garbage datagrams at the UDP ports.
	for _, addr := range []string{s.cfg.UDPRTPAddr, s.cfg.UDPRTCPAddr} {
		c, err := net.Dial("udp", addr)
		if err != nil {
			t.Fatal(err)
		}
		junk := make([]byte, 1200)
		for range 500 {
			_, _ = rand.Read(junk)
			_, _ = c.Write(junk)
		}
		c.Close()
	}

	url := "rtsp://" + s.cfg.Addr + "/site1/cam2"
	auth := map[string]string{"Authorization": basic("cam2", "s3cret-cam2")}
	valid := "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=x\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\nm=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\na=control:trackID=0\r\n"
	huge := valid + strings.Repeat("a=x-padding:"+strings.Repeat("z", 1000)+"\r\n", 90)
	for _, tc := range []struct {
		name, sdp, want string
	}{
		{"huge SDP", huge, "400"},
		{"SDP larger than RTSP allows", valid + strings.Repeat("a=x:"+strings.Repeat("z", 1000)+"\r\n", 200), ""},
		{"malformed SDP", "v=0\r\nthis is not SDP\r\n\x00\xff", "400"},
		{"no supported media", strings.Replace(valid, "H264/90000", "MP4V-ES/90000", 1), "415"},
	} {
		status := rawRTSP(t, s.cfg.Addr, "ANNOUNCE", url, auth, []byte(tc.sdp))
		if tc.want == "" {
			if strings.Contains(status, " 200") {
				t.Errorf("%s: accepted (%q)", tc.name, status)
			}
			continue
		}
		if !strings.Contains(status, " "+tc.want+" ") {
			t.Errorf("%s: server answers %q, want %s", tc.name, status, tc.want)
		}
	}

	// A publisher that records garbage RTP, with timestamps jumping back.
	clip, err := testenv.ReadClip(testenv.EncodeClip(t, t.TempDir(), testenv.ClipSpec{Size: "160x120", FPS: 25, Seconds: 2}))
	if err != nil {
		t.Fatal(err)
	}
	tcp := gortsplib.TransportTCP
	c := &gortsplib.Client{Transport: &tcp}
	desc := clip.Description()
	if err := c.StartRecording("rtsp://cam2:s3cret-cam2@"+s.cfg.Addr+"/site1/cam2", desc); err != nil {
		t.Fatalf("garbage publisher: %v", err)
	}
	junk := make([]byte, 800)
	for i := range 300 {
		_, _ = rand.Read(junk)
		ts := uint32(90000 * (300 - i)) // going back
		pkt := &rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 96, SequenceNumber: uint16(i * 7), Timestamp: ts, Marker: i%3 == 0},
			Payload: bytes.Clone(junk)}
		if err := c.WritePacketRTP(desc.Medias[0], pkt); err != nil {
			break
		}
	}
	// The client queues what it writes: keep the session until the server
	// has read some of it, or Close may drop the queue with it.
	testenv.WaitFor(t, 10*time.Second, "the server to meet the garbage RTP", func() bool {
		return counterSum(t, s.reg, "nokstream_ingest_media_errors_total", "kind", "decode") >= 1
	})
	c.Close()

	wg.Wait()
	if goodErr != nil {
		t.Fatalf("the healthy publisher failed: %v: %s", goodErr, goodStderr)
	}
	testenv.WaitFor(t, 10*time.Second, "the healthy stream's segments", func() bool {
		return s.streamSeconds(t, "site1/cam1") > 7.5
	})
	if d := s.streamSeconds(t, "site1/cam1"); d < 7.5 || d > 8.5 {
		t.Errorf("healthy stream recorded %.2f s, want 8", d)
	}
	log := s.log.String()
	for _, want := range []string{"SDP of", "invalid SDP", "no supported media", "rtsp media problem"} {
		if !strings.Contains(log, want) {
			t.Errorf("log has no %q: the reason of a refusal is missing", want)
		}
	}
	refused := s.reg
	if n := counterSum(t, refused, "nokstream_ingest_publishers_refused_total", "reason", "bad_sdp"); n < 2 {
		t.Errorf("refused{reason=bad_sdp} = %v, want at least 2", n)
	}
	if n := counterSum(t, refused, "nokstream_ingest_media_errors_total", "kind", "decode"); n < 1 {
		t.Errorf("media_errors{kind=decode} = %v, want at least 1", n)
	}
}

// counterSum sums the series of a counter with label=value.
func counterSum(t *testing.T, reg *prometheus.Registry, name, label, value string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == label && l.GetValue() == value {
					sum += m.GetCounter().GetValue()
				}
			}
		}
	}
	return sum
}

// selfSigned writes a self-signed certificate and key for 127.0.0.1.
func selfSigned(t *testing.T) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "nokstream test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

// TestRTSPS: with a certificate, ffmpeg publishes over RTSPS (TLS) on the
// second address and is recorded; plain RTSP keeps working beside it.
func TestRTSPS(t *testing.T) {
	t.Parallel()
	cert, key := selfSigned(t)
	s := startServer(t, func(c *rtsp.Config) {
		c.TLSAddr = "127.0.0.1:0"
		c.TLSCert, c.TLSKey = cert, key
	})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	// ffmpeg does not verify the certificate unless -tls_verify 1 is given.
	args := testenv.PublishArgs("rtsps://cam1:s3cret-cam1@"+s.cfg.TLSAddr+"/site1/cam1", 5, "320x240", 25, "aac", "tcp")
	cmd := exec.CommandContext(ctx, testenv.Tool(t, "ffmpeg"), args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	var wg sync.WaitGroup
	var plainErr error
	var plainStderr string
	wg.Add(1)
	go func() {
		defer wg.Done()
		plainStderr, plainErr = publish(t, "rtsp://cam2:s3cret-cam2@"+s.cfg.Addr+"/site1/cam2", 5, "aac", "tcp")
	}()
	if err := cmd.Run(); err != nil {
		t.Fatalf("ffmpeg over RTSPS: %v: %s", err, stderr.String())
	}
	wg.Wait()
	if plainErr != nil {
		t.Fatalf("plain RTSP beside RTSPS: %v: %s", plainErr, plainStderr)
	}
	testenv.WaitFor(t, 10*time.Second, "both streams' segments", func() bool {
		return s.streamSeconds(t, "site1/cam1") > 4.5 && s.streamSeconds(t, "site1/cam2") > 4.5
	})
	if !strings.Contains(s.log.String(), "transport=rtsps") {
		t.Errorf("the RTSPS session is not logged as rtsps")
	}
	if n := counterSum(t, s.reg, "nokstream_ingest_sessions_total", "transport", "rtsps"); n != 1 {
		t.Errorf("sessions{transport=rtsps} = %v, want 1", n)
	}
}
