package bus

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Results of handling a message, the values of the result label.
const (
	resultOK         = "ok"
	resultRetry      = "retry"
	resultDeadLetter = "dead_letter"
)

// Metrics counts what a bus publishes and handles. Labels are topic names
// (without any Kafka topic prefix) and group names, both fixed sets in the
// code, so they stay bounded. A nil *Metrics records nothing.
type Metrics struct {
	published      *prometheus.CounterVec
	publishErrors  *prometheus.CounterVec
	publishSeconds *prometheus.HistogramVec
	handledTotal   *prometheus.CounterVec
	handleSeconds  *prometheus.HistogramVec
}

// NewMetrics registers the bus metrics with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	f := promauto.With(reg)
	return &Metrics{
		published: f.NewCounterVec(prometheus.CounterOpts{
			Name: "nokstream_bus_published_total",
			Help: "Events durably accepted by the bus, by topic.",
		}, []string{"topic"}),
		publishErrors: f.NewCounterVec(prometheus.CounterOpts{
			Name: "nokstream_bus_publish_errors_total",
			Help: "Publish calls that returned an error, by topic.",
		}, []string{"topic"}),
		publishSeconds: f.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "nokstream_bus_publish_seconds",
			Help:    "Time from Publish to the event being durable (acks=all or fsync), by topic.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}, []string{"topic"}),
		handledTotal: f.NewCounterVec(prometheus.CounterOpts{
			Name: "nokstream_bus_handled_total",
			Help: "Handler outcomes by topic, group and result: ok, retry (a retryable error, the message is handled again) or dead_letter.",
		}, []string{"topic", "group", "result"}),
		handleSeconds: f.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "nokstream_bus_handle_seconds",
			Help:    "Time one handler call took, by topic and group.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 18),
		}, []string{"topic", "group"}),
	}
}

func (m *Metrics) publishDone(topic string, d time.Duration, err error) {
	if m == nil {
		return
	}
	if err != nil {
		m.publishErrors.WithLabelValues(topic).Inc()
		return
	}
	m.published.WithLabelValues(topic).Inc()
	m.publishSeconds.WithLabelValues(topic).Observe(d.Seconds())
}

func (m *Metrics) handled(topic, group, result string) {
	if m == nil {
		return
	}
	m.handledTotal.WithLabelValues(topic, group, result).Inc()
}

func (m *Metrics) handleDone(topic, group string, d time.Duration) {
	if m == nil {
		return
	}
	m.handleSeconds.WithLabelValues(topic, group).Observe(d.Seconds())
}
