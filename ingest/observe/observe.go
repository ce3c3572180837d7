// Package observe reports the continuity of every stream that ingest
// records — session starts and stops, gaps in the media, outages and
// reconnects of pulled cameras, refused publishers — as observations
// (events.Observation, kinds start, stop, gap, outage, reconnect, refused),
// so that a reviewer sees second by second what was captured and what was
// not.
//
// Observations go to a durable Sink (the spool), never straight to the bus:
// reporting one costs the media path one small fsync'd file, and the
// uploader publishes them in order when the bus is reachable. An observation
// that cannot be stored is logged at error level with its content and
// counted, never dropped silently.
//
// A gap is no media for longer than Config.Gap: measured from packet arrival
// while a session is open, and between the last media of a stream (kept by
// the sink across sessions and restarts) and the start of its next session.
package observe

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/nokstream/nokstream/internal/events"
)

// Reporter is the reporter field of ingest's observations.
const Reporter = "ingest"

// Sink stores observations durably and remembers each stream's last media;
// *spool.Spool is one.
type Sink interface {
	Observe(o events.Observation) error
	LastMedia(site, device string) (time.Time, error)
	SetLastMedia(site, device string, t time.Time) error
}

// Metrics of the observations.
type Metrics struct {
	observations *prometheus.CounterVec
	gaps         prometheus.Counter
	gapSeconds   prometheus.Counter
	reconnects   prometheus.Counter
	lost         prometheus.Counter
}

// NewMetrics registers the metrics.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	f := promauto.With(reg)
	return &Metrics{
		observations: f.NewCounterVec(prometheus.CounterOpts{Name: "nokstream_ingest_observations_total",
			Help: "Continuity observations spooled for publishing, by kind."}, []string{"kind"}),
		gaps: f.NewCounter(prometheus.CounterOpts{Name: "nokstream_ingest_gaps_total",
			Help: "Gaps in a stream's media longer than the gap threshold, in or between sessions."}),
		gapSeconds: f.NewCounter(prometheus.CounterOpts{Name: "nokstream_ingest_gap_seconds_total",
			Help: "Total length of the gaps reported."}),
		reconnects: f.NewCounter(prometheus.CounterOpts{Name: "nokstream_ingest_reconnects_total",
			Help: "Pulled cameras reconnected after an outage."}),
		lost: f.NewCounter(prometheus.CounterOpts{Name: "nokstream_ingest_observation_errors_total",
			Help: "Observations that could not be spooled (each is logged at error level with its content)."}),
	}
}

// Continuity reports the observations of every stream of one ingest.
type Continuity struct {
	sink Sink
	gap  time.Duration
	log  *slog.Logger
	m    *Metrics
	now  func() time.Time

	mu      sync.Mutex
	refused map[string]*refusals   // by stream: known streams only
	starts  map[string]*startQuota // by stream: known streams only
}

// A stream may start sessionBurst sessions in a row, then one every
// sessionRefill: each session is a start and a stop observation and, with
// a keyframe, a segment, so a publisher that connects, sends a frame and
// hangs up in a loop would otherwise write them as fast as it can loop. A
// camera that reconnects after each network failure stays well inside.
const (
	sessionBurst  = 10
	sessionRefill = 6 * time.Second
)

// startQuota is a stream's token bucket of session starts.
type startQuota struct {
	tokens float64
	at     time.Time
}

// ErrTooManySessions is returned by Admit for a stream that started too
// many sessions of late.
var ErrTooManySessions = errors.New("too many sessions started")

// refusedEvery is the least time between two refused observations of a
// stream: a publisher holding a stream's secret can be refused as fast as
// it asks, and each observation is an fsync'd file, a message and a row.
// The refusals in between are folded into the next observation (its
// detail says how many); the transports' metrics count each one.
const refusedEvery = 10 * time.Second

// refusals is the refused observations of a stream.
type refusals struct {
	last   time.Time // of the last one reported
	folded int       // refusals since, not reported
}

// New returns a Continuity. gap is the threshold of a gap (2 s by
// default); m may be nil.
func New(sink Sink, gap time.Duration, log *slog.Logger, m *Metrics, now func() time.Time) *Continuity {
	if m == nil {
		m = NewMetrics(prometheus.NewRegistry())
	}
	if gap <= 0 {
		gap = 2 * time.Second
	}
	return &Continuity{sink: sink, gap: gap, log: log, m: m, now: now, refused: map[string]*refusals{},
		starts: map[string]*startQuota{}}
}

// Report stores one observation of a stream. Errors are logged and counted:
// the caller's media must go on.
func (c *Continuity) Report(site, device, kind string, start, end time.Time, measure float64, detail string) {
	c.report(events.Observation{
		StreamID: site + "/" + device, Site: site, Device: device, Kind: kind,
		Start: start.UTC(), End: end.UTC(), Measure: measure, Detail: detail, Reporter: Reporter,
	})
}

// report stores o, which has every field but its id.
func (c *Continuity) report(o events.Observation) {
	o.ObservationID = events.NewObservationID(o.StreamID, o.Kind, Reporter, o.Start)
	c.m.observations.WithLabelValues(o.Kind).Inc()
	if o.Kind == events.ObsGap {
		c.m.gaps.Inc()
		c.m.gapSeconds.Add(o.Measure)
	}
	if o.Kind == events.ObsReconnect {
		c.m.reconnects.Inc()
	}
	attrs := []any{"stream", o.StreamID, "kind", o.Kind, "start", o.Start, "end", o.End, "measure", o.Measure, "detail", o.Detail}
	if o.Cause != "" {
		attrs = append(attrs, "cause", o.Cause)
	}
	if err := c.sink.Observe(o); err != nil {
		c.m.lost.Inc()
		c.log.Error("observation not spooled", append(attrs, "err", err)...)
		return
	}
	c.log.Info("observation", attrs...)
}

