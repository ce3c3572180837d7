package events_test

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"

	"github.com/nokstream/nokstream/internal/events"
)

// FuzzEvents feeds arbitrary bytes to the decoder of every event of the v1
// contract (the seed corpus in testdata/fuzz/FuzzEvents holds the golden
// events and broken ones): none panics, whatever one accepts is valid, and
// it re-encodes to bytes that decode to the same event.
func FuzzEvents(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		if e, err := events.DecodeSegmentClosed(data); err == nil {
			if err := e.Validate(); err != nil {
				t.Errorf("decoded an invalid segment event: %v", err)
			}
			roundTrip(t, e, func(b []byte) (any, error) { return events.DecodeSegmentClosed(b) })
		}
		if e, err := events.DecodeRenditionReady(data); err == nil {
			if err := e.Validate(); err != nil {
				t.Errorf("decoded an invalid rendition event: %v", err)
			}
			roundTrip(t, e, func(b []byte) (any, error) { return events.DecodeRenditionReady(b) })
		}
		if o, err := events.DecodeObservation(data); err == nil {
			if err := o.Validate(); err != nil {
				t.Errorf("decoded an invalid observation: %v", err)
			}
			roundTrip(t, o, func(b []byte) (any, error) { return events.DecodeObservation(b) })
		}
		if e, err := events.DecodeObjectDeleted(data); err == nil {
			if err := e.Validate(); err != nil {
				t.Errorf("decoded an invalid deletion: %v", err)
			}
			roundTrip(t, e, func(b []byte) (any, error) { return events.DecodeObjectDeleted(b) })
		}
		fuzzRecords(t, data)
		if m, err := events.DecodeFacts(data); err == nil {
			n := 0
			for _, v := range []interface{ Validate() error }{m.Exam, m.Settings, m.Watermark} {
				if reflect.ValueOf(v).IsNil() {
					continue
				}
				n++
				if err := v.Validate(); err != nil {
					t.Errorf("decoded invalid retention facts: %v", err)
				}
				roundTrip(t, v, func(b []byte) (any, error) {
					m, err := events.DecodeFacts(b)
					switch {
					case m.Exam != nil:
						return m.Exam, err
					case m.Settings != nil:
						return m.Settings, err
					}
					return m.Watermark, err
				})
			}
			if n != 1 {
				t.Errorf("decoded %d retention facts messages from one input, want 1", n)
			}
		}
		// RetentionChanged has no decoder: the archiver uses encoding/json.
		var rc events.RetentionChanged
		if json.Unmarshal(data, &rc) == nil {
			roundTrip(t, &rc, func(b []byte) (any, error) {
				var e events.RetentionChanged
				return &e, json.Unmarshal(b, &e)
			})
		}
	})
}

// roundTrip checks that a decoded event encodes, and that its encoding
// decodes to an event with the same encoding. (Encodings are compared, not
// values: a time decoded from "+00:00" and one from "Z" are the same
// instant on the wire but not equal Go values.)
func roundTrip(t *testing.T, e any, decode func([]byte) (any, error)) {
	t.Helper()
	b, err := json.Marshal(e)
	if err != nil {
		t.Fatalf("decoded %T does not encode: %v", e, err)
	}
	again, err := decode(b)
	if err != nil {
		t.Fatalf("%T re-encoded as %s does not decode: %v", e, b, err)
	}
	b2, err := json.Marshal(again)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, b2) {
		t.Errorf("%T changed in a round trip:\n%s\n%s", e, b, b2)
	}
}
