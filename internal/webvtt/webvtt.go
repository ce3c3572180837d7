// Package webvtt writes and reads the small subset of WebVTT (W3C WebVTT:
// The Web Video Text Tracks Format) that thumbnail tracks use: a header and
// cues of one text line each, such as "sprite.jpg#xywh=0,0,160,90".
//
// The transcoder writes one fragment per segment; the registry reads the
// fragments of a time range back and joins them into one track.
package webvtt

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// Cue is one cue: its text is shown from Start to End.
type Cue struct {
	Start, End time.Duration
	Text       string
}

// Write writes a WebVTT file of cues to w.
func Write(w io.Writer, cues []Cue) error {
	bw := bufio.NewWriter(w)
	bw.WriteString("WEBVTT\n")
	for _, c := range cues {
		fmt.Fprintf(bw, "\n%s --> %s\n%s\n", FormatTime(c.Start), FormatTime(c.End), c.Text)
	}
	return bw.Flush()
}

// Marshal returns the WebVTT file of cues.
func Marshal(cues []Cue) []byte {
	var b bytes.Buffer
	_ = Write(&b, cues) // a bytes.Buffer does not fail
	return b.Bytes()
}

// FormatTime formats d as a WebVTT timestamp, hh:mm:ss.ttt, with as many
// hour digits as it takes.
func FormatTime(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	ms := d.Round(time.Millisecond).Milliseconds()
	return fmt.Sprintf("%02d:%02d:%02d.%03d", ms/3_600_000, ms/60_000%60, ms/1000%60, ms%1000)
}

// ParseTime parses a WebVTT timestamp: [hh:]mm:ss.ttt.
func ParseTime(s string) (time.Duration, error) {
	bad := fmt.Errorf("webvtt: bad timestamp %q", s)
	hms, frac, ok := strings.Cut(s, ".")
	if !ok || len(frac) != 3 {
		return 0, bad
	}
	parts := strings.Split(hms, ":")
	if len(parts) < 2 || len(parts) > 3 {
		return 0, bad
	}
	var d time.Duration
	units := []time.Duration{time.Second, time.Minute, time.Hour}
	for i := range parts {
		p := parts[len(parts)-1-i]
		n, err := strconv.ParseUint(p, 10, 32)
		if err != nil || len(p) < 2 || (i < 2 && n > 59) {
			return 0, bad
		}
		d += time.Duration(n) * units[i]
	}
	ms, err := strconv.ParseUint(frac, 10, 16)
	if err != nil {
		return 0, bad
	}
	return d + time.Duration(ms)*time.Millisecond, nil
}

// Parse reads the cues of a WebVTT file. Cue identifiers and settings are
// dropped; cue text lines are joined with newlines.
func Parse(b []byte) ([]Cue, error) {
	text := strings.ReplaceAll(strings.TrimPrefix(string(b), "\uFEFF"), "\r\n", "\n")
	blocks := strings.Split(text, "\n\n")
	if len(blocks) == 0 || !strings.HasPrefix(blocks[0], "WEBVTT") {
		return nil, fmt.Errorf("webvtt: no WEBVTT header")
	}
	var cues []Cue
	for _, blk := range blocks[1:] {
		lines := strings.Split(strings.Trim(blk, "\n"), "\n")
		for i, l := range lines {
			if !strings.Contains(l, "-->") {
				continue
			}
			fields := strings.Fields(l)
			if len(fields) < 3 || fields[1] != "-->" {
				return nil, fmt.Errorf("webvtt: bad cue timing %q", l)
			}
			start, err := ParseTime(fields[0])
			if err != nil {
				return nil, err
			}
			end, err := ParseTime(fields[2])
			if err != nil {
				return nil, err
			}
			cues = append(cues, Cue{Start: start, End: end, Text: strings.Join(lines[i+1:], "\n")})
			break
		}
	}
	return cues, nil
}
