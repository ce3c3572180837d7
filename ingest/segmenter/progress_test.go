package segmenter_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nokstream/nokstream/ingest/segmenter"
)

// A track's media arriving with nothing recorded is reported once a stall,
// with the last error; recording again starts the watch anew.
func TestProgress(t *testing.T) {
	cfg := segmenter.DefaultConfig()
	cfg.UnrecordedAfter = 2 * time.Second
	s, err := segmenter.New(cfg, []segmenter.Track{{Codec: aacCodec(), TimeScale: 48000}}, &countOutput{}, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	p := s.Progress(0, "MPEG-4 Audio")
	t0 := time.Unix(1_700_000_000, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	bad := errors.New("bad audio config")
	for _, step := range []struct {
		ms   int
		err  error
		rec  bool     // a sample is recorded before the packet
		want []string // in the reason; nil for none
	}{
		{ms: 0},
		{ms: 1000, err: bad},
		{ms: 2000, want: []string{"MPEG-4 Audio", "for 2s", "recorded nothing:", "bad audio config"}},
		{ms: 3000, err: bad}, // the same stall: said once
		{ms: 9000},
		{ms: 10000, rec: true},
		{ms: 11000},
		{ms: 12000, want: []string{"recorded nothing more", "waiting for its parameter sets or a keyframe"}},
	} {
		if step.rec {
			if err := s.WriteSample(0, int64(step.ms)*48, 0, true, []byte{1, 2, 3}); err != nil {
				t.Fatal(err)
			}
		}
		why := p.Packet(at(step.ms), step.err)
		if step.want == nil {
			if why != "" {
				t.Errorf("at %d ms: reported %q, want nothing", step.ms, why)
			}
			continue
		}
		for _, w := range step.want {
			if !strings.Contains(why, w) {
				t.Errorf("at %d ms: reported %q, want it to say %q", step.ms, why, w)
			}
		}
	}
}
