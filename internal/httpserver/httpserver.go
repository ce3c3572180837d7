// Package httpserver builds the HTTP servers of nokstream's ports with
// limits against clients that are slow on purpose: a deadline for the
// request header, for the whole request and answer of every route but the
// streaming ones, for idle keep-alive connections, and a cap on the size
// of the header. A client holding many connections open therefore holds
// each for seconds, not for ever, and cannot stop other requests.
package httpserver

import (
	"fmt"
	"net/http"
	"time"
)

// Config sets the limits of a server.
type Config struct {
	// ReadHeaderTimeout is how long a client has to send a request's
	// header.
	ReadHeaderTimeout time.Duration `yaml:"read_header_timeout"`
	// ReadTimeout and WriteTimeout bound reading the whole request and
	// writing the answer of a route that does not stream (see New).
	ReadTimeout  time.Duration `yaml:"read_timeout"`
	WriteTimeout time.Duration `yaml:"write_timeout"`
	// IdleTimeout is how long a keep-alive connection may wait for its next
	// request.
	IdleTimeout time.Duration `yaml:"idle_timeout"`
	// MaxHeaderBytes is the largest request header read.
	MaxHeaderBytes int `yaml:"max_header_bytes"`
}

// DefaultConfig returns 10 s for the header, 30 s to read and 60 s to
// answer a request that does not stream, 120 s idle, and headers of up to
// 64 KiB.
func DefaultConfig() Config {
	return Config{ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second, WriteTimeout: 60 * time.Second,
		IdleTimeout: 120 * time.Second, MaxHeaderBytes: 64 << 10}
}

// Validate reports what is wrong with c.
func (c Config) Validate() error {
	if c.ReadHeaderTimeout <= 0 || c.ReadTimeout <= 0 || c.WriteTimeout <= 0 || c.IdleTimeout <= 0 || c.MaxHeaderBytes <= 0 {
		return fmt.Errorf("http server: timeouts %v/%v/%v/%v and max_header_bytes %d must be positive",
			c.ReadHeaderTimeout, c.ReadTimeout, c.WriteTimeout, c.IdleTimeout, c.MaxHeaderBytes)
	}
	return nil
}

// New returns a server of h with the limits of cfg. A request for which
// streaming reports true (a media download, an evidence bundle in or out:
// long by nature) gets no read or write deadline beyond the header's; every
// other request must be read within ReadTimeout and answered within
// WriteTimeout of its start. streaming may be nil: nothing streams.
func New(h http.Handler, cfg Config, streaming func(*http.Request) bool) *http.Server {
	limited := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if streaming == nil || !streaming(r) {
			now := time.Now()
			rc := http.NewResponseController(w)
			// Errors mean the writer cannot take deadlines (a test
			// recorder); the server's own limits still hold.
			_ = rc.SetReadDeadline(now.Add(cfg.ReadTimeout))
			_ = rc.SetWriteDeadline(now.Add(cfg.WriteTimeout))
		}
		h.ServeHTTP(w, r)
	})
	return &http.Server{
		Handler:           limited,
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		IdleTimeout:       cfg.IdleTimeout,
		MaxHeaderBytes:    cfg.MaxHeaderBytes,
	}
}
