// Package oggopus reads an Ogg/Opus stream as WebRTC media samples: one
// Opus frame a page, lasting what its granule position says. The simulator
// (from ffmpeg's pipe) and the tests' WHIP client (from a file) publish
// audio with it.
package oggopus

import (
	"errors"
	"io"
	"time"

	"github.com/pion/webrtc/v4/pkg/media"
	"github.com/pion/webrtc/v4/pkg/media/oggreader"
)

// Samples reads Ogg/Opus from r and calls fn with each audio page, until r
// ends (nil) or fn or the reading fails (that error). Header pages
// (OpusHead, OpusTags) are skipped.
func Samples(r io.Reader, fn func(media.Sample) error) error {
	ogg, _, err := oggreader.NewWith(r)
	if err != nil {
		return err
	}
	var last uint64
	for {
		page, hdr, err := ogg.ParseNextPage()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if _, isHeader := hdr.HeaderType(page); isHeader {
			continue
		}
		samples := hdr.GranulePosition - last
		last = hdr.GranulePosition
		if err := fn(media.Sample{Data: page, Duration: time.Duration(samples) * time.Second / 48000}); err != nil {
			return err
		}
	}
}
