package transcoder

import (
	"math"
	"testing"
	"time"
)

// The detectors compare the rendition's pictures at the rate nearest
// analysis_fps: at a rendition rate just above it, every picture (taking
// every second one would halve the rate), and never more often than the
// pictures come.
func TestAnalysisRate(t *testing.T) {
	for _, tc := range []struct {
		outFPS, want float64 // pictures a second compared
	}{
		{outFPS: 25, want: 5},
		{outFPS: 10, want: 5},
		{outFPS: 25.0 / 3, want: 25.0 / 6},
		{outFPS: 6.25, want: 6.25},
		{outFPS: 6, want: 6},
		{outFPS: 2.5, want: 2.5},
	} {
		p := &pipeline{job: job{analysisFPS: 5}, v: &videoStage{outFPS: tc.outFPS}}
		step, compared := p.analysisStep(), 0
		var last time.Duration = -time.Hour
		const secs = 60
		for i := 0; float64(i) < secs*tc.outFPS; i++ {
			// RTP clocks: a millisecond early or late.
			at := time.Duration(float64(i)/tc.outFPS*float64(time.Second)) + time.Duration(i%3-1)*time.Millisecond
			if at-last >= step {
				compared++
				last = at
			}
		}
		if got := float64(compared) / secs; math.Abs(got-tc.want) > 0.05 {
			t.Errorf("rendition at %.2f fps: the detectors compare %.2f pictures a second, want %.2f", tc.outFPS, got, tc.want)
		}
	}
}
