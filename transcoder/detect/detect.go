// Package detect finds what a reviewer must not miss in a stream's decoded
// pictures and sound: a black or covered camera, a frozen picture, silence,
// and a sudden large change of scene.
//
// It works on cheap measurements that the transcoder takes anyway while it
// decodes: a small grid of mean luma values per sampled picture, and the RMS
// level of each block of audio samples. A Detector keeps the state of one
// stream across its segments, so that a freeze that spans two segments is one
// observation; its State can be saved after a segment and restored, so that a
// restart or another transcoder carries on where the last one stopped.
package detect

import (
	"errors"
	"fmt"
	"math"
	"time"
)

// Kinds of what a Detector reports; they are the observation kinds of the
// same name in package events.
const (
	KindBlack  = "black"
	KindFrozen = "frozen"
	KindSilent = "silent"
	KindScene  = "scene"
)

// Config holds the thresholds. Luma values are on the 0-255 scale of 8-bit
// video.
type Config struct {
	// BlackLuma is the mean luma at or under which a grid cell is dark.
	BlackLuma float64 `yaml:"black_luma"`
	// BlackRatio is the share of dark cells that makes a picture black.
	BlackRatio float64 `yaml:"black_ratio"`
	// BlackMin is how long pictures must stay black to be reported.
	BlackMin time.Duration `yaml:"black_min"`
	// FrozenDiff is the largest change of any grid cell between two
	// sampled pictures that still counts as no change. It must be above
	// what re-encoding a still picture at a keyframe changes (about 3)
	// and below what a person moving in a quiet room does (tens).
	FrozenDiff float64 `yaml:"frozen_diff"`
	// FrozenMin is how long the picture must not change to be reported.
	FrozenMin time.Duration `yaml:"frozen_min"`
	// SilenceDB is the RMS level, in dBFS, at or under which audio is
	// silent.
	SilenceDB float64 `yaml:"silence_db"`
	// SilenceMin is how long audio must stay silent to be reported.
	SilenceMin time.Duration `yaml:"silence_min"`
	// SceneScore is the scene-change score (0-1, as FFmpeg's scene
	// detection computes it) at or over which a change is reported.
	SceneScore float64 `yaml:"scene_score"`
	// SceneGap is the least time between two reported scene changes.
	SceneGap time.Duration `yaml:"scene_gap"`
}

// DefaultConfig returns the thresholds of the issue: black for 2 s, frozen for
// 5 s, silent for 30 s.
func DefaultConfig() Config {
	return Config{
		BlackLuma:  32,
		BlackRatio: 0.98,
		BlackMin:   2 * time.Second,
		FrozenDiff: 6,
		FrozenMin:  5 * time.Second,
		SilenceDB:  -50,
		SilenceMin: 30 * time.Second,
		SceneScore: 0.3,
		SceneGap:   time.Second,
	}
}

// Validate reports what is wrong with c.
func (c Config) Validate() error {
	var errs []error
	if c.BlackLuma < 0 || c.BlackLuma > 255 {
		errs = append(errs, fmt.Errorf("black_luma %v: want 0-255", c.BlackLuma))
	}
	if c.BlackRatio <= 0 || c.BlackRatio > 1 {
		errs = append(errs, fmt.Errorf("black_ratio %v: want more than 0, at most 1", c.BlackRatio))
	}
	if c.FrozenDiff < 0 {
		errs = append(errs, fmt.Errorf("frozen_diff %v: negative", c.FrozenDiff))
	}
	if c.SilenceDB > 0 {
		errs = append(errs, fmt.Errorf("silence_db %v: want 0 dBFS or less", c.SilenceDB))
	}
	if c.SceneScore <= 0 || c.SceneScore > 1 {
		errs = append(errs, fmt.Errorf("scene_score %v: want more than 0, at most 1", c.SceneScore))
	}
	for name, d := range map[string]time.Duration{"black_min": c.BlackMin, "frozen_min": c.FrozenMin, "silence_min": c.SilenceMin} {
		if d <= 0 {
			errs = append(errs, fmt.Errorf("%s %v: not positive", name, d))
		}
	}
	if c.SceneGap < 0 {
		errs = append(errs, fmt.Errorf("scene_gap %v: negative", c.SceneGap))
	}
	return errors.Join(errs...)
}

