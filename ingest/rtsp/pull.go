package rtsp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/bluenviron/gortsplib/v4/pkg/liberrors"

	"github.com/nokstream/nokstream/ingest/observe"
	"github.com/nokstream/nokstream/ingest/segmenter"
	"github.com/nokstream/nokstream/internal/events"
	"github.com/nokstream/nokstream/internal/secrets"
)

// PullDevice is an IP camera that ingest pulls because it only serves.
type PullDevice struct {
	Site   string
	Device string
	Source string // room, webcam or screen
	// URL is the camera's rtsp:// or rtsps:// URL, credentials included.
	// It is never logged: RedactURL hides the password.
	URL string
}

// PullSource lists the cameras to pull (the registry, through an adapter
// that decrypts their URLs).
type PullSource interface {
	PullDevices(ctx context.Context) ([]PullDevice, error)
}

// PullConfig configures the puller.
type PullConfig struct {
	// Refresh is how often the list of cameras is reloaded, so that new,
	// changed and removed devices are picked up.
	Refresh time.Duration `yaml:"refresh"`
	// RetryMin and RetryMax bound the exponential backoff between
	// attempts to reach a camera that failed.
	RetryMin time.Duration `yaml:"retry_min"`
	RetryMax time.Duration `yaml:"retry_max"`
	// ReadTimeout cuts off a camera that sends nothing for this long.
	ReadTimeout time.Duration    `yaml:"read_timeout"`
	Segment     segmenter.Config `yaml:"-"`
}

// DefaultPullConfig returns the defaults: reload every 30 s, back off from
// 1 s to 30 s, 10 s read timeout.
func DefaultPullConfig() PullConfig {
	return PullConfig{Refresh: 30 * time.Second, RetryMin: time.Second, RetryMax: 30 * time.Second,
		ReadTimeout: 10 * time.Second, Segment: segmenter.DefaultConfig()}
}

// Validate checks the configuration.
func (c PullConfig) Validate() error {
	switch {
	case c.Refresh <= 0:
		return fmt.Errorf("pull: refresh %s is not positive", c.Refresh)
	case c.RetryMin <= 0 || c.RetryMax < c.RetryMin:
		return fmt.Errorf("pull: retry backoff %s..%s: want 0 < min <= max", c.RetryMin, c.RetryMax)
	case c.ReadTimeout <= 0:
		return fmt.Errorf("pull: read timeout %s is not positive", c.ReadTimeout)
	}
	return c.Segment.Validate()
}

// RedactURL returns a camera URL with its password replaced, for logs.
func RedactURL(raw string) string { return secrets.RedactURL(raw) }

// Puller pulls every camera that PullSource lists, each in a loop that
// reconnects with exponential backoff after any failure and reports each
// outage (outage from the failure to the reconnection, then reconnect).
type Puller struct {
	cfg     PullConfig
	src     PullSource
	outputs Outputs
	cont    *observe.Continuity
	log     *slog.Logger
	m       *Metrics
	now     func() time.Time
}

// NewPuller wires a puller; Run starts it.
func NewPuller(cfg PullConfig, src PullSource, outputs Outputs, cont *observe.Continuity, log *slog.Logger, m *Metrics, now func() time.Time) (*Puller, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cont == nil {
		cont = observe.New(discardSink{}, 0, log, nil, now)
	}
	return &Puller{cfg: cfg, src: src, outputs: outputs, cont: cont, log: log, m: m, now: now}, nil
}

type pullJob struct {
	url    string
	cancel context.CancelFunc
	done   chan struct{}
}

