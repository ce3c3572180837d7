package spool_test

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/formats/mp4"

	"github.com/nokstream/nokstream/ingest/segmenter"
	"github.com/nokstream/nokstream/ingest/spool"
	"github.com/nokstream/nokstream/internal/events"
)

// TestNotIndependentInTheEvent: a segment cut at the duration limit without
// a keyframe is announced with "independent": false; a keyframe-aligned one
// carries no such field, and an event without it means independent.
func TestNotIndependentInTheEvent(t *testing.T) {
	sp, err := spool.Open(t.TempDir(), "n1", quiet(), time.Now)
	if err != nil {
		t.Fatal(err)
	}
	cfg := segmenter.Config{SegmentDuration: time.Second, PartDuration: 500 * time.Millisecond, MaxSegmentDuration: 2 * time.Second}
	sps := []byte{0x67, 0x64, 0x00, 0x1f, 0xac, 0xd9, 0x40, 0x50, 0x05, 0xbb, 0x01, 0x10, 0x00, 0x00, 0x03,
		0x00, 0x10, 0x00, 0x00, 0x03, 0x03, 0x20, 0xf1, 0x83, 0x19, 0x60}
	seg, err := segmenter.New(cfg, []segmenter.Track{{Codec: &mp4.CodecH264{SPS: sps, PPS: []byte{0x68, 0xeb, 0xe3, 0xcb, 0x22, 0xc0}},
		TimeScale: 90000}}, sp.Stream("site1", "ws1-cam", "webcam"), time.Now)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 25 * 5 { // 5 s at 25 fps, one keyframe at the start
		if err := seg.WriteSample(0, int64(i)*3600, 0, i == 0, bytes.Repeat([]byte{byte(i)}, 500)); err != nil {
			t.Fatal(err)
		}
	}
	if err := seg.Close(); err != nil {
		t.Fatal(err)
	}
	pend, err := sp.Pending()
	if err != nil {
		t.Fatal(err)
	}
	if len(pend) != 3 {
		t.Fatalf("%d segments of 5 s cut at 2 s, want 3", len(pend))
	}
	for i, p := range pend {
		b, err := json.Marshal(p.Event)
		if err != nil {
			t.Fatal(err)
		}
		has := bytes.Contains(b, []byte(`"independent":false`))
		if want := i > 0; has != want || p.Event.IsIndependent() == want {
			t.Errorf("segment %d: event %s, want independent:false %v", i, b, want)
		}
		if i == 0 && bytes.Contains(b, []byte(`"independent"`)) {
			t.Errorf("a keyframe-aligned segment's event names independent: %s", b)
		}
	}
	old, err := events.DecodeSegmentClosed([]byte(`{"segment_id":"s","stream_id":"a/b","site":"a","device":"b","sequence":0,
		"start":"2026-01-01T00:00:00Z","duration":6,"sha256":"` + string(bytes.Repeat([]byte("0"), 64)) + `","chain":"` +
		string(bytes.Repeat([]byte("1"), 64)) + `","object_key":"k","init_key":"i"}`))
	if err != nil || !old.IsIndependent() {
		t.Errorf("an event without the field: %v, independent %v, want independent", err, old != nil && old.IsIndependent())
	}
}
