package transcoder

import (
	"errors"
	"fmt"
	"time"

	"github.com/asticode/go-astiav"

	"github.com/nokstream/nokstream/transcoder/detect"
)

// errUndecodable marks a segment whose media cannot be decoded: retrying
// cannot help.
var errUndecodable = errors.New("undecodable segment")

// Grid size of the pictures the detectors compare.
const gridW, gridH = 64, 36

// job is one raw segment to transcode.
type job struct {
	init, data []byte
	// start is the wall clock of the segment's first sample.
	start time.Time
	// sequence numbers the fragment (mfhd).
	sequence int64
	profile  Profile
	thumbs   Thumbnails
	// spriteName is how the WebVTT fragment refers to the sprite.
	spriteName string
	// analysisFPS is how many pictures a second the detectors look at.
	analysisFPS float64
	// threads per decoder and encoder; 0 lets FFmpeg choose.
	threads int
	det     *detect.Detector
	// codecs are those the stream's previous segment left, or nil;
	// transcode uses them or frees them.
	codecs *videoCodecs
}

// output is what one decoding pass of a segment produced.
type output struct {
	init    []byte // the rendition's init segment
	segment []byte // the rendition's media segment
	codecs  []string
	width   int
	height  int
	// frames is the number of pictures in the rendition.
	frames int
	sprite []byte
	tiles  int
	cols   int
	rows   int
	tileW  int
	tileH  int
	vtt    []byte
	// mediaStart is the segment's decode time on its stream's media
	// timeline (tfdt), and duration its length.
	mediaStart time.Duration
	duration   time.Duration
	srcWidth   int
	srcHeight  int
	// skipped counts the source pictures not decoded (skippable).
	skipped int
	// reused says the video codecs were the previous segment's.
	reused bool
	// audioErr says why the rendition has no audio though the source has.
	audioErr error
	events   []detect.Event
	// next are the codecs left for the stream's next segment, or nil;
	// whoever gets the output frees them or passes them on.
	next *videoCodecs
}

// transcode decodes a raw segment once and makes from it the review
// rendition, the thumbnail sprite with its WebVTT fragment, and what the
// detectors find. Errors wrapping errUndecodable are the segment's fault.
//
// It runs the stages: demux (demuxer), video (videoStage: decode, scale,
// encode), audio (audioStage: decode, copy or encode), thumbnails and mux.
// Each stage owns the FFmpeg objects it allocates and frees them in its
// free, safe on a stage that failed part way; every free is deferred here,
// so that they run in the reverse order of the stages whatever happens.
func transcode(j job) (*output, error) {
	d := &demuxer{}
	defer d.free()
	if err := d.open(j.init, j.data); err != nil {
		j.codecs.free()
		return nil, err
	}
	v := newVideoStage(d, j.profile, j.threads, j.codecs)
	defer v.free()
	if err := v.open(); err != nil {
		return nil, err
	}
	var a *audioStage
	if d.audio != nil {
		a = &audioStage{tr: *d.audio, bitrate: j.profile.AudioBitrate}
		defer a.free()
		if err := a.open(); err != nil {
			return nil, err
		}
	}
	th := &thumbnails{cfg: j.thumbs, spriteName: j.spriteName}
	defer th.free()

	p := &pipeline{job: j, d: d, v: v, a: a, th: th}
	if err := p.run(); err != nil {
		return nil, err
	}
	o, err := p.finish()
	if err != nil {
		return nil, err
	}
	o.reused, o.next = v.reused, v.release()
	return o, nil
}

// pipeline runs the stages of one transcode over the demuxed packets.
type pipeline struct {
	job
	d      *demuxer
	v      *videoStage
	a      *audioStage // nil without audio
	th     *thumbnails
	events []detect.Event
}

// run decodes every packet and hands the pictures and audio on, then
// drains the decoders and encoders.
func (p *pipeline) run() error {
	for _, k := range p.d.packets {
		var err error
		switch {
		case k.video:
			err = p.v.decode(k.pkt, p.picture)
		case p.a != nil:
			err = p.a.decode(k.pkt, p.sound)
		}
		if err != nil {
			return err
		}
	}
	if err := p.v.finish(p.picture); err != nil {
		return err
	}
	if p.a != nil {
		if err := p.a.decode(nil, p.sound); err != nil {
			return err
		}
		return p.a.flush()
	}
	return nil
}

