package transcoder

import (
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"time"

	"github.com/nokstream/nokstream/internal/events"
	"github.com/nokstream/nokstream/transcoder/detect"
)

// Config configures the transcoder.
type Config struct {
	// Workers is how many segments are transcoded at once: that many
	// consumers of the segments topic in one group, so that a stream's
	// segments (one partition) stay in order while streams go in parallel.
	// Default: the number of CPUs.
	Workers int `yaml:"workers"`
	// Threads is how many threads each decoder and encoder uses; 0 lets
	// FFmpeg choose (one per CPU). Default 1, as the workers already fill
	// the machine.
	Threads int `yaml:"threads"`
	// Profiles are the review rendition settings per source kind (room,
	// webcam, screen).
	Profiles map[string]Profile `yaml:"profiles"`
	// Thumbnails configures the scrubbing sprites.
	Thumbnails Thumbnails `yaml:"thumbnails"`
	// Detect holds the thresholds of the observations.
	Detect detect.Config `yaml:"detect"`
	// AnalysisFPS is how many pictures a second the detectors compare.
	AnalysisFPS float64 `yaml:"analysis_fps"`
	// IdleFlush is how long after a stream's last segment an observation
	// still in progress (a camera that was covered when the stream stopped)
	// is reported, ending at the end of that segment.
	IdleFlush time.Duration `yaml:"idle_flush"`
	// MaxAttempts is how often a segment that fails for another reason
	// than its own content is tried before it is dead-lettered.
	MaxAttempts int `yaml:"max_attempts"`
	// Node names this transcoder in events.
	Node string `yaml:"node"`
	// MaxSegmentBytes is the largest raw segment (with its init segment)
	// transcoded; a larger one is not fetched, and is reported and
	// dead-lettered. Ingest cuts every segment at 256 MiB.
	MaxSegmentBytes int64 `yaml:"max_segment_bytes"`
	// InflightBytes bounds the raw bytes of the segments being handled at
	// once, over every worker: a worker waits for room before it fetches,
	// so that a backlog waits on the bus, not in memory. Decoded pictures
	// and outputs come on top, a few times a segment's size at most.
	InflightBytes int64 `yaml:"inflight_bytes"`
	// KeepCodecs is how many streams may keep their video decoder and
	// encoder open from one segment to the next, which saves about a
	// tenth of the CPU of a screen or camera (their setup and the page
	// faults of fresh buffers). Each holds up to ~25 MB for a 1080p
	// source; a stream quiet for IdleFlush lets go of them. 0 opens them
	// for every segment.
	KeepCodecs int `yaml:"keep_codecs"`
}

// Profile is how the review rendition of one source kind is encoded
// (H.264 with libx264, AAC).
type Profile struct {
	// Width and Height bound the picture, which keeps its aspect ratio and
	// is never enlarged; 0 leaves a side unbounded.
	Width  int `yaml:"width"`
	Height int `yaml:"height"`
	// MaxFPS lowers the frame rate to at most this by keeping every n-th
	// picture of the source (renditionFPS: 25 fps with 10 gives 8.3);
	// 0 keeps the source's.
	MaxFPS float64 `yaml:"max_fps"`
	// Preset is the libx264 preset.
	Preset string `yaml:"preset"`
	// CRF is libx264's constant rate factor (quality; lower is better).
	CRF int `yaml:"crf"`
	// MaxRate caps the bit rate, in bits per second (VBV); 0 for none.
	MaxRate int64 `yaml:"max_rate"`
	// Keyint is the longest time between keyframes.
	Keyint time.Duration `yaml:"keyint"`
	// AudioBitrate is the AAC bit rate when the source audio is not AAC
	// and must be encoded; AAC sources are copied.
	AudioBitrate int64 `yaml:"audio_bitrate"`
}

// Thumbnails configures the sprites of thumbnails for scrubbing.
type Thumbnails struct {
	// Interval is the media time between two thumbnails; 0 disables them.
	Interval time.Duration `yaml:"interval"`
	// Width of a thumbnail; Height 0 keeps the picture's aspect ratio.
	Width  int `yaml:"width"`
	Height int `yaml:"height"`
	// Columns is how many thumbnails a row of the sprite holds.
	Columns int `yaml:"columns"`
	// Quality is the JPEG quantizer, 2 (best) to 31.
	Quality int `yaml:"quality"`
}

