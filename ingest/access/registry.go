package access

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nokstream/nokstream/internal/nodeapi"
)

// ErrNodeRefused means the registry refused this ingest node's token
// (missing, wrong or revoked). It is not an outage: Cache does not stand in
// for the registry then, and nothing is learned.
var ErrNodeRefused = errors.New("the registry refused this ingest node's token (is it revoked? `nokstream node add NAME --rotate` issues a new one)")

// RegistryConfig says how to reach the registry's node API.
type RegistryConfig struct {
	// URLs are the base URLs of the registries (http[s]://host:port), tried
	// in turn: a request that fails for the network or a 5xx goes to the
	// next, and the one that answered is asked first next time.
	URLs []string
	// Token is this node's token (`nokstream node add`).
	Token string
	// Timeout bounds one attempt at one registry.
	Timeout time.Duration
	// Client sends the requests; http.DefaultTransport if nil.
	Client *http.Client
	// Metrics receives nokstream_ingest_registry_requests_total; nil
	// registers nothing.
	Metrics prometheus.Registerer
}

// Registry asks the registry's node API (internal/nodeapi) who may publish
// and which cameras to pull. It implements Checker and CandidateChecker;
// ingest wraps it in a Cache for registry outages.
type Registry struct {
	urls    []string
	token   string
	timeout time.Duration
	client  *http.Client
	log     *slog.Logger

	mu      sync.Mutex
	current int // index of the URL that answered last

	// requests counts requests by outcome: answered (by the registry asked
	// first), failover (by another), node_refused (401), unavailable (no
	// registry answered: Cache stands in).
	requests *prometheus.CounterVec
}

// ParseRegistryURLs splits a comma-separated list of registry base URLs
// and checks each.
func ParseRegistryURLs(list string) ([]string, error) {
	var out []string
	for _, s := range strings.Split(list, ",") {
		s = strings.TrimRight(strings.TrimSpace(s), "/")
		if s == "" {
			continue
		}
		u, err := url.Parse(s)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || u.RawQuery != "" {
			return nil, fmt.Errorf("registry URL %q: want http[s]://host:port, with no user or query", s)
		}
		out = append(out, s)
	}
	if len(out) == 0 {
		return nil, errors.New("no registry URL")
	}
	return out, nil
}

// NewRegistry returns a client of the registries in cfg.
func NewRegistry(cfg RegistryConfig, log *slog.Logger) (*Registry, error) {
	if len(cfg.URLs) == 0 {
		return nil, errors.New("registry client: no URL")
	}
	if _, ok := nodeapi.ParseToken(cfg.Token); !ok {
		return nil, errors.New("registry client: the node token is not one `nokstream node add` prints")
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 3 * time.Second
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{}
	}
	r := &Registry{urls: cfg.URLs, token: cfg.Token, timeout: cfg.Timeout, client: cfg.Client, log: log,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nokstream_ingest_registry_requests_total",
			Help: "Requests of ingest to the registry's node API, by outcome: answered, failover (another registry answered), node_refused (the node token), unavailable (no registry answered; cached checks stand in).",
		}, []string{"outcome"}),
	}
	if cfg.Metrics != nil {
		if err := cfg.Metrics.Register(r.requests); err != nil {
			return nil, fmt.Errorf("registry client: register metrics: %w", err)
		}
	}
	return r, nil
}

// errRetry marks an answer that another registry may give better: a 5xx.
type errRetry struct{ err error }

func (e errRetry) Error() string { return e.err.Error() }
func (e errRetry) Unwrap() error { return e.err }

