package uploader_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/formats/mp4"

	"github.com/nokstream/nokstream/ingest/segmenter"
	"github.com/nokstream/nokstream/ingest/spool"
	"github.com/nokstream/nokstream/ingest/uploader"
	"github.com/nokstream/nokstream/internal/blob"
	"github.com/nokstream/nokstream/internal/events"
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// record closes segments (2 s each) of stream site1/<device> into the
// spool through a real segmenter.
func record(t *testing.T, sp *spool.Spool, device string, segments int) {
	t.Helper()
	cfg := segmenter.Config{SegmentDuration: 2 * time.Second, PartDuration: 500 * time.Millisecond}
	seg, err := segmenter.New(cfg, []segmenter.Track{{Codec: &mp4.CodecOpus{ChannelCount: 2}, TimeScale: 48000}},
		sp.Stream("site1", device, "room"), time.Now)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i <= segments*100; i++ {
		if err := seg.WriteSample(0, int64(i)*960, 0, true, bytes.Repeat([]byte{byte(i)}, 100)); err != nil {
			t.Fatal(err)
		}
	}
	if err := seg.Close(); err != nil {
		t.Fatal(err)
	}
}

// slowBus is a bus that takes a while to answer each publish (a round trip
// to Kafka), records what it was given, how many publishes were in flight
// at most, and refuses every segment of the streams in down.
type slowBus struct {
	delay time.Duration
	down  map[string]bool

	mu       sync.Mutex
	inFlight int
	most     int
	got      map[string][]int64 // stream → sequences, in the order published
}

func (b *slowBus) Publish(ctx context.Context, topic, key string, value []byte) error {
	if topic != events.TopicSegments {
		return nil
	}
	var ev events.SegmentClosed
	if err := json.Unmarshal(value, &ev); err != nil {
		return err
	}
	b.mu.Lock()
	b.inFlight++
	b.most = max(b.most, b.inFlight)
	b.mu.Unlock()
	defer func() {
		b.mu.Lock()
		b.inFlight--
		b.mu.Unlock()
	}()
	select {
	case <-time.After(b.delay):
	case <-ctx.Done():
		return ctx.Err()
	}
	if b.down[key] {
		return fmt.Errorf("partition of %s: leader not available", key)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.got[key] = append(b.got[key], ev.Sequence)
	return nil
}

// A backlog of several streams ships streams side by side, each stream's
// segments in order, and a stream that cannot be published holds back its
// own segments only: they stay in the spool, in order, for the next drain.
func TestDrainShipsStreamsSideBySideInOrder(t *testing.T) {
	t.Parallel()
	sp, err := spool.Open(t.TempDir(), "n1", quiet(), time.Now)
	if err != nil {
		t.Fatal(err)
	}
	const streams, perStream = 8, 5
	for d := range streams {
		record(t, sp, fmt.Sprintf("cam%d", d), perStream)
	}
	before, err := sp.Pending()
	if err != nil {
		t.Fatal(err)
	}
	store, err := blob.NewDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	b := &slowBus{delay: 20 * time.Millisecond, down: map[string]bool{"site1/cam3": true}, got: map[string][]int64{}}
	u := uploader.New(sp, store, b, quiet(), nil)
	err = u.Drain(t.Context())
	if err == nil || !bytes.Contains([]byte(err.Error()), []byte("site1/cam3")) {
		t.Fatalf("drain: %v, want the error of site1/cam3's partition", err)
	}
	if b.most < 2 || b.most > uploader.Streams {
		t.Errorf("at most %d publishes in flight, want 2 to %d (streams side by side)", b.most, uploader.Streams)
	}
	perStreamBefore := map[string][]int64{}
	for _, p := range before {
		perStreamBefore[p.Event.StreamID] = append(perStreamBefore[p.Event.StreamID], p.Event.Sequence)
	}
	for stream, seqs := range perStreamBefore {
		if stream == "site1/cam3" {
			if len(b.got[stream]) != 0 {
				t.Errorf("%s published %v while its partition was down", stream, b.got[stream])
			}
			continue
		}
		if fmt.Sprint(b.got[stream]) != fmt.Sprint(seqs) {
			t.Errorf("%s published %v, want its segments in order %v", stream, b.got[stream], seqs)
		}
		for _, seq := range seqs {
			key := ""
			for _, p := range before {
				if p.Event.StreamID == stream && p.Event.Sequence == seq {
					key = p.Event.ObjectKey
				}
			}
			if _, err := store.Stat(t.Context(), key); err != nil {
				t.Errorf("%s segment %d (%s) not stored: %v", stream, seq, key, err)
			}
		}
	}
	left, err := sp.Pending()
	if err != nil {
		t.Fatal(err)
	}
	var leftSeqs []int64
	for _, p := range left {
		if p.Event.StreamID != "site1/cam3" {
			t.Errorf("%s segment %d still pending", p.Event.StreamID, p.Event.Sequence)
		}
		leftSeqs = append(leftSeqs, p.Event.Sequence)
	}
	if fmt.Sprint(leftSeqs) != fmt.Sprint(perStreamBefore["site1/cam3"]) {
		t.Errorf("site1/cam3 left %v pending, want all of %v", leftSeqs, perStreamBefore["site1/cam3"])
	}

	// Back: the held stream ships, in order, and nothing twice.
	b.down = nil
	if err := u.Drain(t.Context()); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(b.got["site1/cam3"]) != fmt.Sprint(perStreamBefore["site1/cam3"]) {
		t.Errorf("site1/cam3 published %v after it came back, want %v", b.got["site1/cam3"], perStreamBefore["site1/cam3"])
	}
	for stream, seqs := range perStreamBefore {
		if len(b.got[stream]) != len(seqs) {
			t.Errorf("%s published %d times, want %d", stream, len(b.got[stream]), len(seqs))
		}
	}
	if left, err := sp.Pending(); err != nil || len(left) != 0 {
		t.Errorf("%d still pending (%v)", len(left), err)
	}

	// A drain cancelled midway leaves what it did not ship pending.
	record(t, sp, "cam0", perStream)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := u.Drain(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled drain: %v", err)
	}
	if left, err := sp.Pending(); err != nil || len(left) == 0 {
		t.Errorf("cancelled drain left %d pending (%v), want the new segments", len(left), err)
	}
}
