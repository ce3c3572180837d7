package index_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/nokstream/nokstream/internal/bus"
	"github.com/nokstream/nokstream/internal/events"
	"github.com/nokstream/nokstream/internal/testenv"
	"github.com/nokstream/nokstream/registry/index"
	"github.com/nokstream/nokstream/registry/store"
)

func discard() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func event(seq int64) *events.SegmentClosed {
	hex := func(b byte) string { return strings.Repeat(fmt.Sprintf("%02x", b), 32) }
	return &events.SegmentClosed{
		SegmentID: fmt.Sprintf("seg-%d", seq), StreamID: "site1/cam1", Source: events.SourceRoom,
		Site: "site1", Device: "cam1", Sequence: seq,
		Start: time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC).Add(time.Duration(seq) * 6 * time.Second), Duration: 6,
		Bytes: 100, SHA256: hex(byte(seq)), PrevChain: hex(0), Chain: hex(byte(seq + 1)),
		ObjectKey: fmt.Sprintf("site1/cam1/%d.m4s", seq), InitKey: "site1/cam1/init.mp4",
		InitSHA256: hex(9), InitBytes: 10, IngestNode: "n1",
	}
}

func message(t *testing.T, e any) bus.Message {
	t.Helper()
	b, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	return bus.Message{Topic: events.TopicSegments, Key: "site1/cam1", Value: b}
}

// fakeIndexer returns err from every call.
type fakeIndexer struct{ err error }

func (f fakeIndexer) IndexSegment(context.Context, *events.SegmentClosed) (bool, error) {
	return f.err == nil, f.err
}

func TestHandlerErrors(t *testing.T) {
	t.Parallel()
	noMore := event(1)
	noMore.ObjectKey = ""
	tests := []struct {
		name          string
		err           error // from the indexer
		msg           func(t *testing.T) bus.Message
		wantErr       bool
		wantPermanent bool
	}{
		{"ok", nil, func(t *testing.T) bus.Message { return message(t, event(0)) }, false, false},
		{"not json", nil, func(t *testing.T) bus.Message { return bus.Message{Value: []byte("{not json")} }, true, true},
		{"missing field", nil, func(t *testing.T) bus.Message { return message(t, noMore) }, true, true},
		{"conflict", fmt.Errorf("index: %w", store.ErrConflict), func(t *testing.T) bus.Message { return message(t, event(0)) }, true, true},
		{"database down", errors.New("connection refused"), func(t *testing.T) bus.Message { return message(t, event(0)) }, true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := index.Handler(fakeIndexer{tt.err}, discard())
			err := h(context.Background(), tt.msg(t))
			if (err != nil) != tt.wantErr || bus.IsPermanent(err) != tt.wantPermanent {
				t.Errorf("got %v (permanent %v), want error %v, permanent %v", err, bus.IsPermanent(err), tt.wantErr, tt.wantPermanent)
			}
		})
	}
}

func TestHandlerIdempotent(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dsn := testenv.Postgres(t)
	if err := store.Migrate(ctx, dsn); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	s, err := store.Open(ctx, dsn)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	defer s.Close()
	h := index.Handler(s, discard())
	m := message(t, event(0))
	for i := range 3 {
		if err := h(ctx, m); err != nil {
			t.Fatalf("delivery %d: %v", i, err)
		}
	}
	segs, err := s.Segments(ctx, "site1", "cam1", time.Time{}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if len(segs) != 1 {
		t.Errorf("three deliveries of one event: %d rows, want 1", len(segs))
	}

	// A database that has gone away is a retryable error.
	s.Close()
	err = h(ctx, message(t, event(1)))
	if err == nil || bus.IsPermanent(err) {
		t.Errorf("closed database: got %v, want a retryable error", err)
	}
}
