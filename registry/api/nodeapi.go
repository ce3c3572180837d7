package api

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nokstream/nokstream/internal/httpserver"
	"github.com/nokstream/nokstream/internal/nodeapi"
	"github.com/nokstream/nokstream/registry/store"
)

// NodeStore is what the node API reads: node tokens, device and candidate
// credentials and the cameras to pull.
type NodeStore interface {
	Ping(ctx context.Context) error
	NodeToken(ctx context.Context, name string) (hash []byte, revoked bool, err error)
	NodeSeen(ctx context.Context, name, addr string, at time.Time) error
	AuditNodeAuthFailures(ctx context.Context, fs []store.NodeAuthFailure) error
	AuthenticateDevice(ctx context.Context, site, device, user, secret string) (store.Device, error)
	CandidatePublisher(ctx context.Context, token, site, device string, now time.Time) (string, store.ExamSession, error)
	PullDevices(ctx context.Context) ([]store.PullDevice, error)
}

// NodeDeps are the node API's collaborators.
type NodeDeps struct {
	Store    NodeStore
	Log      *slog.Logger
	Registry prometheus.Registerer
	Now      func() time.Time // time.Now if nil
	// TrustedProxies are the reverse proxies whose X-Forwarded-For names
	// the client address in the audit.
	TrustedProxies []netip.Prefix
}

// NodeAPI is the registry's internal API for ingest nodes
// (internal/nodeapi): device and candidate credential checks and the
// cameras to pull, so that an ingest node holds no database. Only a node
// token opens it; failed authentications are counted per minute, node and
// reason (store.AuditNodeAuthFailures) and in
// nokstream_registry_node_auth_failures_total.
type NodeAPI struct {
	store   NodeStore
	log     *slog.Logger
	now     func() time.Time
	proxies []netip.Prefix
	mux     *http.ServeMux

	mu sync.Mutex
	// failures are the failed authentications not yet written to the
	// audit (Flush), by minute, node and reason.
	failures map[failureKey]*store.NodeAuthFailure
	// seen is when each node was last recorded as seen (NodeSeen is
	// written about once a minute, not per request).
	seen map[string]time.Time

	requests     *prometheus.CounterVec
	authFailures *prometheus.CounterVec
}

type failureKey struct {
	minute       time.Time
	node, reason string
}

// nodeSeenEvery is how often a node's last_seen is written.
const nodeSeenEvery = time.Minute

// NewNodeAPI returns the node API. It starts nothing: the caller serves
// Handler under nodeapi.Prefix and runs Run, which writes the audit.
func NewNodeAPI(deps NodeDeps) (*NodeAPI, error) {
	switch {
	case deps.Store == nil:
		return nil, errors.New("node api: no store")
	case deps.Log == nil:
		return nil, errors.New("node api: no logger")
	case deps.Registry == nil:
		return nil, errors.New("node api: no metrics registry")
	}
	n := &NodeAPI{store: deps.Store, log: deps.Log, now: deps.Now, proxies: deps.TrustedProxies, mux: http.NewServeMux(),
		failures: map[failureKey]*store.NodeAuthFailure{}, seen: map[string]time.Time{},
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nokstream_registry_node_requests_total",
			Help: "Requests of ingest nodes to the registry's node API, by route and status code.",
		}, []string{"route", "code"}),
		authFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nokstream_registry_node_auth_failures_total",
			Help: "Node API requests refused for their node token, by reason: missing, malformed, unknown, wrong, revoked.",
		}, []string{"reason"}),
	}
	if n.now == nil {
		n.now = time.Now
	}
	for _, c := range []prometheus.Collector{n.requests, n.authFailures} {
		if err := deps.Registry.Register(c); err != nil {
			return nil, fmt.Errorf("node api: register metrics: %w", err)
		}
	}
	n.route("GET "+nodeapi.PathPing, n.ping)
	n.route("POST "+nodeapi.PathPublisher, n.checkPublisher)
	n.route("POST "+nodeapi.PathCandidate, n.checkCandidate)
	n.route("GET "+nodeapi.PathPulls, n.pulls)
	return n, nil
}

