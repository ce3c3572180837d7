package transcoder

import (
	"testing"
)

// TestVideoLayout: the rendition's pictures are decoded in order within the
// raw segment's span, the last one ending at the span's end, and each is
// presented at its raw presentation time, whatever the presentation offsets
// of the raw pictures were.
func TestVideoLayout(t *testing.T) {
	const f = 3600 // a frame at 25 fps, 90 kHz
	for _, tc := range []struct {
		name string
		off  int64   // the raw first picture's presentation offset
		pts  []int64 // of the encoded pictures, in frames from vBase
	}{
		{name: "offsets all alike", off: 2 * f, pts: []int64{2, 3, 4, 5, 6, 7}},
		// The first picture presented without delay, the others two
		// frames late (decode times derived from an RTSP stream with
		// B-frames): the last would be decoded after the end.
		{name: "first offset smaller", off: 0, pts: []int64{0, 3, 4, 5, 6, 7}},
		{name: "no offset", off: 0, pts: []int64{0, 1, 2, 3, 4, 5}},
		{name: "one picture", off: f, pts: []int64{1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const base = 1_000_000
			const end = base + 6*f
			var pictures []encoded
			for i, v := range tc.pts {
				pictures = append(pictures, encoded{pts: base + v*f, key: i == 0})
			}
			tr := videoTrack(pictures, base, end, tc.off)
			if tr.BaseTime != base {
				t.Errorf("tfdt %d, want %d", tr.BaseTime, base)
			}
			dts := int64(tr.BaseTime)
			for i, s := range tr.Samples {
				if s.Duration < 1 {
					t.Errorf("sample %d lasts %d", i, s.Duration)
				}
				if pts := dts + int64(s.PTSOffset); pts != pictures[i].pts {
					t.Errorf("sample %d presented at %d, want %d", i, pts, pictures[i].pts)
				}
				if s.PTSOffset < 0 {
					t.Errorf("sample %d presented before it is decoded (offset %d)", i, s.PTSOffset)
				}
				dts += int64(s.Duration)
			}
			if dts != end {
				t.Errorf("the last picture ends at %d, want the segment's end %d", dts, end)
			}
		})
	}
}
