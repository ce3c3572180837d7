package transcoder

// go-astiav v0.16.0 exposes no audio sample data and no way to write into a
// frame's planes, so the three loops that need them are written in C here:
// the RMS of audio samples, the luma grid of a picture, and copying a
// thumbnail into its place in the sprite.

/*
#cgo pkg-config: libavutil
#include <malloc.h>
#include <stdlib.h>
#include <libavutil/frame.h>
#include <libavutil/pixdesc.h>
#include <libavutil/samplefmt.h>
#include <stdint.h>
#include <string.h>

// nok_sum_squares returns the sum of the squares of every sample of an audio
// frame on a scale where full scale is 1, and stores the number of samples
// in *n (0 for a sample format it does not know).
static double nok_sum_squares(const AVFrame *f, long *n) {
	int channels = f->ch_layout.nb_channels;
	int planar = av_sample_fmt_is_planar(f->format);
	int planes = planar ? channels : 1;
	long per = planar ? f->nb_samples : (long)f->nb_samples * channels;
	double s = 0;
	*n = 0;
	for (int p = 0; p < planes; p++) {
		const uint8_t *d = f->extended_data[p];
		switch (av_get_packed_sample_fmt(f->format)) {
		case AV_SAMPLE_FMT_FLT:
			for (long i = 0; i < per; i++) { double v = ((const float *)d)[i]; s += v * v; }
			break;
		case AV_SAMPLE_FMT_DBL:
			for (long i = 0; i < per; i++) { double v = ((const double *)d)[i]; s += v * v; }
			break;
		case AV_SAMPLE_FMT_S16:
			for (long i = 0; i < per; i++) { double v = ((const int16_t *)d)[i] / 32768.0; s += v * v; }
			break;
		case AV_SAMPLE_FMT_S32:
			for (long i = 0; i < per; i++) { double v = ((const int32_t *)d)[i] / 2147483648.0; s += v * v; }
			break;
		case AV_SAMPLE_FMT_U8:
			for (long i = 0; i < per; i++) { double v = (d[i] - 128) / 128.0; s += v * v; }
			break;
		default:
			return 0;
		}
	}
	*n = planes * per;
	return s;
}

// nok_luma_grid averages the first plane of an 8-bit planar YUV frame over
// gw x gh cells, in 1/64 units. Cells of 8x8 pixels or more are sampled on
// every other row and column, which is plenty for a mean.
static void nok_luma_grid(const AVFrame *f, int gw, int gh, uint16_t *out) {
	int w = f->width, h = f->height, ls = f->linesize[0];
	const uint8_t *y = f->data[0];
	int step = (w / gw >= 8 && h / gh >= 8) ? 2 : 1;
	for (int gy = 0; gy < gh; gy++) {
		int y0 = gy * h / gh, y1 = (gy + 1) * h / gh;
		for (int gx = 0; gx < gw; gx++) {
			int x0 = gx * w / gw, x1 = (gx + 1) * w / gw;
			unsigned long sum = 0, cnt = 0;
			for (int yy = y0; yy < y1; yy += step) {
				const uint8_t *row = y + (long)yy * ls;
				for (int xx = x0; xx < x1; xx += step) {
					sum += row[xx];
					cnt++;
				}
			}
			out[gy * gw + gx] = cnt ? (uint16_t)((sum * 64 + cnt / 2) / cnt) : 0;
		}
	}
}

// nok_writable reports whether a frame's buffers are its own to write.
static int nok_writable(AVFrame *f) { return f->buf[0] && av_frame_is_writable(f); }

// nok_blit copies src into dst with its top-left corner at (x, y). Both are
// 8-bit planar YUV frames of the same pixel format; x and y are multiples of
// the chroma subsampling. It returns -1 if src does not fit.
static int nok_blit(AVFrame *dst, const AVFrame *src, int x, int y) {
	const AVPixFmtDescriptor *d = av_pix_fmt_desc_get(src->format);
	if (!d || src->format != dst->format || x + src->width > dst->width || y + src->height > dst->height) return -1;
	for (int p = 0; p < 3; p++) {
		int sx = p ? d->log2_chroma_w : 0, sy = p ? d->log2_chroma_h : 0;
		int w = -((-src->width) >> sx), h = -((-src->height) >> sy);
		for (int r = 0; r < h; r++) {
			memcpy(dst->data[p] + (long)((y >> sy) + r) * dst->linesize[p] + (x >> sx),
				src->data[p] + (long)r * src->linesize[p], w);
		}
	}
	return 0;
}
// nok_malloc_in_use is what the C allocator has handed out and not had
// back: small chunks and mmapped ones (glibc's mallinfo2).
static size_t nok_malloc_in_use(void) {
	struct mallinfo2 m = mallinfo2();
	return m.uordblks + m.hblkhd;
}

// nok_tune_allocator makes the C allocator hand blocks of 128 KiB or more
// (decoded and encoder frames) back to the system when they are freed. By
// default glibc raises that threshold after each such free, and the frames
// of the next segments then come from its arenas, one per thread calling
// FFmpeg, which only grow: the resident size of a transcoder rose by tens of
// kilobytes a segment for hundreds of segments with nothing in use
// (TestMemoryFlat). It also caps the arenas at two, unless MALLOC_ARENA_MAX
// says otherwise: glibc makes up to eight a core, one for each new thread
// that calls malloc, and Go runs cgo calls on whichever threads it has, so
// the resident size kept climbing for minutes as new threads each grew an
// arena of their own (TestSoak: +27 MiB over its two minutes with the
// default, flat after 30 s with two). The transcoder's workers are few,
// so two arenas cost them no measurable waiting.
static void nok_tune_allocator(void) {
	mallopt(M_MMAP_THRESHOLD, 128 * 1024);
	if (getenv("MALLOC_ARENA_MAX") == NULL) mallopt(M_ARENA_MAX, 2);
}
*/
import "C"

