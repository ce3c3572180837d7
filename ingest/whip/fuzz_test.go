package whip_test

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/nokstream/nokstream/ingest/whip"
	"github.com/nokstream/nokstream/internal/testenv"
)

// FuzzWHIPOffer feeds arbitrary bytes as the SDP offer of an authenticated
// publisher: the endpoint never panics and answers 201 or a 4xx with a
// reason, never a 5xx but the 503 of the stream's session rate.
func FuzzWHIPOffer(f *testing.F) {
	// Seeds: offers of real clients (testdata) and one made now by pion,
	// and a few broken ones.
	seeds, _ := filepath.Glob("testdata/*.sdp")
	for _, p := range seeds {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	offer, err := testenv.NewWHIPClient(f, testenv.WHIPMedia{Video: "h264", Audio: true}).Offer()
	if err != nil {
		f.Fatal(err)
	}
	f.Add([]byte(offer))
	f.Add([]byte(""))
	f.Add([]byte("v=0\r\n"))
	f.Add([]byte(strings.ReplaceAll(offer, "H264", "H265")))
	f.Add([]byte(strings.Replace(offer, "m=video 9", "m=video 0", 1)))
	f.Add([]byte(offer + offer))
	f.Add([]byte{0xff, 0xfe, 0x00, '\r', '\n'})

	e := start(f, map[string]string{"site1/cam-ws01": "webcam"}, func(c *whip.Config) {
		// Sessions made from fuzzed offers never connect: end them soon.
		c.HandshakeTimeout = time.Second
	})
	h := e.srv.Handler()
	f.Fuzz(func(t *testing.T, body []byte) {
		req := httptest.NewRequest(http.MethodPost, "/whip/site1/cam-ws01", strings.NewReader(string(body)))
		req.Header.Set("Content-Type", "application/sdp")
		req.Header.Set("Authorization", "Bearer s3cret-cam-ws01")
		rec := httptest.NewRecorder()
		done := make(chan struct{})
		go func() { defer close(done); h.ServeHTTP(rec, req) }()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			buf := make([]byte, 1<<20)
			n := runtime.Stack(buf, true)
			t.Fatalf("handler hangs on %q:\n%s", body, buf[:n])
		}
		switch {
		case rec.Code == http.StatusCreated:
			if rec.Header().Get("Location") == "" || !strings.HasPrefix(rec.Body.String(), "v=0") {
				t.Errorf("201 without a Location or an SDP answer: %v %q", rec.Header(), rec.Body.String())
			}
		case rec.Code == http.StatusServiceUnavailable && strings.Contains(rec.Body.String(), "too many sessions started"):
			// The stream's session rate (10 in a row, then one every
			// 6 s): the seeds and the fuzzer start sessions faster
			// than that, and the refusal is the defence working.
		case rec.Code >= 400 && rec.Code < 500:
			if strings.TrimSpace(rec.Body.String()) == "" {
				t.Errorf("status %d without a reason", rec.Code)
			}
		default:
			t.Errorf("status %d (%s) for offer %q", rec.Code, strings.TrimSpace(rec.Body.String()), body)
		}
	})
}
