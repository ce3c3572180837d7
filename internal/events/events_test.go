package events_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/nokstream/nokstream/internal/events"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// example is one fully populated event and its decoder.
type example struct {
	name   string
	event  any
	decode func([]byte) (any, error)
}

// examples are fully populated events of the v1 contract, one of each type,
// with fixed values: every field is set, so that a renamed, retyped, added
// or dropped field changes the golden file.
func examples() []example {
	start := time.Date(2025, 3, 3, 9, 0, 1, 250_000_000, time.UTC)
	independent := false
	return []example{
		{"segment_closed", &events.SegmentClosed{
			SegmentID: "01JNE6X4N0S3G5Q7R8T9V0W1X2", StreamID: "ep-ilinka/room1", Source: events.SourceRoom,
			Site: "ep-ilinka", Device: "room1", Sequence: 42, Start: start, Duration: 4.004,
			Codecs: []string{"avc1.64001f", "mp4a.40.2"}, Bytes: 1_234_567,
			SHA256:     "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
			PrevChain:  "0000000000000000000000000000000000000000000000000000000000000000",
			Chain:      "60303ae22b998861bce3b28f33eec1be758a213c86c93c076dbe9f558c11c752",
			ObjectKey:  "raw/ep-ilinka/room1/2025/03/03/000042.m4s",
			InitKey:    "raw/ep-ilinka/room1/init/3a7bd3e2.mp4",
			InitSHA256: "3a7bd3e2360a3d29eea436fcfb7e44c735d117c42d1c1835420b6b9942dd4f1b",
			InitBytes:  812, IngestNode: "ingest-1", Discontinuity: true, Salvaged: true, Independent: &independent,
		}, func(b []byte) (any, error) { return events.DecodeSegmentClosed(b) }},
		{"rendition_ready", &events.RenditionReady{
			SegmentID: "01JNE6X4N0S3G5Q7R8T9V0W1X2", StreamID: "ep-ilinka/room1", Source: events.SourceRoom,
			Site: "ep-ilinka", Device: "room1", Sequence: 42, Start: start, Duration: 4.004,
			SourceSHA256: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
			SourceWidth:  1920, SourceHeight: 1080, MediaStart: 168.168, Variant: events.VariantReview,
			Rendition: events.Rendition{
				Object: events.ObjectRef{Key: "review/ep-ilinka/room1/000042.m4s", Bytes: 204_800,
					SHA256: "2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae"},
				Init: events.ObjectRef{Key: "review/ep-ilinka/room1/init/fcde2b2e.mp4", Bytes: 790,
					SHA256: "fcde2b2edba56bf408601fb721fe9b5c338d10ee429ea04fae5511b68fbf8fb9"},
				Codecs: []string{"avc1.64001e", "mp4a.40.2"}, Width: 640, Height: 360, FrameRate: 12.5, Bandwidth: 409_600,
			},
			Thumbnails: &events.Thumbnails{
				Sprite: events.ObjectRef{Key: "thumbs/ep-ilinka/room1/000042.jpg", Bytes: 18_432,
					SHA256: "baa5a0964d3320fbc0c6a922140453c8513ea24ab8fd0577034804a967248096"},
				VTT: events.ObjectRef{Key: "thumbs/ep-ilinka/room1/000042.vtt", Bytes: 301,
					SHA256: "b5bb9d8014a0f9b1d61e21e796d78dccdf1352f23cd32812f4850b878ae4944c"},
				Tiles: 2, Columns: 2, TileWidth: 160, TileHeight: 90, Interval: 2,
			},
			Transcoder: "transcoder-1", Done: time.Date(2025, 3, 3, 9, 0, 9, 0, time.UTC),
		}, func(b []byte) (any, error) { return events.DecodeRenditionReady(b) }},
		{"observation", &events.Observation{
			ObservationID: events.NewObservationID("ep-ilinka/cam-ws01", events.ObsStop, "ingest", start),
			StreamID:      "ep-ilinka/cam-ws01", Site: "ep-ilinka", Device: "cam-ws01", Kind: events.ObsStop,
			Start: start, End: start.Add(1500 * time.Millisecond), Measure: 1.5,
			Detail: "publisher disconnected", Reporter: "ingest", SegmentID: "01JNE6X4N0S3G5Q7R8T9V0W1X2",
			Cause: events.CauseLost,
		}, func(b []byte) (any, error) { return events.DecodeObservation(b) }},
		{"object_deleted", &events.ObjectDeleted{
			ObjectKey: "raw/ep-ilinka/room1/2025/03/03/000042.m4s", Kind: "segment", StreamID: "ep-ilinka/room1",
			Bytes: 1_234_567, SHA256: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
			Rule: "unlinked", RetainUntil: time.Date(2025, 4, 2, 9, 0, 0, 0, time.UTC),
			MarkedAt:  time.Date(2025, 4, 2, 10, 0, 0, 0, time.UTC),
			DeletedAt: time.Date(2025, 4, 3, 10, 0, 0, 0, time.UTC),
			Reasons: []events.DeletionReason{{Rule: "unlinked", Until: time.Date(2025, 4, 2, 9, 0, 0, 0, time.UTC),
				ExamID: "exam-2025-03-03", CandidateID: "orlova", Detail: "footage of no exam, kept 30 days"}},
			Archiver: "archiver-1",
		}, func(b []byte) (any, error) { return events.DecodeObjectDeleted(b) }},
		{"retention_changed_v2", &events.RetentionChangedV2{
			Type: events.FactsCandidateExam, Seq: 4711, Reason: events.RetentionAppealClosed,
			At: time.Date(2025, 5, 20, 15, 0, 0, 0, time.UTC), ExamID: "exam-2025-03-03", CandidateID: "orlova",
			Council: "spk-stroy", Center: "cok-ural", Site: "ep-ilinka", Qualification: "16.03600.02",
			Start: time.Date(2025, 3, 3, 9, 0, 0, 0, time.UTC), End: time.Date(2025, 3, 3, 13, 0, 0, 0, time.UTC),
			Webcam: "cam-ws01", Screen: "scr-ws01", Admission: "admitted",
			Result: "certificate", ResultAt: time.Date(2025, 3, 10, 12, 30, 0, 0, time.UTC),
			Certificate: &events.CertificateFacts{Number: "16.03600.02.00123.25",
				ValidUntil: time.Date(2028, 3, 11, 0, 0, 0, 0, time.UTC), RevokedAt: time.Date(2025, 6, 1, 8, 0, 0, 0, time.UTC)},
			Appeals: []events.AppealFacts{{ID: "01JNE9AP0000000000000000AA", OpenedAt: time.Date(2025, 3, 20, 10, 0, 0, 0, time.UTC),
				ClosedAt: time.Date(2025, 5, 20, 15, 0, 0, 0, time.UTC)}},
			DisposedAt: time.Date(2025, 7, 1, 9, 0, 0, 0, time.UTC),
			Documents: []events.DocumentFacts{{ID: "01JNE8D0C0000000000000000D", ExamID: "exam-2025-03-03", CandidateID: "orlova",
				Key: "docs/orlova/01JNE8D0C0000000000000000D", Kind: "passport_scan", Bytes: 204_800,
				SHA256:     "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
				UploadedAt: time.Date(2025, 3, 3, 8, 40, 0, 0, time.UTC)}},
		}, func(b []byte) (any, error) { m, err := events.DecodeFacts(b); return m.Exam, err }},
		{"retention_settings_changed", &events.RetentionSettingsChanged{
			Type: events.FactsSettings, Seq: 4712, At: time.Date(2025, 5, 21, 9, 0, 0, 0, time.UTC), Council: "spk-stroy",
			Settings: []events.CouncilSettings{{Qualification: "16.03600.02", AppealWindowDays: 45, ProvisionalDays: 120, UnlinkedDays: 14}},
			Sites:    []string{"ep-ilinka"},
		}, func(b []byte) (any, error) { m, err := events.DecodeFacts(b); return m.Settings, err }},
		{"facts_watermark", &events.FactsWatermark{
			Type: events.FactsWatermarkType, Seq: 4712, At: time.Date(2025, 5, 21, 9, 0, 5, 0, time.UTC),
		}, func(b []byte) (any, error) { m, err := events.DecodeFacts(b); return m.Watermark, err }},
		{"retention_changed", &events.RetentionChanged{
			EventID: "01JNE7A0B1C2D3E4F5G6H7J8K9", ExamID: "exam-2025-03-03", CandidateID: "orlova",
			Reason: events.RetentionCertificateIssued, At: time.Date(2025, 3, 10, 12, 30, 0, 0, time.UTC),
		}, func(b []byte) (any, error) {
			// The archiver reads it with encoding/json: there is no decoder.
			var e events.RetentionChanged
			return &e, json.Unmarshal(b, &e)
		}},
	}
}