// Event is one finding: a run of black, frozen or silent media from Start to
// End, or a scene change at Start (End equals Start).
type Event struct {
	Kind  string
	Start time.Time
	End   time.Time
	// Measure is the figure of the kind: mean luma for black, seconds for
	// frozen and silent, the score for scene.
	Measure float64
	Detail  string
}

// Grid is a picture reduced to W×H cells of mean luma, in 1/GridScale units.
type Grid struct {
	W, H  int
	Cells []uint16
}

// GridScale is the fixed-point scale of Grid cells: a cell of value v has a
// mean luma of v/GridScale.
const GridScale = 64

// run is an ongoing stretch of black, frozen or silent media.
type run struct {
	// Start is when the stretch began; zero when there is none.
	Start time.Time `json:"start"`
	// LastEnd is when the last sample that belongs to it ended, as far as
	// is known.
	LastEnd time.Time `json:"last_end"`
	// Sum accumulates the measure (luma for black).
	Sum float64 `json:"sum"`
	N   int     `json:"n"`
}

func (r *run) active() bool { return !r.Start.IsZero() }

// State is what a Detector remembers between segments. It marshals to JSON.
type State struct {
	Black  run `json:"black"`
	Frozen run `json:"frozen"`
	Silent run `json:"silent"`
	// Prev is the last sampled picture, PrevAt when it was shown and
	// PrevMAFD its mean absolute difference from the one before.
	Prev      *Grid     `json:"prev,omitempty"`
	PrevAt    time.Time `json:"prev_at"`
	PrevMAFD  float64   `json:"prev_mafd"`
	PrevBlack bool      `json:"prev_black"`
	// LastScene is when the last scene change was reported.
	LastScene time.Time `json:"last_scene"`
}

// Detector finds events in one stream. It is not safe for concurrent use.
type Detector struct {
	cfg Config
	st  State
}

// New returns a Detector with the given thresholds and saved state (the zero
// State for a stream seen for the first time).
func New(cfg Config, st State) *Detector { return &Detector{cfg: cfg, st: st} }

// State returns what the Detector remembers, to be restored with New.
func (d *Detector) State() State { return d.st }

// SampledAt returns when the last picture was sampled, zero if none was.
func (d *Detector) SampledAt() time.Time { return d.st.PrevAt }

// Video adds one sampled picture, shown at at, and returns the events it
// ends.
func (d *Detector) Video(at time.Time, g Grid) []Event {
	var out []Event
	mean, darkRatio := lumaStats(g, d.cfg.BlackLuma)
	black := darkRatio >= d.cfg.BlackRatio

	// Black: a run of black pictures, reported when it ends.
	if black {
		if !d.st.Black.active() {
			d.st.Black = run{Start: at}
		}
		d.st.Black.Sum += mean
		d.st.Black.N++
		d.st.Black.LastEnd = at
	} else if d.st.Black.active() {
		out = d.end(out, KindBlack, &d.st.Black, at)
	}

	prev := d.st.Prev
	comparable := prev != nil && prev.W == g.W && prev.H == g.H
	if comparable {
		mafd, maxDiff := diff(*prev, g)
		// Frozen: no cell changed, for pictures that are not black (a
		// black picture is reported as black).
		if maxDiff <= d.cfg.FrozenDiff && !black {
			if !d.st.Frozen.active() {
				d.st.Frozen = run{Start: d.st.PrevAt}
			}
			d.st.Frozen.LastEnd = at
		} else if d.st.Frozen.active() {
			out = d.end(out, KindFrozen, &d.st.Frozen, at)
		}
		// Scene: FFmpeg's score (libavfilter/vf_select.c), the change
		// from the previous picture less the change before it, so that
		// steady motion does not count. A change into or out of black
		// is reported as black instead.
		score := math.Min(mafd, math.Abs(mafd-d.st.PrevMAFD)) / 100
		score = math.Min(score, 1)
		if score >= d.cfg.SceneScore && !black && !d.st.PrevBlack &&
			(d.st.LastScene.IsZero() || at.Sub(d.st.LastScene) >= d.cfg.SceneGap) {
			out = append(out, Event{Kind: KindScene, Start: at, End: at, Measure: round(score, 3)})
			d.st.LastScene = at
		}
		d.st.PrevMAFD = mafd
	} else {
		if d.st.Frozen.active() {
			out = d.end(out, KindFrozen, &d.st.Frozen, at)
		}
		d.st.PrevMAFD = 0
	}
	if d.st.Prev == nil || len(d.st.Prev.Cells) != len(g.Cells) {
		d.st.Prev = &Grid{W: g.W, H: g.H, Cells: make([]uint16, len(g.Cells))}
	}
	d.st.Prev.W, d.st.Prev.H = g.W, g.H
	copy(d.st.Prev.Cells, g.Cells)
	d.st.PrevAt = at
	d.st.PrevBlack = black
	return out
}

