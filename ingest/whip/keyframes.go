package whip

import "time"

// keyframes decides when to ask a publisher for a keyframe. A browser
// sends one only when asked, and the segmenter cuts only at a keyframe, so
// the schedule follows the segmenter's cuts: it asks once the open segment
// is a segment duration long, and again every keyframeRetry until a
// keyframe comes.
//
// It mirrors the cuts from what is written, as the segmenter makes them:
// the first keyframe opens a segment, a keyframe a segment duration after
// the one that opened the current segment opens the next, and so does the
// first keyframe after a codec configuration change (the segmenter closes
// the segment at the change). A missed cut would make the schedule ask too
// early in a segment, move its mirror to the keyframe that came, and leave
// the real segment running to twice its duration.
//
// Times are the video track's PTS on the session timeline, in its clock
// rate. The session's lock guards it.
type keyframes struct {
	segment int64 // the segment duration in the video clock's ticks

	got     bool  // a keyframe was written
	need    bool  // video was lost: ask now, then every keyframeRetry
	cutNext bool  // the next keyframe opens a segment
	cutPTS  int64 // PTS of the keyframe that opened the current segment
	lastPTS int64 // PTS of the last video frame written
	lastAsk time.Time
}

// written records a video frame handed to the segmenter.
func (k *keyframes) written(pts int64, key bool) {
	k.lastPTS = pts
	if !key {
		return
	}
	k.need = false
	if !k.got || k.cutNext || pts-k.cutPTS >= k.segment {
		k.got, k.cutNext, k.cutPTS = true, false, pts
	}
}

// codecChanged records that the segmenter closed its segment at a new
// codec configuration of the video track: the next keyframe opens one.
func (k *keyframes) codecChanged() { k.cutNext = true }

// lost records that video was lost (packets, or a frame the writer could
// not follow): a keyframe is needed at once.
func (k *keyframes) lost() { k.need = true }

// due reports whether to ask for a keyframe at now, and if so counts it as
// asked.
func (k *keyframes) due(now time.Time) bool {
	var due bool
	switch {
	case k.need:
		due = now.Sub(k.lastAsk) >= keyframeRetry
	case !k.got:
		due = now.Sub(k.lastAsk) >= firstKeyframeRetry
	case k.cutNext:
		// The segment was closed at a codec change and the next opens
		// only at a keyframe: a browser sends its new configuration
		// with one, but ask if it did not.
		due = now.Sub(k.lastAsk) >= keyframeRetry
	default:
		// The segment is long enough: the segmenter cuts at the next
		// keyframe, and a browser sends one only when asked.
		due = k.lastPTS-k.cutPTS >= k.segment && now.Sub(k.lastAsk) >= keyframeRetry
	}
	if due {
		k.lastAsk = now
	}
	return due
}
