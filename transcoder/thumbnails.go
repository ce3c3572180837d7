package transcoder

import (
	"errors"
	"fmt"
	"math"
	"path"
	"strconv"
	"time"

	"github.com/asticode/go-astiav"

	"github.com/nokstream/nokstream/internal/webvtt"
)

// thumbnails is the thumbnail stage: a sprite of one tile per
// Thumbnails.Interval of the segment, Thumbnails.Columns tiles a row, each
// scaled from the rendition's picture, and the WebVTT fragment pointing
// into it. It owns its FFmpeg objects (free).
type thumbnails struct {
	cfg Thumbnails
	// spriteName is how the WebVTT fragment refers to the sprite.
	spriteName string

	tiles  int
	tileW  int
	tileH  int
	cols   int
	rows   int
	next   int // the next tile to fill
	sws    *astiav.SoftwareScaleContext
	tile   *astiav.Frame
	sprite *astiav.Frame
}

// free frees what the stage allocated, in the reverse order.
func (t *thumbnails) free() {
	if t.sprite != nil {
		t.sprite.Free()
	}
	if t.tile != nil {
		t.tile.Free()
	}
	if t.sws != nil {
		t.sws.Free()
	}
}

// open sets up the sprite of a segment lasting dur whose rendition is
// w×h. Without an interval there are no thumbnails, and the stage does
// nothing.
func (t *thumbnails) open(w, h int, dur time.Duration) error {
	if t.cfg.Interval <= 0 {
		return nil
	}
	t.tiles = max(1, int(math.Ceil(dur.Seconds()/t.cfg.Interval.Seconds()-1e-6)))
	t.tileW = min(t.cfg.Width, w) &^ 1
	t.tileH = t.cfg.Height
	if t.tileH <= 0 {
		t.tileH = int(math.Round(float64(t.tileW)*float64(h)/float64(w)/2)) * 2
	}
	t.tileH = max(2, min(t.tileH, h)&^1)
	t.cols = max(1, min(t.tiles, t.cfg.Columns))
	t.rows = (t.tiles + t.cols - 1) / t.cols

	sws, err := astiav.CreateSoftwareScaleContext(w, h, astiav.PixelFormatYuv420P, t.tileW, t.tileH,
		astiav.PixelFormatYuvj420P, astiav.NewSoftwareScaleContextFlags(astiav.SoftwareScaleContextFlagArea))
	if err != nil {
		return fmt.Errorf("thumbnail scaler: %w", err)
	}
	t.sws = sws
	t.tile = astiav.AllocFrame()
	t.sprite = astiav.AllocFrame()
	t.sprite.SetWidth(t.cols * t.tileW)
	t.sprite.SetHeight(t.rows * t.tileH)
	t.sprite.SetPixelFormat(astiav.PixelFormatYuvj420P)
	if err := t.sprite.AllocBuffer(0); err != nil {
		return fmt.Errorf("alloc sprite: %w", err)
	}
	if err := t.sprite.ImageFillBlack(); err != nil {
		return fmt.Errorf("clear sprite: %w", err)
	}
	return nil
}

// picture fills the next tile with pic when pic, shown at rel from the
// segment's first picture, is the first picture of that tile's interval.
func (t *thumbnails) picture(pic *astiav.Frame, rel time.Duration) error {
	if t.sprite == nil || t.next >= t.tiles || rel < time.Duration(t.next)*t.cfg.Interval-time.Millisecond {
		return nil
	}
	if err := t.put(t.next, pic); err != nil {
		return err
	}
	t.next++
	return nil
}

