package whip

import (
	"net/http"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"
)

func readOffer(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// dropCodec removes every payload format named codec from an offer, as a
// browser without that encoder would offer.
func dropCodec(offer, codec string) string {
	re := regexp.MustCompile(`a=rtpmap:(\d+) ` + codec + `/`)
	for _, m := range re.FindAllStringSubmatch(offer, -1) {
		pt := m[1]
		offer = regexp.MustCompile(`(?m)^a=(rtpmap|fmtp|rtcp-fb):`+pt+` .*\r\n`).ReplaceAllString(offer, "")
		offer = regexp.MustCompile(`(?m)^(m=\w+ \d+ [A-Z/]+(?: \d+)*) `+pt+`\b`).ReplaceAllString(offer, "$1")
	}
	return offer
}

func TestParseOfferChoosesCodecs(t *testing.T) {
	webcam := readOffer(t, "chromium-156-webcam.sdp")
	screen := readOffer(t, "chromium-156-screen.sdp")
	type want struct {
		kind     webrtc.RTPCodecType
		mime     string
		pt       uint8
		channels int
	}
	for _, tc := range []struct {
		name  string
		offer string
		want  []want
	}{
		{"chromium webcam: constrained baseline H.264 and Opus", webcam, []want{
			{webrtc.RTPCodecTypeAudio, webrtc.MimeTypeOpus, 111, 1},
			{webrtc.RTPCodecTypeVideo, webrtc.MimeTypeH264, 108, 0}}},
		{"chromium screen", screen, []want{{webrtc.RTPCodecTypeVideo, webrtc.MimeTypeH264, 108, 0}}},
		{"no H.264: VP9 profile 0", dropCodec(webcam, "H264"), []want{
			{webrtc.RTPCodecTypeAudio, webrtc.MimeTypeOpus, 111, 1},
			{webrtc.RTPCodecTypeVideo, webrtc.MimeTypeVP9, 98, 0}}},
		{"neither H.264 nor VP9: AV1", dropCodec(dropCodec(webcam, "H264"), "VP9"), []want{
			{webrtc.RTPCodecTypeAudio, webrtc.MimeTypeOpus, 111, 1},
			{webrtc.RTPCodecTypeVideo, webrtc.MimeTypeAV1, 45, 0}}},
		{"stereo Opus", strings.Replace(webcam, "minptime=10;useinbandfec=1", "minptime=10;useinbandfec=1;stereo=1", 1), []want{
			{webrtc.RTPCodecTypeAudio, webrtc.MimeTypeOpus, 111, 2},
			{webrtc.RTPCodecTypeVideo, webrtc.MimeTypeH264, 108, 0}}},
		{"receive-only video is not recorded", regexp.MustCompile(`(?s)(a=mid:1\r\n.*?)a=sendonly`).ReplaceAllString(webcam, "${1}a=recvonly"), []want{
			{webrtc.RTPCodecTypeAudio, webrtc.MimeTypeOpus, 111, 1}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o, herr := parseOffer([]byte(tc.offer))
			if herr != nil {
				t.Fatalf("refused: %d %s", herr.status, herr.msg)
			}
			if len(o.tracks) != len(tc.want) {
				t.Fatalf("%d tracks, want %d", len(o.tracks), len(tc.want))
			}
			var sd sdp.SessionDescription
			if err := sd.Unmarshal([]byte(o.sdp)); err != nil {
				t.Fatalf("rewritten offer does not parse: %v", err)
			}
			for i, w := range tc.want {
				got := o.tracks[i]
				if got.kind != w.kind || got.codec.mime != w.mime || got.pt != w.pt || got.channels != w.channels {
					t.Errorf("track %d: %s %s pt %d channels %d, want %s %s pt %d channels %d", i,
						got.kind, got.codec.mime, got.pt, got.channels, w.kind, w.mime, w.pt, w.channels)
				}
			}
			// Each sending section offers only the chosen codec.
			for _, md := range sd.MediaDescriptions {
				if !sends(md) {
					continue
				}
				if len(md.MediaName.Formats) != 1 {
					t.Errorf("%s section keeps formats %v, want only the chosen one", md.MediaName.Media, md.MediaName.Formats)
				}
			}
		})
	}
}

func TestParseOfferRefusals(t *testing.T) {
	webcam := readOffer(t, "chromium-156-webcam.sdp")
	noVideoCodec := dropCodec(dropCodec(dropCodec(webcam, "H264"), "VP9"), "AV1")
	for _, tc := range []struct {
		name   string
		offer  string
		status int
		says   string
	}{
		{"not SDP", "hello", http.StatusBadRequest, "malformed SDP"},
		{"no media", "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n", http.StatusBadRequest, "no media"},
		{"VP8 only video", noVideoCodec, http.StatusUnsupportedMediaType, "offered: VP8"},
		{"PCMU only audio", dropCodec(dropCodec(webcam, "opus"), "red"), http.StatusUnsupportedMediaType, "offered: G722, PCMU, PCMA"},
		{"H.264 in packetization mode 0 only", strings.ReplaceAll(dropCodec(dropCodec(webcam, "VP9"), "AV1"), "packetization-mode=1", "packetization-mode=0"),
			http.StatusUnsupportedMediaType, "no video codec"},
		{"two video sections", webcam + "m=video" + strings.Replace(strings.SplitN(webcam, "m=video", 2)[1], "a=mid:1", "a=mid:2", 1),
			http.StatusNotAcceptable, "at most one"},
		{"a data channel", webcam + "m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\nc=IN IP4 0.0.0.0\r\na=mid:2\r\n",
			http.StatusNotAcceptable, "\"application\""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, herr := parseOffer([]byte(tc.offer))
			if herr == nil {
				t.Fatal("accepted")
			}
			if herr.status != tc.status || !strings.Contains(herr.msg, tc.says) {
				t.Errorf("refused with %d %q, want %d saying %q", herr.status, herr.msg, tc.status, tc.says)
			}
		})
	}
}

