package transcoder

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	segments      *prometheus.CounterVec
	observations  *prometheus.CounterVec
	handleSeconds prometheus.Histogram
	mediaSeconds  prometheus.Counter
	outputBytes   prometheus.Counter
	lag           prometheus.Gauge
	codecsReused  prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		segments: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nokstream_transcoder_segments_total",
			Help: "Segments handled, by result: done, skipped (already done), undecodable, invalid (bad event), failed (gave up after retries).",
		}, []string{"result"}),
		observations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nokstream_transcoder_observations_total",
			Help: "Observations published, by kind.",
		}, []string{"kind"}),
		handleSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "nokstream_transcoder_segment_seconds",
			Help:    "Time to handle one segment: fetch, decode, encode, store, announce.",
			Buckets: prometheus.ExponentialBuckets(0.05, 2, 10),
		}),
		mediaSeconds: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "nokstream_transcoder_media_seconds_total",
			Help: "Seconds of media transcoded. Its rate over CPU use is the transcoder's speed.",
		}),
		outputBytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "nokstream_transcoder_output_bytes_total",
			Help: "Bytes of renditions, sprites and thumbnail tracks stored.",
		}),
		lag: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "nokstream_transcoder_lag_seconds",
			Help: "How far behind real time the transcoder is, in seconds of media: now minus the end of the segment it finished last.",
		}),
		codecsReused: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "nokstream_transcoder_codecs_reused_total",
			Help: "Segments whose video decoder and encoder carried on from the stream's previous segment (keep_codecs) instead of being opened anew.",
		}),
	}
	for _, c := range []prometheus.Collector{m.segments, m.observations, m.handleSeconds, m.mediaSeconds, m.outputBytes, m.lag, m.codecsReused} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("transcoder: register metrics: %w", err)
		}
	}
	return m, nil
}