// Handler serves the node API's routes; anything else under the prefix is
// a JSON 404 (or 405), whatever the token.
func (n *NodeAPI) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Content-Type-Options", "nosniff")
		if _, pattern := n.mux.Handler(r); pattern == "" {
			rec := &headerOnly{header: w.Header()}
			n.mux.ServeHTTP(rec, r)
			code := rec.code
			if code == 0 {
				code = http.StatusNotFound
			}
			writeError(w, code, http.StatusText(code))
			n.requests.WithLabelValues("unmatched", fmt.Sprint(code)).Inc()
			return
		}
		n.mux.ServeHTTP(w, r)
	})
}

// route registers h behind the node token check.
func (n *NodeAPI) route(pattern string, h func(w http.ResponseWriter, r *http.Request, node string)) {
	n.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		sw := &statusWriter{ResponseWriter: w}
		defer func() {
			if sw.code == 0 {
				sw.code = http.StatusOK
			}
			n.requests.WithLabelValues(pattern, fmt.Sprint(sw.code)).Inc()
		}()
		node, ok := n.authenticate(sw, r)
		if !ok {
			return
		}
		h(sw, r, node)
	})
}

// authenticate checks the node token of r. On failure it answers 401 (or
// 503 when the database cannot say), counts the failure and returns false.
// The answer does not say why: the reason is for the audit only.
func (n *NodeAPI) authenticate(w http.ResponseWriter, r *http.Request) (string, bool) {
	addr := httpserver.ClientAddr(r, n.proxies)
	token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || token == "" {
		return "", n.refuse(w, "", "missing", addr)
	}
	name, ok := nodeapi.ParseToken(token)
	if !ok {
		return "", n.refuse(w, "", "malformed", addr)
	}
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	want, revoked, err := n.store.NodeToken(ctx, name)
	switch {
	case errors.Is(err, store.ErrNotFound):
		// Compare anyway, so that an unknown node takes as long as a known
		// one with a wrong token.
		subtle.ConstantTimeCompare(nodeapi.HashToken(token), make([]byte, 32))
		return "", n.refuse(w, "", "unknown", addr)
	case err != nil:
		n.log.Error("node api: read node token", "node", name, "err", err)
		writeError(w, http.StatusServiceUnavailable, "the registry cannot check node tokens now; try another registry")
		return "", false
	}
	if subtle.ConstantTimeCompare(nodeapi.HashToken(token), want) != 1 {
		return "", n.refuse(w, name, "wrong", addr)
	}
	if revoked {
		return "", n.refuse(w, name, "revoked", addr)
	}
	n.markSeen(ctx, name, addr)
	return name, true
}

// refuse answers 401 and counts the failure for the audit.
func (n *NodeAPI) refuse(w http.ResponseWriter, node, reason, addr string) bool {
	n.authFailures.WithLabelValues(reason).Inc()
	minute := n.now().UTC().Truncate(time.Minute)
	k := failureKey{minute, node, reason}
	n.mu.Lock()
	f := n.failures[k]
	if f == nil {
		f = &store.NodeAuthFailure{Minute: minute, Node: node, Reason: reason}
		n.failures[k] = f
	}
	f.Count++
	f.LastAddr = addr
	n.mu.Unlock()
	w.Header().Set("WWW-Authenticate", `Bearer realm="nokstream node"`)
	writeError(w, http.StatusUnauthorized, "node token refused: register this ingest node with `nokstream node add NAME` and give it the token printed")
	return false
}

// markSeen records the node's last request, at most once a minute.
func (n *NodeAPI) markSeen(ctx context.Context, node, addr string) {
	now := n.now()
	n.mu.Lock()
	last, ok := n.seen[node]
	due := !ok || now.Sub(last) >= nodeSeenEvery
	if due {
		n.seen[node] = now
	}
	n.mu.Unlock()
	if !due {
		return
	}
	if err := n.store.NodeSeen(ctx, node, addr, now); err != nil {
		n.log.Warn("node api: record node seen", "node", node, "err", err)
	}
}

// Run writes the counted authentication failures to the audit every
// flushEvery, and once more when ctx ends.
func (n *NodeAPI) Run(ctx context.Context) error {
	const flushEvery = 10 * time.Second
	t := time.NewTicker(flushEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := n.Flush(fctx); err != nil {
				n.log.Error("node api: write the node authentication audit at shutdown", "err", err)
			}
			return nil
		case <-t.C:
			if err := n.Flush(ctx); err != nil && ctx.Err() == nil {
				n.log.Warn("node api: write the node authentication audit, will retry", "err", err)
			}
		}
	}
}

