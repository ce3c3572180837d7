package rtsp_test

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nokstream/nokstream/ingest/rtsp"
	"github.com/nokstream/nokstream/internal/testenv"
)

// validSDP is an SDP of H.264 and AAC as ffmpeg announces them.
const validSDP = "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=No Name\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n" +
	"m=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n" +
	"a=fmtp:96 packetization-mode=1; sprop-parameter-sets=Z2QAH6zZQFAFuwEQAAADABAAAAMDIPGDGWA=,aOvjyyLA; profile-level-id=64001F\r\n" +
	"a=control:streamid=0\r\n" +
	"m=audio 0 RTP/AVP 97\r\nb=AS:64\r\na=rtpmap:97 MPEG4-GENERIC/48000/2\r\n" +
	"a=fmtp:97 profile-level-id=1;mode=AAC-hbr;sizelength=13;indexlength=3;indexdeltalength=3; config=1190\r\n" +
	"a=control:streamid=1\r\n"

// sessionMark in a fuzz input stands for the session id that the server
// gave in its last answer: RECORD and TEARDOWN must name the session, and
// its id is random.
const sessionMark = "$SESSION"

// converse writes data on a new TCP connection to addr as a publisher
// would, putting the server's session id for each sessionMark (after the
// answers to the requests before it, or 2 s), closes its side and reads
// what the server answers until the server closes the connection. It fails
// t if the server has not closed it 10 s after the last byte.
func converse(t *testing.T, addr string, data []byte) []byte {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("the server accepts no connection: %v", err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	// The answers are read while the input is written, so that neither
	// side blocks on a full buffer.
	var mu sync.Mutex
	var answers bytes.Buffer
	progress, done := make(chan struct{}, 1), make(chan error, 1)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := c.Read(buf)
			mu.Lock()
			answers.Write(buf[:n])
			mu.Unlock()
			select {
			case progress <- struct{}{}:
			default:
			}
			if err != nil {
				if errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) {
					err = nil
				}
				done <- err
				return
			}
		}
	}()
	closed := false
	var written []byte
	for i, part := range bytes.Split(data, []byte(sessionMark)) {
		if i > 0 {
			// Wait for the answers to the requests written whole (not
			// the one the mark is in), then name the session they gave.
			whole := written[:max(bytes.LastIndex(written, []byte("\r\n\r\n")), 0)]
			requests := bytes.Count(whole, []byte(" RTSP/1.0\r\n"))
			timeout := time.After(2 * time.Second)
		wait:
			for !closed {
				mu.Lock()
				n := bytes.Count(answers.Bytes(), []byte("RTSP/1.0 "))
				mu.Unlock()
				if n >= requests {
					break
				}
				select {
				case <-progress:
				case err := <-done:
					done <- err
					closed = true
				case <-timeout:
					break wait
				}
			}
			mu.Lock()
			if m := sessionRE.FindAllSubmatch(answers.Bytes(), -1); len(m) > 0 {
				part = append(bytes.Clone(m[len(m)-1][1]), part...)
			}
			mu.Unlock()
		}
		written = append(written, part...)
		if _, err := c.Write(part); err != nil {
			break
		}
	}
	_ = c.(*net.TCPConn).CloseWrite()
	if err := <-done; err != nil {
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Fatalf("the server holds the connection 10 s after the peer sent everything: %q", data)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	return bytes.Clone(answers.Bytes())
}

var sessionRE = regexp.MustCompile(`(?i)\r\nSession: *([^;\r\n]+)`)

// FuzzRTSPRequest writes arbitrary bytes, as a publisher would, on a TCP
// connection to the ingest RTSP server (the seed corpus in
// testdata/fuzz/FuzzRTSPRequest holds a real publishing session —
// ANNOUNCE with an SDP, SETUP, RECORD, RTP and RTCP, TEARDOWN — and broken
// requests; $SESSION stands for the session id the server gave). The
// server never panics; once the peer has sent everything it closes the
// connection (it does not hang); and that peer does not disturb it: a new
// connection is then answered OPTIONS with 200, and an ANNOUNCE without
// credentials with 401 (the publisher limits and the credential check
// still work).
func FuzzRTSPRequest(f *testing.F) {
	s := startServer(f, func(c *rtsp.Config) { c.ReadTimeout = 5 * time.Second })
	f.Fuzz(func(t *testing.T, data []byte) {
		converse(t, s.cfg.Addr, data)
		for _, r := range []struct{ req, want string }{
			{"OPTIONS rtsp://" + s.cfg.Addr + "/site1/cam1 RTSP/1.0\r\nCSeq: 1\r\n\r\n", "RTSP/1.0 200 "},
			{fmt.Sprintf("ANNOUNCE rtsp://%s/site1/cam2 RTSP/1.0\r\nCSeq: 1\r\nContent-Type: application/sdp\r\nContent-Length: %d\r\n\r\n%s",
				s.cfg.Addr, len(validSDP), validSDP), "RTSP/1.0 401 "},
		} {
			if got := ask(t, s.cfg.Addr, r.req); !strings.HasPrefix(got, r.want) {
				t.Fatalf("after the input %q the server answers %q to %q, want %q", data, got, strings.Fields(r.req)[0], r.want)
			}
		}
	})
}

// ask sends one request on a new connection and returns the status line of
// the answer.
func ask(t *testing.T, addr, req string) string {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("the server accepts no connection: %v", err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		t.Fatalf("no answer: %v", err)
	}
	return strings.TrimSpace(line)
}

// TestRTSPRequestSeeds: the publishing session of FuzzRTSPRequest's seed
// corpus is a real one — the server answers each of its requests with 200
// and records what it sends — so that the fuzzer starts from requests that
// reach recording.
func TestRTSPRequestSeeds(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile(filepath.Join("testdata", "fuzz", "FuzzRTSPRequest", "publish-tcp"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitN(string(raw), "\n", 3)
	seed, err := strconv.Unquote(strings.TrimSuffix(strings.TrimPrefix(lines[1], "[]byte("), ")"))
	if err != nil {
		t.Fatal(err)
	}
	s := startServer(t, nil)
	var statuses []string
	for _, m := range regexp.MustCompile(`RTSP/1.0 (\d+) `).FindAllStringSubmatch(string(converse(t, s.cfg.Addr, []byte(seed))), -1) {
		statuses = append(statuses, m[1])
	}
	if got := strings.Join(statuses, " "); got != "200 200 200 200 200" {
		t.Errorf("answers %s to ANNOUNCE, SETUP, SETUP, RECORD and TEARDOWN, want 200 to each", got)
	}
	testenv.WaitFor(t, 10*time.Second, "the session's segment", func() bool {
		pend, err := s.spool.Pending()
		return err == nil && len(pend) == 1 && pend[0].Event.StreamID == "site1/cam1"
	})
}
