package transcoder

import (
	"errors"
	"fmt"
	"strconv"

	"github.com/asticode/go-astiav"
)

// aacRate is the sample rate of encoded AAC.
const aacRate = 48000

// audioStage is the audio stage: it decodes the source's audio for the
// detectors' levels, and keeps it for the rendition, copied when it is AAC,
// encoded to AAC otherwise (audioEncoder). It owns its FFmpeg objects
// (free).
type audioStage struct {
	tr      track
	bitrate int64

	dec   *astiav.CodecContext
	frame *astiav.Frame // decoded
	// copy is set for an AAC source, whose packets the rendition keeps;
	// enc encodes any other.
	copy   bool
	enc    *audioEncoder
	frames []encoded
}

// free frees what the stage allocated, in the reverse order; it is safe
// on a stage opened part way.
func (a *audioStage) free() {
	if a.frame != nil {
		a.frame.Free()
	}
	if a.enc != nil {
		a.enc.free()
	}
	if a.dec != nil {
		a.dec.Free()
	}
}

// open opens the decoder and, for a source that is not AAC, the encoder.
func (a *audioStage) open() error {
	var err error
	if a.dec, err = openDecoder(a.tr.in, 1, nil); err != nil {
		return err
	}
	a.copy = a.tr.in.CodecParameters().CodecID() == astiav.CodecIDAac
	if !a.copy {
		if a.enc, err = newAudioEncoder(a.dec, a.tr.in.TimeBase(), a.bitrate); err != nil {
			return err
		}
	}
	a.frame = astiav.AllocFrame()
	return nil
}

// decode keeps a packet of AAC for the rendition, then decodes it (nil to
// drain) and hands each block of audio that comes out to each, then to the
// encoder when there is one. A packet the decoder refuses is skipped: the
// detectors miss it.
func (a *audioStage) decode(pkt *astiav.Packet, each func(*astiav.Frame) error) error {
	if pkt != nil && a.copy {
		a.frames = append(a.frames, encoded{data: pkt.Data(), pts: pkt.Dts(), dur: pkt.Duration(), key: true})
	}
	if err := a.dec.SendPacket(pkt); err != nil {
		return nil
	}
	for {
		err := a.dec.ReceiveFrame(a.frame)
		if errors.Is(err, astiav.ErrEagain) || errors.Is(err, astiav.ErrEof) {
			return nil
		}
		if err != nil {
			continue
		}
		err = each(a.frame)
		if err == nil && a.enc != nil {
			var pkts []encoded
			pkts, err = a.enc.encode(a.frame)
			a.frames = append(a.frames, pkts...)
		}
		a.frame.Unref()
		if err != nil {
			return err
		}
	}
}

// flush drains the encoder, if there is one.
func (a *audioStage) flush() error {
	if a.enc == nil {
		return nil
	}
	pkts, err := a.enc.flush()
	if err != nil {
		return err
	}
	a.frames = append(a.frames, pkts...)
	return nil
}

// audioEncoder encodes decoded audio that is not AAC (Opus from WebRTC) to
// AAC-LC: a filter graph resamples it to 48 kHz float planar and cuts it
// into the encoder's 1024-sample frames.
type audioEncoder struct {
	graph    *astiav.FilterGraph
	src      *astiav.FilterContext
	sink     *astiav.FilterContext
	cc       *astiav.CodecContext
	filtered *astiav.Frame
	pkt      *astiav.Packet
}

