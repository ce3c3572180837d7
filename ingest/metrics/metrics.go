// Package metrics holds the Prometheus metrics that every ingest transport
// (RTSP, WHIP) shares, labelled by transport. Each transport builds its own
// Publishers from the same registry; the collectors are registered once and
// shared, so that constructing a second transport does not register the
// same names twice.
package metrics

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// Publishers are the per-transport metrics of publisher sessions.
type Publishers struct {
	// Active is nokstream_ingest_streams_active{transport,source}.
	Active *prometheus.GaugeVec
	// Refused is nokstream_ingest_publishers_refused_total{transport,reason}.
	Refused *prometheus.CounterVec
	// Errors is nokstream_ingest_media_errors_total{transport,kind}.
	Errors *prometheus.CounterVec
	// Sessions is nokstream_ingest_sessions_total{transport,source}.
	Sessions *prometheus.CounterVec
}

// NewPublishers registers the shared metrics in reg, or returns the ones
// already registered there.
func NewPublishers(reg prometheus.Registerer) *Publishers {
	return &Publishers{
		Active: register(reg, prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "nokstream_ingest_streams_active",
			Help: "Publisher sessions currently recording, by transport and source kind."}, []string{"transport", "source"})),
		Refused: register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{Name: "nokstream_ingest_publishers_refused_total",
			Help: "Publishers refused, by transport and reason."}, []string{"transport", "reason"})),
		Errors: register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{Name: "nokstream_ingest_media_errors_total",
			Help: "Media that could not be used, by transport and kind (decode, timestamp, codec, write)."}, []string{"transport", "kind"})),
		Sessions: register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{Name: "nokstream_ingest_sessions_total",
			Help: "Publisher sessions started, by transport and source kind."}, []string{"transport", "source"})),
	}
}

// register registers c, or returns the equal collector registered before.
// Any other registration error is a programming error and panics, as
// promauto does.
func register[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	err := reg.Register(c)
	if err == nil {
		return c
	}
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if existing, ok := are.ExistingCollector.(C); ok {
			return existing
		}
	}
	reg.MustRegister(c)
	return c
}