import (
	"errors"
	"math"
	"unsafe"

	"github.com/asticode/go-astiav"

	"github.com/nokstream/nokstream/transcoder/detect"
)

func cFrame(f *astiav.Frame) *C.AVFrame { return (*C.AVFrame)(f.UnsafePointer()) }

// frameRMS returns the RMS level of an audio frame, 1 being full scale, and
// false if its sample format is not one it reads.
func frameRMS(f *astiav.Frame) (float64, bool) {
	var n C.long
	s := C.nok_sum_squares(cFrame(f), &n)
	if n == 0 {
		return 0, false
	}
	return math.Sqrt(float64(s) / float64(n)), true
}

// lumaGrid reduces a picture to a w×h grid of mean luma.
func lumaGrid(f *astiav.Frame, w, h int) detect.Grid {
	g := detect.Grid{W: w, H: h, Cells: make([]uint16, w*h)}
	C.nok_luma_grid(cFrame(f), C.int(w), C.int(h), (*C.uint16_t)(unsafe.Pointer(&g.Cells[0])))
	return g
}

// writable reports whether the frame has buffers that only it references,
// which may be written over.
func writable(f *astiav.Frame) bool { return C.nok_writable(cFrame(f)) != 0 }

// blit copies src into dst at (x, y).
func blit(dst, src *astiav.Frame, x, y int) error {
	if C.nok_blit(cFrame(dst), cFrame(src), C.int(x), C.int(y)) != 0 {
		return errors.New("thumbnail does not fit the sprite")
	}
	return nil
}

// cHeapBytes is the memory the C allocator has handed out and not had back:
// FFmpeg's, x264's and cgo's. Unlike the resident size, it does not count
// what the allocator keeps for reuse.
func cHeapBytes() int64 { return int64(C.nok_malloc_in_use()) }

// tuneAllocator: see nok_tune_allocator. It sets process-wide settings of
// the C allocator, the same every time.
func tuneAllocator() { C.nok_tune_allocator() }
