package segmenter

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4"
)

// The trun flags and sample flag of a part, as ISO/IEC 14496-12 8.8.8
// defines them and mediacommon's fmp4.Part sets them.
const (
	trunDataOffset      = 0x001
	trunSampleDuration  = 0x100
	trunSampleSize      = 0x200
	trunSampleFlags     = 0x400
	trunCompositionTime = 0x800

	tfhdDefaultBaseIsMoof = 0x020000
	sampleIsNonSync       = 1 << 16
)

// appendPart appends one part (moof with an mfhd and, per track, a traf of
// tfhd, tfdt and trun; then the mdat of the tracks' samples in order) to b
// and returns it. The bytes are those of mediacommon's fmp4.Part.Marshal
// (TestAppendPartIsMediacommons holds them to it), written without its
// reflection and without a buffer per part: the segmenter's profile had
// Part.Marshal at a fifth of ingest's CPU. An mdat that does not fit its
// 32-bit size is an error (parts are cut at maxPartBytes long before).
func appendPart(b []byte, seq uint32, tracks []*fmp4.PartTrack) ([]byte, error) {
	be := binary.BigEndian
	moof := len(b)
	b = append(b, 0, 0, 0, 0, 'm', 'o', 'o', 'f')
	b = append(b, 0, 0, 0, 16, 'm', 'f', 'h', 'd', 0, 0, 0, 0)
	b = be.AppendUint32(b, seq)
	// Where each track's trun data offset goes, and its samples' offset
	// in the mdat's data.
	type patch struct{ at, data int }
	var patchBuf [4]patch
	patches := patchBuf[:0]
	data := 0
	for _, t := range tracks {
		traf := len(b)
		b = append(b, 0, 0, 0, 0, 't', 'r', 'a', 'f')
		b = append(b, 0, 0, 0, 16, 't', 'f', 'h', 'd')
		b = be.AppendUint32(b, tfhdDefaultBaseIsMoof)
		b = be.AppendUint32(b, uint32(t.ID)) //nolint:gosec // a track id, 1..n
		b = append(b, 0, 0, 0, 20, 't', 'f', 'd', 't', 1, 0, 0, 0)
		b = be.AppendUint64(b, t.BaseTime)
		flags := uint32(trunDataOffset | trunSampleDuration | trunSampleSize)
		for _, s := range t.Samples {
			if s.IsNonSyncSample {
				flags |= trunSampleFlags
			}
			if s.PTSOffset != 0 {
				flags |= trunCompositionTime
			}
		}
		entry := 8
		if flags&trunSampleFlags != 0 {
			entry += 4
		}
		if flags&trunCompositionTime != 0 {
			entry += 4
		}
		size := 20 + entry*len(t.Samples)
		if size > math.MaxUint32 {
			return b, fmt.Errorf("part track %d: %d samples do not fit a trun", t.ID, len(t.Samples))
		}
		b = be.AppendUint32(b, uint32(size))
		b = append(b, 't', 'r', 'u', 'n')
		b = be.AppendUint32(b, 1<<24|flags)
		b = be.AppendUint32(b, uint32(len(t.Samples)))
		patches = append(patches, patch{at: len(b), data: data})
		b = append(b, 0, 0, 0, 0)
		for _, s := range t.Samples {
			b = be.AppendUint32(b, s.Duration)
			b = be.AppendUint32(b, uint32(len(s.Payload))) //nolint:gosec // parts are cut at maxPartBytes
			if flags&trunSampleFlags != 0 {
				f := uint32(0)
				if s.IsNonSyncSample {
					f = sampleIsNonSync
				}
				b = be.AppendUint32(b, f)
			}
			if flags&trunCompositionTime != 0 {
				b = be.AppendUint32(b, uint32(s.PTSOffset)) //nolint:gosec // a signed offset in a version 1 trun
			}
			data += len(s.Payload)
		}
		be.PutUint32(b[traf:], uint32(len(b)-traf)) //nolint:gosec // bounded by the trun's check
	}
	mdat := len(b)
	if len(b)-moof > math.MaxUint32 || 8+data > math.MaxUint32 {
		return b[:moof], fmt.Errorf("part of %d bytes does not fit a 32-bit mdat", data)
	}
	be.PutUint32(b[moof:], uint32(mdat-moof))
	for _, p := range patches {
		be.PutUint32(b[p.at:], uint32(mdat-moof+8+p.data)) //nolint:gosec // checked above
	}
	b = be.AppendUint32(b, uint32(8+data))
	b = append(b, 'm', 'd', 'a', 't')
	for _, t := range tracks {
		for _, s := range t.Samples {
			b = append(b, s.Payload...)
		}
	}
	return b, nil
}
