package webvtt

import (
	"testing"
	"time"
)

func TestRoundTrip(t *testing.T) {
	cues := []Cue{
		{Start: 0, End: 2 * time.Second, Text: "a.jpg#xywh=0,0,160,90"},
		{Start: 2 * time.Second, End: 3*time.Second + 500*time.Millisecond, Text: "a.jpg#xywh=160,0,160,90"},
		{Start: 501*time.Hour + 2*time.Minute + 3*time.Second + 4*time.Millisecond, End: 501*time.Hour + 3*time.Minute, Text: "b.jpg#xywh=0,90,160,90"},
	}
	b := Marshal(cues)
	want := "WEBVTT\n\n00:00:00.000 --> 00:00:02.000\na.jpg#xywh=0,0,160,90\n\n00:00:02.000 --> 00:00:03.500\na.jpg#xywh=160,0,160,90\n\n501:02:03.004 --> 501:03:00.000\nb.jpg#xywh=0,90,160,90\n"
	if string(b) != want {
		t.Fatalf("marshal:\n%s\nwant:\n%s", b, want)
	}
	got, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(cues) {
		t.Fatalf("parsed %d cues, want %d", len(got), len(cues))
	}
	for i := range cues {
		if got[i] != cues[i] {
			t.Errorf("cue %d: %+v, want %+v", i, got[i], cues[i])
		}
	}
}

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
		n    int
		ok   bool
	}{
		{"short timestamps, ids, settings, CRLF", "WEBVTT - thumbs\r\n\r\nid1\r\n00:01.000 --> 00:02.000 align:start\r\nx.jpg#xywh=0,0,1,1\r\n", 1, true},
		{"note blocks are skipped", "WEBVTT\n\nNOTE hello\n\n00:00:01.000 --> 00:00:02.000\nx\n", 1, true},
		{"no header", "00:00:01.000 --> 00:00:02.000\nx\n", 0, false},
		{"bad timestamp", "WEBVTT\n\n00:00:01 --> 00:00:02.000\nx\n", 0, false},
		{"minutes out of range", "WEBVTT\n\n00:61:01.000 --> 00:62:02.000\nx\n", 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cues, err := Parse([]byte(tc.in))
			if (err == nil) != tc.ok || len(cues) != tc.n {
				t.Errorf("Parse: %d cues, err %v; want %d cues, ok %v", len(cues), err, tc.n, tc.ok)
			}
		})
	}
}
