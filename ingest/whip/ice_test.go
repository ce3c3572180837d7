package whip_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nokstream/nokstream/internal/testenv"
)

// candidates returns n ICE candidate lines ("a=candidate:…\r\n") of
// distinct loopback addresses, numbered from first.
func candidates(first, n int) string {
	var b strings.Builder
	for i := first; i < first+n; i++ {
		fmt.Fprintf(&b, "a=candidate:%d 1 udp 2130706431 127.1.%d.%d %d typ host\r\n", i, i/250, i%250+1, 10000+i)
	}
	return b.String()
}

// TestRemoteCandidatesAreBounded: a publisher may not give a session ICE
// candidates without end. Each one is held and sent connectivity checks
// (about 1.2 KB of heap each, measured; 64 KiB PATCHes of 500 candidates
// grew the heap by 12 MB in 20 requests, and on for as many as were sent),
// so past 100 an offer is refused with 400 and so is a PATCH, with a
// reason. Meanwhile another publisher records whole.
func TestRemoteCandidatesAreBounded(t *testing.T) {
	t.Parallel()
	e := start(t, map[string]string{"site1/cam-ws01": "webcam", "site1/cam-ws02": "webcam", "site1/cam-ws03": "webcam"})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	// An offer carrying 200 candidates is refused.
	big := testenv.NewWHIPClient(t, testenv.MakeWHIPMedia(t, 1, "h264", false))
	offer, err := big.Offer()
	if err != nil {
		t.Fatal(err)
	}
	i := strings.Index(offer, "a=mid:")
	if i < 0 {
		t.Fatalf("offer has no a=mid: %s", offer)
	}
	offer = offer[:i] + candidates(0, 200) + offer[i:]
	status, body, _, err := testenv.WHIPPost(ctx, e.url+"/whip/site1/cam-ws03", "s3cret-cam-ws03", "application/sdp", offer)
	if err != nil || status != http.StatusBadRequest || !strings.Contains(body, "ICE candidates") {
		t.Errorf("an offer with 200 candidates: %d %v %q, want 400 naming the candidates", status, err, body)
	}

	// A session is trickled 50 candidates at a time, 1 000 in all.
	c := testenv.NewWHIPClient(t, testenv.MakeWHIPMedia(t, 1, "h264", false))
	if status, body, err := c.Publish(ctx, e.url+"/whip/site1/cam-ws02", "s3cret-cam-ws02"); err != nil || status != http.StatusCreated {
		t.Fatalf("POST: %d %v %s", status, err, body)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		accepted, refused := 0, 0
		for b := range 20 {
			req, _ := http.NewRequestWithContext(ctx, http.MethodPatch, c.Location, strings.NewReader("a=mid:0\r\n"+candidates(b*50, 50)))
			req.Header.Set("Content-Type", "application/trickle-ice-sdpfrag")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
			switch resp.StatusCode {
			case http.StatusNoContent:
				accepted += 50
			case http.StatusBadRequest:
				refused++
			default:
				t.Errorf("PATCH %d: %d", b, resp.StatusCode)
			}
		}
		// The offer's own candidates count too: at most 100 in all.
		if accepted > 100 || refused == 0 {
			t.Errorf("%d of 1000 trickled candidates taken, %d PATCHes refused: want at most 100 taken, the rest refused", accepted, refused)
		}
	}()

	// Another publisher records whole meanwhile.
	publish(t, e, "site1/cam-ws01", testenv.MakeWHIPMedia(t, 3, "h264", false))
	wg.Wait()
	testenv.WaitFor(t, 10*time.Second, "the other publisher's segments", func() bool {
		segs, _ := e.segments(t, "site1/cam-ws01")
		return total(segs) > 2.5
	})
	if status, err := c.Delete(ctx); err != nil || status != http.StatusOK {
		t.Errorf("DELETE the trickled session: %d %v", status, err)
	}
}
