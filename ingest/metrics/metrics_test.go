package metrics_test

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nokstream/nokstream/ingest/metrics"
)

// Two transports built on one registry share the collectors: no panic for
// a duplicate registration, and one series per label set.
func TestPublishersAreSharedPerRegistry(t *testing.T) {
	reg := prometheus.NewRegistry()
	rtsp := metrics.NewPublishers(reg)
	whip := metrics.NewPublishers(reg)
	if rtsp.Sessions != whip.Sessions || rtsp.Active != whip.Active || rtsp.Refused != whip.Refused || rtsp.Errors != whip.Errors {
		t.Fatal("the second construction registered its own collectors")
	}
	rtsp.Sessions.WithLabelValues("rtsp", "room").Inc()
	whip.Sessions.WithLabelValues("whip", "webcam").Inc()
	whip.Sessions.WithLabelValues("whip", "webcam").Inc()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	series := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != "nokstream_ingest_sessions_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			series[m.GetLabel()[1].GetValue()+"/"+m.GetLabel()[0].GetValue()] = m.GetCounter().GetValue()
		}
	}
	if len(series) != 2 || series["whip/webcam"] != 2 || series["rtsp/room"] != 1 {
		t.Errorf("sessions series %v, want rtsp/room 1 and whip/webcam 2", series)
	}
}
