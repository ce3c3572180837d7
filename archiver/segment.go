package archiver

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/nokstream/nokstream/archiver/store"
	"github.com/nokstream/nokstream/internal/blob"
	"github.com/nokstream/nokstream/internal/bus"
	"github.com/nokstream/nokstream/internal/events"
	"github.com/nokstream/nokstream/internal/evidence/chain"
	"github.com/nokstream/nokstream/internal/evidence/retention"
)

// Chain break kinds, the kind label of nokstream_archiver_chain_breaks_total.
const (
	breakMissing   = "missing"   // sequences were skipped
	breakReordered = "reordered" // a segment came after a later one
	breakAltered   = "altered"   // a chain value does not link
)

// Handle handles one SegmentClosed event: it checks the stored objects,
// verifies the stream's hash chain, and gives the segment and its init
// segment their retention. The same event twice changes nothing more.
func (s *Service) Handle(ctx context.Context, m bus.Message) error {
	ev, err := events.DecodeSegmentClosed(m.Value)
	if err != nil {
		return bus.Permanent(err)
	}
	prev, err := s.d.Store.ArchiveObject(ctx, ev.ObjectKey)
	switch {
	case err == nil && prev.SegmentID == ev.SegmentID && prev.Chain == ev.Chain && prev.SHA256 == ev.SHA256:
		return nil // Handled before: delivered again.
	case err == nil:
		s.m.failures.Inc()
		s.d.Log.Error("ALERT segment event reuses an archived object key for other bytes", "stream", ev.StreamID,
			"segment_id", ev.SegmentID, "object_key", ev.ObjectKey, "archived_segment_id", prev.SegmentID)
		return bus.Permanent(fmt.Errorf("segment %s: object key %s is archived for segment %s with other bytes",
			ev.SegmentID, ev.ObjectKey, prev.SegmentID))
	case !errors.Is(err, store.ErrNotFound):
		return err
	}

	segOK, initOK, err := s.checkSegment(ctx, ev)
	if err != nil {
		return err
	}
	chain, err := s.verifyChain(ctx, ev)
	if err != nil {
		return err
	}

	now := s.now()
	seg := store.ArchiveObject{
		Key: ev.ObjectKey, Kind: store.ArchiveSegment, StreamID: ev.StreamID, Site: ev.Site, Device: ev.Device,
		Source: ev.Source, Sequence: ev.Sequence, Start: ev.Start, End: segmentEnd(ev), Bytes: ev.Bytes, SHA256: ev.SHA256,
		PrevChain: ev.PrevChain, Chain: ev.Chain, InitKey: ev.InitKey, SegmentID: ev.SegmentID, Verified: segOK,
		DecidedAt: now,
	}
	ds, err := s.decideSegments(ctx, []store.ArchiveObject{seg}, true)
	if err != nil {
		return err
	}
	if err := s.applyDecision(ctx, seg, ds[0], true); err != nil {
		return err
	}
	setDecision(&seg, ds[0])

	init := store.ArchiveObject{
		Key: ev.InitKey, Kind: store.ArchiveInit, StreamID: ev.StreamID, Site: ev.Site, Device: ev.Device,
		Source: ev.Source, Start: seg.Start, End: seg.End, Bytes: ev.InitBytes, SHA256: ev.InitSHA256, Verified: initOK,
		DecidedAt: now,
	}
	initPrev, err := s.d.Store.ArchiveObject(ctx, ev.InitKey)
	initNew := errors.Is(err, store.ErrNotFound)
	if err != nil && !initNew {
		return err
	}
	if !initNew {
		init.RetainUntil, init.LegalHold, init.Rule = initPrev.RetainUntil, initPrev.LegalHold, initPrev.Rule
	}
	id, err := s.decideInit(ctx, init, &seg)
	if err != nil {
		return err
	}
	if err := s.applyDecision(ctx, init, id, initNew); err != nil {
		return err
	}
	setDecision(&init, id)
	return s.d.Store.SaveArchivedSegment(ctx, seg, init, chain)
}

func segmentEnd(ev *events.SegmentClosed) time.Time {
	return ev.Start.Add(secondsDuration(ev.Duration))
}

