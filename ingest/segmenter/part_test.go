package segmenter

import (
	"bytes"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4/seekablebuffer"
)

// randomPart is a part of 1–3 tracks whose samples mix what a segmenter
// sees: sync and non-sync, B-frame offsets of either sign or none, empty
// and large payloads, track ids and base times up to their limits.
func randomPart(rng *rand.Rand, noise []byte) (uint32, []*fmp4.PartTrack) {
	tracks := make([]*fmp4.PartTrack, 1+rng.IntN(3))
	for i := range tracks {
		t := &fmp4.PartTrack{ID: 1 + i, BaseTime: rng.Uint64N(1 << 40)}
		switch rng.IntN(4) {
		case 0:
			t.ID = math.MaxUint32
		case 1:
			t.BaseTime = math.MaxUint64
		}
		mixSync, mixOffsets := rng.IntN(2) == 0, rng.IntN(2) == 0
		for range rng.IntN(60) {
			n := rng.IntN(3000)
			if rng.IntN(10) == 0 {
				n = 100_000 + rng.IntN(200_000)
			}
			at := rng.IntN(len(noise) - n)
			s := &fmp4.Sample{Duration: rng.Uint32N(1 << 20), Payload: noise[at : at+n]}
			if mixSync {
				s.IsNonSyncSample = rng.IntN(3) != 0
			}
			if mixOffsets && rng.IntN(2) == 0 {
				s.PTSOffset = rng.Int32N(1<<20) - 1<<19
			}
			t.Samples = append(t.Samples, s)
		}
		tracks[i] = t
	}
	return rng.Uint32(), tracks
}

// TestAppendPartIsMediacommons: the segmenter's part writer gives the
// bytes of mediacommon's fmp4.Part.Marshal (which it replaced for speed)
// for every part, and those bytes read back as the same part, so a segment
// is what players, the transcoder and verify-bundle read as before.
func TestAppendPartIsMediacommons(t *testing.T) {
	rng := rand.New(rand.NewPCG(16, 3))
	noise := make([]byte, 1<<20)
	for i := range noise {
		noise[i] = byte(rng.Uint32())
	}
	buf := []byte("left as it was")
	for i := range 150 {
		seq, tracks := randomPart(rng, noise)
		var want seekablebuffer.Buffer
		if err := (&fmp4.Part{SequenceNumber: seq, Tracks: tracks}).Marshal(&want); err != nil {
			t.Fatal(err)
		}
		got, err := appendPart(buf[:14], seq, tracks)
		if err != nil {
			t.Fatalf("part %d: %v", i, err)
		}
		if string(got[:14]) != "left as it was" {
			t.Fatalf("part %d: the bytes before it were overwritten: %q", i, got[:14])
		}
		if !bytes.Equal(got[14:], want.Bytes()) {
			at := 0
			for at < min(len(got)-14, len(want.Bytes())) && got[14+at] == want.Bytes()[at] {
				at++
			}
			t.Fatalf("part %d (%d tracks): %d bytes, mediacommon's %d, first difference at %d", i, len(tracks), len(got)-14, len(want.Bytes()), at)
		}
		var back fmp4.Parts
		if err := back.Unmarshal(got[14:]); err != nil || len(back) != 1 || len(back[0].Tracks) != len(tracks) {
			t.Fatalf("part %d does not read back: %v", i, err)
		}
		for j, tr := range back[0].Tracks {
			if tr.ID != tracks[j].ID || tr.BaseTime != tracks[j].BaseTime || len(tr.Samples) != len(tracks[j].Samples) {
				t.Fatalf("part %d track %d reads back as id %d base %d with %d samples", i, j, tr.ID, tr.BaseTime, len(tr.Samples))
			}
			for k, s := range tr.Samples {
				w := tracks[j].Samples[k]
				if s.Duration != w.Duration || s.PTSOffset != w.PTSOffset || s.IsNonSyncSample != w.IsNonSyncSample || !bytes.Equal(s.Payload, w.Payload) {
					t.Fatalf("part %d track %d sample %d reads back changed", i, j, k)
				}
			}
		}
		buf = got
	}
}

// TestAppendPartRefusesAnOversizedMdat: a part whose media do not fit the
// mdat's 32-bit size is an error, not a size that wraps around, and
// nothing of it is left in the buffer.
func TestAppendPartRefusesAnOversizedMdat(t *testing.T) {
	// One real payload described many times over: no 4 GiB allocation.
	payload := make([]byte, 64<<20)
	tr := &fmp4.PartTrack{ID: 1}
	for range 65 {
		tr.Samples = append(tr.Samples, &fmp4.Sample{Duration: 1, Payload: payload})
	}
	b, err := appendPart([]byte("kept"), 1, []*fmp4.PartTrack{tr})
	if err == nil {
		t.Fatalf("a %d-byte mdat was written", 65*len(payload))
	}
	if string(b) != "kept" {
		t.Fatalf("the refused part left %d bytes behind", len(b)-4)
	}
}
