package segmenter

import (
	"bytes"
	"fmt"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4"
)

// MediaDuration returns the duration of a media segment as the segmenter
// measures it: the span of the first video track (or the first track when
// there is no video), from the first sample's decode time to the end of the
// last sample.
func MediaDuration(init, seg []byte) (time.Duration, error) {
	var in fmp4.Init
	if err := in.Unmarshal(bytes.NewReader(init)); err != nil {
		return 0, fmt.Errorf("parse init: %w", err)
	}
	if len(in.Tracks) == 0 {
		return 0, fmt.Errorf("parse init: no tracks")
	}
	ref := in.Tracks[0]
	for _, t := range in.Tracks {
		if t.Codec.IsVideo() {
			ref = t
			break
		}
	}
	var parts fmp4.Parts
	if err := parts.Unmarshal(seg); err != nil {
		return 0, fmt.Errorf("parse segment: %w", err)
	}
	var start, end uint64
	found := false
	for _, p := range parts {
		for _, pt := range p.Tracks {
			if pt.ID != ref.ID {
				continue
			}
			t := pt.BaseTime
			if !found || t < start {
				start = t
			}
			found = true
			for _, s := range pt.Samples {
				t += uint64(s.Duration)
			}
			if t > end {
				end = t
			}
		}
	}
	if !found {
		return 0, fmt.Errorf("parse segment: no samples of track %d", ref.ID)
	}
	return ticksToDuration(int64(end-start), ref.TimeScale), nil
}