// Audio adds a block of audio samples that starts at at and lasts dur, with
// the given RMS level (1 is full scale), and returns the events it ends.
func (d *Detector) Audio(at time.Time, dur time.Duration, rms float64) []Event {
	var out []Event
	if dbfs(rms) <= d.cfg.SilenceDB {
		if !d.st.Silent.active() {
			d.st.Silent = run{Start: at}
		}
		d.st.Silent.LastEnd = at.Add(dur)
	} else if d.st.Silent.active() {
		out = d.end(out, KindSilent, &d.st.Silent, at)
	}
	return out
}

// Flush ends every ongoing run at end (the end of the last media seen) and
// returns those long enough to report. The next picture is not compared with
// the last one: use it when the stream was interrupted.
func (d *Detector) Flush(end time.Time) []Event {
	var out []Event
	for _, k := range []struct {
		kind string
		r    *run
	}{{KindBlack, &d.st.Black}, {KindFrozen, &d.st.Frozen}, {KindSilent, &d.st.Silent}} {
		if k.r.active() {
			e := end
			if e.Before(k.r.LastEnd) {
				e = k.r.LastEnd
			}
			out = d.end(out, k.kind, k.r, e)
		}
	}
	d.st.Prev = nil
	d.st.PrevAt = time.Time{}
	d.st.PrevMAFD = 0
	d.st.PrevBlack = false
	return out
}

// Ongoing reports whether a run is in progress, which Flush would end.
func (d *Detector) Ongoing() bool { return d.st.Ongoing() }

// Ongoing reports whether a run is in progress.
func (s State) Ongoing() bool {
	return s.Black.active() || s.Frozen.active() || s.Silent.active()
}

// Clone returns a copy of s that shares nothing with it.
func (s State) Clone() State {
	if s.Prev != nil {
		p := *s.Prev
		p.Cells = append([]uint16(nil), p.Cells...)
		s.Prev = &p
	}
	return s
}

// end closes run r of kind at end, appending it to out if it lasted long
// enough.
func (d *Detector) end(out []Event, kind string, r *run, end time.Time) []Event {
	dur := end.Sub(r.Start)
	var min time.Duration
	var measure float64
	switch kind {
	case KindBlack:
		min = d.cfg.BlackMin
		if r.N > 0 {
			measure = round(r.Sum/float64(r.N), 1)
		}
	case KindFrozen:
		min, measure = d.cfg.FrozenMin, round(dur.Seconds(), 3)
	case KindSilent:
		min, measure = d.cfg.SilenceMin, round(dur.Seconds(), 3)
	}
	if dur >= min {
		out = append(out, Event{Kind: kind, Start: r.Start, End: end, Measure: measure})
	}
	*r = run{}
	return out
}

// lumaStats returns the mean luma of g and the share of its cells whose
// luma is at most dark.
func lumaStats(g Grid, dark float64) (mean, ratio float64) {
	if len(g.Cells) == 0 {
		return 0, 0
	}
	limit := uint16(min(dark*GridScale, math.MaxUint16))
	var sum uint64
	n := 0
	for _, c := range g.Cells {
		sum += uint64(c)
		if c <= limit {
			n++
		}
	}
	return float64(sum) / float64(len(g.Cells)) / GridScale, float64(n) / float64(len(g.Cells))
}

// diff returns the mean absolute difference of two grids and the largest
// difference of one cell, in luma units.
func diff(a, b Grid) (mafd, maxDiff float64) {
	var sum uint64
	var mx int
	for i, c := range b.Cells {
		d := int(c) - int(a.Cells[i])
		if d < 0 {
			d = -d
		}
		sum += uint64(d)
		mx = max(mx, d)
	}
	return float64(sum) / float64(len(b.Cells)) / GridScale, float64(mx) / GridScale
}

// dbfs converts an RMS level (1 is full scale) to dBFS.
func dbfs(rms float64) float64 {
	if rms <= 0 {
		return math.Inf(-1)
	}
	return 20 * math.Log10(rms)
}

func round(v float64, digits int) float64 {
	p := math.Pow(10, float64(digits))
	return math.Round(v*p) / p
}