// Run pulls until ctx ends, then closes every camera session (their open
// segments are spooled) and returns.
func (p *Puller) Run(ctx context.Context) error {
	jobs := map[string]*pullJob{}
	stop := func(key string) {
		j := jobs[key]
		j.cancel()
		<-j.done
		delete(jobs, key)
	}
	defer func() {
		for k := range jobs {
			jobs[k].cancel()
		}
		for k := range jobs {
			stop(k)
		}
	}()
	loaded := false
	tick := time.NewTicker(p.cfg.Refresh)
	defer tick.Stop()
	for {
		devs, err := p.src.PullDevices(ctx)
		switch {
		case err != nil && ctx.Err() == nil:
			// Keep pulling what is known: the registry may be down.
			p.log.Warn("load pull devices, keeping the current ones", "err", err, "devices", len(jobs))
		case err == nil:
			want := map[string]PullDevice{}
			for _, d := range devs {
				want[d.Site+"/"+d.Device] = d
			}
			for k, j := range jobs {
				if d, ok := want[k]; !ok || d.URL != j.url {
					p.log.Info("stop pulling camera", "stream", k, "reason", map[bool]string{true: "url changed", false: "device removed"}[ok])
					stop(k)
				}
			}
			for k, d := range want {
				if _, ok := jobs[k]; ok {
					continue
				}
				jctx, cancel := context.WithCancel(ctx)
				j := &pullJob{url: d.URL, cancel: cancel, done: make(chan struct{})}
				jobs[k] = j
				go func() {
					defer close(j.done)
					p.pull(jctx, d)
				}()
			}
			if !loaded {
				p.log.Info("pulling cameras", "devices", len(jobs))
				loaded = true
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// pull keeps one camera recorded until ctx ends.
func (p *Puller) pull(ctx context.Context, d PullDevice) {
	stream := d.Site + "/" + d.Device
	redacted := RedactURL(d.URL)
	wait := p.cfg.RetryMin
	var down time.Time // start of the current outage; zero while up
	var downReason string
	for {
		played, err := p.session(ctx, d, func() {
			if down.IsZero() {
				return
			}
			now := p.now()
			p.cont.Outage(d.Site, d.Device, down, now, "camera unreachable: "+downReason)
			p.cont.Reconnect(d.Site, d.Device, now, fmt.Sprintf("camera %s reached again after %s", redacted, now.Sub(down).Round(time.Millisecond)))
			p.log.Info("camera reconnected", "stream", stream, "url", redacted, "outage", now.Sub(down).Round(time.Millisecond))
			down = time.Time{}
		})
		reason := scrub(err, d.URL)
		if ctx.Err() != nil {
			if !down.IsZero() {
				p.cont.Outage(d.Site, d.Device, down, p.now(), "camera unreachable until ingest stopped: "+downReason)
			}
			return
		}
		if played {
			wait = p.cfg.RetryMin
		}
		if down.IsZero() {
			down = p.now()
			downReason = reason
		}
		p.log.Warn("camera unreachable, will retry", "stream", stream, "url", redacted, "err", reason, "retry_in", wait)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			p.cont.Outage(d.Site, d.Device, down, p.now(), "camera unreachable until ingest stopped: "+downReason)
			return
		case <-t.C:
		}
		wait = min(2*wait, p.cfg.RetryMax)
	}
}

// scrub returns err's text without the camera's password, in case a library
// quotes the URL (percent-encoded or not).
func scrub(err error, rawURL string) string {
	if err == nil {
		return "session ended"
	}
	return secrets.Scrub(err.Error(), rawURL)
}

// session connects to the camera once and records it until the connection
// fails or ctx ends. onPlaying is called once the camera plays; played
// reports whether it did.
func (p *Puller) session(ctx context.Context, d PullDevice, onPlaying func()) (played bool, err error) {
	u, err := base.ParseURL(d.URL)
	if err != nil {
		return false, errors.New("camera url does not parse")
	}
	tcp := gortsplib.TransportTCP
	c := &gortsplib.Client{
		Scheme:       u.Scheme,
		Host:         u.Host,
		Transport:    &tcp,
		ReadTimeout:  p.cfg.ReadTimeout,
		WriteTimeout: p.cfg.ReadTimeout,
		UserAgent:    "nokstream",
	}
	stream := d.Site + "/" + d.Device
	var rec *recorder
	c.OnDecodeError = func(err error) {
		p.m.errors.WithLabelValues("rtsp_pull", "decode").Inc()
		if rec != nil {
			rec.warn("decode", err)
		}
	}
	c.OnPacketsLost = func(lost uint64) {
		p.m.errors.WithLabelValues("rtsp_pull", "packets_lost").Add(float64(lost))
		if rec != nil {
			rec.warn("packets_lost", fmt.Errorf("%d RTP packets lost", lost))
		}
	}
	if err := c.Start2(); err != nil {
		return false, fmt.Errorf("connect: %w", err)
	}
	// The client's goroutines end with Close; closing twice is harmless.
	stopWatch := context.AfterFunc(ctx, c.Close)
	defer stopWatch()
	defer c.Close()
	desc, _, err := c.Describe(u)
	if err != nil {
		return false, fmt.Errorf("describe: %w", err)
	}
	rec, err = newRecorder(stream, "rtsp_pull", desc, p.cfg.Segment, p.outputs(d.Site, d.Device, d.Source), p.log, p.m, p.now)
	if err != nil {
		return false, fmt.Errorf("camera media: %w", err)
	}
	defer rec.close()
	rec.seg.OnCodecChange(func(track int, codec string) {
		p.log.Warn("codec configuration changed mid-stream, starting a new init segment", "stream", stream, "track", track, "codec", codec)
	})
	setup := map[*description.Media]bool{}
	for _, mw := range rec.medias {
		if setup[mw.media] {
			continue
		}
		setup[mw.media] = true
		if _, err := c.Setup(desc.BaseURL, mw.media, 0, 0); err != nil {
			return false, fmt.Errorf("setup: %w", err)
		}
	}
	rec.attach(c, nil, c.Close)
	if _, err := c.Play(nil); err != nil {
		return false, fmt.Errorf("play: %w", err)
	}
	onPlaying()
	obs := p.cont.Start(d.Site, d.Device, fmt.Sprintf("pulling %s (%s)", RedactURL(d.URL), strings.Join(rec.codecs, ",")))
	rec.setSession(obs)
	p.m.sessions.WithLabelValues("rtsp_pull", d.Source).Inc()
	p.m.active.WithLabelValues("rtsp_pull", d.Source).Inc()
	p.log.Info("pulling camera", "stream", stream, "url", RedactURL(d.URL), "codecs", strings.Join(rec.codecs, ","))
	err = c.Wait()
	p.m.active.WithLabelValues("rtsp_pull", d.Source).Dec()
	rec.close()
	// The camera is pulled again until ingest stops: an end of ingest's
	// own making (stopping, or closing the session when the spool cannot
	// take the media) is not the camera's.
	cause, reason := events.CauseLost, "camera session ended: "+scrub(err, d.URL)
	var terminated liberrors.ErrClientTerminated
	switch {
	case ctx.Err() != nil:
		cause, reason = events.CauseIngest, "ingest stopping"
	case errors.As(err, &terminated):
		cause = events.CauseIngest
	}
	if why := rec.ingestStop(); why != "" {
		cause, reason = events.CauseIngest, why
	}
	obs.Stop(cause, reason)
	if err == nil {
		err = errors.New("session ended")
	}
	return true, err
}
