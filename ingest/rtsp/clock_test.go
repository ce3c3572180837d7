package rtsp_test

import (
	"encoding/hex"
	"strings"
	"testing"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"
)

// TestAbsurdAudioClockIsRefused: AAC whose configuration names a sample
// rate no encoder uses (1 Hz: an access unit of 1 024 samples would last
// 17 minutes, and a segment of audio hours) is not recorded: alone in the
// description it is refused with 415, as unsupported media.
func TestAbsurdAudioClockIsRefused(t *testing.T) {
	t.Parallel()
	s := startServer(t, nil)
	for _, rate := range []int{1, 1000, 16_000_000} {
		conf, err := (&mpeg4audio.AudioSpecificConfig{Type: mpeg4audio.ObjectTypeAACLC, SampleRate: rate, ChannelCount: 2}).Marshal()
		if err != nil {
			t.Fatal(err)
		}
		sdp := "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=x\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\n" +
			"m=audio 0 RTP/AVP 97\r\na=rtpmap:97 mpeg4-generic/48000/2\r\n" +
			"a=fmtp:97 profile-level-id=1;mode=AAC-hbr;sizelength=13;indexlength=3;indexdeltalength=3;config=" + hex.EncodeToString(conf) + "\r\n" +
			"a=control:trackID=0\r\n"
		status := rawRTSP(t, s.cfg.Addr, "ANNOUNCE", "rtsp://"+s.cfg.Addr+"/site1/cam1",
			map[string]string{"Authorization": basic("cam1", "s3cret-cam1")}, []byte(sdp))
		if !strings.Contains(status, " 415 ") {
			t.Errorf("AAC at %d Hz: server answers %q, want 415", rate, status)
		}
	}
	if !strings.Contains(s.log.String(), "no supported media") {
		t.Errorf("the log does not say why")
	}
}
