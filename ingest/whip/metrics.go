package whip

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/nokstream/nokstream/ingest/metrics"
)

// transport is the transport label of WHIP in the shared ingest metrics.
const transport = "whip"

// Metrics of the WHIP endpoint. Sessions, active streams, refusals and media
// errors are the ingest metrics every transport shares, labelled
// transport="whip".
type Metrics struct {
	pub              *metrics.Publishers
	bytesIn          prometheus.Counter
	lost             prometheus.Counter
	keyframeRequests prometheus.Counter
	ended            *prometheus.CounterVec
	connect          prometheus.Histogram
}

// NewMetrics registers the metrics.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	f := promauto.With(reg)
	return &Metrics{
		pub: metrics.NewPublishers(reg),
		bytesIn: f.NewCounter(prometheus.CounterOpts{Name: "nokstream_ingest_whip_received_bytes_total",
			Help: "Media payload bytes received over WHIP (WebRTC)."}),
		lost: f.NewCounter(prometheus.CounterOpts{Name: "nokstream_ingest_whip_lost_packets_total",
			Help: "RTP packets of WHIP publishers lost for good (not recovered by retransmission)."}),
		keyframeRequests: f.NewCounter(prometheus.CounterOpts{Name: "nokstream_ingest_whip_keyframe_requests_total",
			Help: "Keyframe requests (RTCP PLI) sent to WHIP publishers so that segments can be cut."}),
		ended: f.NewCounterVec(prometheus.CounterOpts{Name: "nokstream_ingest_whip_sessions_ended_total",
			Help: "WHIP sessions ended, by reason (deleted, replaced, connection_failed, handshake_timeout, no_media, spool_error, exam_over, server_stopping)."},
			[]string{"reason"}),
		connect: f.NewHistogram(prometheus.HistogramOpts{Name: "nokstream_ingest_whip_connect_seconds",
			Help:    "Time from the SDP answer to the ICE and DTLS connection of a WHIP session.",
			Buckets: []float64{0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10}}),
	}
}
