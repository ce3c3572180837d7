package transcoder

import (
	"errors"
	"fmt"
	"math"
	"strconv"

	"github.com/asticode/go-astiav"
)

// openSprite sets up the sprite of the segment's thumbnails: one tile per
// Thumbnails.Interval of the segment, Thumbnails.Columns tiles a row.
func (p *pipeline) openSprite() error {
	if p.thumbs.Interval <= 0 {
		return nil
	}
	dur := ticks(p.vEnd-p.vBase, p.vTB)
	p.tiles = max(1, int(math.Ceil(dur.Seconds()/p.thumbs.Interval.Seconds()-1e-6)))
	p.tileW = min(p.thumbs.Width, p.outW) &^ 1
	p.tileH = p.thumbs.Height
	if p.tileH <= 0 {
		p.tileH = int(math.Round(float64(p.tileW)*float64(p.outH)/float64(p.outW)/2)) * 2
	}
	p.tileH = max(2, min(p.tileH, p.outH)&^1)
	p.cols = max(1, min(p.tiles, p.thumbs.Columns))
	p.rows = (p.tiles + p.cols - 1) / p.cols

	sws, err := astiav.CreateSoftwareScaleContext(p.outW, p.outH, astiav.PixelFormatYuv420P, p.tileW, p.tileH,
		astiav.PixelFormatYuvj420P, astiav.NewSoftwareScaleContextFlags(astiav.SoftwareScaleContextFlagArea))
	if err != nil {
		return fmt.Errorf("thumbnail scaler: %w", err)
	}
	p.tileSws = sws
	p.onClose(sws.Free)
	p.tileFrame = astiav.AllocFrame()
	p.onClose(p.tileFrame.Free)
	p.sprite = astiav.AllocFrame()
	p.onClose(p.sprite.Free)
	p.sprite.SetWidth(p.cols * p.tileW)
	p.sprite.SetHeight(p.rows * p.tileH)
	p.sprite.SetPixelFormat(astiav.PixelFormatYuvj420P)
	if err := p.sprite.AllocBuffer(0); err != nil {
		return fmt.Errorf("alloc sprite: %w", err)
	}
	if err := p.sprite.ImageFillBlack(); err != nil {
		return fmt.Errorf("clear sprite: %w", err)
	}
	return nil
}

// thumbnail puts the picture being encoded into tile i of the sprite. When
// there is none (after the last picture), it repeats the last tile.
func (p *pipeline) thumbnail(i int) error {
	if p.sprite == nil {
		return nil
	}
	if p.encFrame != nil && p.encFrame.Width() > 0 {
		p.tileFrame.Unref()
		p.tileFrame.SetWidth(p.tileW)
		p.tileFrame.SetHeight(p.tileH)
		p.tileFrame.SetPixelFormat(astiav.PixelFormatYuvj420P)
		if err := p.tileFrame.AllocBuffer(0); err != nil {
			return fmt.Errorf("alloc thumbnail: %w", err)
		}
		if err := p.tileSws.ScaleFrame(p.encFrame, p.tileFrame); err != nil {
			return fmt.Errorf("scale thumbnail: %w", err)
		}
	}
	return blit(p.sprite, p.tileFrame, (i%p.cols)*p.tileW, (i/p.cols)*p.tileH)
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
