package whip

import (
	"time"
)

// maxTimestampJump is how far a track's RTP time may run from its arrival
// time before it is taken as a jump of the sender's clock (a broken or
// restarted publisher) and re-anchored to the arrival time. Network delay
// and clock drift over hours stay far below it.
const maxTimestampJump = 10 * time.Second

// Corrections by RTCP sender reports. The first one aligns a track with
// the reference as soon as both have reports, if it is off by more than
// an audio frame (syncThreshold). After that a track is moved only when it
// drifts by more than resyncThreshold: sender reports jitter by tens of
// milliseconds (they map RTP time to the time of sending, and a loaded
// sender sends late), and chasing them would move the audio back and
// forth, dropping or stretching a frame each time.
const (
	syncThreshold   = 15 * time.Millisecond
	resyncThreshold = 150 * time.Millisecond
)

// timeline maps the 32-bit RTP timestamps of a session's tracks onto one
// session timeline, in each track's clock rate (RFC 3550 Sections 5.1 and
// 6.4.1):
//
//   - each track's timestamps are unwrapped into 64 bits, so a session
//     outlives the 32-bit wrap (13 h at 90 kHz, and a random start makes
//     the first wrap come any time);
//   - a track starts at its first packet's arrival time relative to the
//     session's first packet, which aligns the tracks by arrival;
//   - when RTCP sender reports have mapped both a track and the reference
//     track (the first video track, else the first track) to the sender's
//     NTP clock, the track is shifted so that samples captured at the same
//     instant get the same time — the sender's lip sync, not the network's;
//     later it is shifted again only if it drifts far (resyncThreshold).
//
// It is not safe for concurrent use: the session serializes calls.
type timeline struct {
	start   time.Time // arrival of the session's first packet
	started bool
	ref     *trackClock
}

// trackClock is one track's state in a timeline.
type trackClock struct {
	rate    int64
	started bool
	last    uint32 // last RTP timestamp seen
	ext     int64  // last timestamp, unwrapped
	offset  int64  // session time = ext + offset, in rate units
	// ntp maps an RTP timestamp to the sender's wall clock; it is set
	// from the track's RTCP sender reports (nil before the first).
	ntp func(ts uint32) (time.Time, bool)
	// synced is set once sender reports aligned the track.
	synced bool
}

func newTrackClock(rate int, ntp func(uint32) (time.Time, bool)) *trackClock {
	return &trackClock{rate: int64(rate), ntp: ntp}
}

// ticks converts a duration into ticks of rate.
func ticks(d time.Duration, rate int64) int64 {
	sec := int64(d / time.Second)
	rem := int64(d % time.Second)
	return sec*rate + rem*rate/int64(time.Second)
}

// setReference makes c the track the others are aligned to.
func (tl *timeline) setReference(c *trackClock) { tl.ref = c }

// pts returns the session time of an RTP timestamp of track c that arrived
// at arrival. jumped reports that the track's clock was re-anchored.
func (tl *timeline) pts(c *trackClock, ts uint32, arrival time.Time) (pts int64, jumped bool) {
	if !tl.started {
		tl.started = true
		tl.start = arrival
	}
	expected := ticks(arrival.Sub(tl.start), c.rate)
	if !c.started {
		c.started = true
		c.last = ts
		c.ext = 0
		c.offset = expected
		return expected, false
	}
	// The difference as a signed 32-bit value unwraps the timestamp and
	// lets a reordered packet be slightly older than the last one.
	c.ext += int64(int32(ts - c.last))
	c.last = ts
	pts = c.ext + c.offset
	if d := pts - expected; d > ticks(maxTimestampJump, c.rate) || -d > ticks(maxTimestampJump, c.rate) {
		c.offset = expected - c.ext
		return expected, true
	}
	return pts, false
}

// resync aligns track c to the reference track by their sender reports.
// It returns the correction applied to c, in c's rate (0 when none was
// needed or possible).
func (tl *timeline) resync(c *trackClock) int64 {
	ref := tl.ref
	if ref == nil || ref == c || !ref.started || !c.started || ref.ntp == nil || c.ntp == nil {
		return 0
	}
	refNTP, ok := ref.ntp(ref.last)
	if !ok {
		return 0
	}
	cNTP, ok := c.ntp(c.last)
	if !ok {
		return 0
	}
	// The reference's last sample is at refPTS on the session timeline
	// and was captured at refNTP; c's last sample was captured at cNTP and
	// so belongs at refPTS + (cNTP - refNTP).
	refPTS := ref.ext + ref.offset
	want := refPTS*c.rate/ref.rate + ticks(cNTP.Sub(refNTP), c.rate)
	have := c.ext + c.offset
	delta := want - have
	limit := ticks(syncThreshold, c.rate)
	if c.synced {
		limit = ticks(resyncThreshold, c.rate)
	}
	c.synced = true
	if delta <= limit && -delta <= limit {
		return 0
	}
	c.offset += delta
	return delta
}
