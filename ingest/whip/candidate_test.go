package whip_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/nokstream/nokstream/ingest/access"
	"github.com/nokstream/nokstream/ingest/segmenter"
	"github.com/nokstream/nokstream/ingest/spool"
	"github.com/nokstream/nokstream/ingest/whip"
	"github.com/nokstream/nokstream/internal/testenv"
)

// candidateChecker is checker with candidates: the exam token
// "exam-<device>" opens that device while the exam is on.
type candidateChecker struct {
	checker
	examOn bool
}

func (c *candidateChecker) CheckCandidate(_ context.Context, site, device, token string) (access.Publisher, error) {
	source, ok := c.devices[site+"/"+device]
	if !ok || token != "exam-"+device || !c.examOn {
		return access.Publisher{}, access.ErrBadCredentials
	}
	return access.Publisher{Site: site, Device: device, Source: source, Candidate: "ivanov", Exam: "exam1"}, nil
}

// TestCandidateExamToken: a candidate's exam token publishes their own
// workstation's device while the exam is on, and nothing else.
func TestCandidateExamToken(t *testing.T) {
	t.Parallel()
	cc := &candidateChecker{checker: checker{map[string]string{"site1/ws1-cam": "webcam", "site1/ws2-cam": "webcam"}}, examOn: true}
	sp, err := spool.Open(t.TempDir(), "test", logger(), time.Now)
	if err != nil {
		t.Fatal(err)
	}
	cfg := whip.DefaultConfig()
	cfg.UDPAddr = "127.0.0.1:0"
	out := func(site, device, source string) segmenter.Output { return sp.Stream(site, device, source) }
	srv, err := whip.New(cfg, access.NewCache(cc, time.Minute, time.Now), out, logger(), whip.NewMetrics(prometheus.NewRegistry()), time.Now)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	<-srv.Ready()
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(func() {
		hs.Close()
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	})
	offer := rawOffer(t, webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{
		MimeType: webrtc.MimeTypeH264, ClockRate: 90000, SDPFmtpLine: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f"}, PayloadType: 102})
	post := func(device, token string) (int, string, http.Header) {
		t.Helper()
		status, body, h, err := testenv.WHIPPost(ctx, hs.URL+"/whip/site1/"+device, token, "application/sdp", offer)
		if err != nil {
			t.Fatal(err)
		}
		return status, body, h
	}
	if status, body, _ := post("ws2-cam", "exam-ws1-cam"); status != http.StatusUnauthorized {
		t.Errorf("exam token on another candidate's device: %d %s", status, body)
	}
	status, body, h := post("ws1-cam", "exam-ws1-cam")
	if status != http.StatusCreated {
		t.Fatalf("exam token on the candidate's device: %d %s", status, body)
	}
	req, _ := http.NewRequest("DELETE", hs.URL+h.Get("Location"), nil)
	if strings.HasPrefix(h.Get("Location"), "http") {
		req, _ = http.NewRequest("DELETE", h.Get("Location"), nil)
	}
	req.Header.Set("Authorization", "Bearer exam-ws1-cam")
	if res, err := http.DefaultClient.Do(req); err == nil {
		_, _ = io.Copy(io.Discard, res.Body)
		res.Body.Close()
	}
	cc.examOn = false
	if status, body, _ := post("ws1-cam", "exam-ws1-cam"); status != http.StatusUnauthorized {
		t.Errorf("exam token outside the exam: %d %s", status, body)
	}
	// The device's own secret still works.
	if status, body, h := post("ws2-cam", "s3cret-ws2-cam"); status != http.StatusCreated {
		t.Errorf("device secret: %d %s", status, body)
	} else {
		req, _ := http.NewRequest("DELETE", hs.URL+h.Get("Location"), nil)
		if res, err := http.DefaultClient.Do(req); err == nil {
			_, _ = io.Copy(io.Discard, res.Body)
			res.Body.Close()
		}
	}
}