// TestGolden: every event of the v1 contract, fully populated, marshals to
// its golden file in testdata (so that a change to the wire shows in
// review; -update rewrites them), and each golden file decodes back to the
// same event.
func TestGolden(t *testing.T) {
	for _, ex := range append(examples(), recordExamples()...) {
		t.Run(ex.name, func(t *testing.T) {
			// Every field is set: a zero field would not show its
			// encoding, and an omitempty one would not show at all.
			if f := zeroField(reflect.ValueOf(ex.event).Elem()); f != "" {
				t.Fatalf("the example leaves %s zero", f)
			}
			wire, err := json.Marshal(ex.event)
			if err != nil {
				t.Fatal(err)
			}
			var got bytes.Buffer
			if err := json.Indent(&got, wire, "", "  "); err != nil {
				t.Fatal(err)
			}
			got.WriteByte('\n')
			path := filepath.Join("testdata", ex.name+".golden.json")
			if *update {
				if err := os.WriteFile(path, got.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (go test ./internal/events -run TestGolden -update writes it)", err)
			}
			if !bytes.Equal(got.Bytes(), want) {
				t.Errorf("the wire changed: %s is\n%s\nthe event marshals to\n%s", path, want, got.Bytes())
			}
			dec, err := ex.decode(want)
			if err != nil {
				t.Fatalf("decode %s: %v", path, err)
			}
			if !reflect.DeepEqual(dec, ex.event) {
				t.Errorf("%s decodes to\n%+v\nwant\n%+v", path, dec, ex.event)
			}
		})
	}
}

// zeroField returns the path of the first zero field of a struct value,
// looking into structs, pointers and the elements of slices, or "".
func zeroField(v reflect.Value) string {
	for i := range v.NumField() {
		f, name := v.Field(i), v.Type().Field(i).Name
		if f.IsZero() {
			return name
		}
		switch f.Kind() {
		case reflect.Pointer:
			if f.Elem().Kind() == reflect.Struct && f.Elem().Type() != reflect.TypeFor[time.Time]() {
				if z := zeroField(f.Elem()); z != "" {
					return name + "." + z
				}
			}
		case reflect.Struct:
			if f.Type() == reflect.TypeFor[time.Time]() {
				continue
			}
			if z := zeroField(f); z != "" {
				return name + "." + z
			}
		case reflect.Slice:
			for j := range f.Len() {
				if f.Index(j).IsZero() {
					return name + "[" + string(rune('0'+j)) + "]"
				}
			}
		}
	}
	return ""
}
