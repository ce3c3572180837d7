package api_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/nokstream/nokstream/internal/bus"
	"github.com/nokstream/nokstream/internal/events"
	"github.com/nokstream/nokstream/registry/index"
	"github.com/nokstream/nokstream/registry/store"
)

// TestSiteDevicesSessions: the site's device listing says which devices
// ingest pulls and, from the observations indexed off the bus, how each
// stream's latest session started or ended — so that the site console can
// tell a source that is reconnecting from one that was stopped.
func TestSiteDevicesSessions(t *testing.T) {
	t.Parallel()
	e := newDomainEnv(t, nil, nil)
	w := newWorld(t, e)
	ctx := context.Background()
	_, err := e.store.AddDevice(ctx, "site1", "room2", store.KindRoom)
	must(t, err)
	must(t, e.store.SetDevicePull(ctx, "site1", "room1", []byte("sealed camera url")))

	at := t0.Add(time.Hour)
	h := index.ObservationHandler(e.store, slog.New(slog.NewTextHandler(io.Discard, nil)))
	observe := func(device, kind, cause, detail string, start time.Time) {
		t.Helper()
		o := events.Observation{StreamID: "site1/" + device, Site: "site1", Device: device, Kind: kind,
			Start: start, End: start, Detail: detail, Reporter: "ingest", Cause: cause}
		o.ObservationID = events.NewObservationID(o.StreamID, kind, o.Reporter, start)
		b, err := json.Marshal(o)
		must(t, err)
		must(t, h(ctx, bus.Message{Topic: events.TopicObservations, Key: o.StreamID, Value: b}))
	}
	observe("room1", events.ObsStart, "", "pulling rtsp://cam/", at)
	observe("room1", events.ObsStop, events.CauseLost, "camera session ended: EOF", at.Add(time.Minute))
	observe("ws1-cam", events.ObsStart, "", "whip publisher", at)
	observe("ws1-cam", events.ObsStop, events.CauseEnded, "the publisher ended the WHIP session", at.Add(2*time.Minute))
	observe("ws1-screen", events.ObsStop, events.CauseLost, "WebRTC connection lost", at)
	observe("ws1-screen", events.ObsStart, "", "whip publisher again", at.Add(3*time.Minute))
	observe("ws2-cam", events.ObsStop, "", "publisher disconnected", at) // reported before causes were
	observe("ws2-screen", events.ObsStop, events.CauseIngest, "ingest stopping", at)
	observe("ws2-screen", events.ObsGap, "", "no media between sessions", at.Add(time.Minute)) // not a session's start or stop

	r := e.do("GET", "/api/v1/sites/site1/devices", w.orgs[1].tokens[store.RoleSite], nil)
	if r.code != http.StatusOK {
		t.Fatalf("GET devices: %d %s", r.code, r.body)
	}
	type device struct {
		Name    string
		Pulled  bool
		Session struct {
			State  string
			At     *time.Time
			Detail string
		}
	}
	got := map[string]device{}
	for _, d := range decode[[]device](t, r) {
		got[d.Name] = d
	}
	for _, tc := range []struct {
		device, state, detail string
		at                    time.Time // zero: none
		pulled                bool
	}{
		{"room1", store.SessionLost, "camera session ended: EOF", at.Add(time.Minute), true},
		{"room2", store.SessionNone, "", time.Time{}, false},
		{"ws1-cam", store.SessionEnded, "the publisher ended the WHIP session", at.Add(2 * time.Minute), false},
		{"ws1-screen", store.SessionOpen, "whip publisher again", at.Add(3 * time.Minute), false},
		{"ws2-cam", store.SessionEnded, "publisher disconnected", at, false},
		{"ws2-screen", store.SessionIngest, "ingest stopping", at, false},
	} {
		d, ok := got[tc.device]
		switch {
		case !ok:
			t.Errorf("%s not listed", tc.device)
		case d.Pulled != tc.pulled || d.Session.State != tc.state || d.Session.Detail != tc.detail:
			t.Errorf("%s: pulled %v, session %+v; want pulled %v, state %s, detail %q", tc.device, d.Pulled, d.Session, tc.pulled, tc.state, tc.detail)
		case tc.at.IsZero() && d.Session.At != nil, !tc.at.IsZero() && (d.Session.At == nil || !d.Session.At.Equal(tc.at)):
			t.Errorf("%s: session at %v, want %v", tc.device, d.Session.At, tc.at)
		}
	}
}