// do sends a request to the registries in turn, from the one that answered
// last, until one answers other than with a network error or a 5xx. out
// receives a 200's body; a 403's refusal is returned as ErrUnknownStream
// or ErrBadCredentials, a 401 as ErrNodeRefused.
func (c *Registry) do(ctx context.Context, method, path string, body, out any) error {
	var payload []byte
	if body != nil {
		var err error
		if payload, err = json.Marshal(body); err != nil {
			return err
		}
	}
	c.mu.Lock()
	first := c.current
	c.mu.Unlock()
	var errs []error
	for i := range c.urls {
		n := (first + i) % len(c.urls)
		err := c.try(ctx, c.urls[n], method, path, payload, out)
		var retry errRetry
		if err == nil || !errors.As(err, &retry) {
			switch {
			case errors.Is(err, ErrNodeRefused):
				c.requests.WithLabelValues("node_refused").Inc()
			case n != first:
				c.requests.WithLabelValues("failover").Inc()
			default:
				c.requests.WithLabelValues("answered").Inc()
			}
			if n != first {
				c.mu.Lock()
				c.current = n
				c.mu.Unlock()
				c.log.Warn("registry failover", "registry", c.urls[n], "after", errors.Join(errs...))
			}
			return err
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	c.requests.WithLabelValues("unavailable").Inc()
	return fmt.Errorf("no registry answered: %w", errors.Join(errs...))
}

// try sends one request to the registry at base.
func (c *Registry) try(ctx context.Context, base, method, path string, payload []byte, out any) error {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	var rd io.Reader
	if payload != nil {
		rd = bytes.NewReader(payload)
	}
	req, err := http.NewRequestWithContext(ctx, method, base+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	if payload != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.client.Do(req)
	if err != nil {
		// The error names the URL, never the token (a header).
		return errRetry{err}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return errRetry{fmt.Errorf("%s %s: read the answer: %w", method, base+path, err)}
	}
	switch {
	case resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusNoContent:
		if out == nil {
			return nil
		}
		if err := json.Unmarshal(b, out); err != nil {
			return errRetry{fmt.Errorf("%s %s: decode the answer: %w", method, base+path, err)}
		}
		return nil
	case resp.StatusCode == http.StatusForbidden:
		var r nodeapi.Refusal
		if json.Unmarshal(b, &r) == nil {
			switch r.Refused {
			case nodeapi.RefusedUnknownStream:
				return ErrUnknownStream
			case nodeapi.RefusedBadCredentials:
				return ErrBadCredentials
			}
		}
		return fmt.Errorf("%s %s: 403 without a refusal: %.200s", method, base+path, b)
	case resp.StatusCode == http.StatusUnauthorized:
		return ErrNodeRefused
	case resp.StatusCode >= 500:
		return errRetry{fmt.Errorf("%s %s: %s: %.200s", method, base+path, resp.Status, b)}
	}
	return fmt.Errorf("%s %s: %s: %.200s", method, base+path, resp.Status, b)
}

// CheckPublisher implements Checker.
func (c *Registry) CheckPublisher(ctx context.Context, site, device, user, secret string) (Publisher, error) {
	var p nodeapi.Publisher
	if err := c.do(ctx, http.MethodPost, nodeapi.PathPublisher,
		nodeapi.PublisherCheck{Site: site, Device: device, User: user, Secret: secret}, &p); err != nil {
		return Publisher{}, err
	}
	return Publisher{Site: p.Site, Device: p.Device, Source: p.Source}, nil
}

// CheckCandidate implements CandidateChecker.
func (c *Registry) CheckCandidate(ctx context.Context, site, device, token string) (Publisher, error) {
	var p nodeapi.Publisher
	if err := c.do(ctx, http.MethodPost, nodeapi.PathCandidate,
		nodeapi.CandidateCheck{Site: site, Device: device, Token: token}, &p); err != nil {
		return Publisher{}, err
	}
	return Publisher{Site: p.Site, Device: p.Device, Source: p.Source, Candidate: p.Candidate, Exam: p.Exam, Until: p.Until}, nil
}

// PullDevices returns the cameras to pull, their URLs sealed.
func (c *Registry) PullDevices(ctx context.Context) ([]nodeapi.PullDevice, error) {
	var out []nodeapi.PullDevice
	if err := c.do(ctx, http.MethodGet, nodeapi.PathPulls, nil, &out); err != nil {
		return nil, fmt.Errorf("list the pulled cameras: %w", err)
	}
	return out, nil
}

// Ping reports whether a registry can check credentials now: ingest's
// readiness check "registry".
func (c *Registry) Ping(ctx context.Context) error {
	return c.do(ctx, http.MethodGet, nodeapi.PathPing, nil, nil)
}