// Outage reports that a pulled camera could not be reached from start to
// end.
func (c *Continuity) Outage(site, device string, start, end time.Time, detail string) {
	c.Report(site, device, events.ObsOutage, start, end, end.Sub(start).Seconds(), detail)
}

// Reconnect reports that a pulled camera was reached again at t.
func (c *Continuity) Reconnect(site, device string, t time.Time, detail string) {
	c.Report(site, device, events.ObsReconnect, t, t, 0, detail)
}

// Admit takes one session start of a known stream from its quota
// (sessionBurst in a row, then one every sessionRefill), or returns
// ErrTooManySessions, wrapped with when the next may start. Transports ask
// after authenticating a publisher and before taking it.
func (c *Continuity) Admit(site, device string) error {
	now := c.now()
	stream := site + "/" + device
	c.mu.Lock()
	defer c.mu.Unlock()
	q := c.starts[stream]
	if q == nil {
		q = &startQuota{tokens: sessionBurst, at: now}
		c.starts[stream] = q
	}
	if now.After(q.at) {
		q.tokens = min(sessionBurst, q.tokens+float64(now.Sub(q.at))/float64(sessionRefill))
		q.at = now
	}
	if q.tokens < 1 {
		wait := time.Duration((1 - q.tokens) * float64(sessionRefill))
		return fmt.Errorf("%w: %s started %d sessions in a row; the next may start in %s", ErrTooManySessions, stream,
			sessionBurst, wait.Round(100*time.Millisecond))
	}
	q.tokens--
	return nil
}

// Refused reports a refused publisher of a known stream. Refusals of
// unknown streams are only logged and counted by the transport: they would
// let anyone write to any timeline. At most one refusal of a stream is
// reported every refusedEvery; the next one says how many were folded.
func (c *Continuity) Refused(site, device, reason string) {
	t := c.now()
	stream := site + "/" + device
	c.mu.Lock()
	r := c.refused[stream]
	if r == nil {
		r = &refusals{}
		c.refused[stream] = r
	} else if t.Sub(r.last) < refusedEvery {
		r.folded++
		c.mu.Unlock()
		return
	}
	folded := r.folded
	r.last, r.folded = t, 0
	c.mu.Unlock()
	if folded > 0 {
		reason = fmt.Sprintf("%s (and %d more refusals of the stream since the last one reported)", reason, folded)
	}
	c.Report(site, device, events.ObsRefused, t, t, 0, reason)
}

// Session is one recording session of a stream.
type Session struct {
	c            *Continuity
	site, device string
	started      time.Time
	last         atomic.Int64 // unix nanoseconds of the last media
	stopped      atomic.Bool
}

// Start reports the start of a session (detail says by what: transport,
// remote address) and the gap since the stream's last media, if longer than
// the threshold.
func (c *Continuity) Start(site, device, detail string) *Session {
	now := c.now()
	s := &Session{c: c, site: site, device: device, started: now}
	s.last.Store(now.UnixNano())
	last, err := c.sink.LastMedia(site, device)
	if err != nil {
		c.log.Error("last media of stream", "stream", site+"/"+device, "err", err)
	}
	if !last.IsZero() && now.Sub(last) > c.gap {
		c.Report(site, device, events.ObsGap, last, now, now.Sub(last).Seconds(), "no media between sessions")
	}
	c.Report(site, device, events.ObsStart, now, now, 0, detail)
	return s
}

// Media records that media arrived now. It is called for every packet: a
// clock read and an atomic swap, and a gap observation when the previous
// packet is older than the threshold.
func (s *Session) Media() {
	now := s.c.now()
	prev := s.last.Swap(now.UnixNano())
	if d := time.Duration(now.UnixNano() - prev); d > s.c.gap {
		s.c.Report(s.site, s.device, events.ObsGap, time.Unix(0, prev), now, d.Seconds(), "no media in the session")
	}
}

// Refused reports that the session's media is refused while the session
// goes on (none of it can be recorded): a refused observation on the
// stream's timeline. It is not folded into the stream's refusals of
// publishers (Continuity.Refused), which would drop it from the timeline
// when one came within refusedEvery before it: the caller reports once a
// stall (segmenter.Progress), which a publisher cannot repeat faster than
// one recorded sample and a stall's length.
func (s *Session) Refused(reason string) {
	t := s.c.now()
	s.c.Report(s.site, s.device, events.ObsRefused, t, t, 0, reason)
}

// LastMedia returns when media last arrived (the session start before any).
func (s *Session) LastMedia() time.Time { return time.Unix(0, s.last.Load()) }

// Stop reports the end of the session with its cause (events.CauseEnded,
// CauseLost or CauseIngest) and its reason in words, and records its last
// media for the next session's gap. Only the first call reports.
func (s *Session) Stop(cause, reason string) {
	if s.stopped.Swap(true) {
		return
	}
	now := s.c.now()
	last := s.LastMedia()
	if err := s.c.sink.SetLastMedia(s.site, s.device, last); err != nil {
		s.c.log.Error("record last media of stream", "stream", s.site+"/"+s.device, "err", err)
	}
	s.c.report(events.Observation{
		StreamID: s.site + "/" + s.device, Site: s.site, Device: s.device, Kind: events.ObsStop,
		Start: now.UTC(), End: now.UTC(), Measure: now.Sub(s.started).Seconds(),
		Detail:   fmt.Sprintf("%s (session of %s)", reason, now.Sub(s.started).Round(time.Second)),
		Reporter: Reporter, Cause: cause,
	})
}