func newAudioEncoder(dec *astiav.CodecContext, tb astiav.Rational, bitrate int64) (*audioEncoder, error) {
	e := &audioEncoder{}
	ok := false
	defer func() {
		if !ok {
			e.free()
		}
	}()
	layout := astiav.ChannelLayoutStereo
	if dec.ChannelLayout().NbChannels() == 1 {
		layout = astiav.ChannelLayoutMono
	}
	codec := astiav.FindEncoder(astiav.CodecIDAac)
	if codec == nil {
		return nil, errors.New("no AAC encoder in this FFmpeg")
	}
	if e.cc = astiav.AllocCodecContext(codec); e.cc == nil {
		return nil, errors.New("alloc AAC encoder")
	}
	e.cc.SetSampleRate(aacRate)
	e.cc.SetChannelLayout(layout)
	e.cc.SetSampleFormat(astiav.SampleFormatFltp)
	e.cc.SetBitRate(bitrate)
	e.cc.SetTimeBase(astiav.NewRational(1, aacRate))
	e.cc.SetFlags(e.cc.Flags().Add(astiav.CodecContextFlagGlobalHeader))
	// FFmpeg's fast coder: a third of the default (twoloop)'s CPU, a tenth
	// of a webcam's transcoding, for speech in a review copy.
	opts := astiav.NewDictionary()
	defer opts.Free()
	if err := opts.Set("aac_coder", "fast", 0); err != nil {
		return nil, fmt.Errorf("AAC encoder option: %w", err)
	}
	if err := e.cc.Open(codec, opts); err != nil {
		return nil, fmt.Errorf("open AAC encoder: %w", err)
	}

	if e.graph = astiav.AllocFilterGraph(); e.graph == nil {
		return nil, errors.New("alloc audio filter graph")
	}
	var err error
	e.src, err = e.graph.NewFilterContext(astiav.FindFilterByName("abuffer"), "in", astiav.FilterArgs{
		"channel_layout": dec.ChannelLayout().String(),
		"sample_fmt":     dec.SampleFormat().Name(),
		"sample_rate":    strconv.Itoa(dec.SampleRate()),
		"time_base":      tb.String(),
	})
	if err != nil {
		return nil, fmt.Errorf("%w: audio source %s %s %d Hz: %w", errUndecodable,
			dec.ChannelLayout(), dec.SampleFormat().Name(), dec.SampleRate(), err)
	}
	if e.sink, err = e.graph.NewFilterContext(astiav.FindFilterByName("abuffersink"), "out", nil); err != nil {
		return nil, fmt.Errorf("audio sink: %w", err)
	}
	outputs, inputs := astiav.AllocFilterInOut(), astiav.AllocFilterInOut()
	defer outputs.Free()
	defer inputs.Free()
	outputs.SetName("in")
	outputs.SetFilterContext(e.src)
	outputs.SetPadIdx(0)
	outputs.SetNext(nil)
	inputs.SetName("out")
	inputs.SetFilterContext(e.sink)
	inputs.SetPadIdx(0)
	inputs.SetNext(nil)
	desc := fmt.Sprintf("aresample=%d,aformat=sample_fmts=fltp:channel_layouts=%s,asetnsamples=n=%d:p=0",
		aacRate, layout, e.cc.FrameSize())
	if err := e.graph.Parse(desc, inputs, outputs); err != nil {
		return nil, fmt.Errorf("audio filter %q: %w", desc, err)
	}
	if err := e.graph.Configure(); err != nil {
		return nil, fmt.Errorf("audio filter %q: %w", desc, err)
	}
	e.filtered = astiav.AllocFrame()
	e.pkt = astiav.AllocPacket()
	ok = true
	return e, nil
}

func (e *audioEncoder) free() {
	if e.pkt != nil {
		e.pkt.Free()
	}
	if e.filtered != nil {
		e.filtered.Free()
	}
	// go-astiav keeps a filter context it made until its Free, which
	// the graph's does not call: free them first (avfilter_free takes a
	// filter out of its graph).
	for _, f := range []*astiav.FilterContext{e.src, e.sink} {
		if f != nil {
			f.Free()
		}
	}
	if e.graph != nil {
		e.graph.Free()
	}
	if e.cc != nil {
		e.cc.Free()
	}
}

// encode filters and encodes one decoded frame, nil to drain.
func (e *audioEncoder) encode(f *astiav.Frame) ([]encoded, error) {
	if err := e.src.BuffersrcAddFrame(f, astiav.NewBuffersrcFlags(astiav.BuffersrcFlagKeepRef)); err != nil {
		return nil, fmt.Errorf("filter audio: %w", err)
	}
	var out []encoded
	for {
		e.filtered.Unref()
		err := e.sink.BuffersinkGetFrame(e.filtered, astiav.NewBuffersinkFlags())
		if errors.Is(err, astiav.ErrEagain) || errors.Is(err, astiav.ErrEof) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("filter audio: %w", err)
		}
		pkts, err := e.send(e.filtered)
		if err != nil {
			return nil, err
		}
		out = append(out, pkts...)
	}
	if f == nil {
		pkts, err := e.send(nil)
		if err != nil {
			return nil, err
		}
		out = append(out, pkts...)
	}
	return out, nil
}

// flush drains the filter graph and the encoder.
func (e *audioEncoder) flush() ([]encoded, error) { return e.encode(nil) }

func (e *audioEncoder) send(f *astiav.Frame) ([]encoded, error) {
	if err := e.cc.SendFrame(f); err != nil {
		return nil, fmt.Errorf("encode audio: %w", err)
	}
	var out []encoded
	for {
		err := e.cc.ReceivePacket(e.pkt)
		if errors.Is(err, astiav.ErrEagain) || errors.Is(err, astiav.ErrEof) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("encode audio: %w", err)
		}
		out = append(out, encoded{data: e.pkt.Data(), pts: e.pkt.Pts(), dur: e.pkt.Duration(), key: true})
		e.pkt.Unref()
	}
}
