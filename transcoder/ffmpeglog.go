package transcoder

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asticode/go-astiav"
)

// ffmpegLogRate is how many FFmpeg log lines a second get through; a broken
// segment makes the decoders complain about every packet.
const ffmpegLogRate = 10

// ffmpegLog is where FFmpeg's log goes. FFmpeg has one log callback for the
// whole process, called from any thread, so this is the one package-level
// variable: the callback is installed once, and the logger it writes to is
// the last Service's.
var ffmpegLog struct {
	once   sync.Once
	logger atomic.Pointer[slog.Logger]

	mu         sync.Mutex
	window     time.Time
	n          int
	suppressed int
}

// routeFFmpegLog sends FFmpeg's log to log, from warnings up, at most
// ffmpegLogRate lines a second.
//
// FFmpeg's "error" level is mostly about damaged input (a decoder that
// skips a broken picture); the transcoder reports the consequences itself,
// so it is logged as a warning.
func routeFFmpegLog(log *slog.Logger) {
	ffmpegLog.logger.Store(log)
	ffmpegLog.once.Do(func() {
		astiav.SetLogLevel(astiav.LogLevelWarning)
		astiav.SetLogCallback(logFFmpeg)
	})
}

func logFFmpeg(c astiav.Classer, l astiav.LogLevel, _, msg string) {
	log := ffmpegLog.logger.Load()
	msg = strings.TrimSpace(msg)
	if log == nil || msg == "" {
		return
	}
	level := slog.LevelDebug
	switch {
	case l <= astiav.LogLevelFatal:
		level = slog.LevelError
	case l <= astiav.LogLevelWarning:
		level = slog.LevelWarn
	case l <= astiav.LogLevelInfo:
		level = slog.LevelInfo
	}
	// swscale warns about every full-range (yuvj) format, which the JPEG
	// thumbnails need.
	if strings.HasPrefix(msg, "deprecated pixel format used") {
		level = slog.LevelDebug
	}
	if !log.Enabled(context.Background(), level) {
		return
	}
	st := &ffmpegLog
	st.mu.Lock()
	if now := time.Now(); now.Sub(st.window) >= time.Second {
		st.window, st.n = now, 0
	}
	st.n++
	if st.n > ffmpegLogRate {
		st.suppressed++
		st.mu.Unlock()
		return
	}
	dropped := st.suppressed
	st.suppressed = 0
	st.mu.Unlock()
	component := ""
	if c != nil {
		if cl := c.Class(); cl != nil {
			component = cl.Name()
		}
	}
	args := []any{"component", component, "detail", msg}
	if dropped > 0 {
		args = append(args, "suppressed", dropped)
	}
	log.Log(context.Background(), level, "ffmpeg", args...)
}