// DefaultConfig returns the defaults: room and webcam 640×360 at up to
// 6.25 frames a second (every 4th picture of a 25 fps camera, every 5th of
// 30: 6.25 and 6). A review at 16× on a 60 Hz screen paints a picture for
// every 0.27 s of the exam, so each painted frame is still a picture of its
// own, and the browser decodes 100 pictures a second instead of 133; at 1×
// the review page's "оригинал" plays the footage at its own rate. After
// decoding, which no rate spares, the rendition's encoding and scaling are
// the camera's largest cost: this is a quarter less of them than at 8.3
// (the mix 0.47 of the anchor against 0.50). Screens
// 1280 wide at up to 2.5 (every 4th picture of a 10 fps screen, every 6th of
// 15: a screen changes little, and this halves the CPU of its rendition for
// about the same SSIM; the detectors then look at 2.5 pictures a second of
// a screen), libx264 superfast at CRF 29 (the SSIM of veryfast
// at CRF 26 for about two thirds of its CPU and a fifth more bits), a
// thumbnail every 2 s at 160×90, and the thresholds of
// detect.DefaultConfig.
func DefaultConfig() Config {
	camera := Profile{Width: 640, Height: 360, MaxFPS: 6.25, Preset: "superfast", CRF: 29, MaxRate: 800_000,
		Keyint: 2 * time.Second, AudioBitrate: 64_000}
	screen := Profile{Width: 1280, MaxFPS: 2.5, Preset: "superfast", CRF: 29, MaxRate: 1_000_000,
		Keyint: 2 * time.Second, AudioBitrate: 64_000}
	return Config{
		Workers: runtime.NumCPU(),
		Threads: 1,
		Profiles: map[string]Profile{
			events.SourceRoom:   camera,
			events.SourceWebcam: camera,
			events.SourceScreen: screen,
		},
		Thumbnails:  Thumbnails{Interval: 2 * time.Second, Width: 160, Columns: 5, Quality: 5},
		Detect:      detect.DefaultConfig(),
		AnalysisFPS: 5,
		IdleFlush:   30 * time.Second,
		MaxAttempts: 3,
		Node:        "transcoder",
		// A 6 s segment of a 1080p camera is 2-5 MB; a workstation's
		// screen at 40 Mbit/s (ingest's cap) 30 MB.
		MaxSegmentBytes: 256 << 20,
		InflightBytes:   512 << 20,
		KeepCodecs:      64,
	}
}

// Validate reports what is wrong with c.
func (c Config) Validate() error {
	var errs []error
	if c.Workers < 1 {
		errs = append(errs, fmt.Errorf("workers %d: want at least 1", c.Workers))
	}
	if c.Threads < 0 {
		errs = append(errs, fmt.Errorf("threads %d: negative", c.Threads))
	}
	for _, kind := range []string{events.SourceRoom, events.SourceWebcam, events.SourceScreen} {
		p, ok := c.Profiles[kind]
		if !ok {
			errs = append(errs, fmt.Errorf("profiles: none for %s", kind))
			continue
		}
		if err := p.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("profiles.%s: %w", kind, err))
		}
	}
	t := c.Thumbnails
	switch {
	case t.Interval < 0:
		errs = append(errs, fmt.Errorf("thumbnails.interval %v: negative", t.Interval))
	case t.Interval > 0 && (t.Width < 16 || t.Height < 0 || t.Columns < 1 || t.Quality < 2 || t.Quality > 31):
		errs = append(errs, fmt.Errorf("thumbnails: want width ≥ 16, height ≥ 0, columns ≥ 1, quality 2-31"))
	}
	if err := c.Detect.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("detect: %w", err))
	}
	if c.AnalysisFPS <= 0 || c.AnalysisFPS > 60 {
		errs = append(errs, fmt.Errorf("analysis_fps %v: want more than 0, at most 60", c.AnalysisFPS))
	}
	if c.IdleFlush <= 0 {
		errs = append(errs, fmt.Errorf("idle_flush %v: not positive", c.IdleFlush))
	}
	if c.MaxSegmentBytes < 1<<20 || c.InflightBytes < c.MaxSegmentBytes {
		errs = append(errs, fmt.Errorf("max_segment_bytes %d, inflight_bytes %d: want at least 1 MiB, and room for the largest segment in flight",
			c.MaxSegmentBytes, c.InflightBytes))
	}
	if c.KeepCodecs < 0 {
		errs = append(errs, fmt.Errorf("keep_codecs %d: negative", c.KeepCodecs))
	}
	if c.MaxAttempts < 1 {
		errs = append(errs, fmt.Errorf("max_attempts %d: want at least 1", c.MaxAttempts))
	}
	if c.Node == "" {
		errs = append(errs, errors.New("node: empty"))
	}
	if len(errs) > 0 {
		return fmt.Errorf("transcoder config: %w", errors.Join(errs...))
	}
	return nil
}