func secondsDuration(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

// setDecision records d in o's retention columns.
func setDecision(o *store.ArchiveObject, d retention.Decision) {
	o.RetainUntil, o.LegalHold, o.Rule = d.RetainUntil, d.LegalHold, string(d.Rule)
	o.Decision = decisionJSON(d)
}

// checkSegment checks the stored segment and init segment against the event
// and records the check. A mismatch is an alert and a metric.
func (s *Service) checkSegment(ctx context.Context, ev *events.SegmentClosed) (segOK, initOK bool, err error) {
	segOK, segDetail, err := s.checkObject(ctx, ev.ObjectKey, ev.SHA256, ev.Bytes)
	if err != nil {
		return false, false, err // blob store unreachable: retry
	}
	initOK, initDetail := true, ""
	if ev.InitSHA256 != "" {
		if initOK, initDetail, err = s.checkObject(ctx, ev.InitKey, ev.InitSHA256, ev.InitBytes); err != nil {
			return false, false, err
		}
	}
	ok, detail, result := segOK && initOK, "size and sha256 match", "ok"
	if !ok {
		detail = strings.TrimPrefix(strings.Join([]string{segDetail, initDetail}, "; "), "; ")
		result = "mismatch"
		if strings.Contains(detail, "object missing") {
			result = "missing"
		}
		s.m.failures.Inc()
		s.d.Log.Error("ALERT segment integrity check failed", "stream", ev.StreamID, "segment_id", ev.SegmentID,
			"object_key", ev.ObjectKey, "detail", detail)
	}
	if err := s.d.Store.RecordSegmentCheck(ctx, ev.SegmentID, ok, detail, s.cfg.Node); err != nil {
		return false, false, fmt.Errorf("record check of %s: %w", ev.SegmentID, err)
	}
	s.m.checked.WithLabelValues(result).Inc()
	return segOK, initOK, nil
}

func (s *Service) checkObject(ctx context.Context, key, wantSHA string, wantSize int64) (bool, string, error) {
	a, err := s.d.Blob.Stat(ctx, key)
	if errors.Is(err, blob.ErrNotFound) {
		return false, key + ": object missing", nil
	}
	if err != nil {
		return false, "", fmt.Errorf("stat %s: %w", key, err)
	}
	if a.Size != wantSize {
		return false, fmt.Sprintf("%s: size %d, announced %d", key, a.Size, wantSize), nil
	}
	r, err := s.d.Blob.Get(ctx, key)
	if err != nil {
		return false, "", fmt.Errorf("get %s: %w", key, err)
	}
	defer r.Close()
	h := sha256.New()
	if _, err := io.Copy(h, r); err != nil {
		return false, "", fmt.Errorf("read %s: %w", key, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != wantSHA {
		return false, fmt.Sprintf("%s: sha256 %s, announced %s", key, got, wantSHA), nil
	}
	return true, "", nil
}

// verifyChain checks the segment against the stream's last verified
// segment and returns the stream's new last segment. Each break is published
// as a chain_break observation on the stream's timeline, logged as an alert
// and counted.
func (s *Service) verifyChain(ctx context.Context, ev *events.SegmentClosed) (store.StreamChain, error) {
	next := store.StreamChain{StreamID: ev.StreamID, Sequence: ev.Sequence, Chain: ev.Chain, SegmentID: ev.SegmentID}
	type brk struct{ kind, detail string }
	var breaks []brk
	if want, err := chain.Next(ev.PrevChain, ev.SHA256); err != nil || want != ev.Chain {
		breaks = append(breaks, brk{breakAltered, fmt.Sprintf(
			"segment %d: its chain value does not follow from its prev_chain and sha256", ev.Sequence)})
	}
	last, err := s.d.Store.StreamChain(ctx, ev.StreamID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		switch {
		case ev.Sequence > 0:
			breaks = append(breaks, brk{breakMissing, fmt.Sprintf(
				"the first segment the archiver received is %d: segments 0 to %d are missing", ev.Sequence, ev.Sequence-1)})
		case ev.PrevChain != chain.Zero:
			breaks = append(breaks, brk{breakAltered, "segment 0 does not start the chain from zero"})
		}
	case err != nil:
		return next, err
	case ev.Sequence == last.Sequence+1:
		if ev.PrevChain != last.Chain {
			breaks = append(breaks, brk{breakAltered, fmt.Sprintf(
				"segment %d does not follow segment %d: its prev_chain is %s, the chain value of %d is %s",
				ev.Sequence, last.Sequence, ev.PrevChain[:12], last.Sequence, last.Chain[:12])})
		}
	case ev.Sequence > last.Sequence+1:
		breaks = append(breaks, brk{breakMissing, fmt.Sprintf("segments %d to %d never arrived before segment %d",
			last.Sequence+1, ev.Sequence-1, ev.Sequence)})
	default:
		breaks = append(breaks, brk{breakReordered, fmt.Sprintf("segment %d arrived after segment %d",
			ev.Sequence, last.Sequence)})
		next = last // The chain goes on from the latest segment.
	}
	for _, b := range breaks {
		obs := events.Observation{
			ObservationID: events.NewObservationID(ev.StreamID, events.ObsChainBreak+"/"+b.kind, "archiver", ev.Start),
			StreamID:      ev.StreamID, Site: ev.Site, Device: ev.Device, Kind: events.ObsChainBreak,
			Start: ev.Start, End: segmentEnd(ev), Detail: b.kind + ": " + b.detail, Reporter: "archiver",
			SegmentID: ev.SegmentID,
		}
		v, err := json.Marshal(obs)
		if err != nil {
			return next, err
		}
		if s.d.Bus != nil {
			if err := s.d.Bus.Publish(ctx, events.TopicObservations, ev.StreamID, v); err != nil {
				return next, fmt.Errorf("publish chain break of %s: %w", ev.SegmentID, err)
			}
		}
		s.m.breaks.WithLabelValues(b.kind).Inc()
		s.d.Log.Error("ALERT hash chain break", "stream", ev.StreamID, "segment_id", ev.SegmentID,
			"sequence", ev.Sequence, "break", b.kind, "detail", b.detail)
	}
	return next, nil
}
