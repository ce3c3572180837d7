package transcoder

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nokstream/nokstream/internal/bus"
	"github.com/nokstream/nokstream/internal/events"
)

// span is an expected observation: kind, from and to in seconds after the
// clip's start.
type span struct {
	kind     string
	from, to float64
}

// TestObservations runs clips with something wrong in them through the
// transcoder and checks that each yields exactly the observation a reviewer
// must see, at the right time (± 0.5 s), also when it spans a segment
// boundary, and that a clean clip yields none.
func TestObservations(t *testing.T) {
	t.Parallel()
	const tone = "sine=frequency=440:sample_rate=48000"
	for _, tc := range []struct {
		name       string
		clip       clipSpec
		segment    time.Duration
		silenceMin time.Duration // 0: the default, 30 s
		want       []span
	}{
		{name: "clean", segment: 6 * time.Second,
			clip: clipSpec{video: "testsrc2=size=640x360:rate=25", audio: tone, seconds: 12}},
		{name: "3 s of black in the middle", segment: 6 * time.Second,
			clip: clipSpec{video: "testsrc2=size=640x360:rate=25,drawbox=x=0:y=0:w=iw:h=ih:color=black:t=fill:enable='between(t,4.5,7.5)'",
				audio: tone, seconds: 12},
			want: []span{{events.ObsBlack, 4.5, 7.5}}},
		{name: "8 s freeze across a segment boundary", segment: 6 * time.Second,
			clip: clipSpec{video: "testsrc2=size=640x360:rate=25,split[a][b];[a][b]freezeframes=first=76:last=275:replace=75[out0]",
				audio: tone, seconds: 16},
			want: []span{{events.ObsFrozen, 3, 11}}},
		{name: "7 s of silence, 5 s threshold", segment: 6 * time.Second, silenceMin: 5 * time.Second,
			clip: clipSpec{video: "testsrc2=size=320x180:rate=25", audio: tone + ",volume=volume=0:enable='between(t,3,10)'", seconds: 14},
			want: []span{{events.ObsSilent, 3, 10}}},
		{name: "34 s of silence, default threshold", segment: 6 * time.Second,
			clip: clipSpec{video: "testsrc2=size=320x180:rate=10", audio: tone + ",volume=volume=0:enable='between(t,4,38)'", seconds: 42, gop: 20},
			want: []span{{events.ObsSilent, 4, 38}}},
		{name: "sudden change of scene", segment: 6 * time.Second,
			clip: clipSpec{video: "testsrc2=size=640x360:rate=25:d=5[a];smptehdbars=size=640x360:rate=25:d=5[b];[a][b]concat=n=2[out0]",
				audio: tone, seconds: 10},
			want: []span{{events.ObsScene, 5, 5}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			segs := cutClip(t, ffmpegFMP4(t, tc.clip), "cam1", events.SourceRoom, tc.segment, t0)
			cfg := testConfig()
			if tc.silenceMin > 0 {
				cfg.Detect.SilenceMin = tc.silenceMin
			}
			h := newHarness(t, cfg)
			h.publish(segs...)
			h.waitDone(segs)
			// An observation in progress at the end of the clip would be
			// reported after the idle timeout; these clips have none.
			checkObservations(t, h.observed(), tc.want)
		})
	}
}

func checkObservations(t *testing.T, got []events.Observation, want []span) {
	t.Helper()
	t.Logf("observations:%s", describe(got))
	if len(got) != len(want) {
		t.Errorf("%d observations, want %d: %s", len(got), len(want), describe(got))
		return
	}
	for i, w := range want {
		o := got[i]
		from, to := o.Start.Sub(t0).Seconds(), o.End.Sub(t0).Seconds()
		if o.Kind != w.kind || abs(from-w.from) > 0.5 || abs(to-w.to) > 0.5 {
			t.Errorf("observation %d: %s from %.2f s to %.2f s, want %s from %.1f s to %.1f s", i, o.Kind, from, to, w.kind, w.from, w.to)
		}
		if o.Reporter != Reporter || o.StreamID != "site1/cam1" || o.ObservationID == "" {
			t.Errorf("observation %d: %+v", i, o)
		}
		if (o.Kind == events.ObsFrozen || o.Kind == events.ObsSilent) && abs(o.Measure-(to-from)) > 0.01 {
			t.Errorf("observation %d: measure %v, want its duration %.3f", i, o.Measure, to-from)
		}
	}
}

func describe(obs []events.Observation) string {
	var b strings.Builder
	for _, o := range obs {
		fmt.Fprintf(&b, "\n  %s %s → %s measure %v", o.Kind, o.Start.Sub(t0), o.End.Sub(t0), o.Measure)
	}
	return b.String()
}

func abs(v float64) float64 {
	if v < 0 {
		return -v
	}
	return v
}