// Flush writes the counted authentication failures to the audit. What it
// could not write is kept for the next Flush.
func (n *NodeAPI) Flush(ctx context.Context) error {
	n.mu.Lock()
	pending := n.failures
	n.failures = map[failureKey]*store.NodeAuthFailure{}
	n.mu.Unlock()
	if len(pending) == 0 {
		return nil
	}
	fs := make([]store.NodeAuthFailure, 0, len(pending))
	for _, f := range pending {
		fs = append(fs, *f)
	}
	err := n.store.AuditNodeAuthFailures(ctx, fs)
	if err != nil {
		n.mu.Lock()
		for k, f := range pending {
			if g := n.failures[k]; g != nil {
				g.Count += f.Count
			} else {
				n.failures[k] = f
			}
		}
		n.mu.Unlock()
	}
	return err
}

func (n *NodeAPI) ping(w http.ResponseWriter, r *http.Request, _ string) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if err := n.store.Ping(ctx); err != nil {
		writeError(w, http.StatusServiceUnavailable, "the registry's database does not answer")
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// decodeNode decodes a node API request body into v, answering 400 if it
// is not one.
func decodeNode(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, nodeapi.MaxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		writeError(w, http.StatusBadRequest, "request body: "+err.Error())
		return false
	}
	return true
}

func (n *NodeAPI) checkPublisher(w http.ResponseWriter, r *http.Request, node string) {
	var q nodeapi.PublisherCheck
	if !decodeNode(w, r, &q) {
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	d, err := n.store.AuthenticateDevice(ctx, q.Site, q.Device, q.User, q.Secret)
	switch {
	case errors.Is(err, store.ErrUnknownDevice):
		writeJSON(w, http.StatusForbidden, nodeapi.Refusal{Refused: nodeapi.RefusedUnknownStream})
	case errors.Is(err, store.ErrBadCredentials):
		writeJSON(w, http.StatusForbidden, nodeapi.Refusal{Refused: nodeapi.RefusedBadCredentials})
	case err != nil:
		n.log.Error("node api: check a publisher", "node", node, "stream", q.Site+"/"+q.Device, "err", err)
		writeError(w, http.StatusServiceUnavailable, "the registry cannot check credentials now")
	default:
		writeJSON(w, http.StatusOK, nodeapi.Publisher{Site: d.Site, Device: d.Name, Source: d.Kind})
	}
}

func (n *NodeAPI) checkCandidate(w http.ResponseWriter, r *http.Request, node string) {
	var q nodeapi.CandidateCheck
	if !decodeNode(w, r, &q) {
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	kind, es, err := n.store.CandidatePublisher(ctx, q.Token, q.Site, q.Device, n.now())
	switch {
	case errors.Is(err, store.ErrBadCredentials):
		writeJSON(w, http.StatusForbidden, nodeapi.Refusal{Refused: nodeapi.RefusedBadCredentials})
	case err != nil:
		n.log.Error("node api: check a candidate publisher", "node", node, "stream", q.Site+"/"+q.Device, "err", err)
		writeError(w, http.StatusServiceUnavailable, "the registry cannot check credentials now")
	default:
		writeJSON(w, http.StatusOK, nodeapi.Publisher{Site: q.Site, Device: q.Device, Source: kind,
			Candidate: es.CandidateID, Exam: es.ExamID, Until: es.End})
	}
}

func (n *NodeAPI) pulls(w http.ResponseWriter, r *http.Request, node string) {
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	devs, err := n.store.PullDevices(ctx)
	if err != nil {
		n.log.Error("node api: list the pulled cameras", "node", node, "err", err)
		writeError(w, http.StatusServiceUnavailable, "the registry cannot list the pulled cameras now")
		return
	}
	out := make([]nodeapi.PullDevice, 0, len(devs))
	for _, d := range devs {
		out = append(out, nodeapi.PullDevice{Site: d.Site, Device: d.Name, Source: d.Kind, URLSealed: d.URLSealed})
	}
	writeJSON(w, http.StatusOK, out)
}