// put puts pic into tile i of the sprite. When there is none (after the
// last picture), it repeats the last tile.
func (t *thumbnails) put(i int, pic *astiav.Frame) error {
	if pic != nil && pic.Width() > 0 {
		t.tile.Unref()
		t.tile.SetWidth(t.tileW)
		t.tile.SetHeight(t.tileH)
		t.tile.SetPixelFormat(astiav.PixelFormatYuvj420P)
		if err := t.tile.AllocBuffer(0); err != nil {
			return fmt.Errorf("alloc thumbnail: %w", err)
		}
		if err := t.sws.ScaleFrame(pic, t.tile); err != nil {
			return fmt.Errorf("scale thumbnail: %w", err)
		}
	}
	return blit(t.sprite, t.tile, (i%t.cols)*t.tileW, (i/t.cols)*t.tileH)
}

// finish fills the tiles no picture reached with last (a picture late or
// missing at the end), and returns the sprite as a JPEG and its WebVTT
// fragment for the segment at start on the media timeline, lasting dur;
// nil, nil without a sprite.
func (t *thumbnails) finish(last *astiav.Frame, start, dur time.Duration) (jpg, vtt []byte, err error) {
	if t.sprite == nil {
		return nil, nil, nil
	}
	for ; t.next < t.tiles && t.next > 0; t.next++ {
		if err := t.put(t.next, last); err != nil {
			return nil, nil, err
		}
	}
	if jpg, err = encodeJPEG(t.sprite, t.cfg.Quality); err != nil {
		return nil, nil, err
	}
	return jpg, t.cues(start, dur), nil
}

// cues returns the WebVTT fragment of the sprite: one cue per tile, on the
// stream's media timeline, together covering the segment.
func (t *thumbnails) cues(start, dur time.Duration) []byte {
	cues := make([]webvtt.Cue, 0, t.tiles)
	end := start + dur
	for i := range t.tiles {
		s := start + time.Duration(i)*t.cfg.Interval
		e := min(s+t.cfg.Interval, end)
		if i == t.tiles-1 {
			e = end
		}
		x, y := (i%t.cols)*t.tileW, (i/t.cols)*t.tileH
		cues = append(cues, webvtt.Cue{Start: s, End: e,
			Text: fmt.Sprintf("%s#xywh=%d,%d,%d,%d", path.Base(t.spriteName), x, y, t.tileW, t.tileH)})
	}
	return webvtt.Marshal(cues)
}

// ffQP2Lambda is FFmpeg's FF_QP2LAMBDA: global_quality is a quantizer times
// this.
const ffQP2Lambda = 118

// encodeJPEG encodes a full-range YUV 4:2:0 picture with FFmpeg's MJPEG
// encoder at quantizer quality (2 best to 31 worst).
func encodeJPEG(f *astiav.Frame, quality int) ([]byte, error) {
	codec := astiav.FindEncoder(astiav.CodecIDMjpeg)
	if codec == nil {
		return nil, errors.New("no MJPEG encoder in this FFmpeg")
	}
	cc := astiav.AllocCodecContext(codec)
	if cc == nil {
		return nil, errors.New("alloc MJPEG encoder")
	}
	defer cc.Free()
	cc.SetWidth(f.Width())
	cc.SetHeight(f.Height())
	cc.SetPixelFormat(astiav.PixelFormatYuvj420P)
	cc.SetTimeBase(astiav.NewRational(1, 1))
	cc.SetFlags(cc.Flags().Add(astiav.CodecContextFlagQscale))
	opts := astiav.NewDictionary()
	defer opts.Free()
	if err := opts.Set("global_quality", strconv.Itoa(quality*ffQP2Lambda), 0); err != nil {
		return nil, err
	}
	if err := cc.Open(codec, opts); err != nil {
		return nil, fmt.Errorf("open MJPEG encoder: %w", err)
	}
	f.SetPts(0)
	if err := cc.SendFrame(f); err != nil {
		return nil, fmt.Errorf("encode sprite: %w", err)
	}
	if err := cc.SendFrame(nil); err != nil {
		return nil, fmt.Errorf("encode sprite: %w", err)
	}
	pkt := astiav.AllocPacket()
	defer pkt.Free()
	if err := cc.ReceivePacket(pkt); err != nil {
		return nil, fmt.Errorf("encode sprite: %w", err)
	}
	return pkt.Data(), nil
}