// picture handles one decoded picture: when the rendition keeps it, it is
// scaled once, and the scaled picture feeds the detectors, the thumbnails
// and the encoder.
func (p *pipeline) picture(f *astiav.Frame) error {
	rel, ok := p.v.keep(f)
	if !ok {
		return nil
	}
	first, err := p.v.scale(f)
	if err != nil {
		return err
	}
	if first {
		if err := p.th.open(p.v.outW, p.v.outH, ticks(p.v.tr.end-p.v.tr.base, p.v.tr.scale)); err != nil {
			return err
		}
	}
	at := p.videoAt(f.Pts())
	if last := p.det.SampledAt(); last.IsZero() || at.Sub(last) >= p.analysisStep() {
		p.events = append(p.events, p.det.Video(at, lumaGrid(p.v.scaled, gridW, gridH))...)
	}
	if err := p.th.picture(p.v.scaled, rel); err != nil {
		return err
	}
	return p.v.encode(p.v.scaled)
}

// analysisStep is how long after the picture the detectors last compared
// the next one is compared: 1/analysisFPS, less half a picture of the
// rendition, so that they compare the rendition's pictures at the rate
// nearest analysisFPS (every second picture of 10 fps at 5; every picture
// of 6.25 fps, where taking every second would halve the rate).
func (p *pipeline) analysisStep() time.Duration {
	step := float64(time.Second) / p.analysisFPS
	if p.v.outFPS > 0 {
		step -= float64(time.Second) / (2 * p.v.outFPS)
	}
	return time.Duration(step) - time.Millisecond
}

// sound handles one decoded block of audio: its level feeds the detectors.
func (p *pipeline) sound(f *astiav.Frame) error {
	if pts := f.Pts(); pts != astiav.NoPtsValue && f.SampleRate() > 0 {
		if rms, ok := frameRMS(f); ok {
			at := p.start.Add(ticks(pts, p.a.tr.scale) - ticks(p.v.tr.base, p.v.tr.scale))
			dur := time.Duration(f.NbSamples()) * time.Second / time.Duration(f.SampleRate())
			p.events = append(p.events, p.det.Audio(at, dur, rms)...)
		}
	}
	return nil
}

// videoAt returns the wall clock at which a picture of the segment with
// presentation time pts is shown: the segment's first picture is shown at
// its start.
func (p *pipeline) videoAt(pts int64) time.Time {
	return p.start.Add(ticks(pts-p.v.off-p.v.tr.base, p.v.tr.scale))
}

func ticks(t, scale int64) time.Duration {
	return time.Duration(t/scale)*time.Second + time.Duration(t%scale)*time.Second/time.Duration(scale)
}

// finish muxes the rendition and encodes the sprite.
func (p *pipeline) finish() (*output, error) {
	v := p.v
	if len(v.pictures) == 0 {
		return nil, fmt.Errorf("%w: no picture encoded", errUndecodable)
	}
	cp := v.tr.in.CodecParameters()
	o := &output{
		width:      v.outW,
		height:     v.outH,
		frames:     len(v.pictures),
		mediaStart: ticks(v.tr.base, v.tr.scale),
		duration:   ticks(v.tr.end-v.tr.base, v.tr.scale),
		srcWidth:   cp.Width(),
		srcHeight:  cp.Height(),
		events:     p.events,
		skipped:    v.skipped,
	}
	m, err := mux(v, p.a, p.sequence)
	if err != nil {
		return nil, err
	}
	o.init, o.segment, o.codecs, o.audioErr = m.init, m.segment, m.codecs, m.audioErr
	if o.sprite, o.vtt, err = p.th.finish(v.scaled, o.mediaStart, o.duration); err != nil {
		return nil, err
	}
	o.tiles, o.cols, o.rows, o.tileW, o.tileH = p.th.tiles, p.th.cols, p.th.rows, p.th.tileW, p.th.tileH
	return o, nil
}