// TestUndecodable sends a segment whose pictures are garbage between two
// good ones: it goes to the dead-letter topic with an undecodable
// observation over its time span, and the segment after it is transcoded as
// usual.
func TestUndecodable(t *testing.T) {
	t.Parallel()
	segs := cutClip(t, ffmpegFMP4(t, clipSpec{video: "testsrc2=size=320x180:rate=25", audio: "sine=sample_rate=48000", seconds: 6}),
		"cam1", events.SourceRoom, 2*time.Second, t0)
	if len(segs) != 3 {
		t.Fatalf("%d segments, want 3", len(segs))
	}
	corrupt(t, &segs[1])
	h := newHarness(t, testConfig())
	h.publish(segs...)
	h.waitDone(segs)

	h.mu.Lock()
	_, ok0 := h.renditions[segs[0].event.SegmentID]
	_, ok1 := h.renditions[segs[1].event.SegmentID]
	_, ok2 := h.renditions[segs[2].event.SegmentID]
	dead := append([]bus.Message(nil), h.dead...)
	h.mu.Unlock()
	if !ok0 || ok1 || !ok2 {
		t.Errorf("renditions of segments 0, 1 (corrupt), 2: %v %v %v, want true false true", ok0, ok1, ok2)
	}
	if len(dead) != 1 {
		t.Fatalf("%d dead-lettered messages, want 1", len(dead))
	}
	if ev, err := events.DecodeSegmentClosed(dead[0].Value); err != nil || ev.SegmentID != segs[1].event.SegmentID {
		t.Errorf("dead-lettered %s, want the corrupt segment %s", dead[0].Value, segs[1].event.SegmentID)
	}
	if !strings.Contains(dead[0].Headers[bus.HeaderError], "undecodable") {
		t.Errorf("dead letter says %q, want it to say why", dead[0].Headers[bus.HeaderError])
	}
	obs := h.observed()
	if len(obs) != 1 || obs[0].Kind != events.ObsUndecodable || obs[0].SegmentID != segs[1].event.SegmentID ||
		!obs[0].Start.Equal(segs[1].event.Start) || obs[0].End.Sub(obs[0].Start).Seconds()-segs[1].event.Duration > 0.001 {
		t.Errorf("observations %+v, want one undecodable over segment 1", obs)
	}
}

// corrupt overwrites the media data of a segment with noise, keeping its
// boxes, and makes its event describe the new bytes, as if the camera had
// sent garbage.
func corrupt(t *testing.T, s *rawSegment) {
	t.Helper()
	data := bytes.Clone(s.data)
	rng := rand.New(rand.NewPCG(1, 2))
	for off := 0; off+8 <= len(data); {
		size := int(binary.BigEndian.Uint32(data[off:]))
		if string(data[off+4:off+8]) == "mdat" {
			for i := off + 8; i < off+size; i++ {
				data[i] = byte(rng.Uint32())
			}
		}
		off += size
	}
	s.data = data
	ev := *s.event
	sum := ref("", data)
	ev.SHA256, ev.Bytes = sum.SHA256, sum.Bytes
	s.event = &ev
}

// TestSkipAndRestart shows that the transcoder is idempotent and carries its
// detectors across a restart: a segment delivered again is not transcoded
// again but announced again, and a freeze that spans a restart of the
// transcoder between two segments is still one observation.
func TestSkipAndRestart(t *testing.T) {
	t.Parallel()
	segs := cutClip(t, ffmpegFMP4(t, clipSpec{video: "testsrc2=size=320x180:rate=25,split[a][b];[a][b]freezeframes=first=26:last=225:replace=25[out0]",
		audio: "sine=sample_rate=48000", seconds: 12}), "cam1", events.SourceRoom, 6*time.Second, t0)
	if len(segs) != 2 {
		t.Fatalf("%d segments, want 2", len(segs))
	}
	h := newHarness(t, testConfig())
	h.publish(segs[0])
	h.waitDone(segs[:1])
	sprite := h.get(h.renditions[segs[0].event.SegmentID].Thumbnails.Sprite.Key)

	// Restart, then the first segment again and the second.
	h.stop()
	h.start()
	h.publish(segs[0], segs[1])
	h.wait("three announcements", func() bool { return h.announced == 3 })
	h.settle()
	if again := h.get(h.renditions[segs[0].event.SegmentID].Thumbnails.Sprite.Key); !bytes.Equal(again, sprite) {
		t.Errorf("segment 0 was transcoded again")
	}
	checkObservations(t, h.observed(), []span{{events.ObsFrozen, 1, 9}})
	// The stream keeps one detector state, its latest: the restart
	// carried on from it, and older ones are deleted.
	var states []string
	if err := h.blobs.List(t.Context(), "review/site1/cam1/state/", func(key string) error {
		states = append(states, key)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if want := []string{fmt.Sprintf("review/site1/cam1/state/%010d.json", segs[1].event.Sequence)}; !slices.Equal(states, want) {
		t.Errorf("detector states stored %v, want only %v", states, want)
	}
}

// TestIdleFlush shows that an observation still in progress when a stream
// stops is reported once the stream has been quiet for the idle timeout,
// ending where the stream ended.
func TestIdleFlush(t *testing.T) {
	t.Parallel()
	segs := cutClip(t, ffmpegFMP4(t, clipSpec{video: "testsrc2=size=320x180:rate=25,drawbox=w=iw:h=ih:color=black:t=fill:enable='gte(t,3)'",
		audio: "sine=sample_rate=48000", seconds: 6}), "cam1", events.SourceRoom, 6*time.Second, t0)
	cfg := testConfig()
	cfg.IdleFlush = 500 * time.Millisecond
	h := newHarness(t, cfg)
	h.publish(segs...)
	h.waitDone(segs)
	h.wait("the black picture at the end to be reported", func() bool { return len(h.observations) > 0 })
	checkObservations(t, h.observed(), []span{{events.ObsBlack, 3, 6}})
}