func TestTimeline(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	var tl timeline
	video := newTrackClock(90000, nil)
	audio := newTrackClock(48000, nil)
	tl.setReference(video)
	// The video's first packet starts the session; audio arrives 100 ms
	// later and starts 100 ms in.
	if pts, _ := tl.pts(video, 4_294_960_000, t0); pts != 0 {
		t.Errorf("first video pts %d, want 0", pts)
	}
	if pts, _ := tl.pts(audio, 1000, t0.Add(100*time.Millisecond)); pts != 4800 {
		t.Errorf("first audio pts %d, want 4800", pts)
	}
	// The 32-bit timestamp wraps: time runs on.
	start := uint32(4_294_960_000)
	if pts, _ := tl.pts(video, start+9000, t0.Add(100*time.Millisecond)); pts != 9000 {
		t.Errorf("video pts across the wrap %d, want 9000", pts)
	}
	// A reordered packet is slightly older.
	if pts, _ := tl.pts(video, start+6000, t0.Add(100*time.Millisecond)); pts != 6000 {
		t.Errorf("reordered video pts %d, want 6000", pts)
	}
	// A sender clock jump of an hour is re-anchored to the arrival time.
	pts, jumped := tl.pts(audio, 1000+3600*48000, t0.Add(200*time.Millisecond))
	if !jumped || pts != 9600 {
		t.Errorf("audio pts after a jump %d (jumped %v), want 9600 re-anchored", pts, jumped)
	}
}

func TestTimelineResyncBySenderReports(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	ntp0 := time.Unix(1_800_000_000, 0) // the sender's clock
	// The sender captured video ts 0 and audio ts 0 at the same instant,
	// but the audio reached us 80 ms later than the video.
	video := newTrackClock(90000, func(ts uint32) (time.Time, bool) {
		return ntp0.Add(time.Duration(ts) * time.Second / 90000), true
	})
	var skew time.Duration // how far the audio's sender reports move
	audio := newTrackClock(48000, func(ts uint32) (time.Time, bool) {
		return ntp0.Add(time.Duration(ts)*time.Second/48000 - skew), true
	})
	var tl timeline
	tl.setReference(video)
	tl.pts(video, 0, t0)
	tl.pts(audio, 0, t0.Add(80*time.Millisecond))
	tl.pts(video, 90000, t0.Add(time.Second))
	tl.pts(audio, 48000, t0.Add(time.Second+80*time.Millisecond))
	if d := tl.resync(video); d != 0 {
		t.Errorf("the reference moved by %d", d)
	}
	if d := tl.resync(audio); d != -3840 {
		t.Errorf("audio moved by %d, want -3840 (80 ms back)", d)
	}
	if pts, _ := tl.pts(audio, 96000, t0.Add(2*time.Second+80*time.Millisecond)); pts != 96000 {
		t.Errorf("audio at 2 s of sender time is at %d, want 96000", pts)
	}
	if d := tl.resync(audio); d != 0 {
		t.Errorf("a second resync moved audio by %d", d)
	}
	// Sender reports jitter by tens of milliseconds: once aligned, the
	// track stays put until it drifts far.
	skew = 90 * time.Millisecond
	if d := tl.resync(audio); d != 0 {
		t.Errorf("audio moved by %d for 90 ms of report jitter", d)
	}
	skew = 500 * time.Millisecond
	if d := tl.resync(audio); d != -24000 {
		t.Errorf("audio moved by %d for a drift of 500 ms, want -24000 (500 ms back)", d)
	}
}
