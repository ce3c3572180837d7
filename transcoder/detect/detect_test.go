package detect

import (
	"encoding/json"
	"testing"
	"time"
)

var t0 = time.Date(2025, 3, 1, 9, 0, 0, 0, time.UTC)

// picture is a test picture: a flat grid of luma v with one cell set to
// spot, so that pictures can differ locally.
func picture(v, spot float64) Grid {
	g := Grid{W: 8, H: 4, Cells: make([]uint16, 32)}
	for i := range g.Cells {
		g.Cells[i] = uint16(v * GridScale)
	}
	g.Cells[5] = uint16(spot * GridScale)
	return g
}

// step is one input: a picture (every 0.2 s) or an audio block.
type step struct {
	at    float64 // seconds after t0
	pic   *Grid
	rms   float64 // audio level when pic is nil
	audio bool
}

type found struct {
	kind     string
	from, to float64
}

func TestDetector(t *testing.T) {
	moving := func(i int) Grid { return picture(120, float64(i%2)*80) } // a spot that blinks
	still := picture(120, 40)
	black := picture(16, 16)
	scene := picture(220, 30)

	pics := func(from, to float64, pic func(i int) Grid) []step {
		var s []step
		for i := 0; from+float64(i)*0.2 < to-1e-9; i++ {
			g := pic(i)
			s = append(s, step{at: from + float64(i)*0.2, pic: &g})
		}
		return s
	}
	audio := func(from, to, rms float64) []step {
		var s []step
		for at := from; at < to-1e-9; at += 0.5 {
			s = append(s, step{at: at, rms: rms, audio: true})
		}
		return s
	}
	cat := func(parts ...[]step) []step {
		var s []step
		for _, p := range parts {
			s = append(s, p...)
		}
		return s
	}
	const (
		loud  = 0.1  // -20 dBFS
		quiet = 1e-4 // -80 dBFS
	)
	for _, tc := range []struct {
		name  string
		steps []step
		flush float64 // flush at this time when > 0
		want  []found
	}{
		{name: "moving picture", steps: pics(0, 20, moving)},
		{name: "black for 3 s", steps: cat(pics(0, 4, moving), pics(4, 7, func(int) Grid { return black }), pics(7, 10, moving)),
			want: []found{{KindBlack, 4, 7}}},
		{name: "black for 1 s is not reported", steps: cat(pics(0, 4, moving), pics(4, 5, func(int) Grid { return black }), pics(5, 10, moving))},
		{name: "frozen for 6 s", steps: cat(pics(0, 4, moving), pics(4, 10, func(int) Grid { return still }), pics(10, 12, moving)),
			want: []found{{KindFrozen, 4, 10}}},
		{name: "frozen for 4 s is not reported", steps: cat(pics(0, 4, moving), pics(4, 8, func(int) Grid { return still }), pics(8, 12, moving))},
		{name: "a long black is black, not frozen", steps: cat(pics(0, 2, moving), pics(2, 12, func(int) Grid { return black }), pics(12, 14, moving)),
			want: []found{{KindBlack, 2, 12}}},
		{name: "black until the stream ends", steps: cat(pics(0, 2, moving), pics(2, 6, func(int) Grid { return black })), flush: 6,
			want: []found{{KindBlack, 2, 6}}},
		{name: "silence for 31 s", steps: cat(audio(0, 5, loud), audio(5, 36, quiet), audio(36, 40, loud)),
			want: []found{{KindSilent, 5, 36}}},
		{name: "silence for 29 s is not reported", steps: cat(audio(0, 5, loud), audio(5, 34, quiet), audio(34, 40, loud))},
		{name: "sudden change of scene", steps: cat(pics(0, 5, moving), pics(5, 10, func(i int) Grid { return scene })),
			want: []found{{KindScene, 5, 5}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Feed the steps in two halves, saving and restoring the
			// state between them as the transcoder does between
			// segments.
			half := len(tc.steps) / 2
			d := New(DefaultConfig(), State{})
			var got []Event
			feed := func(steps []step) {
				for _, s := range steps {
					at := t0.Add(time.Duration(s.at * float64(time.Second)))
					if s.audio {
						got = append(got, d.Audio(at, 500*time.Millisecond, s.rms)...)
					} else {
						got = append(got, d.Video(at, *s.pic)...)
					}
				}
			}
			feed(tc.steps[:half])
			b, err := json.Marshal(d.State())
			if err != nil {
				t.Fatal(err)
			}
			var st State
			if err := json.Unmarshal(b, &st); err != nil {
				t.Fatal(err)
			}
			d = New(DefaultConfig(), st)
			feed(tc.steps[half:])
			if tc.flush > 0 {
				got = append(got, d.Flush(t0.Add(time.Duration(tc.flush*float64(time.Second))))...)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("found %+v, want %+v", got, tc.want)
			}
			for i, w := range tc.want {
				g := got[i]
				if g.Kind != w.kind || g.Start.Sub(t0).Seconds() != w.from || g.End.Sub(t0).Seconds() != w.to {
					t.Errorf("found %s %v → %v, want %s %v → %v", g.Kind, g.Start.Sub(t0), g.End.Sub(t0), w.kind, w.from, w.to)
				}
			}
		})
	}
}

func TestConfigValidate(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatalf("default config: %v", err)
	}
	c := DefaultConfig()
	c.BlackRatio, c.FrozenMin, c.SilenceDB = 0, 0, 3
	if err := c.Validate(); err == nil {
		t.Fatal("bad config accepted")
	}
}