// Validate reports what is wrong with p.
func (p Profile) Validate() error {
	var errs []error
	if p.Width < 0 || p.Height < 0 || (p.Width > 0 && p.Width < 16) || (p.Height > 0 && p.Height < 16) {
		errs = append(errs, fmt.Errorf("size %dx%d: want 0 or at least 16 each", p.Width, p.Height))
	}
	if p.MaxFPS < 0 {
		errs = append(errs, fmt.Errorf("max_fps %v: negative", p.MaxFPS))
	}
	if p.Preset == "" {
		errs = append(errs, errors.New("preset: empty"))
	}
	if p.CRF < 0 || p.CRF > 51 {
		errs = append(errs, fmt.Errorf("crf %d: want 0-51", p.CRF))
	}
	if p.MaxRate < 0 {
		errs = append(errs, fmt.Errorf("max_rate %d: negative", p.MaxRate))
	}
	if p.Keyint <= 0 {
		errs = append(errs, fmt.Errorf("keyint %v: not positive", p.Keyint))
	}
	if p.AudioBitrate < 8000 {
		errs = append(errs, fmt.Errorf("audio_bitrate %d: want at least 8000", p.AudioBitrate))
	}
	return errors.Join(errs...)
}

// x264Options returns the libx264 options of p that are not codec context
// fields. The rendition has no B-frames: each picture is presented as soon
// as it is decoded, so that its timing is the raw picture's.
func (p Profile) x264Options() map[string]string {
	o := map[string]string{"preset": p.Preset, "crf": strconv.Itoa(p.CRF), "bf": "0"}
	if p.MaxRate > 0 {
		o["maxrate"] = strconv.FormatInt(p.MaxRate, 10)
		o["bufsize"] = strconv.FormatInt(2*p.MaxRate, 10)
	}
	return o
}

// FFmpegVideo returns how the ffmpeg program makes the same rendition of a
// w×h source at fps, as the benchmark compares: the filter chain (frame
// rate, then size) and the encoder's arguments.
func (p Profile) FFmpegVideo(w, h int, fps float64, threads int) (filter string, args []string) {
	ow, oh := fit(w, h, p.Width, p.Height)
	filter = fmt.Sprintf("scale=%d:%d:flags=bicubic", ow, oh)
	if p.MaxFPS > 0 && fps > p.MaxFPS {
		fps = p.MaxFPS
		filter = fmt.Sprintf("fps=%s,%s", strconv.FormatFloat(fps, 'f', -1, 64), filter)
	}
	args = []string{"-c:v", "libx264", "-preset", p.Preset, "-crf", strconv.Itoa(p.CRF), "-bf", "0",
		"-g", strconv.Itoa(max(1, int(p.Keyint.Seconds()*fps+0.5))), "-threads", strconv.Itoa(threads)}
	if p.MaxRate > 0 {
		args = append(args, "-maxrate", strconv.FormatInt(p.MaxRate, 10), "-bufsize", strconv.FormatInt(2*p.MaxRate, 10))
	}
	return filter, args
}
