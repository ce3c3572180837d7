// Package obs provides what every service exposes for operators: Prometheus
// metrics, /healthz (the process is alive) and /readyz (its dependencies are
// reachable and it can do its work). Metrics and readiness, which say what a
// service depends on and how it fails, are served only on the admin address
// (Register); a public port answers /healthz alone (RegisterLiveness).
package obs

import (
	"context"
	"encoding/json"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// NewRegistry returns a Prometheus registry with the Go and process collectors.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// Check reports whether one dependency or condition is ready. It returns nil
// when ready, or an error saying what is wrong.
type Check func(ctx context.Context) error

// Health aggregates named readiness checks.
type Health struct {
	mu       sync.Mutex
	checks   map[string]Check
	draining bool
}

// Drain makes the process not ready from now on: it is shutting down, and
// probes and load balancers should send it nothing new.
func (h *Health) Drain() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.draining = true
}

// NewHealth returns an empty set of checks: ready until a check is added.
func NewHealth() *Health { return &Health{checks: map[string]Check{}} }

// Add registers a named readiness check.
func (h *Health) Add(name string, c Check) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.checks[name] = c
}

// Ready runs every check and returns the failures by name.
func (h *Health) Ready(ctx context.Context) map[string]string {
	h.mu.Lock()
	if h.draining {
		h.mu.Unlock()
		return map[string]string{"shutdown": "shutting down: finishing the work in flight"}
	}
	checks := make(map[string]Check, len(h.checks))
	for k, v := range h.checks {
		checks[k] = v
	}
	h.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	failed := map[string]string{}
	for name, c := range checks {
		if err := c(ctx); err != nil {
			failed[name] = err.Error()
		}
	}
	return failed
}

// Register adds /metrics, /healthz and /readyz to mux: the admin
// address's routes.
func Register(mux *http.ServeMux, reg *prometheus.Registry, h *Health) {
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	RegisterLiveness(mux)
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		failed := h.Ready(r.Context())
		w.Header().Set("Content-Type", "application/json")
		if len(failed) > 0 {
			w.WriteHeader(http.StatusServiceUnavailable)
			_ = json.NewEncoder(w).Encode(map[string]any{"ready": false, "failed": failed})
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"ready": true})
	})
}

// RegisterLiveness adds /healthz to mux: the process is alive. It is all a
// public port says about the process; a load balancer needs no more.
func RegisterLiveness(mux *http.ServeMux) {
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		_, _ = w.Write([]byte("ok\n"))
	})
}
