package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nokstream/nokstream/internal/events"
)

// TestPlaylistPlays serves real fMP4 segments (cut by ffmpeg's HLS muxer)
// and checks that ffprobe, given only a signed playlist URL, reads the whole
// recording with its video and audio.
func TestPlaylistPlays(t *testing.T) {
	t.Parallel()
	for _, tool := range []string{"ffmpeg", "ffprobe"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not found: run `make test`, which installs it: %v", tool, err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := t.TempDir()
	gen := exec.CommandContext(ctx, "ffmpeg", "-v", "error", "-y",
		"-f", "lavfi", "-i", "testsrc=size=320x240:rate=25",
		"-f", "lavfi", "-i", "sine=frequency=440",
		"-t", "12", "-c:v", "libx264", "-g", "25", "-pix_fmt", "yuv420p", "-c:a", "aac",
		"-f", "hls", "-hls_time", "2", "-hls_segment_type", "fmp4", "-hls_playlist_type", "vod",
		"-hls_fmp4_init_filename", "init.mp4", "-hls_segment_filename", filepath.Join(dir, "seg%03d.m4s"),
		filepath.Join(dir, "out.m3u8"))
	if out, err := gen.CombinedOutput(); err != nil {
		t.Fatalf("generate segments: %v\n%s", err, out)
	}

	e := newEnv(t)
	token := e.operator("operator")
	initData, err := os.ReadFile(filepath.Join(dir, "init.mp4"))
	if err != nil {
		t.Fatal(err)
	}
	const initKey = "site1/cam1/init-a.mp4"
	if err := e.blobs.Put(ctx, initKey, bytes.NewReader(initData), int64(len(initData))); err != nil {
		t.Fatal(err)
	}
	ffPlaylist, err := os.ReadFile(filepath.Join(dir, "out.m3u8"))
	if err != nil {
		t.Fatal(err)
	}
	var seq int64
	var total float64
	start := t0
	var duration float64
	for _, line := range strings.Split(string(ffPlaylist), "\n") {
		if d, ok := strings.CutPrefix(line, "#EXTINF:"); ok {
			duration, err = strconv.ParseFloat(strings.TrimSuffix(d, ","), 64)
			if err != nil {
				t.Fatal(err)
			}
			continue
		}
		if !strings.HasSuffix(line, ".m4s") {
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, line))
		if err != nil {
			t.Fatal(err)
		}
		key := fmt.Sprintf("site1/cam1/%06d.m4s", seq)
		if err := e.blobs.Put(ctx, key, bytes.NewReader(data), int64(len(data))); err != nil {
			t.Fatal(err)
		}
		e.deliver(&events.SegmentClosed{
			SegmentID: fmt.Sprintf("seg-%d", seq), StreamID: "site1/cam1", Source: events.SourceRoom,
			Site: "site1", Device: "cam1", Sequence: seq, Start: start, Duration: duration,
			Codecs: []string{"avc1.640015", "mp4a.40.2"}, Bytes: int64(len(data)), SHA256: sha(data),
			PrevChain: strings.Repeat("0", 64), Chain: strings.Repeat("1", 64),
			ObjectKey: key, InitKey: initKey, InitSHA256: sha(initData), InitBytes: int64(len(initData)),
			IngestNode: "node1",
		})
		start = start.Add(time.Duration(duration * float64(time.Second)))
		total += duration
		seq++
	}
	if seq < 5 {
		t.Fatalf("ffmpeg cut %d segments, want 6", seq)
	}

	r := e.do("POST", "/api/v1/links", token, map[string]string{
		"path": "/api/v1/streams/site1/cam1/playlist.m3u8" + rangeQuery(t0, t0.Add(time.Minute)),
	})
	if r.code != http.StatusOK {
		t.Fatalf("create link: %d %s", r.code, r.body)
	}
	var link struct {
		URL string `json:"url"`
	}
	if err := json.Unmarshal(r.body, &link); err != nil {
		t.Fatal(err)
	}
	probe := exec.CommandContext(ctx, "ffprobe", "-v", "error", "-of", "json",
		"-show_entries", "format=duration:stream=codec_type", e.url+link.URL)
	out, err := probe.Output()
	if err != nil {
		t.Fatalf("ffprobe the signed playlist: %v\n%s", err, out)
	}
	var info struct {
		Format struct {
			Duration string `json:"duration"`
		} `json:"format"`
		Streams []struct {
			CodecType string `json:"codec_type"`
		} `json:"streams"`
	}
	if err := json.Unmarshal(out, &info); err != nil {
		t.Fatalf("decode ffprobe output %s: %v", out, err)
	}
	got, err := strconv.ParseFloat(info.Format.Duration, 64)
	if err != nil || math.Abs(got-total) > 0.5 {
		t.Errorf("ffprobe reads %s s, want %.3f ± 0.5 s", info.Format.Duration, total)
	}
	kinds := map[string]int{}
	for _, s := range info.Streams {
		kinds[s.CodecType]++
	}
	if kinds["video"] != 1 || kinds["audio"] != 1 {
		t.Errorf("ffprobe finds streams %v, want one video and one audio", kinds)
	}
}
